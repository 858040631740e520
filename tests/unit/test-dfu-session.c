/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The DFU session (dfu-session.c, dfu-flash.c) against the virtual board's
 * DFU model (tests/vboard/dfu-model.c, the state machine the umockdev
 * emulation runs), in process: a UsbTransport whose operations call the
 * model directly, on a virtual clock, so a device busy for seconds costs
 * nothing. The board defects that the usbdevfs glue adds (string
 * descriptors, string-eio, unplug) are played here the way usb-device.c
 * plays them. Each case: the defects, the expected result, the expected
 * flash content, and the erase/write order in the model's event log.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../vboard/dfu-model.h"
#include "../vboard/string-descriptor.h"
#include "codec/dfuse-layout.h"
#include "util/macros.h"
#include "tests.h"
#include "usb/dfu-session.h"
#include "usb/usb-transport.h"

/* Octopus Pro F429 (daemon/boards/data/octopus-pro.json) and
 * Smoothieboard (smoothieboard.json) as vboard builds them (board.c). */
#define F429_LAYOUT  "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"
#define F4_OB_LAYOUT "@Option Bytes  /0x1FFFC000/01*016 e"
#define F429_BASE    0x08000000u
#define F429_SIZE    (1024u * 1024u)
#define F429_APP     0x08008000u
#define F429_XFER    2048
#define LPC_LAYOUT   "@Internal Flash  /0x00000000/16*004Kg,14*032Kg"
#define LPC_BASE     0x00000000u
#define LPC_SIZE     (512u * 1024u)
#define LPC_APP      0x00004000u
#define LPC_XFER     512
/* reaches into the first 128 KiB sector of the F429, the one garbage-tail
 * makes dfu-util 0.11 drop */
#define IMAGE_SIZE (100u * 1024u)

#define MAX_EVENTS 512

typedef struct Event {
        char name[16];
        uint32_t address;
        uint32_t length;
} Event;

typedef enum Earlier {
        EARLIER_NONE,
        EARLIER_DNLOAD_SYNC, /* a SET_ADDRESS sent, its GETSTATUS never asked */
        EARLIER_ERASE,       /* a 128 KiB sector erase in progress (real timing) */
        EARLIER_DNLOAD_IDLE, /* a download left open */
        EARLIER_UPLOAD_IDLE, /* an upload left open */
        EARLIER_ERROR,       /* a refused command left dfuERROR/errTARGET */
} Earlier;

typedef struct Fake {
        UsbTransport transport;
        Timing timing;
        uint64_t now_us;
        DfuModel *model;
        FlashModel *flash, *option_bytes;
        bool plain;
        uint16_t xfer;
        /* the glue's defects (usb-device.c) */
        bool short_string, garbage_tail;
        unsigned string_eio_left;
        unsigned unplug_after_blocks; /* 0: never */
        unsigned stall_at_block;      /* the N-th data DNLOAD stalls; 0: never */
        uint32_t stuck_address;       /* a flash byte that does not erase; 0: none */
        uint32_t flip_address;        /* a flash byte that does not hold what is written; 0: none */
        bool gone;
        uint64_t data_blocks;
        Event events[MAX_EVENTS];
        size_t n_events;
} Fake;

static Fake *fake_of(UsbTransport *t)
{
        return (Fake *)t;
}

static void on_event(void *userdata, const char *name, uint32_t address, uint32_t length)
{
        Fake *f = userdata;
        Event *e;

        if (streq(name, "erase") && f->stuck_address &&
            flash_model_contains(f->flash, f->stuck_address, 1) && f->stuck_address >= address &&
            f->stuck_address - address < length) {
                /* a worn cell: reads 0x00 after the erase */
                uint8_t zero = 0;
                flash_model_load(f->flash, f->stuck_address, &zero, 1);
        }
        if (streq(name, "write") && f->flip_address && f->flip_address >= address &&
            f->flip_address - address < length) {
                /* a weak cell: reads back another value than the one programmed */
                uint8_t b = (uint8_t)~f->flash->data[f->flip_address - f->flash->base];
                flash_model_load(f->flash, f->flip_address, &b, 1);
        }
        if (f->n_events >= MAX_EVENTS)
                return;
        e = &f->events[f->n_events++];
        snprintf(e->name, sizeof(e->name), "%s", name);
        e->address = address;
        e->length = length;
}

/* A pending leave or reset takes the board off the bus when it is due
 * (vboard_schedule). */
static void fake_settle(Fake *f)
{
        uint64_t at;

        if (dfu_model_pending_action(f->model, &at) != DFU_ACTION_NONE && f->now_us >= at)
                f->gone = true;
}

static int fake_string(Fake *f, uint8_t index, uint8_t *data, uint16_t len)
{
        uint8_t buf[255];
        size_t n;

        if (f->string_eio_left > 0) {
                f->string_eio_left--;
                return -EIO;
        }
        switch (index) {
        case 0:
                n = 4;
                memcpy(buf, (const uint8_t[]){ 4, 3, 0x09, 0x04 }, n);
                break;
        case 4:
                if (f->plain)
                        n = string_descriptor_dfu_layout("Smoothie DFU", false, false, buf, sizeof(buf));
                else
                        n = string_descriptor_dfu_layout(F429_LAYOUT, f->short_string, f->garbage_tail, buf,
                                                         sizeof(buf));
                break;
        case 5:
                n = string_descriptor_dfu_layout(F4_OB_LAYOUT, false, false, buf, sizeof(buf));
                break;
        default:
                return -EPIPE;
        }
        n = MIN(n, (size_t)len);
        memcpy(data, buf, n);
        return (int)n;
}

static int fake_control(UsbTransport *t, uint8_t request_type, uint8_t request, uint16_t value,
                        uint16_t index, void *data, uint16_t len, unsigned timeout_ms)
{
        Fake *f = fake_of(t);
        bool data_block;
        int r;

        (void)index;
        (void)timeout_ms;
        fake_settle(f);
        if (f->gone)
                return -ENODEV;
        f->now_us += timing_control_transfer_us(&f->timing);

        if ((request_type & 0x60) == 0x00) {
                if (request == 0x06 && value >> 8 == 3)
                        return fake_string(f, value & 0xFF, data, len);
                return -EPIPE;
        }

        data_block =
                request == DFU_REQUEST_DNLOAD && !(request_type & 0x80) && (f->plain ? len > 0 : value >= 2);
        if (data_block && f->stall_at_block && f->data_blocks + 1 == f->stall_at_block) {
                /* refused as the model refuses a request (DFU 1.1 Appendix A) */
                f->data_blocks++;
                f->model->stalls++;
                f->model->state = DFU_STATE_DFU_ERROR;
                f->model->status = DFU_STATUS_ERR_STALLEDPKT;
                return -EPIPE;
        }
        r = dfu_model_request(f->model, f->now_us, request_type, request, value, len, data);
        if (dfu_model_pending_action(f->model, NULL) == DFU_ACTION_VANISH)
                f->gone = true;
        if (r < 0)
                return r;
        if (data_block) {
                f->data_blocks++;
                if (f->unplug_after_blocks && f->data_blocks >= f->unplug_after_blocks)
                        f->gone = true; /* the cable is pulled right after it */
        }
        /* an OUT data stage is consumed whole */
        return request_type & 0x80 ? r : len;
}

static int fake_claim(UsbTransport *t, uint8_t interface, uint8_t alt)
{
        Fake *f = fake_of(t);

        if (f->gone)
                return -ENODEV;
        if (interface != 0)
                return -ENOENT;
        return dfu_model_set_alt(f->model, alt) < 0 ? -EINVAL : 0;
}

static int fake_reset(UsbTransport *t)
{
        Fake *f = fake_of(t);

        fake_settle(f);
        if (f->gone)
                return -ENODEV;
        dfu_model_bus_reset(f->model, f->now_us);
        if (dfu_model_pending_action(f->model, NULL) == DFU_ACTION_LEAVE) {
                /* it comes back as something else: libusb says NOT_FOUND */
                f->gone = true;
                return -ENOENT;
        }
        return 0;
}

static int fake_find_dfu(UsbTransport *t, UsbDfuInfo *ret)
{
        Fake *f = fake_of(t);
        size_t n = f->plain ? 1 : 2;
        UsbDfuAltSetting *alts = calloc(n, sizeof(*alts));

        if (!alts)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                alts[i] = (UsbDfuAltSetting){
                        .interface = 0, .alt = (uint8_t)i, .protocol = 2, .i_interface = (uint8_t)(4 + i)
                };
        /* usb-device.c dfu_config() / plain_dfu_config() */
        *ret = (UsbDfuInfo){
                .alts = alts,
                .n_alts = n,
                .has_functional = true,
                .functional = {
                        .attributes = f->plain ? f->model->attributes
                                               : DFU_ATTR_WILL_DETACH | DFU_ATTR_CAN_UPLOAD | DFU_ATTR_CAN_DNLOAD,
                        .detach_timeout = f->plain ? 500 : 255,
                        .transfer_size = f->xfer,
                        .dfu_version = f->plain ? 0x0110 : DFU_VERSION_DFUSE,
                },
        };
        return 0;
}

static uint64_t fake_now_ms(UsbTransport *t)
{
        return fake_of(t)->now_us / 1000;
}

static void fake_sleep_ms(UsbTransport *t, uint32_t ms)
{
        fake_of(t)->now_us += (uint64_t)ms * 1000;
}

static void fake_free(UsbTransport *t)
{
        (void)t; /* the test owns the Fake */
}

static const UsbTransportOps fake_ops = {
        .kind = "model",
        .control = fake_control,
        .claim = fake_claim,
        .reset = fake_reset,
        .find_dfu = fake_find_dfu,
        .now_ms = fake_now_ms,
        .sleep_ms = fake_sleep_ms,
        .free = fake_free,
};

static int sectors_of(const char *layout, FlashSector **ret, size_t *ret_n)
{
        _cleanup_(dfuse_layout_freep) DfuseLayout *l = NULL;
        FlashSector *s = NULL;
        size_t n = 0;
        int r;

        r = dfuse_layout_parse(layout, strlen(layout), &l);
        if (r < 0)
                return r;
        for (size_t i = 0; i < l->n_regions; i++)
                for (size_t j = 0; j < l->regions[i].n_segments; j++) {
                        const DfuseSegment *g = &l->regions[i].segments[j];

                        for (uint32_t k = 0; k < g->count; k++) {
                                FlashSector *p = realloc(s, (n + 1) * sizeof(*s));
                                if (!p)
                                        return free(s), -ENOMEM;
                                s = p;
                                s[n++] = (FlashSector){ g->address + k * g->size, g->size };
                        }
                }
        *ret = s;
        *ret_n = n;
        return 0;
}

/* ---- the cases ---- */

typedef enum Expect {
        FLASH_IMAGE,     /* the image at the application address, nothing else touched */
        FLASH_OLD,       /* the content before the session, untouched */
        FLASH_VT_ERASED, /* cut short: the vector table's chunk still erased */
        FLASH_PREFIX,    /* plain DFU cut short: the blocks sent so far, erased after them */
        FLASH_MASS,      /* the image at the application address, everything else erased */
} Expect;

typedef struct Case {
        const char *name;
        bool plain;
        /* defects */
        bool error_at_start, reset_on_leave, short_string, garbage_tail;
        bool tolerant, no_detach, silent_manifest;
        unsigned string_eio;
        unsigned unplug_after;
        unsigned stall_at;
        uint32_t stuck_address;
        uint32_t flip_address;
        Earlier earlier;
        double timing_scale; /* 0: fast timing; else real timing at this scale */
        /* the session */
        bool read_layout; /* from the device instead of the database's copy */
        bool no_leave;
        bool mass_erase;
        uint32_t image_at;           /* where the image goes (0: the application address) */
        bool old_is_image;           /* the flash already holds the image */
        uint32_t old_changed_at;     /* ... except one byte here (0: none) */
        uint64_t cancel_after_write; /* cancel once this many bytes are written (0: never) */
        /* expected */
        int result;
        const char *message; /* a substring of the session's message */
        const char *note;    /* a substring of one note, or NULL */
        Expect flash;
        unsigned erases;        /* sector erases in the event log, -1u: not checked */
        unsigned max_session_s; /* the session's virtual duration at most (0: not checked) */
} Case;

static const Case cases[] = {
        { .name = "clean",
          .result = FLASH_RESULT_LEFT,
          .message = "flashed: 4 sector(s) touched",
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "error-at-start",
          .error_at_start = true,
          .result = FLASH_RESULT_LEFT,
          .note = "errFIRMWARE",
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "reset-on-leave",
          .reset_on_leave = true,
          .result = FLASH_RESULT_LEFT_DEVICE_GONE,
          .message = "re-enumerating",
          .note = "before answering the leave request",
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "busy: DNLOAD not yet executed",
          .earlier = EARLIER_DNLOAD_SYNC,
          .result = FLASH_RESULT_LEFT,
          .note = "still busy (dfuDNBUSY) from an earlier session",
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "busy: sector erase (real timing)",
          .earlier = EARLIER_ERASE,
          .timing_scale = 1.0,
          .result = FLASH_RESULT_LEFT,
          .note = "still busy (dfuDNBUSY) from an earlier session",
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "busy: longer than any session waits",
          /* the same erase, 50000 times slower: bwPollTimeout says hours */
          .earlier = EARLIER_ERASE,
          .timing_scale = 50000.0,
          .result = -ETIMEDOUT,
          .message = "stays busy (dfuDNBUSY) from an earlier session",
          .flash = FLASH_OLD,
          .erases = -1u,
          /* a control transfer costs 50 s at this scale: a GETSTATUS or two,
           * no sleep for the hours the device asks */
          .max_session_s = 120 },
        { .name = "short-string",
          .short_string = true,
          .read_layout = true,
          .result = FLASH_RESULT_LEFT,
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "garbage-tail",
          .garbage_tail = true,
          .read_layout = true,
          .result = FLASH_RESULT_LEFT,
          .note = "memory layout: ",
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "short-string + garbage-tail",
          .short_string = true,
          .garbage_tail = true,
          .read_layout = true,
          .result = FLASH_RESULT_LEFT,
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "string-eio, layout read from the device",
          .string_eio = 1,
          .read_layout = true,
          .result = -EIO,
          .message = "memory layout of alt setting 0",
          .flash = FLASH_OLD,
          .erases = 0 },
        { .name = "string-eio, layout from the database",
          .string_eio = 3,
          .result = FLASH_RESULT_LEFT,
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "unplug mid-write",
          .unplug_after = 5,
          .result = -ENODEV,
          .message = "disappeared while writing",
          .flash = FLASH_VT_ERASED,
          .erases = 0 },
        { .name = "stall mid-write",
          .stall_at = 5,
          .result = -EIO,
          .message = "errSTALLEDPKT",
          .flash = FLASH_VT_ERASED,
          .erases = 0 },
        { .name = "sector that does not erase",
          .stuck_address = 0x08010000u + 100,
          .result = -EIO,
          .message = "errPROG",
          .flash = FLASH_VT_ERASED,
          .erases = 0 },
        { .name = "already up to date",
          .old_is_image = true,
          .result = FLASH_RESULT_LEFT,
          .message = "already up to date",
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "one sector changed",
          .old_is_image = true,
          .old_changed_at = 0x08010000u + 5000,
          .result = FLASH_RESULT_LEFT,
          .note = "holds the vector table",
          .flash = FLASH_IMAGE,
          .erases = 2 },
        { .name = "no leave",
          .no_leave = true,
          .result = FLASH_RESULT_DONE,
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "cancelled mid-write",
          .cancel_after_write = 8 * F429_XFER,
          .result = -ECANCELED,
          .message = "during write",
          .flash = FLASH_VT_ERASED,
          .erases = 0 },

        { .name = "download left open by an earlier session",
          .earlier = EARLIER_DNLOAD_IDLE,
          .result = FLASH_RESULT_LEFT,
          .note = "still in dfuDNLOAD-IDLE from an earlier session; aborted it",
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "upload left open by an earlier session",
          .earlier = EARLIER_UPLOAD_IDLE,
          .result = FLASH_RESULT_LEFT,
          .note = "still in dfuUPLOAD-IDLE from an earlier session; aborted it",
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "dfuERROR left by an earlier operation",
          .earlier = EARLIER_ERROR,
          .result = FLASH_RESULT_LEFT,
          .note = "was in dfuERROR (errTARGET: ",
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "verify finds a weak cell",
          .flip_address = 0x08010000u + 100,
          .result = -EILSEQ,
          .message = "verify failed at 0x08010064",
          .flash = FLASH_IMAGE,
          .erases = 0 },
        { .name = "mass erase",
          .mass_erase = true,
          .result = FLASH_RESULT_LEFT,
          .message = "(mass erase)",
          .flash = FLASH_MASS,
          .erases = -1u },
        { .name = "image past the end of the flash",
          .image_at = 0x080F0000u,
          .result = -ERANGE,
          .message = "nothing was erased",
          .flash = FLASH_OLD,
          .erases = 0 },

        /* plain DFU 1.1 (Smoothieware's bootloader) */
        { .name = "plain",
          .plain = true,
          .result = FLASH_RESULT_LEFT_DEVICE_GONE,
          .note = "not verified",
          .flash = FLASH_IMAGE,
          .erases = -1u },
        { .name = "plain dfu-tolerant",
          .plain = true,
          .tolerant = true,
          .result = FLASH_RESULT_LEFT_DEVICE_GONE,
          .message = "and verified",
          .flash = FLASH_IMAGE,
          .erases = -1u },
        { .name = "plain dfu-no-detach",
          .plain = true,
          .no_detach = true,
          .result = FLASH_RESULT_LEFT_DEVICE_GONE,
          .flash = FLASH_IMAGE,
          .erases = -1u },
        { .name = "plain dfu-silent-manifest",
          .plain = true,
          .silent_manifest = true,
          .no_detach = true,
          .result = FLASH_RESULT_LEFT_DEVICE_GONE,
          .flash = FLASH_IMAGE,
          .erases = -1u },
        { .name = "plain error-at-start",
          .plain = true,
          .error_at_start = true,
          .result = FLASH_RESULT_LEFT_DEVICE_GONE,
          .note = "errFIRMWARE",
          .flash = FLASH_IMAGE,
          .erases = -1u },
        { .name = "plain unplug mid-write",
          .plain = true,
          .unplug_after = 7,
          .result = -ENODEV,
          .message = "disappeared while writing",
          .flash = FLASH_PREFIX,
          .erases = -1u },
};

static uint8_t image[IMAGE_SIZE];

static void make_image(void)
{
        /* never a whole chunk of 0xFF, so every chunk is written */
        for (size_t i = 0; i < sizeof(image); i++)
                image[i] = (uint8_t)(i * 7 + 3 + i / 4096);
        /* a plausible vector table: initial SP, odd reset vector */
        memcpy(image, (const uint8_t[]){ 0x00, 0x00, 0x03, 0x20, 0x01, 0x81, 0x00, 0x08 }, 8);
}

typedef struct Watch {
        atomic_bool cancel;
        uint64_t cancel_after;
        FlashPhase phase;
} Watch;

static void watch_phase(void *userdata, FlashPhase phase)
{
        ((Watch *)userdata)->phase = phase;
}

static void watch_progress(void *userdata, uint64_t done, uint64_t total)
{
        Watch *w = userdata;

        (void)total;
        if (w->phase == FLASH_PHASE_WRITE && w->cancel_after && done >= w->cancel_after)
                atomic_store(&w->cancel, true);
}

static bool has_note(DfuSession *s, const char *needle)
{
        for (char *const *n = dfu_session_get_notes(s); *n; n++)
                if (strstr(*n, needle))
                        return true;
        return false;
}

static bool all_ff(const uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (p[i] != 0xFF)
                        return false;
        return true;
}

/* The DfuSe rule (dfu-flash.c): when anything is written, the sector
 * holding the vector table is the first erased and its chunk the last
 * written, and every erase comes before the first write. */
static void check_vector_table_order(const Case *c, const Fake *f, uint32_t app)
{
        size_t first_write = f->n_events, last_write = f->n_events, first_erase = f->n_events;
        int vt_sector = flash_model_find_sector(f->flash, app);

        for (size_t i = 0; i < f->n_events; i++) {
                if (streq(f->events[i].name, "write")) {
                        if (first_write == f->n_events)
                                first_write = i;
                        last_write = i;
                } else if (streq(f->events[i].name, "erase") && first_erase == f->n_events)
                        first_erase = i;
        }
        if (first_write == f->n_events)
                return; /* nothing written */
        for (size_t i = first_write; i < f->n_events; i++)
                if (streq(f->events[i].name, "erase")) {
                        fprintf(stderr, "%s: erase of 0x%08x after the first write\n", c->name,
                                f->events[i].address);
                        tests_failed++;
                }
        if (first_erase < f->n_events && vt_sector >= 0 &&
            f->events[first_erase].address != f->flash->sectors[vt_sector].address) {
                fprintf(stderr, "%s: first erase at 0x%08x, not the vector table's sector\n", c->name,
                        f->events[first_erase].address);
                tests_failed++;
        }
        if (c->result >= 0 && f->events[last_write].address != app) {
                fprintf(stderr, "%s: last write at 0x%08x, not the vector table at 0x%08x\n", c->name,
                        f->events[last_write].address, app);
                tests_failed++;
        }
}

static void check_flash(const Case *c, const Fake *f, const uint8_t *old, uint32_t app)
{
        const FlashModel *m = f->flash;
        const uint8_t *now = m->data;
        uint32_t off = app - m->base;

        switch (c->flash) {
        case FLASH_IMAGE:
                if (c->flip_address) {
                        /* the weak cell reads back wrong, everything else holds the image */
                        CHECK(now[c->flip_address - m->base] != image[c->flip_address - app]);
                        CHECK(memcmp(now + off, image, c->flip_address - app) == 0);
                        CHECK(memcmp(now + (c->flip_address - m->base) + 1,
                                     image + (c->flip_address - app) + 1,
                                     sizeof(image) - (c->flip_address - app) - 1) == 0);
                } else if (memcmp(now + off, image, sizeof(image)) != 0) {
                        fprintf(stderr, "%s: the image is not in the flash\n", c->name);
                        tests_failed++;
                }
                /* below the application (the bootloader) never touched */
                if (memcmp(now, old, off) != 0) {
                        fprintf(stderr, "%s: the bootloader region changed\n", c->name);
                        tests_failed++;
                }
                break;
        case FLASH_OLD:
                if (memcmp(now, old, m->size) != 0) {
                        fprintf(stderr, "%s: the flash changed\n", c->name);
                        tests_failed++;
                }
                break;
        case FLASH_VT_ERASED:
                if (!all_ff(now + off, f->xfer)) {
                        fprintf(stderr, "%s: the vector table's chunk was written by a cut-short flash\n",
                                c->name);
                        tests_failed++;
                }
                if (memcmp(now, old, off) != 0) {
                        fprintf(stderr, "%s: the bootloader region changed\n", c->name);
                        tests_failed++;
                }
                break;
        case FLASH_MASS:
                CHECK(memcmp(now + off, image, sizeof(image)) == 0);
                CHECK(all_ff(now, off));
                CHECK(all_ff(now + off + sizeof(image), m->size - off - sizeof(image)));
                break;
        case FLASH_PREFIX: {
                /* a block is programmed at the GETSTATUS after its DNLOAD:
                 * the last one sent never was */
                size_t sent = (size_t)(c->unplug_after - 1) * f->xfer;

                CHECK(memcmp(now + off, image, sent) == 0);
                CHECK_INT(now[off + sent], 0xFF);
                CHECK(memcmp(now, old, off) == 0);
                break;
        }
        }
}

static void set_up_earlier(Fake *f, Earlier e)
{
        uint8_t cmd[5] = { DFUSE_CMD_SET_ADDRESS, 0x00, 0x80, 0x00, 0x08 };
        uint8_t st[6];

        switch (e) {
        case EARLIER_NONE:
                return;
        case EARLIER_DNLOAD_SYNC:
                CHECK_INT(dfu_model_request(f->model, f->now_us, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DNLOAD, 0,
                                            5, cmd),
                          0);
                break;
        case EARLIER_ERASE:
                cmd[0] = DFUSE_CMD_ERASE;
                cmd[3] = 0x04; /* 0x08040000: a 128 KiB sector */
                CHECK_INT(dfu_model_request(f->model, f->now_us, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DNLOAD, 0,
                                            5, cmd),
                          0);
                CHECK_INT(dfu_model_request(f->model, f->now_us, DFU_REQUEST_TYPE_IN, DFU_REQUEST_GETSTATUS,
                                            0, 6, st),
                          6);
                break;
        case EARLIER_DNLOAD_IDLE:
                CHECK_INT(dfu_model_request(f->model, f->now_us, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DNLOAD, 0,
                                            5, cmd),
                          0);
                CHECK_INT(dfu_model_request(f->model, f->now_us, DFU_REQUEST_TYPE_IN, DFU_REQUEST_GETSTATUS,
                                            0, 6, st),
                          6);
                f->now_us += 1000000;
                CHECK_INT(dfu_model_request(f->model, f->now_us, DFU_REQUEST_TYPE_IN, DFU_REQUEST_GETSTATUS,
                                            0, 6, st),
                          6);
                CHECK_INT(f->model->state, DFU_STATE_DFU_DNLOAD_IDLE);
                break;
        case EARLIER_UPLOAD_IDLE: {
                uint8_t buf[F429_XFER];

                CHECK_INT(dfu_model_request(f->model, f->now_us, DFU_REQUEST_TYPE_IN, DFU_REQUEST_UPLOAD, 2,
                                            sizeof(buf), buf),
                          (int)sizeof(buf));
                CHECK_INT(f->model->state, DFU_STATE_DFU_UPLOAD_IDLE);
                break;
        }
        case EARLIER_ERROR:
                /* an address the ROM does not accept: errTARGET (AN3156 6.1.3) */
                memset(cmd + 1, 0, 4);
                CHECK_INT(dfu_model_request(f->model, f->now_us, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DNLOAD, 0,
                                            5, cmd),
                          0);
                CHECK_INT(dfu_model_request(f->model, f->now_us, DFU_REQUEST_TYPE_IN, DFU_REQUEST_GETSTATUS,
                                            0, 6, st),
                          6);
                f->now_us += 1000000;
                CHECK_INT(dfu_model_request(f->model, f->now_us, DFU_REQUEST_TYPE_IN, DFU_REQUEST_GETSTATUS,
                                            0, 6, st),
                          6);
                CHECK_INT(f->model->state, DFU_STATE_DFU_ERROR);
                CHECK_INT(f->model->status, DFU_STATUS_ERR_TARGET);
                break;
        }
        f->n_events = 0;
}

static void run_case(const Case *c)
{
        _cleanup_free_ FlashSector *sectors = NULL, *ob_sectors = NULL;
        _cleanup_free_ uint8_t *old = NULL;
        _cleanup_free_ char *message = NULL, *open_message = NULL;
        _cleanup_(dfuse_layout_freep) DfuseLayout *layout = NULL;
        _cleanup_(dfu_session_freep) DfuSession *s = NULL;
        const char *layout_string = c->plain ? LPC_LAYOUT : F429_LAYOUT;
        uint32_t base = c->plain ? LPC_BASE : F429_BASE, size = c->plain ? LPC_SIZE : F429_SIZE;
        uint32_t app = c->plain ? LPC_APP : F429_APP;
        size_t n, n_ob;
        Fake f = {
                .transport.ops = &fake_ops,
                .timing = { .mode = c->timing_scale > 0 ? TIMING_REAL : TIMING_FAST,
                            .scale = c->timing_scale > 0 ? c->timing_scale : 1.0 },
                .now_us = 1000000,
                .plain = c->plain,
                .xfer = c->plain ? LPC_XFER : F429_XFER,
                .short_string = c->short_string,
                .garbage_tail = c->garbage_tail,
                .string_eio_left = c->string_eio,
                .unplug_after_blocks = c->unplug_after,
                .stall_at_block = c->stall_at,
                .stuck_address = c->stuck_address,
                .flip_address = c->flip_address,
        };
        Watch w = { .cancel_after = c->cancel_after_write };
        FlashCallbacks cb = {
                .phase = watch_phase, .progress = watch_progress, .cancel = &w.cancel, .userdata = &w
        };
        FlashSegment seg = { .address = c->image_at ? c->image_at : app,
                             .data = (uint8_t *)image,
                             .size = sizeof(image) };
        FlashImage img = {
                .format = FLASH_IMAGE_FORMAT_BIN, .segments = &seg, .n_segments = 1, .size = sizeof(image)
        };
        DfuFlashRequest req = {
                DFU_FLASH_REQUEST_DEFAULTS,  .image = &img,        .leave = !c->no_leave,
                .mass_erase = c->mass_erase, .leave_address = app,
        };
        int r;

        /* the board (vboard_new): NOR flash from the layout, option bytes, the ROM */
        CHECK_INT(sectors_of(layout_string, &sectors, &n), 0);
        CHECK_INT(sectors_of(F4_OB_LAYOUT, &ob_sectors, &n_ob), 0);
        CHECK_INT(flash_model_new(&f.flash, base, size, true, sectors, n), 0);
        CHECK_INT(flash_model_new(&f.option_bytes, ob_sectors[0].address, ob_sectors[0].size, false,
                                  ob_sectors, 1),
                  0);
        CHECK_INT(dfu_model_new(&f.model, &f.timing, f.xfer), 0);
        CHECK_INT(dfu_model_add_alt(f.model, f.flash), 0);
        CHECK_INT(dfu_model_add_alt(f.model, f.option_bytes), 0);
        if (c->plain) {
                uint8_t attributes = DFU_ATTR_WILL_DETACH | DFU_ATTR_CAN_UPLOAD | DFU_ATTR_CAN_DNLOAD;

                if (c->tolerant)
                        attributes |= DFU_ATTR_MANIFESTATION_TOLERANT;
                if (c->no_detach)
                        attributes &= (uint8_t)~DFU_ATTR_WILL_DETACH;
                CHECK_INT(dfu_model_set_plain(f.model, app, attributes), 0);
                f.model->manifest_silent = c->silent_manifest;
        }
        f.model->reset_on_leave = c->reset_on_leave;
        f.model->on_event = on_event;
        f.model->userdata = &f;

        /* before the session: a bootloader below the application, and an
         * older application or the image itself above it */
        for (uint32_t a = 0; a < app - base; a++) {
                uint8_t b = (uint8_t) "VBOARD-BOOTLOADR"[a % 16];
                flash_model_load(f.flash, base + a, &b, 1);
        }
        if (c->old_is_image) {
                flash_model_load(f.flash, app, image, sizeof(image));
                if (c->old_changed_at) {
                        uint8_t b = (uint8_t)~image[c->old_changed_at - app];
                        flash_model_load(f.flash, c->old_changed_at, &b, 1);
                }
        } else
                for (uint32_t a = app; a < app + 3 * sizeof(image) / 2; a += 4096)
                        flash_model_load(f.flash, a, (const uint8_t *)"an older application", 20);
        old = malloc(size);
        memcpy(old, f.flash->data, size);
        dfu_model_power_up(f.model, c->error_at_start);
        set_up_earlier(&f, c->earlier);

        r = dfu_session_new(&s, &f.transport, "the test board", &open_message);
        if (r < 0) {
                fprintf(stderr, "%s: dfu_session_new: %s\n", c->name, strna(open_message));
                tests_failed++;
                goto out;
        }
        if (!c->read_layout && !c->plain) {
                CHECK_INT(dfuse_layout_parse(F429_LAYOUT, strlen(F429_LAYOUT), &layout), 0);
                req.layout = layout;
        }
        uint64_t started_us = f.now_us;
        r = dfu_session_flash(s, &req, &cb, &message);

        if (c->max_session_s && f.now_us - started_us > (uint64_t)c->max_session_s * 1000000) {
                fprintf(stderr, "%s: the session took %" PRIu64 " s of virtual time, expected at most %u\n",
                        c->name, (f.now_us - started_us) / 1000000, c->max_session_s);
                tests_failed++;
        }
        if (r != c->result) {
                fprintf(stderr, "%s: result %d (%s), expected %d\n", c->name, r, strna(message), c->result);
                tests_failed++;
        }
        if (c->message && (!message || !strstr(message, c->message))) {
                fprintf(stderr, "%s: message \"%s\" lacks \"%s\"\n", c->name, strna(message), c->message);
                tests_failed++;
        }
        if (c->note && !has_note(s, c->note)) {
                fprintf(stderr, "%s: no note with \"%s\"\n", c->name, c->note);
                tests_failed++;
        }
        check_flash(c, &f, old, app);
        if (!c->plain)
                check_vector_table_order(c, &f, app);
        if (c->erases != -1u) {
                unsigned erases = 0;
                bool any_write = false;

                for (size_t i = 0; i < f.n_events; i++) {
                        erases += streq(f.events[i].name, "erase");
                        any_write |= streq(f.events[i].name, "write");
                }
                /* 0 in the table: every touched sector (4) when anything is written */
                if (c->erases == 0 && c->flash != FLASH_OLD && any_write)
                        CHECK_INT(erases, 4);
                else if (c->erases > 0)
                        CHECK_INT(erases, c->erases);
                else if (!any_write)
                        CHECK_INT(erases, 0);
        }
out:
        s = dfu_session_free(s); /* frees nothing of the Fake */
        dfu_model_free(f.model);
        flash_model_free(f.flash);
        flash_model_free(f.option_bytes);
}

int main(void)
{
        make_image();
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                run_case(&cases[i]);
        TESTS_EXIT();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PICOBOOT session (picoboot-session.c) against the virtual RP2040 boot
 * ROM's PICOBOOT model (tests/vboard/picoboot-model.c, what the umockdev
 * emulation runs), in process: a UsbTransport whose bulk and control
 * transfers call the model directly, on a virtual clock. The defects the
 * usbdevfs glue adds (unplug, the reboot leaving the bus) are played here
 * as usb-device.c plays them. Each case: the defects, the expected result,
 * the flash content, and the order of erases and writes.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../vboard/picoboot-model.h"
#include "util/macros.h"
#include "tests.h"
#include "usb/picoboot-session.h"
#include "usb/usb-transport.h"

/* skr-pico (daemon/boards/data/skr-pico.json): 2 MiB of QSPI flash */
#define FLASH_BASE 0x10000000u
#define FLASH_SIZE (2u * 1024u * 1024u)
#define IMAGE_SIZE (40u * 1024u)
#define EP_OUT     0x03
#define EP_IN      0x84
#define MAX_EVENTS 256

typedef struct Event {
        char name[16];
        uint32_t address;
        uint32_t length;
} Event;

typedef struct Fake {
        UsbTransport transport;
        Timing timing;
        uint64_t now_us;
        PicobootModel *model;
        FlashModel *flash;
        unsigned unplug_after_writes; /* 0: never */
        uint32_t flip_address;        /* a byte that reads back wrong after its WRITE; 0: none */
        bool gone;
        uint64_t gone_at_us; /* the reboot takes the board off the bus then; 0: not scheduled */
        Event events[MAX_EVENTS];
        size_t n_events;
} Fake;

static Fake *fake_of(UsbTransport *t)
{
        return (Fake *)t;
}

static void log_event(Fake *f, const char *name, uint32_t address, uint32_t length)
{
        Event *e;

        if (f->n_events >= MAX_EVENTS)
                return;
        e = &f->events[f->n_events++];
        snprintf(e->name, sizeof(e->name), "%s", name);
        e->address = address;
        e->length = length;
}

static void on_event(void *userdata, const char *name, uint32_t address, uint32_t length)
{
        if (streq(name, "erase"))
                log_event(userdata, name, address, length);
}

static void fake_settle(Fake *f)
{
        if (f->gone_at_us && f->now_us >= f->gone_at_us)
                f->gone = true;
}

static int fake_control(UsbTransport *t, uint8_t request_type, uint8_t request, uint16_t value,
                        uint16_t index, void *data, uint16_t len, unsigned timeout_ms)
{
        Fake *f = fake_of(t);

        (void)value;
        (void)timeout_ms;
        fake_settle(f);
        if (f->gone)
                return -ENODEV;
        /* the PICOBOOT interface's vendor requests (usb-device.c control()) */
        if ((request_type & 0x60) == 0x40 && (request_type & 0x1F) == 1 && index == 1)
                return picoboot_model_control(f->model, request_type, request, len, data);
        return -EPIPE;
}

static int fake_bulk(UsbTransport *t, uint8_t endpoint, void *data, int len, int *ret_transferred,
                     unsigned timeout_ms)
{
        Fake *f = fake_of(t);
        PicobootPhase before = f->model->phase;
        uint32_t delay_ms;
        PicobootCmd cmd;
        int r;

        (void)timeout_ms;
        fake_settle(f);
        if (f->gone)
                return -ENODEV;
        if (endpoint == EP_OUT && before == PICOBOOT_PHASE_COMMAND &&
            picoboot_cmd_decode(data, (size_t)len, &cmd) == PICOBOOT_OK && cmd.id == PICOBOOT_WRITE)
                log_event(f, "write", cmd.addr, cmd.size);
        if (endpoint == EP_OUT)
                r = picoboot_model_out(f->model, f->now_us, data, (size_t)len);
        else if (endpoint == EP_IN)
                r = picoboot_model_in(f->model, f->now_us, data, (size_t)len);
        else
                return -EPIPE;
        /* usb-device.c bulk(): an IN transfer completes when the flash work is done */
        f->now_us = MAX(f->now_us + timing_bulk_us(&f->timing, (uint32_t)MAX(r, 0)),
                        endpoint == EP_IN ? picoboot_model_busy_until(f->model) : 0);
        if (r >= 0 && picoboot_model_take_reboot(f->model, &delay_ms))
                f->gone_at_us = f->now_us + (uint64_t)delay_ms * 1000;
        if (f->unplug_after_writes && r > 0 && before == PICOBOOT_PHASE_DATA_OUT &&
            f->model->phase == PICOBOOT_PHASE_ACK_IN && f->model->writes >= f->unplug_after_writes)
                f->gone = true; /* the cable is pulled right after this WRITE's data */
        if (r > 0 && before == PICOBOOT_PHASE_DATA_OUT && f->model->phase == PICOBOOT_PHASE_ACK_IN &&
            f->flip_address && f->flip_address >= f->model->cmd.addr &&
            f->flip_address - f->model->cmd.addr < f->model->cmd.size) {
                /* a weak cell: reads back another value than the one programmed */
                uint8_t b = (uint8_t)~f->flash->data[f->flip_address - f->flash->base];
                flash_model_load(f->flash, f->flip_address, &b, 1);
        }
        if (r < 0)
                return -EPIPE;
        *ret_transferred = r;
        return 0;
}

static int fake_claim(UsbTransport *t, uint8_t interface, uint8_t alt)
{
        (void)t;
        return interface == 1 && alt == 0 ? 0 : -ENOENT;
}

static int fake_reset(UsbTransport *t)
{
        (void)t;
        return -EOPNOTSUPP;
}

static int fake_find_dfu(UsbTransport *t, UsbDfuInfo *ret)
{
        (void)t;
        (void)ret;
        return -ENXIO;
}

/* usb-device.c bootsel_config(): mass storage, then PICOBOOT (ff/00/00) */
static int fake_find_bulk_interface(UsbTransport *t, uint8_t interface_class, UsbBulkInterface *ret)
{
        (void)t;
        if (interface_class != 0xFF)
                return -ENXIO;
        *ret = (UsbBulkInterface){ .interface = 1, .ep_in = EP_IN, .ep_out = EP_OUT };
        return 0;
}

static int fake_get_device_descriptor(UsbTransport *t, struct libusb_device_descriptor *ret)
{
        (void)t;
        *ret = (struct libusb_device_descriptor){ .bLength = 18,
                                                  .bDescriptorType = 1,
                                                  .idVendor = 0x2e8a,
                                                  .idProduct = 0x0003,
                                                  .bcdDevice = 0x0100 };
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
        .find_bulk_interface = fake_find_bulk_interface,
        .get_device_descriptor = fake_get_device_descriptor,
        .bulk = fake_bulk,
        .now_ms = fake_now_ms,
        .sleep_ms = fake_sleep_ms,
        .free = fake_free,
};

/* ---- the cases ---- */

typedef enum Expect {
        FLASH_IMAGE,     /* the image at the flash start, the rest untouched */
        FLASH_OLD,       /* the content before the session */
        FLASH_VT_ERASED, /* cut short: the first sector (boot2, vector table) erased */
} Expect;

typedef struct Case {
        const char *name;
        unsigned stall_on_write; /* picoboot-stall=N */
        unsigned unplug_after;   /* unplug=N */
        uint32_t flip_address;
        bool old_is_image;
        bool no_reboot;
        uint32_t flash_size;         /* told to the session; 0: the board's */
        uint64_t cancel_after_write; /* bytes */
        int result;
        const char *message;
        Expect flash;
        unsigned stalls_recovered;
} Case;

static const Case cases[] = {
        { .name = "clean",
          .result = FLASH_RESULT_LEFT,
          .message = "10 of 10 sectors written, 0 unchanged; rebooting",
          .flash = FLASH_IMAGE },
        { .name = "picoboot-stall: a WRITE refused once, recovered",
          .stall_on_write = 3,
          .result = FLASH_RESULT_LEFT,
          .flash = FLASH_IMAGE,
          .stalls_recovered = 1 },
        { .name = "unplug mid-write",
          .unplug_after = 3,
          .result = -ENODEV,
          .message = "vanished while writing at 0x10003000",
          .flash = FLASH_VT_ERASED },
        { .name = "already up to date",
          .old_is_image = true,
          .result = FLASH_RESULT_LEFT,
          .message = "0 of 10 sectors written, 10 unchanged",
          .flash = FLASH_IMAGE },
        { .name = "no reboot", .no_reboot = true, .result = FLASH_RESULT_DONE, .flash = FLASH_IMAGE },
        { .name = "image larger than the flash",
          .flash_size = 32 * 1024,
          .result = -ERANGE,
          .message = "nothing was erased",
          .flash = FLASH_OLD },
        { .name = "verify finds a weak cell",
          .flip_address = FLASH_BASE + 0x2345,
          .result = -EILSEQ,
          .message = "verify failed: the flash at 0x10002345",
          .flash = FLASH_IMAGE },
        { .name = "cancelled mid-write",
          .cancel_after_write = 16 * 1024,
          .result = -ECANCELED,
          .message = "first sector is erased",
          .flash = FLASH_VT_ERASED },
};

static uint8_t image[IMAGE_SIZE];

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

static bool all_ff(const uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (p[i] != 0xFF)
                        return false;
        return true;
}

/* The first sector (boot2 and the vector table) is the first erased and
 * the last written whenever anything is written (picoboot-session.h). */
static void check_order(const Case *c, const Fake *f)
{
        size_t first_erase = f->n_events, last_write = f->n_events;

        for (size_t i = 0; i < f->n_events; i++) {
                if (streq(f->events[i].name, "erase") && first_erase == f->n_events)
                        first_erase = i;
                if (streq(f->events[i].name, "write"))
                        last_write = i;
        }
        if (last_write == f->n_events)
                return;
        if (first_erase < f->n_events && f->events[first_erase].address != FLASH_BASE) {
                fprintf(stderr, "%s: first erase at 0x%08x, not the first sector\n", c->name,
                        f->events[first_erase].address);
                tests_failed++;
        }
        if (c->result >= 0 && f->events[last_write].address != FLASH_BASE) {
                fprintf(stderr, "%s: last write at 0x%08x, not the first sector\n", c->name,
                        f->events[last_write].address);
                tests_failed++;
        }
        for (size_t i = 0; c->flash == FLASH_VT_ERASED && i < f->n_events; i++)
                if (streq(f->events[i].name, "write") && f->events[i].address == FLASH_BASE) {
                        fprintf(stderr, "%s: the first sector was written by a cut-short flash\n", c->name);
                        tests_failed++;
                }
}

static void check_flash(const Case *c, const Fake *f, const uint8_t *old)
{
        const uint8_t *now = f->flash->data;

        switch (c->flash) {
        case FLASH_IMAGE:
                for (size_t i = 0; i < sizeof(image); i++)
                        if (now[i] != image[i] && FLASH_BASE + i != c->flip_address) {
                                fprintf(stderr, "%s: flash differs from the image at +0x%zx\n", c->name, i);
                                tests_failed++;
                                break;
                        }
                CHECK(memcmp(now + sizeof(image), old + sizeof(image), FLASH_SIZE - sizeof(image)) == 0);
                break;
        case FLASH_OLD:
                CHECK(memcmp(now, old, FLASH_SIZE) == 0);
                break;
        case FLASH_VT_ERASED:
                CHECK(all_ff(now, RP2040_FLASH_SECTOR));
                break;
        }
}

static void run_case(const Case *c)
{
        _cleanup_free_ FlashSector *sectors = NULL;
        _cleanup_free_ uint8_t *old = NULL;
        _cleanup_free_ char *message = NULL, *open_message = NULL;
        _cleanup_(picoboot_session_freep) PicobootSession *s = NULL;
        Fake f = {
                .transport.ops = &fake_ops,
                .timing = { .mode = TIMING_REAL, .scale = 1.0 },
                .now_us = 1000000,
                .unplug_after_writes = c->unplug_after,
                .flip_address = c->flip_address,
        };
        Watch w = { .cancel_after = c->cancel_after_write };
        FlashCallbacks cb = {
                .phase = watch_phase, .progress = watch_progress, .cancel = &w.cancel, .userdata = &w
        };
        FlashSegment seg = { .address = FLASH_BASE, .data = (uint8_t *)image, .size = sizeof(image) };
        FlashImage img = {
                .format = FLASH_IMAGE_FORMAT_BIN, .segments = &seg, .n_segments = 1, .size = sizeof(image)
        };
        PicobootFlashRequest req = {
                .image = &img,
                .flash_size = c->flash_size ? c->flash_size : FLASH_SIZE,
                .verify = true,
                .reboot = !c->no_reboot,
        };
        int r;

        /* the board (vboard_new): 4 KiB sectors, as its layout says */
        sectors = calloc(FLASH_SIZE / RP2040_FLASH_SECTOR, sizeof(*sectors));
        for (uint32_t i = 0; i < FLASH_SIZE / RP2040_FLASH_SECTOR; i++)
                sectors[i] = (FlashSector){ FLASH_BASE + i * RP2040_FLASH_SECTOR, RP2040_FLASH_SECTOR };
        CHECK_INT(flash_model_new(&f.flash, FLASH_BASE, FLASH_SIZE, true, sectors,
                                  FLASH_SIZE / RP2040_FLASH_SECTOR),
                  0);
        CHECK_INT(picoboot_model_new(&f.model, &f.timing, f.flash), 0);
        f.model->stall_on_write = c->stall_on_write;
        f.model->on_event = on_event;
        f.model->userdata = &f;

        /* an older application, or the image itself */
        if (c->old_is_image)
                flash_model_load(f.flash, FLASH_BASE, image, sizeof(image));
        else
                for (uint32_t a = 0; a < 2 * sizeof(image); a += 1024)
                        flash_model_load(f.flash, FLASH_BASE + a, (const uint8_t *)"an older application",
                                         20);
        old = malloc(FLASH_SIZE);
        memcpy(old, f.flash->data, FLASH_SIZE);

        r = picoboot_session_new(&s, &f.transport, &open_message);
        if (r < 0) {
                fprintf(stderr, "%s: picoboot_session_new: %s\n", c->name, strna(open_message));
                tests_failed++;
                goto out;
        }
        r = picoboot_session_flash(s, &req, &cb, &message);
        if (r != c->result) {
                fprintf(stderr, "%s: result %d (%s), expected %d\n", c->name, r, strna(message), c->result);
                tests_failed++;
        }
        if (c->message && (!message || !strstr(message, c->message))) {
                fprintf(stderr, "%s: message \"%s\" lacks \"%s\"\n", c->name, strna(message), c->message);
                tests_failed++;
        }
        CHECK_INT(picoboot_session_get_stats(s)->stalls_recovered, c->stalls_recovered);
        if (c->old_is_image) {
                /* nothing to do: no erase, no write */
                for (size_t i = 0; i < f.n_events; i++)
                        CHECK(!streq(f.events[i].name, "erase") && !streq(f.events[i].name, "write"));
        }
        check_flash(c, &f, old);
        check_order(c, &f);
out:
        s = picoboot_session_free(s);
        picoboot_model_free(f.model);
        flash_model_free(f.flash);
}

int main(void)
{
        for (size_t i = 0; i < sizeof(image); i++)
                image[i] = (uint8_t)(i * 13 + 5 + i / 4096);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                run_case(&cases[i]);
        TESTS_EXIT();
}

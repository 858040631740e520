/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reads a DFU device's alt-setting strings when it appears (and a few times
 * more, spaced out, when a transfer fails: see probe_retry_usec). Opening a
 * device and control transfers can block (up to their timeouts), so this
 * runs on a short-lived worker thread per device; the thread owns nothing
 * but its result, which it hands to the main loop through a pipe (a
 * pointer write, atomic below PIPE_BUF). The main loop joins the thread
 * and applies the result if the device is still the same one.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/usb-string.h"
#include "inventory/inventory-internal.h"
#include "util/log.h"
#include "usb/picoboot-session.h"
#include "usb/usb-transport.h"
#include "util/macros.h"

/* USB 2.0 §9.4.3: strings are fetched with a 255-byte wLength, so a
 * device's lie about bLength cannot make us ask for more than exists. */
#define STRING_BUF_SIZE 255

/* A probe that failed on a transfer (a board answers badly for a moment
 * after it enumerates, and boards entering DFU together share the bus) is
 * tried again after these pauses: four tries within about 3 s. The board
 * is reported as probed only after the last one. */
static const uint64_t probe_retry_usec[] = { 250000, 750000, 2000000 };
#define PROBE_TRIES (ELEMENTSOF(probe_retry_usec) + 1)

typedef struct ProbeThread ProbeThread;
struct ProbeThread {
        pthread_t thread;
        int write_fd;
        unsigned busnum, devnum;
        unsigned attempt; /* 1 for the first */
        bool transient;   /* a transfer failed: another try may succeed */
        bool bootsel;     /* an RP2040 boot ROM: read its version over PICOBOOT */
        InventoryProbeResult result;
        ProbeThread *next;
};

/* A probe waiting for its next try. */
typedef struct ProbeRetry ProbeRetry;
struct ProbeRetry {
        InventoryProber *prober;
        sd_event_source *timer;
        char *port;
        unsigned busnum, devnum, attempt;
        bool bootsel;
        uint64_t generation;
        char *last_error; /* the diagnostic of the try that failed */
        ProbeRetry *next;
};

struct InventoryProber {
        Inventory *inv;
        sd_event *event;
        int pipe[2];
        sd_event_source *source;
        ProbeThread *threads;
        ProbeRetry *retries;
};

static void probe_fail(InventoryProbeResult *res, int r, const char *what)
{
        res->error = r;
        free(res->diagnostic);
        res->diagnostic = NULL;
        if (asprintf(&res->diagnostic, "could not read the DFU descriptors (%s: %s)", what, strerror(-r)) <
            0)
                res->diagnostic = NULL;
}

/* < 0: the transfer failed (the alt is left without a name); a malformed
 * descriptor is a diagnostic of the alt, not a failure of the probe. */
static int probe_alt_string(libusb_device_handle *h, uint16_t langid, uint8_t index, InventoryAlt *a)
{
        uint8_t buf[STRING_BUF_SIZE];
        _cleanup_free_ char *utf8 = NULL;
        bool patched = false;
        size_t n;

        int r = usb_transport_read_string_raw(h, index, langid, buf, &n);
        if (r < 0) {
                if (asprintf(&a->diagnostic, "reading string descriptor %u failed: %s", index,
                             strerror(-r)) < 0)
                        a->diagnostic = NULL;
                return r;
        }
        if (usb_string_descriptor_decode(buf, n, &utf8, &patched) < 0) {
                if (asprintf(&a->diagnostic, "string descriptor %u is malformed (%zu bytes)", index, n) < 0)
                        a->diagnostic = NULL;
                return 0;
        }
        a->string_patched = patched;
        DfuseLayout *layout = NULL;
        if (dfuse_layout_parse(utf8, strlen(utf8), &layout) >= 0)
                a->layout = layout;

        _cleanup_free_ char *patch_note = NULL;
        if (patched &&
            asprintf(&patch_note,
                     "the string descriptor claimed %u bytes but the device sent %zu; decoded the "
                     "bytes received",
                     n > 0 ? buf[0] : 0, n) < 0)
                patch_note = NULL;
        const char *layout_note = layout ? layout->diagnostic : NULL;
        if (patch_note && layout_note) {
                if (asprintf(&a->diagnostic, "%s; %s", patch_note, layout_note) < 0)
                        a->diagnostic = NULL;
        } else if (patch_note)
                a->diagnostic = TAKE_PTR(patch_note);
        else if (layout_note)
                a->diagnostic = strdup(layout_note);
        a->name = TAKE_PTR(utf8);
        return 0;
}

/* The RP2040 ROM's version byte (a PICOBOOT READ); the session's
 * refusal of an RP2350 becomes the device's diagnostic. */
static void probe_bootsel(ProbeThread *t)
{
        InventoryProbeResult *res = &t->result;
        _cleanup_(picoboot_session_freep) PicobootSession *s = NULL;
        _cleanup_free_ char *message = NULL;
        int r;

        r = picoboot_session_open_bus_dev(&s, (uint8_t)t->busnum, (uint8_t)t->devnum, &message);
        if (r < 0) {
                res->error = r;
                res->diagnostic = TAKE_PTR(message);
                return;
        }
        r = picoboot_session_rom_version(s, &res->rom_version);
        if (r < 0) {
                res->error = r;
                if (asprintf(&res->diagnostic, "could not read the boot ROM's version: %s", strerror(-r)) <
                    0)
                        res->diagnostic = NULL;
        }
}

static void probe_device(ProbeThread *t)
{
        InventoryProbeResult *res = &t->result;
        _cleanup_(usb_transport_freep) UsbTransport *transport = NULL;
        _cleanup_(usb_dfu_info_clear) UsbDfuInfo info = {};
        int r;

        /* whatever fails below is worth another try, except a string
         * descriptor that arrived but is malformed */
        t->transient = true;
        r = usb_transport_open_bus_dev(&transport, (uint8_t)t->busnum, (uint8_t)t->devnum);
        if (r < 0)
                return probe_fail(res, r, "open");
        r = usb_transport_find_dfu(transport, &info);
        if (r < 0)
                return probe_fail(res, r, "DFU interfaces");
        if (info.has_functional)
                res->transfer_size = info.functional.transfer_size;

        /* String descriptor 0 lists the LANGIDs (USB 2.0 §9.6.7). */
        libusb_device_handle *h = usb_transport_get_handle(transport);
        uint8_t langs[STRING_BUF_SIZE];
        uint16_t langid = 0x0409;
        size_t n;
        if (usb_transport_read_string_raw(h, 0, 0, langs, &n) >= 0 && n >= 4)
                langid = (uint16_t)(langs[2] | langs[3] << 8);

        res->alts = calloc(info.n_alts ? info.n_alts : 1, sizeof(InventoryAlt));
        if (!res->alts)
                return probe_fail(res, -ENOMEM, "allocating");
        for (size_t i = 0; i < info.n_alts; i++) {
                InventoryAlt *a = &res->alts[res->n_alts++];
                a->interface = info.alts[i].interface;
                a->alt = info.alts[i].alt;
                if (!info.alts[i].i_interface)
                        continue;
                r = probe_alt_string(h, langid, info.alts[i].i_interface, a);
                if (r < 0 && res->error == 0) {
                        char what[64];
                        snprintf(what, sizeof(what), "string descriptor %u of alt setting %u",
                                 info.alts[i].i_interface, a->alt);
                        probe_fail(res, r, what);
                }
        }
        if (res->error == 0)
                t->transient = false;
        /* The transport is released on return: a job opens the device again
         * when it needs it. */
}

static void *probe_thread(void *userdata)
{
        ProbeThread *t = userdata;

        if (t->bootsel)
                probe_bootsel(t);
        else
                probe_device(t);
        /* A pointer is 8 bytes: atomic on a pipe. If the main loop is gone
         * the write fails and inventory_prober_free() joins us anyway. */
        ssize_t k = write(t->write_fd, &t, sizeof(t));
        (void)k;
        return NULL;
}

static void probe_thread_free(ProbeThread *t)
{
        inventory_probe_result_clear(&t->result);
        free(t);
}

static void prober_reap(InventoryProber *p, ProbeThread *t)
{
        for (ProbeThread **pp = &p->threads; *pp; pp = &(*pp)->next)
                if (*pp == t) {
                        *pp = t->next;
                        break;
                }
        /* The thread wrote its pointer as its last act: this join is immediate. */
        pthread_join(t->thread, NULL);
}

static ProbeRetry *probe_retry_free(ProbeRetry *r)
{
        if (!r)
                return NULL;
        sd_event_source_disable_unref(r->timer);
        free(r->port);
        free(r->last_error);
        free(r);
        return NULL;
}

static void prober_drop_retry(InventoryProber *p, ProbeRetry *r)
{
        for (ProbeRetry **pp = &p->retries; *pp; pp = &(*pp)->next)
                if (*pp == r) {
                        *pp = r->next;
                        break;
                }
        probe_retry_free(r);
}

/* The device that was probed is still the one on its port. */
static bool prober_device_is_there(InventoryProber *p, const char *port, uint64_t generation)
{
        const InventoryEntry *e = inventory_get(p->inv, port);

        return e && e->present && e->generation == generation;
}

static int prober_spawn(InventoryProber *p, const char *port, unsigned busnum, unsigned devnum, bool bootsel,
                        uint64_t generation, unsigned attempt);

static int on_probe_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
        ProbeRetry *r = userdata;
        InventoryProber *p = r->prober;
        int k;

        if (prober_device_is_there(p, r->port, r->generation)) {
                k = prober_spawn(p, r->port, r->busnum, r->devnum, r->bootsel, r->generation, r->attempt);
                if (k < 0) {
                        /* report what the last try found rather than leave the board unprobed */
                        InventoryProbeResult res = { .generation = r->generation, .error = k };
                        log_warning_errno(k, "device %s: cannot start DFU probe attempt %u: %m", r->port,
                                          r->attempt);
                        res.port = TAKE_PTR(r->port);
                        res.diagnostic = TAKE_PTR(r->last_error);
                        if (!res.diagnostic)
                                res.diagnostic = strdup("could not read the DFU descriptors");
                        inventory_apply_probe(p->inv, &res);
                }
        }
        prober_drop_retry(p, r);
        return 0;
}

/* Try again later; < 0 if that cannot be arranged (the result is applied as it is). */
static int prober_schedule_retry(InventoryProber *p, ProbeThread *t)
{
        ProbeRetry *r = calloc(1, sizeof(*r));
        uint64_t delay = probe_retry_usec[t->attempt - 1];
        int k;

        if (!r)
                return -ENOMEM;
        *r = (ProbeRetry){ .prober = p,
                           .busnum = t->busnum,
                           .devnum = t->devnum,
                           .bootsel = t->bootsel,
                           .attempt = t->attempt + 1,
                           .generation = t->result.generation };
        r->port = strdup(t->result.port);
        r->last_error = t->result.diagnostic ? strdup(t->result.diagnostic) : NULL;
        if (!r->port) {
                probe_retry_free(r);
                return -ENOMEM;
        }
        k = sd_event_add_time_relative(p->event, &r->timer, CLOCK_MONOTONIC, delay, 0, on_probe_retry, r);
        if (k < 0) {
                probe_retry_free(r);
                return k;
        }
        r->next = p->retries;
        p->retries = r;
        log_debug("device %s: DFU probe attempt %u of %zu failed (%s); trying again in %" PRIu64 " ms",
                  t->result.port, t->attempt, PROBE_TRIES, strna(t->result.diagnostic), delay / 1000);
        return 0;
}

static int on_probe_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        InventoryProber *p = userdata;
        ProbeThread *t;

        for (;;) {
                ssize_t n = read(fd, &t, sizeof(t));
                if (n != sizeof(t))
                        break;
                prober_reap(p, t);
                if (t->result.error < 0 && t->transient && t->attempt < PROBE_TRIES &&
                    prober_device_is_there(p, t->result.port, t->result.generation) &&
                    prober_schedule_retry(p, t) >= 0) {
                        probe_thread_free(t);
                        continue;
                }
                if (t->result.error < 0 && t->attempt > 1) {
                        char *d = NULL;
                        if (asprintf(&d, "%s (%u attempts)", strna(t->result.diagnostic), t->attempt) >= 0) {
                                free(t->result.diagnostic);
                                t->result.diagnostic = d;
                        }
                } else if (t->result.error >= 0 && t->attempt > 1)
                        log_info("device %s: DFU descriptors read on attempt %u", t->result.port,
                                 t->attempt);
                inventory_apply_probe(p->inv, &t->result);
                probe_thread_free(t);
        }
        return 0;
}

int inventory_prober_new(InventoryProber **ret, Inventory *inv, sd_event *event)
{
        InventoryProber *p = calloc(1, sizeof(*p));
        int r;

        if (!p)
                return -ENOMEM;
        p->inv = inv;
        p->event = event;
        if (pipe2(p->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
                free(p);
                return -errno;
        }
        r = sd_event_add_io(event, &p->source, p->pipe[0], EPOLLIN, on_probe_done, p);
        if (r < 0) {
                inventory_prober_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

InventoryProber *inventory_prober_free(InventoryProber *p)
{
        if (!p)
                return NULL;
        sd_event_source_disable_unref(p->source);
        while (p->retries)
                prober_drop_retry(p, p->retries);
        while (p->threads) {
                ProbeThread *t = p->threads;
                prober_reap(p, t);
                probe_thread_free(t);
        }
        safe_close(p->pipe[0]);
        safe_close(p->pipe[1]);
        free(p);
        return NULL;
}

static int prober_spawn(InventoryProber *p, const char *port, unsigned busnum, unsigned devnum, bool bootsel,
                        uint64_t generation, unsigned attempt)
{
        ProbeThread *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->write_fd = p->pipe[1];
        t->busnum = busnum;
        t->devnum = devnum;
        t->bootsel = bootsel;
        t->attempt = attempt;
        t->result.generation = generation;
        t->result.port = strdup(port);
        if (!t->result.port) {
                free(t);
                return -ENOMEM;
        }
        int r = pthread_create(&t->thread, NULL, probe_thread, t);
        if (r != 0) {
                probe_thread_free(t);
                return -r;
        }
        t->next = p->threads;
        p->threads = t;
        log_debug("device %s: probing DFU descriptors (bus %u dev %u, attempt %u)", port, busnum, devnum,
                  attempt);
        return 0;
}

int inventory_prober_start(InventoryProber *p, const InventoryEntry *e)
{
        /* a device that re-enumerated starts over: retries of the old one are void */
        for (ProbeRetry *r = p->retries, *next; r; r = next) {
                next = r->next;
                if (streq(r->port, e->port))
                        prober_drop_retry(p, r);
        }
        return prober_spawn(p, e->port, e->busnum, e->devnum, e->mode == DEVICE_MODE_BOOTSEL, e->generation,
                            1);
}

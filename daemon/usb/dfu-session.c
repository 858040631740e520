/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * DFU sessions: the DFU 1.1 request layer, DfuSe commands (UM0424, AN3156)
 * and the flash procedure. Sequential code for a worker thread; no
 * logging, no shared state. Every wait is bounded: control transfers by
 * DFU_CONTROL_TIMEOUT_MS, busy polling by a per-operation deadline.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usb/dfu-session.h"
#include "usb/dfu-session-internal.h"
#include "util/macros.h"

/* A GETSTATUS or a data block answers in milliseconds; 5 s means the device hangs. */
#define DFU_CONTROL_TIMEOUT_MS 5000
/* SET_ADDRESS and programming one block (F4: ~2 ms per 2 KiB, datasheet tPROG). */
#define DFU_COMMAND_TIMEOUT_MS 5000
/* One sector erase: STM32F4 128 KiB sector, x8 parallelism: up to 4 s (RM0090
 * datasheet tERASE128KB max); generous margin for slower parts. */
#define DFU_ERASE_PAGE_TIMEOUT_MS 20000
/* Mass erase: dfu-util allows 35 s because an F405 under-reports the time. */
#define DFU_MASS_ERASE_TIMEOUT_MS 35000
/* Bound on GETSTATUS polls for one operation, for devices that answer
 * dfuDNBUSY with a poll timeout of 0. */
#define DFU_MAX_POLLS 100000
/* Used when the device has no functional descriptor (DFU 1.1 requires one). */
#define DFU_DEFAULT_TRANSFER_SIZE 1024

uint64_t dfu_session_now_ms(DfuSession *s)
{
        return usb_transport_now_ms(s->transport);
}

void dfu_session_sleep_ms(DfuSession *s, uint32_t ms)
{
        usb_transport_sleep_ms(s->transport, ms);
}

int dfu_session_fail(DfuSession *s, int error, const char *fmt, ...)
{
        va_list ap;
        char *m;

        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        free(s->error);
        s->error = m;
        return error;
}

void dfu_session_note(DfuSession *s, const FlashCallbacks *cb, const char *fmt, ...)
{
        va_list ap;
        char *m, **n;

        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        if (!m)
                return;
        flash_callbacks_note(cb, m);
        n = realloc(s->notes, (s->n_notes + 2) * sizeof(*n));
        if (!n) {
                free(m);
                return;
        }
        s->notes = n;
        s->notes[s->n_notes++] = m;
        s->notes[s->n_notes] = NULL;
}

int dfu_session_check_cancel(DfuSession *s, const FlashCallbacks *cb, const char *what, uint32_t address)
{
        if (!flash_callbacks_cancelled(cb))
                return 0;
        return dfu_session_fail(s, -ECANCELED,
                                "cancelled during %s at 0x%08" PRIx32 "; the board stays in DFU mode: "
                                "flash it again before leaving the bootloader",
                                what, address);
}

DfuSession *dfu_session_free(DfuSession *s)
{
        if (!s)
                return NULL;
        usb_transport_free(s->transport);
        usb_dfu_info_clear(&s->info);
        for (size_t i = 0; i < s->n_notes; i++)
                free(s->notes[i]);
        free(s->notes);
        free(s->error);
        free(s);
        return NULL;
}

static void strdup_to(char **ret_message, const char *m)
{
        if (ret_message)
                *ret_message = m ? strdup(m) : NULL;
}

int dfu_session_new(DfuSession **ret, UsbTransport *t, const char *where, char **ret_message)
{
        _cleanup_(dfu_session_freep) DfuSession *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s) {
                usb_transport_free(t);
                return -ENOMEM;
        }
        s->transport = t;
        s->block_addressing = true;

        r = usb_transport_find_dfu(t, &s->info);
        if (r == -ENXIO) {
                strdup_to(ret_message, "the USB device has no DFU interface; it is not in a DFU bootloader");
                return r;
        }
        if (r < 0) {
                if (ret_message && asprintf(ret_message, "cannot read the USB descriptors of %s: %s", where,
                                            strerror(-r)) < 0)
                        *ret_message = NULL;
                return r;
        }

        s->dfuse = false;
        s->transfer_size = DFU_DEFAULT_TRANSFER_SIZE;
        if (s->info.has_functional) {
                s->functional = s->info.functional;
                if (s->functional.transfer_size > 0)
                        s->transfer_size = s->functional.transfer_size;
                s->dfuse = s->functional.dfu_version == DFU_VERSION_DFUSE;
        }

        /* DFU 1.1 section 4.2.3: protocol 2 is DFU mode; 1 is the run-time interface. */
        for (size_t i = 0; i < s->info.n_alts; i++)
                if (s->info.alts[i].protocol == 2) {
                        r = dfu_session_select_alt(s, s->info.alts[i].alt);
                        if (r < 0) {
                                if (ret_message &&
                                    asprintf(ret_message, "cannot claim the DFU interface of %s: %s", where,
                                             strerror(-r)) < 0)
                                        *ret_message = NULL;
                                return r;
                        }
                        *ret = TAKE_PTR(s);
                        return 0;
                }

        strdup_to(ret_message, "the device only has a DFU run-time interface: it is running its "
                               "application, not the DFU bootloader");
        return -EMEDIUMTYPE;
}

static int open_failed(int r, const char *where, char **ret_message)
{
        if (ret_message &&
            asprintf(ret_message,
                     r == -ENODEV ? "no USB device at %s: is the board connected and in its DFU bootloader?"
                     : r == -EACCES ? "permission denied opening the USB device at %s; check the udev rules"
                                    : "cannot open the USB device at %s",
                     where) < 0)
                *ret_message = NULL;
        return r;
}

int dfu_session_open_port_path(DfuSession **ret, const char *port_path, char **ret_message)
{
        UsbTransport *t;
        int r;

        r = usb_transport_open_port_path(&t, port_path);
        if (r < 0)
                return open_failed(r, port_path, ret_message);
        return dfu_session_new(ret, t, port_path, ret_message);
}

int dfu_session_open_bus_dev(DfuSession **ret, uint8_t bus, uint8_t dev, char **ret_message)
{
        char where[32];
        UsbTransport *t;
        int r;

        snprintf(where, sizeof(where), "bus %u device %u", bus, dev);
        r = usb_transport_open_bus_dev(&t, bus, dev);
        if (r < 0)
                return open_failed(r, where, ret_message);
        return dfu_session_new(ret, t, where, ret_message);
}

bool dfu_session_is_dfuse(const DfuSession *s)
{
        return s->dfuse;
}

uint16_t dfu_session_get_transfer_size(const DfuSession *s)
{
        return s->transfer_size;
}

const DfuFunctionalDescriptor *dfu_session_get_functional(const DfuSession *s)
{
        return s->info.has_functional ? &s->functional : NULL;
}

const UsbDfuInfo *dfu_session_get_info(const DfuSession *s)
{
        return &s->info;
}

UsbTransport *dfu_session_get_transport(DfuSession *s)
{
        return s->transport;
}

const DfuFlashStats *dfu_session_get_stats(const DfuSession *s)
{
        return &s->stats;
}

char *const *dfu_session_get_notes(const DfuSession *s)
{
        static char *const empty[] = { NULL };

        return s->notes ? s->notes : empty;
}

const char *dfu_session_get_error(const DfuSession *s)
{
        return s->error;
}

void dfu_session_set_block_addressing(DfuSession *s, bool b)
{
        s->block_addressing = b;
}

int dfu_session_select_alt(DfuSession *s, uint8_t alt)
{
        for (size_t i = 0; i < s->info.n_alts; i++) {
                const UsbDfuAltSetting *a = &s->info.alts[i];
                int r;

                if (a->alt != alt || a->protocol != 2)
                        continue;
                r = usb_transport_claim(s->transport, a->interface, a->alt);
                if (r < 0)
                        return r;
                s->interface = a->interface;
                s->alt = a->alt;
                s->alt_string_index = a->i_interface;
                s->run_valid = false;
                return 0;
        }
        return -ENOENT;
}

int dfu_session_find_alt(DfuSession *s, const char *prefix, uint8_t *ret_alt)
{
        for (size_t i = 0; i < s->info.n_alts; i++) {
                _cleanup_free_ char *name = NULL;

                if (s->info.alts[i].protocol != 2 || s->info.alts[i].i_interface == 0)
                        continue;
                if (usb_transport_read_string_utf8(s->transport, s->info.alts[i].i_interface, &name) < 0)
                        continue;
                if (strncmp(name, prefix, strlen(prefix)) == 0) {
                        *ret_alt = s->info.alts[i].alt;
                        return 0;
                }
        }
        return -ENOENT;
}

int dfu_session_read_layout(DfuSession *s, DfuseLayout **ret)
{
        _cleanup_free_ char *name = NULL;
        int r;

        if (s->alt_string_index == 0)
                return dfu_session_fail(s, -ENOENT,
                                        "the DFU alt setting %u has no name, so no memory layout", s->alt);
        r = usb_transport_read_string_utf8(s->transport, s->alt_string_index, &name);
        if (r < 0)
                return dfu_session_fail(s, r, "cannot read the memory layout of alt setting %u: %s", s->alt,
                                        strerror(-r));
        r = dfuse_layout_parse(name, strlen(name), ret);
        if (r < 0)
                return dfu_session_fail(
                        s, r, "the memory layout of alt setting %u (\"%s\") cannot be parsed", s->alt, name);
        return 0;
}

int dfu_session_request_out(DfuSession *s, DfuRequest req, uint16_t value, const uint8_t *data, size_t len)
{
        if (len > UINT16_MAX)
                return -EINVAL;
        /* libusb takes a non-const buffer for both directions; OUT does not write it. */
        return usb_transport_control(s->transport, DFU_REQUEST_TYPE_OUT, (uint8_t)req, value, s->interface,
                                     (void *)data, (uint16_t)len, DFU_CONTROL_TIMEOUT_MS);
}

int dfu_session_request_in(DfuSession *s, DfuRequest req, uint16_t value, uint8_t *data, size_t len)
{
        if (len > UINT16_MAX)
                return -EINVAL;
        return usb_transport_control(s->transport, DFU_REQUEST_TYPE_IN, (uint8_t)req, value, s->interface,
                                     data, (uint16_t)len, DFU_CONTROL_TIMEOUT_MS);
}

int dfu_session_get_status(DfuSession *s, DfuStatus *ret)
{
        uint8_t buf[DFU_STATUS_SIZE];
        int r;

        r = dfu_session_request_in(s, DFU_REQUEST_GETSTATUS, 0, buf, sizeof(buf));
        if (r < 0)
                return r;
        return dfu_status_decode(buf, (size_t)r, ret);
}

int dfu_session_clear_status(DfuSession *s)
{
        s->run_valid = false;
        s->upload_run_valid = false;
        s->in_upload = false;
        return dfu_session_request_out(s, DFU_REQUEST_CLRSTATUS, 0, NULL, 0);
}

int dfu_session_abort(DfuSession *s)
{
        /* The address pointer survives ABORT; only the download run ends. */
        s->run_valid = false;
        s->in_upload = false;
        return dfu_session_request_out(s, DFU_REQUEST_ABORT, 0, NULL, 0);
}

static bool state_is_busy(DfuState st)
{
        /* DFU 1.1 section 6.1.2 / Appendix A: the device is working on the last
         * DNLOAD (dfuDNLOAD-SYNC, dfuDNBUSY) or on the end of the download
         * (dfuMANIFEST-SYNC); GETSTATUS moves it on. */
        return st == DFU_STATE_DFU_DNBUSY || st == DFU_STATE_DFU_DNLOAD_SYNC ||
               st == DFU_STATE_DFU_MANIFEST_SYNC;
}

static int wait_busy(DfuSession *s, unsigned timeout_ms, bool tolerate_silence, DfuStatus *ret)
{
        uint64_t deadline = dfu_session_now_ms(s) + timeout_ms;
        uint32_t last_poll_ms = 0;
        DfuStatus st;
        int r;

        for (unsigned n = 0;; n++) {
                r = dfu_session_get_status(s, &st);
                /* A device busy with a mass erase may not answer at all until it is
                 * done (dfu-util's F405 case); keep asking until the deadline, at
                 * the pace it last asked for. */
                if (tolerate_silence && (r == -ETIMEDOUT || r == -EPIPE) &&
                    dfu_session_now_ms(s) < deadline && n < DFU_MAX_POLLS) {
                        dfu_session_sleep_ms(s, MAX(last_poll_ms, 1u));
                        continue;
                }
                if (r < 0)
                        return r;
                last_poll_ms = st.poll_timeout_ms;
                if (!state_is_busy(st.state))
                        break;
                if (n >= DFU_MAX_POLLS || dfu_session_now_ms(s) + st.poll_timeout_ms > deadline)
                        return -ETIMEDOUT;
                /* DFU 1.1 section 6.1.2: bwPollTimeout is the minimum time before
                 * the next GETSTATUS; asking earlier only gets dfuDNBUSY again. */
                dfu_session_sleep_ms(s, st.poll_timeout_ms);
        }

        *ret = st;
        return st.state == DFU_STATE_DFU_ERROR ? -EIO : 0;
}

int dfu_session_wait_while_busy(DfuSession *s, unsigned timeout_ms, DfuStatus *ret)
{
        return wait_busy(s, timeout_ms, false, ret);
}

int dfu_session_make_idle(DfuSession *s, const FlashCallbacks *cb)
{
        DfuStatus st;
        int r;

        r = dfu_session_get_status(s, &st);
        if (r < 0)
                return dfu_session_fail(s, r, "the device does not answer DFU GETSTATUS: %s", strerror(-r));

        if (state_is_busy(st.state)) {
                DfuState was = st.state;

                /* A session that ended mid-operation (flashd killed during a
                 * download: a restarted job's retry) leaves the device in
                 * dfuDNLOAD-SYNC or dfuDNBUSY. It finishes that operation on its
                 * own; GETSTATUS after its bwPollTimeout moves it on (DFU 1.1
                 * section 6.1.2, A.2.4). Bounded by the longest operation a
                 * session starts, a mass erase, which may not answer meanwhile;
                 * bwPollTimeout is 24 bits of milliseconds (up to 4.6 hours): a
                 * device asking for longer than that bound is not waited for. */
                if (st.state == DFU_STATE_DFU_DNBUSY && st.poll_timeout_ms > DFU_MASS_ERASE_TIMEOUT_MS)
                        r = -ETIMEDOUT;
                else {
                        if (st.state == DFU_STATE_DFU_DNBUSY)
                                dfu_session_sleep_ms(s, st.poll_timeout_ms);
                        r = wait_busy(s, DFU_MASS_ERASE_TIMEOUT_MS, true, &st);
                }
                if (r == -ETIMEDOUT)
                        return dfu_session_fail(
                                s, r,
                                "the device stays busy (%s) from an earlier session for more than %u s; "
                                "reset the board and try again",
                                dfu_state_to_string(was), DFU_MASS_ERASE_TIMEOUT_MS / 1000);
                if (r < 0 && r != -EIO)
                        return dfu_session_fail(s, r, "the device does not answer DFU GETSTATUS: %s",
                                                strerror(-r));
                dfu_session_note(s, cb,
                                 "the device was still busy (%s) from an earlier session; waited until "
                                 "it was done",
                                 dfu_state_to_string(was));
        }

        switch (st.state) {
        case DFU_STATE_DFU_IDLE:
                return 0;
        case DFU_STATE_DFU_ERROR:
                /* The STM32 ROM starts in dfuERROR/errFIRMWARE after every power-up
                 * (no valid application yet, or just how it boots): normal. */
                r = dfu_session_clear_status(s);
                if (r < 0)
                        return dfu_session_fail(s, r, "cannot clear the device's error state: %s",
                                                strerror(-r));
                s->stats.cleared_error_at_start = true;
                if (st.status == DFU_STATUS_ERR_FIRMWARE)
                        dfu_session_note(
                                s, cb,
                                "the device started in dfuERROR (errFIRMWARE); cleared it, as is normal "
                                "for STM32 ROM bootloaders");
                else
                        dfu_session_note(
                                s, cb,
                                "the device was in dfuERROR (%s: %s) from an earlier operation; cleared it",
                                dfu_status_to_string(st.status), dfu_status_to_message(st.status));
                break;
        case DFU_STATE_DFU_DNLOAD_IDLE:
        case DFU_STATE_DFU_UPLOAD_IDLE:
                /* Left over from an interrupted session: DFU 1.1 A.2.5/A.2.10 allow ABORT. */
                r = dfu_session_abort(s);
                if (r < 0)
                        return dfu_session_fail(s, r, "cannot abort the device's earlier transfer: %s",
                                                strerror(-r));
                dfu_session_note(s, cb, "the device was still in %s from an earlier session; aborted it",
                                 dfu_state_to_string(st.state));
                break;
        case DFU_STATE_APP_IDLE:
        case DFU_STATE_APP_DETACH:
                return dfu_session_fail(
                        s, -EMEDIUMTYPE,
                        "the device is in %s: it runs its application, not the DFU bootloader",
                        dfu_state_to_string(st.state));
        case DFU_STATE_DFU_DNLOAD_SYNC:
        case DFU_STATE_DFU_DNBUSY:
        case DFU_STATE_DFU_MANIFEST_SYNC:
        case DFU_STATE_DFU_MANIFEST:
        case DFU_STATE_DFU_MANIFEST_WAIT_RESET:
        case _DFU_STATE_MAX:
                return dfu_session_fail(s, -EBUSY, "the device is busy (%s); reset the board and try again",
                                        dfu_state_to_string(st.state));
        }

        r = dfu_session_get_status(s, &st);
        if (r < 0)
                return dfu_session_fail(s, r, "the device does not answer DFU GETSTATUS: %s", strerror(-r));
        if (st.state != DFU_STATE_DFU_IDLE)
                return dfu_session_fail(s, -EPROTO,
                                        "the device stays in %s (%s) instead of dfuIDLE; reset the board",
                                        dfu_state_to_string(st.state), dfu_status_to_string(st.status));
        return 0;
}

int dfu_session_device_error(DfuSession *s, int r, const char *what)
{
        DfuStatus st;

        if (r == -ENODEV)
                return dfu_session_fail(s, r, "the device disappeared during %s", what);
        if (r == -EIO || r == -EPIPE) {
                /* A stall or error state: the status says why (DFU 1.1 6.1.2). */
                if (dfu_session_get_status(s, &st) >= 0 && st.state == DFU_STATE_DFU_ERROR) {
                        (void)dfu_session_clear_status(s);
                        return dfu_session_fail(s, -EIO, "%s failed: %s (%s)", what,
                                                dfu_status_to_string(st.status),
                                                dfu_status_to_message(st.status));
                }
        }
        if (r == -ETIMEDOUT)
                return dfu_session_fail(s, r, "%s timed out: the device stayed busy or did not answer",
                                        what);
        return dfu_session_fail(s, r, "%s failed: %s", what, strerror(-r));
}

int dfu_session_end_upload(DfuSession *s)
{
        if (!s->in_upload)
                return 0;
        return dfu_session_abort(s);
}

static int dfuse_command(DfuSession *s, DfuseCommand c, uint32_t address, unsigned timeout_ms)
{
        uint8_t buf[DFUSE_COMMAND_MAX_SIZE];
        char what[64];
        DfuStatus st;
        size_t n;
        int r;

        if (c == DFUSE_COMMAND_MASS_ERASE || c == DFUSE_COMMAND_READ_UNPROTECT)
                snprintf(what, sizeof(what), "DfuSe %s", dfuse_command_to_string(c));
        else
                snprintf(what, sizeof(what), "DfuSe %s 0x%08" PRIx32, dfuse_command_to_string(c), address);

        r = dfu_session_end_upload(s);
        if (r < 0)
                return dfu_session_device_error(s, r, what);
        /* Every command may move the address pointer (ERASE on some ROMs too). */
        s->run_valid = false;
        s->upload_run_valid = false;
        n = dfuse_command_encode(c, address, buf);
        /* UM0424 section 6: commands are DNLOAD with wBlockNum 0, executed on the
         * following GETSTATUS. */
        r = dfu_session_request_out(s, DFU_REQUEST_DNLOAD, 0, buf, n);
        if (r < 0)
                return dfu_session_device_error(s, r, what);
        r = wait_busy(s, timeout_ms, c == DFUSE_COMMAND_MASS_ERASE, &st);
        if (r == -EIO) {
                (void)dfu_session_clear_status(s);
                /* AN3156 6.1: DfuSe ROMs answer an address they do not accept
                 * with errTARGET, whose DFU 1.1 wording is about files. */
                return dfu_session_fail(s, -EIO, "%s failed: %s (%s)", what, dfu_status_to_string(st.status),
                                        st.status == DFU_STATUS_ERR_TARGET
                                                ? "the device does not accept this address"
                                                : dfu_status_to_message(st.status));
        }
        if (r < 0)
                return dfu_session_device_error(s, r, what);
        if (st.state != DFU_STATE_DFU_DNLOAD_IDLE)
                return dfu_session_fail(s, -EPROTO, "%s: the device went to %s instead of dfuDNLOAD-IDLE",
                                        what, dfu_state_to_string(st.state));
        return 0;
}

int dfu_session_dfuse_set_address(DfuSession *s, uint32_t address)
{
        int r;

        r = dfuse_command(s, DFUSE_COMMAND_SET_ADDRESS, address, DFU_COMMAND_TIMEOUT_MS);
        if (r < 0)
                return r;
        s->stats.set_address_requests++;
        s->run_valid = true;
        s->run_address = address;
        s->run_block = DFUSE_FIRST_DATA_BLOCK;
        return 0;
}

int dfu_session_dfuse_erase_page(DfuSession *s, uint32_t address)
{
        return dfuse_command(s, DFUSE_COMMAND_ERASE_PAGE, address, DFU_ERASE_PAGE_TIMEOUT_MS);
}

int dfu_session_dfuse_mass_erase(DfuSession *s)
{
        return dfuse_command(s, DFUSE_COMMAND_MASS_ERASE, 0, DFU_MASS_ERASE_TIMEOUT_MS);
}

int dfu_session_download_block(DfuSession *s, uint16_t block, const uint8_t *data, size_t len,
                               const char *what)
{
        DfuStatus st;
        int r;

        r = dfu_session_end_upload(s);
        if (r < 0)
                return dfu_session_device_error(s, r, what);
        r = dfu_session_request_out(s, DFU_REQUEST_DNLOAD, block, data, len);
        if (r < 0)
                return dfu_session_device_error(s, r, what);
        r = wait_busy(s, DFU_COMMAND_TIMEOUT_MS, false, &st);
        if (r == -EIO) {
                (void)dfu_session_clear_status(s);
                return dfu_session_fail(s, -EIO, "%s failed: %s (%s)", what, dfu_status_to_string(st.status),
                                        dfu_status_to_message(st.status));
        }
        if (r < 0)
                return dfu_session_device_error(s, r, what);
        if (st.state != DFU_STATE_DFU_DNLOAD_IDLE)
                return dfu_session_fail(s, -EPROTO, "%s: the device went to %s instead of dfuDNLOAD-IDLE",
                                        what, dfu_state_to_string(st.state));
        s->stats.bytes_written += len;
        return 0;
}

int dfu_session_dfuse_download_block(DfuSession *s, uint16_t block, const uint8_t *data, size_t len)
{
        char what[64];

        if (block < DFUSE_FIRST_DATA_BLOCK || len == 0 || len > s->transfer_size)
                return -EINVAL;
        snprintf(what, sizeof(what), "writing block %u", block);
        return dfu_session_download_block(s, block, data, len, what);
}

int dfu_session_dfuse_upload_each(DfuSession *s, uint32_t address, size_t len, const FlashCallbacks *cb,
                                  DfuChunkFn fn, void *userdata)
{
        _cleanup_free_ uint8_t *buf = NULL;
        uint32_t xfer = s->transfer_size;
        size_t off = 0;
        int r;

        buf = malloc(xfer);
        if (!buf)
                return -ENOMEM;

        while (off < len) {
                uint32_t at = (uint32_t)(address + off), block;

                /* UM0424: block N reads the address pointer + (N - 2) * wTransferSize;
                 * reuse the pointer when `at` is on that grid. */
                if (s->upload_run_valid && at >= s->upload_run_address &&
                    (at - s->upload_run_address) % xfer == 0 &&
                    (at - s->upload_run_address) / xfer <= UINT16_MAX - DFUSE_FIRST_DATA_BLOCK)
                        block = DFUSE_FIRST_DATA_BLOCK + (at - s->upload_run_address) / xfer;
                else {
                        r = dfu_session_dfuse_set_address(s, at);
                        if (r < 0)
                                return r;
                        /* UM0424 / DFU 1.1 A.2.3: UPLOAD starts from dfuIDLE, so leave
                         * dfuDNLOAD-IDLE first; the address pointer stays. */
                        r = dfu_session_abort(s);
                        if (r < 0)
                                return dfu_session_device_error(s, r, "reading");
                        s->upload_run_valid = true;
                        s->upload_run_address = at;
                        block = DFUSE_FIRST_DATA_BLOCK;
                }

                for (; off < len && block <= UINT16_MAX; block++) {
                        size_t n = MIN((size_t)xfer, len - off);
                        char what[64];

                        at = (uint32_t)(address + off);
                        r = dfu_session_check_cancel(s, cb, "reading", at);
                        if (r < 0)
                                return r;
                        r = dfu_session_request_in(s, DFU_REQUEST_UPLOAD, (uint16_t)block, buf, n);
                        if (r < 0) {
                                s->in_upload = false;
                                snprintf(what, sizeof(what), "reading 0x%08" PRIx32, at);
                                return dfu_session_device_error(s, r, what);
                        }
                        /* A full frame keeps the device in dfuUPLOAD-IDLE (DFU 1.1 A.2.10). */
                        s->in_upload = (size_t)r == n;
                        if ((size_t)r != n)
                                return dfu_session_fail(s, -EIO,
                                                        "reading 0x%08" PRIx32
                                                        " returned %d of %zu bytes: the memory ends there",
                                                        at, r, n);
                        s->stats.bytes_read += n;
                        r = fn(userdata, (uint32_t)off, buf, n);
                        off += n;
                        /* The upload stays open: the next read may continue it,
                         * anything else ABORTs it first (dfu_session_end_upload). */
                        if (r != 0)
                                return r;
                }
        }
        return 0;
}

typedef struct CopyCtx {
        uint8_t *buf;
        size_t total;
        const FlashCallbacks *cb;
} CopyCtx;

static int copy_chunk(void *userdata, uint32_t offset, const uint8_t *data, size_t len)
{
        CopyCtx *c = userdata;

        memcpy(c->buf + offset, data, len);
        flash_callbacks_progress(c->cb, offset + len, c->total);
        return 0;
}

int dfu_session_dfuse_upload(DfuSession *s, uint32_t address, uint8_t *buf, size_t len,
                             const FlashCallbacks *cb)
{
        CopyCtx c = { .buf = buf, .total = len, .cb = cb };

        return dfu_session_dfuse_upload_each(s, address, len, cb, copy_chunk, &c);
}

int dfu_session_read(DfuSession *s, uint32_t address, uint8_t *buf, size_t len, const FlashCallbacks *cb,
                     char **ret_message)
{
        int r;

        if (len > INT32_MAX)
                return -EINVAL;
        r = dfu_session_make_idle(s, cb);
        if (r >= 0) {
                if (s->dfuse) {
                        r = dfu_session_dfuse_upload(s, address, buf, len, cb);
                        if (r >= 0)
                                r = dfu_session_end_upload(s);
                        if (r >= 0)
                                r = (int)len;
                } else
                        r = dfu_session_plain_upload(s, buf, len, cb);
        }
        if (r < 0 && ret_message)
                *ret_message = strdup(s->error ? s->error : strerror(-r));
        return r;
}

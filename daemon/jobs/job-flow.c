/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "codec/dfuse-layout.h"
#include "jobs/job-check.h"
#include "jobs/job-flow-bridge.h"
#include "jobs/job-flow-can.h"
#include "jobs/job-flow-katapult.h"
#include "jobs/job-flow-outcome.h"
#include "jobs/job-flow.h"
#include "jobs/job-units.h"
#include "serial/avr-session.h"
#include "serial/bootloader-request.h"
#include "serial/katapult-session.h"
#include "serial/serial-port.h"
#include "usb/dfu-session.h"
#include "usb/picoboot-session.h"
#include "util/tty-claim.h"

/* A unit's stop or start job (klippy shuts down in well under a second). */
#define JOB_UNITS_TIMEOUT_USEC (30ull * 1000000ull)

typedef struct Flow {
        JobWorker *w;
        JobFlowSpec *spec;
        JobDevice *dev;
        JobPayload *payload;
        uint8_t *data;
        size_t size;
        char **stopped; /* units stopped for this flash, started again at the end */
        /* the result, sent once at the end */
        FlowOutcome out;
        bool wrote_bootloader; /* the image starts in the bootloader region */
        char *bridge_iface;    /* a USB-to-CAN bridge board was rebooted: its interface */
} Flow;

static void flow_note(void *userdata, const char *line)
{
        Flow *f = userdata;

        job_worker_log_once(f->w, line);
}

/* Parse and check the image against a layout (NULL: the board's). */
static int flow_check(Flow *f, const DfuseLayout *layout, const char *device_mcu)
{
        JobCheckInput in = {
                .data = f->data,
                .size = f->size,
                .format = f->spec->format,
                .address = f->spec->address,
                .has_address = f->spec->has_address,
                .force = f->spec->force,
                .mass_erase = f->spec->mass_erase,
                .board = f->spec->has_board ? &f->spec->board : NULL,
                .layout = layout,
                .device_mcu = device_mcu,
        };
        _cleanup_free_ char *message = NULL;
        JobError e = JOB_ERROR_INTERNAL;
        int r;

        f->payload = job_payload_free(f->payload);
        r = job_check_image(&in, flow_note, f, &f->payload, &e, &message);
        if (r < 0)
                return flow_outcome_fail(&f->out, e, "%s", strna(message));
        return 0;
}

static int flow_wait(Flow *f, unsigned modes, const char *exclude, uint64_t hint, uint64_t timeout,
                     const char *what)
{
        JobDevice *d = NULL;
        int r;

        r = job_worker_wait_device(f->w, modes, exclude, hint, timeout, &d);
        if (r == -ECANCELED || job_worker_cancelled(f->w))
                return flow_outcome_cancelled(&f->out, what);
        if (r == -ETIMEDOUT)
                return -ETIMEDOUT;
        if (r < 0)
                return flow_outcome_fail(&f->out, JOB_ERROR_INTERNAL, "waiting for the board failed: %s",
                                         strerror(-r));
        job_device_free(f->dev);
        f->dev = d;
        return 0;
}

/* One step of a bounded wait for what sends no event (a stopped unit's
 * process letting go of the tty, flashd's own identify finishing): 100 ms;
 * false when the job is cancelled. */
static bool flow_pause(Flow *f)
{
        if (job_worker_cancelled(f->w))
                return false;
        (void)nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
        return !job_worker_cancelled(f->w);
}

/* ---- DFU ---- */

static int flow_flash_dfu(Flow *f)
{
        _cleanup_(dfu_session_freep) DfuSession *s = NULL;
        _cleanup_free_ char *message = NULL;
        const DfuFlashStats *st;
        FlashCallbacks cb = job_flow_callbacks(f->w);
        DfuFlashRequest req = {
                .skip_unchanged = true,
                .image = f->payload->image,
                .verify = f->spec->verify,
                .mass_erase = f->spec->mass_erase,
                .leave = true,
                .leave_address = f->payload->address,
                /* The layout the inventory parsed by its grammar (garbage
                 * after the last segment dropped); NULL makes the session
                 * read it itself. */
                .layout = f->dev->layout,
        };
        int r;

        if (f->dev->busnum > 0 && f->dev->devnum > 0)
                r = dfu_session_open_bus_dev(&s, f->dev->busnum, f->dev->devnum, &message);
        else
                r = dfu_session_open_port_path(&s, f->dev->port, &message);
        if (r == -ENODEV)
                return flow_outcome_fail(&f->out, JOB_ERROR_DEVICE_GONE,
                                         "the board vanished before the flash started: %s", strna(message));
        if (r < 0)
                return flow_outcome_fail(&f->out, JOB_ERROR_FLASH_FAILED,
                                         "could not open the DFU device: %s",
                                         message ? message : strerror(-r));
        if (f->dev->alt > 0) {
                r = dfu_session_select_alt(s, (uint8_t)f->dev->alt);
                if (r < 0)
                        return flow_outcome_fail(&f->out, JOB_ERROR_FLASH_FAILED,
                                                 "could not select alt setting %u: %s", f->dev->alt,
                                                 strerror(-r));
        }
        r = dfu_session_flash(s, &req, &cb, &message);
        st = dfu_session_get_stats(s);
        if (st && (r == FLASH_RESULT_DONE || r == FLASH_RESULT_LEFT || r == FLASH_RESULT_LEFT_DEVICE_GONE)) {
                JobTotals t = {
                        .sectors_written =
                                st->sectors_touched - MIN(st->sectors_unchanged, st->sectors_touched),
                        .sectors_unchanged = st->sectors_unchanged,
                        .bytes_written = st->bytes_written,
                        .bytes_verified = st->bytes_verified,
                };
                job_worker_send_totals(f->w, &t);
        }
        if (st)
                job_worker_log(f->w,
                               "sectors: %zu touched, %zu unchanged, %zu blank, %zu erased%s; %" PRIu64
                               " bytes written, %" PRIu64 " verified",
                               st->sectors_touched, st->sectors_unchanged, st->sectors_blank,
                               st->sectors_erased, st->mass_erased ? " (mass erase)" : "", st->bytes_written,
                               st->bytes_verified);
        if (r == FLASH_RESULT_LEFT_DEVICE_GONE) {
                job_worker_log(f->w, "the board reset during the leave request, as STM32 ROMs do: success "
                                     "pending its return");
                return 0;
        }
        if (r >= 0) {
                job_worker_log(f->w, "%s", strna(message));
                return 0;
        }
        return flow_outcome_flash_failed(&f->out, r, message,
                                         "during the flash; the board stays in its bootloader");
}

/* ---- RP2040 BOOTSEL (PICOBOOT) ---- */

/* Without a board entry, the smallest flash RP2040 boards ship with (the
 * Pico's 2 MiB): writing past the real end of a QSPI part wraps around
 * onto boot2. */
#define RP2040_DEFAULT_FLASH_SIZE (2u * 1024u * 1024u)

static int flow_flash_picoboot(Flow *f)
{
        _cleanup_(picoboot_session_freep) PicobootSession *s = NULL;
        _cleanup_free_ char *message = NULL;
        const PicobootFlashStats *st;
        FlashCallbacks cb = job_flow_callbacks(f->w);
        PicobootFlashRequest req = {
                .image = f->payload->image,
                .flash_size = f->spec->has_board && f->spec->board.flash_size ? f->spec->board.flash_size
                                                                              : RP2040_DEFAULT_FLASH_SIZE,
                .verify = f->spec->verify,
                .reboot = true,
        };
        uint8_t rom = 0;
        int r;

        if (f->dev->busnum > 0 && f->dev->devnum > 0)
                r = picoboot_session_open_bus_dev(&s, f->dev->busnum, f->dev->devnum, &message);
        else
                r = picoboot_session_open_port_path(&s, f->dev->port, &message);
        if (r == -ENODEV)
                return flow_outcome_fail(&f->out, JOB_ERROR_DEVICE_GONE,
                                         "the board vanished before the flash started: %s", strna(message));
        if (r == -EMEDIUMTYPE)
                return flow_outcome_fail(&f->out, JOB_ERROR_UNSUPPORTED_DEVICE, "%s", strna(message));
        if (r < 0)
                return flow_outcome_fail(&f->out, JOB_ERROR_FLASH_FAILED,
                                         "could not open the RP2040 boot ROM: %s",
                                         message ? message : strerror(-r));
        if (picoboot_session_rom_version(s, &rom) >= 0)
                job_worker_log(f->w, "RP2040 boot ROM %s in BOOTSEL",
                               strna(rp2040_rom_version_to_string(rom)));

        r = picoboot_session_flash(s, &req, &cb, &message);
        st = picoboot_session_get_stats(s);
        job_worker_log(f->w,
                       "sectors: %zu touched, %zu unchanged, %zu erased; %" PRIu64 " bytes written, %" PRIu64
                       " verified%s",
                       st->sectors_touched, st->sectors_unchanged, st->sectors_erased, st->bytes_written,
                       st->bytes_verified, st->stalls_recovered ? "; stalled commands recovered" : "");
        if (r >= 0) {
                job_worker_log(f->w, "%s", strna(message));
                return 0;
        }
        return flow_outcome_flash_failed(&f->out, r, message,
                                         "during the flash; the board stays in BOOTSEL");
}

/* ---- Katapult ---- */

#define KATAPULT_TTY_OPEN_WAIT_USEC (3u * 1000u * 1000u)

/* Open a bootloader's tty: it can be announced before it can be opened
 * (node not created yet, driver not bound), so a bounded retry. */
static int flow_open_tty(Flow *f, unsigned baud, SerialPort **ret)
{
        int r;

        r = serial_port_open_wait(ret, f->dev->tty, baud, KATAPULT_TTY_OPEN_WAIT_USEC,
                                  job_worker_cancel_flag(f->w));
        if (r == -ECANCELED)
                return flow_outcome_cancelled(&f->out, "before flashing");
        if (r == -ENOENT || r == -ENODEV || r == -ENXIO)
                return flow_outcome_fail(&f->out, JOB_ERROR_DEVICE_GONE,
                                         "%s vanished before the flash started", f->dev->tty);
        if (r < 0)
                return flow_outcome_fail(&f->out, JOB_ERROR_FLASH_FAILED, "could not open %s: %s",
                                         f->dev->tty, strerror(-r));
        return 0;
}

static int flow_flash_katapult(Flow *f)
{
        _cleanup_(serial_port_freep) SerialPort *port = NULL;
        _cleanup_(katapult_session_freep) KatapultSession *s = NULL;
        _cleanup_free_ char *message = NULL;
        const KatapultFlashStats *st;
        int r;

        if (!f->dev->tty)
                return flow_outcome_fail(&f->out, JOB_ERROR_UNSUPPORTED_DEVICE,
                                         "the Katapult bootloader on %s has no tty", strna(f->dev->port));
        /* The rate matters only on a real UART (uart-request boards);
         * a USB CDC tty ignores it. */
        r = flow_open_tty(f,
                          f->spec->has_board && f->spec->board.uart_request && f->spec->uart_baud
                                  ? f->spec->uart_baud
                                  : BOOTLOADER_UART_DEFAULT_BAUD,
                          &port);
        if (r < 0)
                return r;
        /* As flashtool.py does: nobody else on the bootloader's tty (a
         * klippy reconnecting to the same path would corrupt the stream),
         * and our lock keeps such a klippy out. */
        r = serial_port_lock(port);
        if (r == -EBUSY)
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_TTY_BUSY,
                        "%s (Katapult) is locked by another process (klippy?): stop it and retry",
                        f->dev->tty);
        if (r < 0)
                job_worker_log(f->w, "could not lock %s (%s); going on", f->dev->tty, strerror(-r));
        r = katapult_session_new(&s, serial_port_get_transport(port));
        if (r < 0)
                return flow_outcome_fail(&f->out, JOB_ERROR_INTERNAL,
                                         "could not start a Katapult session: %s", strerror(-r));
        /* G0/F0/F1 USB double buffering holds back Katapult's first reply
         * (flashtool.py primes them); the inventory's MCU for a Katapult
         * device is its USB product string. */
        katapult_session_set_prime(s, katapult_mcu_needs_prime(f->dev->mcu));
        r = job_flow_katapult_flash(f->w, s, f->spec, f->payload, &message);
        job_flow_katapult_report(f->w, s, r, f->spec->verify);
        st = katapult_session_get_stats(s);
        if (r >= 0) {
                if (st) {
                        /* Katapult writes the image as one piece, gaps included */
                        uint64_t span = flash_image_get_end(f->payload->image) - f->payload->address;
                        JobTotals t = {
                                .sectors_written = st->pages_written,
                                .bytes_written = span,
                                .bytes_verified = f->spec->verify ? span : 0,
                        };
                        job_worker_send_totals(f->w, &t);
                }
                return 0;
        }
        return flow_outcome_flash_failed(&f->out, r, message,
                                         "during the flash; the board stays in Katapult");
}

/* ---- AVR: the Arduino bootloaders behind a USB-serial tty ---- */

/* avrdude's arduino/wiring programmers: DTR/RTS low, wait, high again;
 * the capacitor to RESET turns the edge into a reset pulse */
#define AVR_RESET_LOW_USEC (100u * 1000u)

static int flow_avr_reset(void *userdata)
{
        SerialPort *port = userdata;
        int r;

        r = serial_port_set_modem_lines(port, TIOCM_DTR | TIOCM_RTS, false);
        if (r < 0)
                return r;
        (void)nanosleep(&(struct timespec){ .tv_nsec = AVR_RESET_LOW_USEC * 1000 }, NULL);
        return serial_port_set_modem_lines(port, TIOCM_DTR | TIOCM_RTS, true);
}

/* How long a unit that stop_units has just stopped may still hold the tty
 * (systemd's stop job can end before its last process has): 5 s in steps
 * of 100 ms. */
#define STOPPED_UNIT_WAIT_TRIES 50u

static TtyUse flow_tty_use(Flow *f, TtyHolder *holder, unsigned *unreadable)
{
        TtyUse use;

        for (unsigned tries = 0;; tries++) {
                if (tty_check_use("/proc", f->dev->tty, getpid(), &use, holder, unreadable) < 0)
                        use = TTY_USE_UNKNOWN;
                if ((use != TTY_USE_HELD && use != TTY_USE_LOCKED) || !f->stopped || !f->stopped[0] ||
                    tries >= STOPPED_UNIT_WAIT_TRIES || !flow_pause(f))
                        return use;
        }
}

static int flow_flash_avr(Flow *f)
{
        const JobFlowBoard *b = &f->spec->board;
        _cleanup_(serial_port_freep) SerialPort *port = NULL;
        _cleanup_(avr_session_freep) AvrSession *s = NULL;
        _cleanup_free_ char *message = NULL;
        const AvrFlashStats *st;
        FlashCallbacks cb = job_flow_callbacks(f->w);
        AvrFlashOptions opts = {
                .chip = {
                        .mcu = b->mcu,
                        .flash_size = b->flash_size,
                        .page_size = b->avr_page_size,
                        .boot_size = b->avr_boot_size,
                },
                .reset = flow_avr_reset,
                .no_verify = !f->spec->verify,
        };
        int r;

        memcpy(opts.chip.signature, b->avr_signature, 3);
        if (!f->dev->tty)
                return flow_outcome_fail(&f->out, JOB_ERROR_UNSUPPORTED_DEVICE, "the board on %s has no tty",
                                         strna(f->dev->port));
        /* the image is flash content from address 0 (job checks) */
        if (f->payload->address != 0)
                return flow_outcome_fail(&f->out, JOB_ERROR_CHECK_VECTOR_TABLE,
                                         "an AVR image starts at address 0, this one at 0x%08" PRIx32,
                                         f->payload->address);
        r = flow_open_tty(f, b->avr_baud, &port);
        if (r < 0)
                return r;
        /* klippy holds its MCU's tty with this lock: resetting the board
         * under it would crash the printer mid-print. A unit that
         * stop_units has just stopped may take a moment to let go of it
         * (systemd's stop job can end before the last process has). */
        r = serial_port_lock(port);
        for (unsigned tries = 0;
             r == -EBUSY && f->stopped && f->stopped[0] && tries < STOPPED_UNIT_WAIT_TRIES; tries++) {
                if (!flow_pause(f))
                        return flow_outcome_cancelled(&f->out, "before flashing");
                r = serial_port_lock(port);
        }
        if (r == -EBUSY)
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_TTY_BUSY,
                        "%s is locked by another process (klippy?): stop it and retry, or set "
                        "stop_units = klipper.service in /etc/flashd/flashd.conf",
                        f->dev->tty);
        if (r < 0)
                job_worker_log(f->w, "could not lock %s (%s); going on", f->dev->tty, strerror(-r));
        r = avr_session_new(&s, serial_port_get_transport(port),
                            b->avr_stk500v1 ? AVR_PROTOCOL_STK500V1 : AVR_PROTOCOL_STK500V2);
        if (r < 0)
                return flow_outcome_fail(&f->out, JOB_ERROR_INTERNAL, "could not start an AVR session: %s",
                                         strerror(-r));
        opts.reset_userdata = port;
        job_worker_log(f->w, "resetting %s into its %s bootloader (DTR/RTS) on %s at %" PRIu32 " baud",
                       strna(b->mcu), b->avr_stk500v1 ? "optiboot (STK500v1)" : "STK500v2", f->dev->tty,
                       b->avr_baud);
        r = avr_session_flash(s, f->payload->image, &opts, &cb, &message);
        st = avr_session_get_stats(s);
        job_worker_log(f->w,
                       "AVR: %u reset(s), %u sync(s); pages %" PRIu64 " read, %" PRIu64 " written, %" PRIu64
                       " verified, %" PRIu64 " unchanged and skipped",
                       st->resets, st->syncs, st->pages_read, st->pages_written, st->pages_verified,
                       st->pages_skipped);
        if (r >= 0) {
                job_worker_log(f->w, "%s", strna(message));
                /* the USB-serial bridge stays on the bus: nothing to wait
                 * for once the bootloader acknowledged leaving */
                job_worker_send_device(f->w, f->dev->tty);
                flow_outcome_done(&f->out, "%s; the board runs the application again on %s",
                                  r == FLASH_RESULT_UNCHANGED ? "unchanged, nothing written"
                                                              : "flashed and verified",
                                  f->dev->tty);
                return 0;
        }
        return flow_outcome_flash_failed(&f->out, r, message,
                                         "during the flash; reset the board or flash it again");
}

/* ---- the flow ---- */

static const char *flow_hint(Flow *f)
{
        return f->spec->has_board && f->spec->board.hint ? f->spec->board.hint : "set BOOT0 and press reset";
}

static int flow_reboot(Flow *f)
{
        TtyHolder holder;
        TtyUse use;
        unsigned unreadable = 0;
        int r;

        if (!f->dev->tty && f->dev->bridge) {
                /* Klipper in USB-to-CAN bridge mode: the reboot goes over CAN */
                job_worker_send_state(f->w, JOB_STATE_REBOOTING);
                if (!f->dev->can_iface)
                        return flow_outcome_fail(
                                &f->out, JOB_ERROR_REBOOT_FAILED,
                                "the bridge board on %s has no CAN interface yet, so it cannot be "
                                "asked to reboot; bring the interface up (ip link set can0 up type "
                                "can bitrate 1000000) or %s",
                                strna(f->dev->port), flow_hint(f));
                r = job_flow_bridge_reboot(f->w, f->dev);
                if (r < 0)
                        return flow_outcome_fail(
                                &f->out, JOB_ERROR_REBOOT_FAILED,
                                "the reboot request to the bridge board on %s over %s failed (%s); "
                                "%s",
                                strna(f->dev->port), f->dev->can_iface, strerror(-r), flow_hint(f));
                f->bridge_iface = strdup(f->dev->can_iface);
                if (!f->bridge_iface)
                        return flow_outcome_fail(&f->out, JOB_ERROR_INTERNAL, "out of memory");
                goto wait;
        }
        if (!f->dev->tty)
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_UNSUPPORTED_DEVICE,
                        "the board on %s runs an application without a serial port; put it into its "
                        "bootloader by hand (%s)",
                        strna(f->dev->port), flow_hint(f));
        /* The /proc scan names the holder when flashd may look (root); as
         * user flashd other users' fd/ are closed to it, so a lock probe
         * (klippy opens its port with pyserial exclusive=True = flock)
         * catches klippy anyway, and what neither sees is reported as
         * unknown, not as free. */
        use = flow_tty_use(f, &holder, &unreadable);
        if (use == TTY_USE_HELD) {
                _cleanup_free_ char *who = tty_holder_describe(&holder, f->dev->tty);
                return flow_outcome_fail(&f->out, JOB_ERROR_TTY_BUSY, "%s",
                                         who ? who : "the serial port is in use");
        }
        if (use == TTY_USE_LOCKED) {
                _cleanup_free_ char *who = tty_locked_describe(f->dev->tty, unreadable);
                return flow_outcome_fail(&f->out, JOB_ERROR_TTY_BUSY, "%s",
                                         who ? who : "the serial port is locked");
        }
        if (use == TTY_USE_UNKNOWN)
                job_worker_log(
                        f->w,
                        "holder of %s unknown: %u processes could not be checked (other users'), none "
                        "holds a lock on it; going on",
                        f->dev->tty, unreadable);
        /* flashd's own question to the firmware (what it runs, daemon/update)
         * may still have the tty open: a 1200-baud request under it would be
         * lost, so let it finish first (it has its own short timeout) */
        for (unsigned tries = 0; tty_claimed(f->dev->tty) && tries < STOPPED_UNIT_WAIT_TRIES; tries++) {
                if (!flow_pause(f))
                        return flow_outcome_cancelled(&f->out, "before the reboot");
        }

        job_worker_send_state(f->w, JOB_STATE_REBOOTING);
        if (f->spec->has_board && f->spec->board.manual_reboot)
                job_worker_log(f->w, "the board database says this board cannot be rebooted by software: %s",
                               flow_hint(f));
        else if (f->spec->has_board && f->spec->board.uart_request) {
                /* reboot = uart-request: Klipper on a plain UART listens for
                 * its 32-byte request block at its own rate */
                unsigned baud = f->spec->uart_baud ? f->spec->uart_baud : BOOTLOADER_UART_DEFAULT_BAUD;
                r = bootloader_request_uart(f->dev->tty, baud);
                if (r < 0)
                        job_worker_log(
                                f->w,
                                "the serial bootloader request on %s failed (%s); waiting for a manual "
                                "reset",
                                f->dev->tty, strerror(-r));
                else
                        job_worker_log(
                                f->w,
                                "asked the firmware on %s to reboot into its bootloader (serial request "
                                "block at %u baud)",
                                f->dev->tty, baud);
        } else {
                r = bootloader_request_usb(f->dev->tty);
                if (r < 0)
                        job_worker_log(f->w,
                                       "the 1200-baud request on %s failed (%s); waiting for a manual reset",
                                       f->dev->tty, strerror(-r));
                else
                        job_worker_log(f->w,
                                       "asked the firmware on %s to reboot into its bootloader (1200 baud)",
                                       f->dev->tty);
        }

wait:
        r = flow_wait(f, JOB_DEVICE_BOOTLOADER_MODES, NULL,
                      f->spec->has_board && f->spec->board.manual_reboot ? 1 : f->spec->reboot_wait_usec,
                      f->spec->device_timeout_usec, "while waiting for the bootloader");
        if (r == -ETIMEDOUT)
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_BOOTLOADER_TIMEOUT,
                        "the board on %s did not show up in its bootloader within %" PRIu64 " s; %s",
                        strna(f->dev->port), f->spec->device_timeout_usec / 1000000, flow_hint(f));
        return r;
}

/* Whether the image starts below the application: at the board's flash
 * base, or (board not known) at the start of the DFU device's flash. */
static bool flow_writes_bootloader_region(Flow *f)
{
        const DfuseLayout *l = f->dev->layout;

        if (!f->payload)
                return false;
        if (f->spec->has_board && f->spec->board.app_offset > 0)
                return f->payload->address < f->spec->board.flash_base + f->spec->board.app_offset;
        if (l && l->n_regions > 0)
                return f->payload->address == l->regions[0].address;
        return false;
}

/* stop_units before a board running its application is taken over */
static int flow_stop_units(Flow *f)
{
        _cleanup_free_ char *message = NULL;
        int r;

        if (!f->spec->stop_units || !f->spec->stop_units[0])
                return 0;
        r = job_units_stop(f->spec->stop_units, JOB_UNITS_TIMEOUT_USEC, &f->stopped, &message);
        if (r < 0)
                return flow_outcome_fail(&f->out, JOB_ERROR_UNIT_CONTROL,
                                         "could not stop a unit of stop_units: %s", strna(message));
        for (char **u = f->stopped; u && *u; u++)
                job_worker_log(f->w, "stopped %s for the flash (stop_units)", *u);
        return 0;
}

static int flow_wait_app(Flow *f, const char *flashed_devnode)
{
        int r;

        job_worker_send_state(f->w, JOB_STATE_WAITING_FOR_APP);
        r = flow_wait(f, (1u << DEVICE_MODE_APP) | JOB_DEVICE_BOOTLOADER_MODES, flashed_devnode, 0,
                      f->spec->app_timeout_usec, "while waiting for the board to come back");
        if (r == -ETIMEDOUT)
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_APP_TIMEOUT,
                        "the image was written, but the board did not come back within %" PRIu64 " s",
                        f->spec->app_timeout_usec / 1000000);
        if (r < 0)
                return r;
        /* Installing Katapult itself: the image went into the bootloader
         * region (below the application offset), and the board now starts
         * Katapult, which waits for an application: that is the image
         * running, not a board stuck in its bootloader. */
        if (f->dev->mode == DEVICE_MODE_KATAPULT && f->wrote_bootloader) {
                job_worker_send_device(f->w, f->dev->tty ? f->dev->tty : f->dev->devnode);
                flow_outcome_done(
                        &f->out,
                        "flashed the bootloader region; the board now runs Katapult (%s, %s): flash "
                        "Klipper onto it with the same command",
                        f->dev->tty ? f->dev->tty : strna(f->dev->devnode), strna(f->dev->mcu));
                return 0;
        }
        if (f->dev->mode != DEVICE_MODE_APP)
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_STUCK_IN_BOOTLOADER,
                        "the image was written, but the board came back in %s mode instead of running "
                        "it: the image is probably not runnable at 0x%08" PRIx32 " (or BOOT0 is still set)",
                        device_mode_to_string(f->dev->mode), f->payload ? f->payload->address : 0);
        if (f->bridge_iface) {
                /* the nodes behind the bridge need its interface, which
                 * its Klipper brings up after enumerating */
                r = job_flow_bridge_wait_iface(f->w, f->bridge_iface, f->spec->app_timeout_usec);
                if (r == -ECANCELED)
                        return flow_outcome_cancelled(&f->out,
                                                      "while waiting for the bridge's CAN interface");
                if (r < 0)
                        return flow_outcome_fail(
                                &f->out, JOB_ERROR_APP_TIMEOUT,
                                "the bridge board on %s runs its application again, but its CAN "
                                "interface %s did not come back within %" PRIu64 " s",
                                strna(f->dev->port), f->bridge_iface, f->spec->app_timeout_usec / 1000000);
                job_worker_send_device(f->w, f->dev->devnode);
                flow_outcome_done(&f->out, "flashed; the bridge board is back in application mode with %s",
                                  f->bridge_iface);
                return 0;
        }
        job_worker_send_device(f->w, f->dev->tty ? f->dev->tty : f->dev->devnode);
        flow_outcome_done(&f->out, "flashed; the board is back in application mode as %s",
                          f->dev->tty ? f->dev->tty : strna(f->dev->devnode));
        return 0;
}

static int flow_run(Flow *f)
{
        _cleanup_free_ char *flashed = NULL;
        bool was_dfu;
        int r;

        r = image_store_get(f->spec->store, f->spec->sha256, &f->data, &f->size);
        if (r < 0)
                return flow_outcome_fail(&f->out, JOB_ERROR_INTERNAL,
                                         "the stored image %s cannot be read: %s", f->spec->sha256,
                                         strerror(-r));
        if (f->spec->resume_wait_app)
                return flow_wait_app(f, NULL);

        if (!f->dev) {
                r = flow_wait(f, JOB_DEVICE_ANY_MODE, NULL, 0, f->spec->device_timeout_usec,
                              "while waiting for the board");
                if (r == -ETIMEDOUT)
                        return flow_outcome_fail(&f->out, JOB_ERROR_BOOTLOADER_TIMEOUT,
                                                 "the board was not connected within %" PRIu64 " s",
                                                 f->spec->device_timeout_usec / 1000000);
                if (r < 0)
                        return r;
        }

        /* Before anything else: refuse a wrong image against what the board database says. */
        was_dfu = f->dev->mode == DEVICE_MODE_DFU;
        r = flow_check(f, was_dfu ? f->dev->layout : NULL, NULL);
        if (r < 0)
                return r;

        switch (f->dev->mode) {
        case DEVICE_MODE_APP:
                r = flow_stop_units(f);
                if (r < 0)
                        return r;
                /* an AVR's bootloader listens only right after a reset:
                 * the AVR session resets the board itself */
                if (f->spec->has_board && f->spec->board.avr)
                        break;
                r = flow_reboot(f);
                if (r < 0)
                        return r;
                break;
        case DEVICE_MODE_DFU:
        case DEVICE_MODE_KATAPULT:
        case DEVICE_MODE_BOOTSEL:
                break;
        case DEVICE_MODE_SERIAL:
                /* a USB-serial bridge in front of an AVR running its
                 * application: klippy holds that tty as it holds Klipper's */
                if (f->spec->has_board && f->spec->board.avr) {
                        r = flow_stop_units(f);
                        if (r < 0)
                                return r;
                        break;
                }
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_UNSUPPORTED_DEVICE,
                        "the device on %s is in %s mode, which flashd cannot flash; put it into its "
                        "bootloader (%s)",
                        strna(f->dev->port), strna(device_mode_to_string(f->dev->mode)), flow_hint(f));
        case DEVICE_MODE_UNKNOWN:
        case _DEVICE_MODE_MAX:
        case _DEVICE_MODE_INVALID:
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_UNSUPPORTED_DEVICE,
                        "the device on %s is in %s mode, which flashd cannot flash; put it into its "
                        "bootloader (%s)",
                        strna(f->dev->port), strna(device_mode_to_string(f->dev->mode)), flow_hint(f));
        }
        if (job_worker_cancelled(f->w))
                return flow_outcome_cancelled(&f->out, "before flashing");

        /* Again against what the bootloader itself reports, before any erase
         * (unless that is what the first check already used). */
        if (f->dev->mode == DEVICE_MODE_DFU && !was_dfu) {
                r = flow_check(f, f->dev->layout, NULL);
                if (r < 0)
                        return r;
        }

        job_worker_send_state(f->w, JOB_STATE_FLASHING);
        job_worker_send_device(f->w, f->dev->mode == DEVICE_MODE_DFU || f->dev->mode == DEVICE_MODE_BOOTSEL
                                             ? f->dev->devnode
                                             : f->dev->tty);
        flashed = f->dev->devnode ? strdup(f->dev->devnode) : NULL;
        f->wrote_bootloader = flow_writes_bootloader_region(f);
        if (f->dev->mode == DEVICE_MODE_DFU)
                r = flow_flash_dfu(f);
        else if (f->dev->mode == DEVICE_MODE_BOOTSEL)
                r = flow_flash_picoboot(f);
        else if (f->spec->has_board && f->spec->board.avr)
                return flow_flash_avr(f);
        else
                r = flow_flash_katapult(f);
        if (r < 0)
                return r;
        return flow_wait_app(f, flashed);
}

void job_flow_run(JobWorker *w, void *userdata)
{
        JobFlowSpec *spec = userdata;
        if (spec->can_iface) {
                job_flow_run_can(w, spec);
                return;
        }
        Flow f = {
                .w = w,
                .spec = spec,
                .dev = TAKE_PTR(spec->device),
        };

        (void)flow_run(&f);
        if (f.stopped) {
                /* whatever happened, the printer gets its host software back */
                _cleanup_free_ char *message = NULL;
                if (job_units_start(f.stopped, JOB_UNITS_TIMEOUT_USEC, &message) < 0) {
                        job_worker_log(f.w, "could not start the stopped units again: %s", strna(message));
                        /* a failure or cancel recorded before stays the outcome */
                        (void)flow_outcome_fail(
                                &f.out, JOB_ERROR_UNIT_CONTROL,
                                "flashed, but a unit of stop_units could not be started again: %s",
                                strna(message));
                } else
                        for (char **u = f.stopped; *u; u++)
                                job_worker_log(f.w, "started %s again", *u);
                for (char **u = f.stopped; *u; u++)
                        free(*u);
                free(f.stopped);
        }
        flow_outcome_send(&f.out, w);
        free(f.bridge_iface);
        free(f.data);
        job_payload_free(f.payload);
        job_device_free(f.dev);
}

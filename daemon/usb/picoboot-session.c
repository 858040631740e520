/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/codec-util.h"
#include "usb/picoboot-session.h"

/* Timeouts: a command packet or a status request is answered at once; an
 * acknowledgement waits for the flash work (a 4 KiB erase is 400 ms at
 * most on W25Q-class parts, a 4 KiB write 16 pages of 3 ms at most);
 * generous margins for loaded hosts and hubs. */
#define PICOBOOT_CMD_TIMEOUT_MS     3000
#define PICOBOOT_DATA_TIMEOUT_MS    5000
#define PICOBOOT_ACK_TIMEOUT_MS     10000
#define PICOBOOT_CONTROL_TIMEOUT_MS 1000
/* The ROM reboots this long after acknowledging, so the acknowledgement
 * gets through first. */
#define PICOBOOT_REBOOT_DELAY_MS 500
#define PICOBOOT_ATTEMPTS        3
/* The inventory reads the ROM version as the board appears, and a job may
 * open it at the same moment: the interface is then claimed (EBUSY) for
 * the few milliseconds that takes. */
#define PICOBOOT_CLAIM_ATTEMPTS 20
#define PICOBOOT_CLAIM_RETRY_NS (100 * 1000 * 1000)

struct PicobootSession {
        UsbTransport *transport;
        uint8_t interface;
        uint8_t ep_in, ep_out;
        uint32_t token;
        PicobootCmdStatus last_status;
        PicobootFlashStats stats;
};

const char *rp2040_rom_version_to_string(uint8_t v)
{
        switch (v) {
        case 1:
                return "B0";
        case 2:
                return "B1";
        case 3:
                return "B2";
        default:
                return NULL;
        }
}

PicobootSession *picoboot_session_free(PicobootSession *s)
{
        if (!s)
                return NULL;
        usb_transport_free(s->transport);
        free(s);
        return NULL;
}

static int find_interface(PicobootSession *s)
{
        UsbBulkInterface b;
        int r;

        r = usb_transport_find_bulk_interface(s->transport, LIBUSB_CLASS_VENDOR_SPEC, &b);
        if (r < 0)
                return r;
        s->interface = b.interface;
        s->ep_in = b.ep_in;
        s->ep_out = b.ep_out;
        return 0;
}

static int reset_interface(PicobootSession *s)
{
        int r;

        r = usb_transport_control(
                s->transport, LIBUSB_ENDPOINT_OUT | LIBUSB_REQUEST_TYPE_VENDOR | LIBUSB_RECIPIENT_INTERFACE,
                PICOBOOT_IF_RESET, 0, s->interface, NULL, 0, PICOBOOT_CONTROL_TIMEOUT_MS);
        if (r < 0)
                return r;
        /* the host side of a stalled endpoint stays halted until cleared */
        (void)usb_transport_clear_halt(s->transport, s->ep_in);
        (void)usb_transport_clear_halt(s->transport, s->ep_out);
        return 0;
}

static int get_command_status(PicobootSession *s, PicobootCmdStatus *ret)
{
        uint8_t buf[PICOBOOT_STATUS_SIZE];
        int r;

        r = usb_transport_control(
                s->transport, LIBUSB_ENDPOINT_IN | LIBUSB_REQUEST_TYPE_VENDOR | LIBUSB_RECIPIENT_INTERFACE,
                PICOBOOT_IF_CMD_STATUS, 0, s->interface, buf, sizeof(buf), PICOBOOT_CONTROL_TIMEOUT_MS);
        if (r < 0)
                return r;
        return picoboot_status_decode(buf, (size_t)r, ret);
}

int picoboot_session_new(PicobootSession **ret, UsbTransport *t, char **ret_message)
{
        _cleanup_(picoboot_session_freep) PicobootSession *s = NULL;
        struct libusb_device_descriptor dd;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s) {
                usb_transport_free(t);
                return -ENOMEM;
        }
        s->transport = t;
        s->token = 1;

        r = usb_transport_get_device_descriptor(t, &dd);
        if (r < 0)
                return codec_message(ret_message, r, "cannot read the device descriptor: %s", strerror(-r));
        if (dd.idVendor == RP2040_BOOTSEL_VID && dd.idProduct == RP2350_BOOTSEL_PID)
                return codec_message(ret_message, -EMEDIUMTYPE,
                                     "the device on %s is an RP2350 boot ROM (2e8a:000f); flashd supports "
                                     "the RP2040 only, use picotool for RP2350 boards",
                                     usb_transport_get_port_path(t));
        if (dd.idVendor != RP2040_BOOTSEL_VID || dd.idProduct != RP2040_BOOTSEL_PID)
                return codec_message(ret_message, -EMEDIUMTYPE,
                                     "the device on %s (%04x:%04x) is not an RP2040 in BOOTSEL mode",
                                     usb_transport_get_port_path(t), dd.idVendor, dd.idProduct);
        r = find_interface(s);
        if (r < 0)
                return codec_message(ret_message, r, "the RP2040 boot ROM on %s shows no PICOBOOT interface",
                                     usb_transport_get_port_path(t));
        for (unsigned i = 0;; i++) {
                r = usb_transport_claim(t, s->interface, 0);
                if (r != -EBUSY || i + 1 >= PICOBOOT_CLAIM_ATTEMPTS)
                        break;
                (void)nanosleep(&(struct timespec){ .tv_nsec = PICOBOOT_CLAIM_RETRY_NS }, NULL);
        }
        if (r < 0)
                return codec_message(ret_message, r, "cannot claim the PICOBOOT interface on %s: %s",
                                     usb_transport_get_port_path(t), strerror(-r));
        r = reset_interface(s);
        if (r < 0)
                return codec_message(ret_message, r, "cannot reset the PICOBOOT interface on %s: %s",
                                     usb_transport_get_port_path(t), strerror(-r));
        *ret = TAKE_PTR(s);
        return 0;
}

int picoboot_session_open_port_path(PicobootSession **ret, const char *port_path, char **ret_message)
{
        UsbTransport *t = NULL;
        int r;

        r = usb_transport_open_port_path(&t, port_path);
        if (r < 0)
                return codec_message(ret_message, r, "cannot open the USB device on %s: %s",
                                     strna(port_path), strerror(-r));
        return picoboot_session_new(ret, t, ret_message);
}

int picoboot_session_open_bus_dev(PicobootSession **ret, uint8_t bus, uint8_t dev, char **ret_message)
{
        UsbTransport *t = NULL;
        int r;

        r = usb_transport_open_bus_dev(&t, bus, dev);
        if (r < 0)
                return codec_message(ret_message, r, "cannot open USB device %03u/%03u: %s", bus, dev,
                                     strerror(-r));
        return picoboot_session_new(ret, t, ret_message);
}

const PicobootFlashStats *picoboot_session_get_stats(const PicobootSession *s)
{
        return &s->stats;
}

const PicobootCmdStatus *picoboot_session_get_last_status(const PicobootSession *s)
{
        return &s->last_status;
}

/* ---- commands ---- */

typedef struct Cmd {
        PicobootCmdId id;
        uint32_t addr, size, delay_ms;
        uint8_t exclusive;
        uint8_t *in;        /* READ data */
        const uint8_t *out; /* WRITE data */
} Cmd;

static int bulk(PicobootSession *s, uint8_t ep, uint8_t *data, int len, unsigned timeout_ms, int *ret_n)
{
        return usb_transport_bulk(s->transport, ep, data, len, ret_n, timeout_ms);
}

static int command_once(PicobootSession *s, const Cmd *c)
{
        uint8_t pkt[PICOBOOT_CMD_SIZE], b[1];
        uint32_t token = s->token++;
        int r, n;

        switch (c->id) {
        case PICOBOOT_EXCLUSIVE_ACCESS:
                picoboot_encode_exclusive(pkt, token, c->exclusive);
                break;
        case PICOBOOT_REBOOT:
                picoboot_encode_reboot(pkt, token, 0, RP2040_SRAM_BASE + RP2040_SRAM_SIZE, c->delay_ms);
                break;
        case PICOBOOT_FLASH_ERASE:
        case PICOBOOT_READ:
        case PICOBOOT_WRITE:
                picoboot_encode_range(pkt, token, c->id, c->addr, c->size);
                break;
        default:
                picoboot_encode_simple(pkt, token, c->id);
                break;
        }
        r = bulk(s, s->ep_out, pkt, sizeof(pkt), PICOBOOT_CMD_TIMEOUT_MS, &n);
        if (r < 0)
                return r;
        if (n != (int)sizeof(pkt))
                return -EIO;
        if (c->id == PICOBOOT_READ) {
                r = bulk(s, s->ep_in, c->in, (int)c->size, PICOBOOT_DATA_TIMEOUT_MS, &n);
                if (r < 0)
                        return r;
                if (n != (int)c->size)
                        return -EIO;
                /* an IN command ends with a zero-length OUT */
                return bulk(s, s->ep_out, NULL, 0, PICOBOOT_ACK_TIMEOUT_MS, &n);
        }
        if (c->id == PICOBOOT_WRITE) {
                r = bulk(s, s->ep_out, (uint8_t *)c->out, (int)c->size, PICOBOOT_DATA_TIMEOUT_MS, &n);
                if (r < 0)
                        return r;
                if (n != (int)c->size)
                        return -EIO;
        }
        /* an OUT or data-less command ends with a zero-length IN */
        r = bulk(s, s->ep_in, b, sizeof(b), PICOBOOT_ACK_TIMEOUT_MS, &n);
        if (r < 0)
                return r;
        return n == 0 ? 0 : -EIO;
}

/* The ROM's answer to a command it will never accept (no retry helps). */
static bool status_final(uint32_t status)
{
        switch (status) {
        case PICOBOOT_UNKNOWN_CMD:
        case PICOBOOT_INVALID_CMD_LENGTH:
        case PICOBOOT_INVALID_TRANSFER_LENGTH:
        case PICOBOOT_INVALID_ADDRESS:
        case PICOBOOT_BAD_ALIGNMENT:
                return true;
        default:
                return false;
        }
}

static int command(PicobootSession *s, const Cmd *c)
{
        int r = -EIO;

        for (unsigned attempt = 0; attempt < PICOBOOT_ATTEMPTS; attempt++) {
                PicobootCmdStatus st = {};
                int k;

                r = command_once(s, c);
                if (r >= 0 || r == -ENODEV)
                        return r;
                if (r != -EPIPE && r != -ETIMEDOUT && r != -EIO)
                        return r;
                /* datasheet 2.8.5.4: the reason, then the interface reset */
                k = get_command_status(s, &st);
                if (k == -ENODEV)
                        return k;
                if (k >= 0)
                        s->last_status = st;
                k = reset_interface(s);
                if (k < 0)
                        return k == -ENODEV ? k : r;
                s->stats.stalls_recovered++;
                if (k >= 0 && st.status != PICOBOOT_OK && status_final(st.status))
                        return -EIO;
        }
        return r;
}

int picoboot_session_exclusive(PicobootSession *s, uint8_t mode)
{
        return command(s, &(Cmd){ .id = PICOBOOT_EXCLUSIVE_ACCESS, .exclusive = mode });
}

int picoboot_session_exit_xip(PicobootSession *s)
{
        return command(s, &(Cmd){ .id = PICOBOOT_EXIT_XIP });
}

int picoboot_session_erase(PicobootSession *s, uint32_t address, uint32_t size)
{
        return command(s, &(Cmd){ .id = PICOBOOT_FLASH_ERASE, .addr = address, .size = size });
}

int picoboot_session_write(PicobootSession *s, uint32_t address, const uint8_t *data, uint32_t size)
{
        int r = command(s, &(Cmd){ .id = PICOBOOT_WRITE, .addr = address, .size = size, .out = data });
        if (r >= 0)
                s->stats.bytes_written += size;
        return r;
}

int picoboot_session_read(PicobootSession *s, uint32_t address, uint8_t *buf, uint32_t size)
{
        int r = command(s, &(Cmd){ .id = PICOBOOT_READ, .addr = address, .size = size, .in = buf });
        if (r >= 0)
                s->stats.bytes_read += size;
        return r;
}

int picoboot_session_reboot(PicobootSession *s, uint32_t delay_ms)
{
        return command(s, &(Cmd){ .id = PICOBOOT_REBOOT, .delay_ms = delay_ms });
}

int picoboot_session_rom_version(PicobootSession *s, uint8_t *ret)
{
        uint8_t b[4];
        int r;

        r = picoboot_session_read(s, 0x10, b, sizeof(b));
        if (r < 0)
                return r;
        /* datasheet 2.8.2.1.1: 'M', 'u', 1, version */
        if (b[0] != 'M' || b[1] != 'u')
                return -EMEDIUMTYPE;
        *ret = b[3];
        return 0;
}

/* ---- flash ---- */

static int command_error(PicobootSession *s, int r, const char *what, uint32_t address, char **ret_message)
{
        const char *st = picoboot_status_to_string((PicobootStatus)s->last_status.status);

        if (r == -ENODEV)
                return codec_message(ret_message, r,
                                     "the board vanished while %s at 0x%08" PRIx32
                                     "; it stays in BOOTSEL (no valid boot2): retry the flash",
                                     what, address);
        if (r == -ETIMEDOUT)
                return codec_message(ret_message, r, "the boot ROM did not answer while %s at 0x%08" PRIx32,
                                     what, address);
        if (r == -EIO || r == -EPIPE)
                return codec_message(ret_message, r,
                                     "the boot ROM refused %s at 0x%08" PRIx32
                                     " (status %s) after %u attempts",
                                     what, address, st ? st : "unknown", PICOBOOT_ATTEMPTS);
        return codec_message(ret_message, r, "%s at 0x%08" PRIx32 " failed: %s", what, address,
                             strerror(-r));
}

static bool all_erased(const uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (p[i] != 0xff)
                        return false;
        return true;
}

int picoboot_session_flash(PicobootSession *s, const PicobootFlashRequest *req, const FlashCallbacks *cb,
                           char **ret_message)
{
        _cleanup_free_ uint32_t *sectors = NULL;
        _cleanup_free_ uint8_t *want = NULL, *have = NULL;
        _cleanup_free_ bool *changed = NULL;
        uint64_t flash_end, done = 0, total = 0;
        size_t n = 0, n_changed = 0;
        int r;

        if (!s || !req || !req->image)
                return -EINVAL;
        s->stats = (PicobootFlashStats){};
        flash_end = (uint64_t)RP2040_FLASH_BASE + (req->flash_size ? req->flash_size : RP2040_FLASH_MAX);

        /* the sectors the image touches, in order, each once */
        for (size_t i = 0; i < req->image->n_segments; i++) {
                const FlashSegment *g = &req->image->segments[i];
                uint64_t end = (uint64_t)g->address + g->size;
                if (g->size == 0)
                        continue;
                if (g->address < RP2040_FLASH_BASE || end > flash_end)
                        return codec_message(ret_message, -ERANGE,
                                             "the image (0x%08" PRIx32 "-0x%08" PRIx64
                                             ") does not fit the flash at 0x%08x-0x%08" PRIx64
                                             ": nothing was erased",
                                             g->address, end - 1, RP2040_FLASH_BASE, flash_end - 1);
                for (uint64_t a = g->address - g->address % RP2040_FLASH_SECTOR; a < end;
                     a += RP2040_FLASH_SECTOR) {
                        if (n > 0 && sectors[n - 1] == a)
                                continue;
                        uint32_t *ns = reallocarray(sectors, n + 1, sizeof(uint32_t));
                        if (!ns)
                                return -ENOMEM;
                        sectors = ns;
                        sectors[n++] = (uint32_t)a;
                }
        }
        if (n == 0)
                return codec_message(ret_message, -ENODATA, "the image holds no data");
        want = malloc(n * RP2040_FLASH_SECTOR);
        have = malloc(n * RP2040_FLASH_SECTOR);
        changed = calloc(n, sizeof(bool));
        if (!want || !have || !changed)
                return -ENOMEM;
        s->stats.sectors_touched = n;

        r = picoboot_session_exclusive(s, PICOBOOT_EXCLUSIVE);
        if (r < 0)
                return command_error(s, r, "taking exclusive access", 0, ret_message);
        r = picoboot_session_exit_xip(s);
        if (r < 0)
                return command_error(s, r, "leaving XIP mode", 0, ret_message);

        /* what the flash holds: sectors that already hold the image are
         * left alone, bytes of a sector outside the image keep their value */
        flash_callbacks_phase(cb, FLASH_PHASE_READ_BACK);
        for (size_t i = 0; i < n; i++) {
                if (flash_callbacks_cancelled(cb))
                        return codec_message(ret_message, -ECANCELED,
                                             "cancelled before anything was erased");
                r = picoboot_session_read(s, sectors[i], have + i * RP2040_FLASH_SECTOR,
                                          RP2040_FLASH_SECTOR);
                if (r < 0)
                        return command_error(s, r, "reading the flash", sectors[i], ret_message);
                flash_callbacks_progress(cb, (i + 1) * RP2040_FLASH_SECTOR, n * RP2040_FLASH_SECTOR);
        }
        memcpy(want, have, n * RP2040_FLASH_SECTOR);
        for (size_t i = 0, k = 0; i < req->image->n_segments; i++) {
                const FlashSegment *g = &req->image->segments[i];
                for (size_t o = 0; o < g->size; o++) {
                        uint32_t a = g->address + (uint32_t)o;
                        while (k < n && a >= sectors[k] + RP2040_FLASH_SECTOR)
                                k++;
                        want[k * RP2040_FLASH_SECTOR + (a - sectors[k])] = g->data[o];
                }
        }
        for (size_t i = 0; i < n; i++) {
                changed[i] = memcmp(want + i * RP2040_FLASH_SECTOR, have + i * RP2040_FLASH_SECTOR,
                                    RP2040_FLASH_SECTOR) != 0;
                n_changed += changed[i];
        }
        s->stats.sectors_unchanged = n - n_changed;

        if (n_changed > 0) {
                /* the first sector goes first out and last in: no valid boot
                 * (boot2 / vector table) while the rest is incomplete */
                changed[0] = true;
                n_changed = 0;
                for (size_t i = 0; i < n; i++)
                        n_changed += changed[i];
                total = (uint64_t)n_changed * RP2040_FLASH_SECTOR;

                flash_callbacks_phase(cb, FLASH_PHASE_ERASE);
                r = picoboot_session_erase(s, sectors[0], RP2040_FLASH_SECTOR);
                if (r < 0)
                        return command_error(s, r, "erasing the first sector", sectors[0], ret_message);
                s->stats.sectors_erased++;

                flash_callbacks_phase(cb, FLASH_PHASE_WRITE);
                for (size_t j = 1; j <= n; j++) {
                        size_t i = j % n; /* 1, 2, ..., n-1, then 0 */
                        const uint8_t *p = want + i * RP2040_FLASH_SECTOR;
                        if (!changed[i])
                                continue;
                        if (flash_callbacks_cancelled(cb))
                                return codec_message(
                                        ret_message, -ECANCELED,
                                        "cancelled during the flash; the board stays in BOOTSEL "
                                        "(its first sector is erased)");
                        if (i != 0) {
                                r = picoboot_session_erase(s, sectors[i], RP2040_FLASH_SECTOR);
                                if (r < 0)
                                        return command_error(s, r, "erasing", sectors[i], ret_message);
                                s->stats.sectors_erased++;
                        }
                        if (!all_erased(p, RP2040_FLASH_SECTOR)) {
                                r = picoboot_session_write(s, sectors[i], p, RP2040_FLASH_SECTOR);
                                if (r < 0)
                                        return command_error(s, r, "writing", sectors[i], ret_message);
                        }
                        done += RP2040_FLASH_SECTOR;
                        flash_callbacks_progress(cb, done, total);
                }

                if (req->verify) {
                        flash_callbacks_phase(cb, FLASH_PHASE_VERIFY);
                        done = 0;
                        for (size_t i = 0; i < n; i++) {
                                uint8_t *back = have + i * RP2040_FLASH_SECTOR;
                                if (!changed[i])
                                        continue;
                                r = picoboot_session_read(s, sectors[i], back, RP2040_FLASH_SECTOR);
                                if (r < 0)
                                        return command_error(s, r, "verifying", sectors[i], ret_message);
                                for (size_t o = 0; o < RP2040_FLASH_SECTOR; o++)
                                        if (back[o] != want[i * RP2040_FLASH_SECTOR + o]) {
                                                s->stats.mismatch_address = sectors[i] + (uint32_t)o;
                                                return codec_message(
                                                        ret_message, -EILSEQ,
                                                        "verify failed: the flash at 0x%08" PRIx32
                                                        " reads 0x%02x, the image has 0x%02x",
                                                        s->stats.mismatch_address, back[o],
                                                        want[i * RP2040_FLASH_SECTOR + o]);
                                        }
                                s->stats.bytes_verified += RP2040_FLASH_SECTOR;
                                done += RP2040_FLASH_SECTOR;
                                flash_callbacks_progress(cb, done, total);
                        }
                }
        } else
                flash_callbacks_note(cb, "the flash already holds the image: nothing erased or written");

        if (!req->reboot)
                return codec_message(ret_message, FLASH_RESULT_DONE,
                                     "%zu of %zu sectors written, %zu unchanged", n_changed, n,
                                     n - n_changed);
        flash_callbacks_phase(cb, FLASH_PHASE_LEAVE);
        r = picoboot_session_reboot(s, PICOBOOT_REBOOT_DELAY_MS);
        if (r == -ENODEV)
                return codec_message(ret_message, FLASH_RESULT_LEFT_DEVICE_GONE,
                                     "%zu of %zu sectors written; the board left before acknowledging the "
                                     "reboot",
                                     n_changed, n);
        if (r < 0)
                return command_error(s, r, "asking for the reboot", 0, ret_message);
        return codec_message(ret_message, FLASH_RESULT_LEFT,
                             "%zu of %zu sectors written, %zu unchanged; rebooting into the image",
                             n_changed, n, n - n_changed);
}

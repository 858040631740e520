/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Klipper's application as seen from the host: a CDC-ACM tty. The reboot
 * requests are modelled here, `identify` in klipper-identify.c; other
 * Klipper commands are counted and dropped.
 *
 * Klipper src/generic/usb_cdc.c: after every SET_LINE_CODING and
 * SET_CONTROL_LINE_STATE the firmware checks "line coding 1200 baud and
 * DTR low" and then jumps to its bootloader (Katapult if installed, else
 * the ROM DFU bootloader on these boards).
 */

#include <stdlib.h>
#include <string.h>

#include "klipper-identify.h"
#include "tty-port.h"

typedef struct KlipperTty {
        bool rebooting;
        uint64_t bytes_in;
        uint8_t window[64]; /* the last bytes in, to spot the UART request block */
        size_t window_len;
        KlipperIdentify *identify; /* NULL: the flash holds no Klipper dictionary */
} KlipperTty;

/* Klipper src/generic/serial_irq.c: this exact 32-byte block reboots into
 * the bootloader (the UART path; modelled as if the board's UART were
 * bridged to this tty). Written by serial/bootloader-request.c. */
static const char uart_request[] = " \x1c Request Serial Bootloader!! ~";

static void klipper_reboot(VBoard *b, KlipperTty *k, const char *event)
{
        k->rebooting = true;
        vboard_event(b, event, "rebooting into %s",
                     board_bootloader_to_string(b->bootloader) ?: "bootloader");
        /* an RP2040's Klipper calls the ROM's reset_usb_boot(): BOOTSEL */
        vboard_schedule(
                b, 0, b->bootloader == BOARD_BOOTLOADER_KATAPULT ? BOARD_MODE_KATAPULT : vboard_rom_mode(b),
                timing_reenumerate_us(&b->world->timing), event);
}

static int klipper_attach(VBoard *b, void **ret_state)
{
        KlipperTty *k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        (void)klipper_identify_new(&k->identify, b);
        *ret_state = k;
        return 0;
}

static void klipper_detach(VBoard *b, void *state)
{
        KlipperTty *k = state;
        if (k)
                klipper_identify_free(k->identify);
        free(state);
}

static void klipper_on_data(VBoard *b, void *state, const uint8_t *data, size_t len)
{
        KlipperTty *k = state;
        k->bytes_in += len;
        for (size_t i = 0; k && !k->rebooting && i < len; i++) {
                if (k->window_len == sizeof(k->window)) {
                        memmove(k->window, k->window + 1, sizeof(k->window) - 1);
                        k->window_len--;
                }
                k->window[k->window_len++] = data[i];
                size_t n = sizeof(uart_request) - 1;
                if (k->window_len >= n && memcmp(k->window + k->window_len - n, uart_request, n) == 0)
                        klipper_reboot(b, k, "uart-request");
        }
        if (k && !k->rebooting)
                klipper_identify_on_data(k->identify, b, data, len);
}

static void klipper_on_line(VBoard *b, void *state, uint32_t baud, bool dtr)
{
        KlipperTty *k = state;

        if (!k || k->rebooting || baud != 1200 || dtr)
                return;
        b->baud_1200_requests++;
        if (b->quirks[QUIRK_NO_1200_REBOOT]) {
                /* the reported Octopus Pro F429 behaviour: only BOOT0 helps */
                vboard_event(b, "baud-1200", "ignored (no-1200-reboot)");
                return;
        }
        klipper_reboot(b, k, "baud-1200");
}

const TtyModel klipper_tty_model = {
        .name = "klipper",
        .mode = BOARD_MODE_APP,
        .attach = klipper_attach,
        .detach = klipper_detach,
        .on_data = klipper_on_data,
        .on_line = klipper_on_line,
};

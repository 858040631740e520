/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "can-bus.h"
#include "codec/dfuse-layout.h"
#include "codec/rp2040-image.h"
#include "avr-tty.h"
#include "tty-port.h"
#include "usb-device.h"

void (*world_on_mode_change)(World *w) = NULL;

static const char *const board_mode_table[_BOARD_MODE_MAX] = {
        [BOARD_MODE_OFF] = "off",           [BOARD_MODE_APP] = "app",         [BOARD_MODE_DFU] = "dfu",
        [BOARD_MODE_KATAPULT] = "katapult", [BOARD_MODE_BOOTSEL] = "bootsel",
};

static const char *const quirk_table[_QUIRK_MAX] = {
        [QUIRK_SHORT_STRING] = "short-string",
        [QUIRK_GARBAGE_TAIL] = "garbage-tail",
        [QUIRK_ERROR_AT_START] = "error-at-start",
        [QUIRK_RESET_ON_LEAVE] = "reset-on-leave",
        [QUIRK_NO_1200_REBOOT] = "no-1200-reboot",
        [QUIRK_UNPLUG] = "unplug",
        [QUIRK_KATAPULT_CORRUPT] = "katapult-corrupt",
        [QUIRK_KATAPULT_NACK] = "katapult-nack",
        [QUIRK_KATAPULT_BUSY] = "katapult-busy",
        [QUIRK_KATAPULT_SLOW] = "katapult-slow",
        [QUIRK_DFU_TOLERANT] = "dfu-tolerant",
        [QUIRK_DFU_NO_DETACH] = "dfu-no-detach",
        [QUIRK_DFU_SILENT_MANIFEST] = "dfu-silent-manifest",
        [QUIRK_STRING_EIO] = "string-eio",
        [QUIRK_PICOBOOT_STALL] = "picoboot-stall",
        [QUIRK_CAN_DROP] = "can-drop",
        [QUIRK_AVR_MISS_RESET] = "avr-miss-reset",
};

const char *board_mode_to_string(BoardMode m)
{
        return m >= 0 && m < _BOARD_MODE_MAX ? board_mode_table[m] : NULL;
}

BoardMode board_mode_from_string(const char *s)
{
        for (int i = 0; i < _BOARD_MODE_MAX; i++)
                if (s && streq(s, board_mode_table[i]))
                        return i;
        return _BOARD_MODE_INVALID;
}

const char *quirk_to_string(Quirk q)
{
        return q >= 0 && q < _QUIRK_MAX ? quirk_table[q] : NULL;
}

Quirk quirk_from_string(const char *s)
{
        for (int i = 0; i < _QUIRK_MAX; i++)
                if (s && streq(s, quirk_table[i]))
                        return i;
        return _QUIRK_INVALID;
}

uint64_t world_now_us(World *w)
{
        return (uint64_t)(g_get_monotonic_time() - w->start_us);
}

/* Emulation-only per-family values: the ROM's option-byte alt string
 * (as dfu-util -l shows it on these parts) and wTransferSize
 * (protocols.md: F4 and H7 ROMs 2048, G0 1024). */
static void family_values(const char *mcu, const char **ret_ob, uint16_t *ret_xfer)
{
        if (g_str_has_prefix(mcu, "stm32g0")) {
                *ret_ob = "@Option Bytes   /0x1FFF7800/01*128 e";
                *ret_xfer = 1024;
        } else if (g_str_has_prefix(mcu, "stm32h7")) {
                *ret_ob = "@Option Bytes   /0x5200201C/01*128 e";
                *ret_xfer = 2048;
        } else {
                *ret_ob = "@Option Bytes  /0x1FFFC000/01*016 e";
                *ret_xfer = 2048;
        }
}

static int sectors_from_layout(const char *layout, FlashSector **ret, size_t *ret_n)
{
        DfuseLayout *l = NULL;
        GArray *a;
        int r;

        r = dfuse_layout_parse(layout, strlen(layout), &l);
        if (r < 0)
                return r;
        a = g_array_new(FALSE, FALSE, sizeof(FlashSector));
        for (size_t i = 0; i < l->n_regions; i++)
                for (size_t j = 0; j < l->regions[i].n_segments; j++) {
                        const DfuseSegment *s = &l->regions[i].segments[j];
                        for (uint32_t k = 0; k < s->count; k++) {
                                FlashSector fs = { s->address + k * s->size, s->size };
                                g_array_append_val(a, fs);
                        }
                }
        dfuse_layout_free(l);
        *ret_n = a->len;
        *ret = (FlashSector *)g_array_free(a, FALSE);
        return 0;
}

static int find_variant(World *w, const char *name, const Board **ret_board,
                        const BoardVariant **ret_variant)
{
        for (size_t i = 0; i < w->db->n_boards; i++) {
                const Board *bd = &w->db->boards[i];
                if (streq(bd->name, name) && bd->n_variants == 1) {
                        *ret_board = bd;
                        *ret_variant = &bd->variants[0];
                        return 0;
                }
                for (size_t j = 0; j < bd->n_variants; j++) {
                        g_autofree char *full = g_strdup_printf("%s-%s", bd->name, bd->variants[j].id);
                        if (streq(full, name)) {
                                *ret_board = bd;
                                *ret_variant = &bd->variants[j];
                                return 0;
                        }
                }
        }
        return -ENOENT;
}

static void uid_words(const char *uid, uint32_t w[3])
{
        uint8_t bytes[12] = {};
        for (size_t i = 0; i < 12; i++) {
                char h[3] = { uid[2 * i], uid[2 * i + 1], 0 };
                bytes[i] = (uint8_t)strtoul(h, NULL, 16);
        }
        for (size_t i = 0; i < 3; i++)
                w[i] = bytes[4 * i] | bytes[4 * i + 1] << 8 | bytes[4 * i + 2] << 16 |
                       (uint32_t)bytes[4 * i + 3] << 24;
}

void vboard_set_uid(VBoard *b, const char *uid)
{
        uint32_t w[3];
        g_strlcpy(b->uid, uid, sizeof(b->uid));
        for (char *p = b->uid; *p; p++)
                *p = g_ascii_toupper(*p);
        /* The ROM's serial string: (UID word 0 + word 2) as 8 hex digits,
         * then the top half of word 1 (ST's USB device library,
         * Get_SerialNum). */
        uid_words(b->uid, w);
        g_strlcpy(b->bootsel_serial, b->uid + 12, sizeof(b->bootsel_serial));
        snprintf(b->dfu_serial, sizeof(b->dfu_serial), "%08X%04X", w[0] + w[2], w[1] >> 16);
}

static void on_dfu_event(void *userdata, const char *event, uint32_t address, uint32_t length)
{
        VBoard *b = userdata;

        /* every block would drown the log; the counters have them */
        if (streq(event, "write"))
                return;
        vboard_event(b, event, "0x%08x %u", address, length);
}

int vboard_new(VBoard **ret, World *w, unsigned index, const char *name)
{
        const Board *bd;
        const BoardVariant *v;
        g_autofree FlashSector *sectors = NULL;
        g_autofree FlashSector *ob_sectors = NULL;
        size_t n, n_ob;
        const char *ob;
        VBoard *b;
        char uid[25];
        int r;

        r = find_variant(w, name, &bd, &v);
        if (r < 0)
                return r;
        b = g_new0(VBoard, 1);
        b->world = w;
        b->index = index;
        b->name = g_strdup_printf("%s-%s", bd->name, v->id);
        b->db_board = bd;
        b->variant = v;
        b->bootloader = BOARD_BOOTLOADER_ROM_DFU;
        b->port_number = index + 1;
        b->port = g_strdup_printf("1-1.%u", index + 1);
        b->unplug_replug_ms = -1;
        b->mode = BOARD_MODE_OFF;
        b->initial_mode = BOARD_MODE_APP;
        b->events = json_array();
        /* a default chip UID per index, shaped like a real one */
        snprintf(uid, sizeof(uid), "%08X%08X%08X", 0x001C0030u + index * 0x10000u, 0x51303232u,
                 0x38323030u + index);
        vboard_set_uid(b, uid);
        family_values(v->mcu, &ob, &b->transfer_size);
        if (bd->bootloader == BOARD_BOOTLOADER_DFU)
                b->transfer_size = 512; /* Smoothie DFU (see below) */
        b->option_bytes_layout = g_strdup(ob);

        r = sectors_from_layout(v->layout, &sectors, &n);
        if (r >= 0)
                r = flash_model_new(&b->flash, v->flash_base, v->flash_size, true, sectors, n);
        if (r >= 0)
                r = sectors_from_layout(ob, &ob_sectors, &n_ob);
        if (r >= 0)
                r = flash_model_new(&b->option_bytes, ob_sectors[0].address, ob_sectors[0].size, false,
                                    ob_sectors, 1);
        if (r >= 0)
                r = dfu_model_new(&b->dfu, &w->timing, b->transfer_size);
        if (r >= 0)
                r = dfu_model_add_alt(b->dfu, b->flash);
        if (r >= 0)
                r = dfu_model_add_alt(b->dfu, b->option_bytes);
        if (r < 0) {
                vboard_free(b);
                return r;
        }
        b->dfu->on_event = on_dfu_event;
        b->dfu->userdata = b;
        if (bd->bootloader == BOARD_BOOTLOADER_DFU) {
                /* Smoothieware's LPC17xx DFU bootloader (triffid/LPC17xx-DFU-
                 * Bootloader, dfu.c): wTransferSize 512, bitWillDetach |
                 * bitCanUpload | bitCanDnload, not manifestation tolerant;
                 * the firmware starts at the application offset. */
                b->plain_dfu = true;
                b->bootloader = BOARD_BOOTLOADER_DFU;
                r = dfu_model_set_plain(b->dfu, v->flash_base + v->app_offset,
                                        DFU_ATTR_WILL_DETACH | DFU_ATTR_CAN_UPLOAD | DFU_ATTR_CAN_DNLOAD);
                if (r < 0) {
                        vboard_free(b);
                        return r;
                }
        }
        if (bd->bootloader == BOARD_BOOTLOADER_BOOTSEL) {
                b->rp2040 = true;
                b->bootloader = BOARD_BOOTLOADER_BOOTSEL;
                r = picoboot_model_new(&b->picoboot, &w->timing, b->flash);
                if (r < 0) {
                        vboard_free(b);
                        return r;
                }
                b->picoboot->on_event = on_dfu_event;
                b->picoboot->userdata = b;
        }
        if (avr_board_wanted(bd)) {
                b->bootloader = bd->bootloader;
                r = avr_board_new(b);
                if (r < 0) {
                        vboard_free(b);
                        return r;
                }
        }
        /* RDP level 0 (0xAA) in the first option byte, the rest as shipped */
        flash_model_load(b->option_bytes, b->option_bytes->base, (const uint8_t *)"\xaa", 1);
        *ret = b;
        return 0;
}

VBoard *vboard_free(VBoard *b)
{
        if (!b)
                return NULL;
        /* the end of the world is the end of the mode */
        if (b->tty_model)
                b->tty_model->detach(b, b->tty_state);
        avr_board_free(b);
        tty_port_free(b->tty);
        can_node_free(b->can);
        can_node_free(b->bridge);
        dfu_model_free(b->dfu);
        picoboot_model_free(b->picoboot);
        flash_model_free(b->flash);
        flash_model_free(b->option_bytes);
        json_decref(b->events);
        g_free(b->option_bytes_layout);
        g_free(b->name);
        g_free(b->port);
        g_free(b);
        return NULL;
}

int vboard_set_quirk(VBoard *b, const char *spec, bool on)
{
        g_autofree char *name = g_strdup(spec);
        char *arg = strchr(name, '=');
        Quirk q;

        if (arg)
                *arg++ = 0;
        q = quirk_from_string(name);
        if (q < 0)
                return -EINVAL;
        if (q == QUIRK_PICOBOOT_STALL) {
                char *end;
                unsigned long nb = arg ? strtoul(arg, &end, 10) : 0;
                if (!b->rp2040 || (on && (!arg || end == arg || *end || nb == 0)) || (!on && arg))
                        return -EINVAL;
                b->picoboot->stall_on_write = on ? nb : 0;
                b->quirks[q] = on;
                return 0;
        }
        if (q == QUIRK_UNPLUG && on) {
                char *end;
                unsigned long nb;
                if (!arg)
                        return -EINVAL;
                nb = strtoul(arg, &end, 10);
                if (end == arg || nb == 0)
                        return -EINVAL;
                b->unplug_after_blocks = (unsigned)nb;
                b->unplug_replug_ms = -1;
                if (*end == ',') {
                        char *e2;
                        long ms = strtol(end + 1, &e2, 10);
                        if (e2 == end + 1 || *e2 || ms < 0)
                                return -EINVAL;
                        b->unplug_replug_ms = (int)ms;
                } else if (*end)
                        return -EINVAL;
        } else if (q == QUIRK_STRING_EIO && on) {
                char *end;
                unsigned long n;
                if (!arg)
                        return -EINVAL;
                n = strtoul(arg, &end, 10);
                if (end == arg || *end || n == 0 || n > 1000)
                        return -EINVAL;
                b->string_eio_reads = (unsigned)n;
        } else if (arg)
                return -EINVAL;
        if ((q == QUIRK_DFU_TOLERANT || q == QUIRK_DFU_NO_DETACH || q == QUIRK_DFU_SILENT_MANIFEST) &&
            !b->plain_dfu)
                return -EINVAL; /* the ST ROM's descriptor is fixed */
        b->quirks[q] = on;
        if (q == QUIRK_RESET_ON_LEAVE)
                b->dfu->reset_on_leave = on;
        if (q == QUIRK_DFU_SILENT_MANIFEST)
                b->dfu->manifest_silent = on;
        if (q == QUIRK_DFU_TOLERANT)
                b->dfu->attributes = on ? b->dfu->attributes | DFU_ATTR_MANIFESTATION_TOLERANT
                                        : b->dfu->attributes & ~DFU_ATTR_MANIFESTATION_TOLERANT;
        if (q == QUIRK_DFU_NO_DETACH)
                b->dfu->attributes = on ? b->dfu->attributes & ~DFU_ATTR_WILL_DETACH
                                        : b->dfu->attributes | DFU_ATTR_WILL_DETACH;
        return 0;
}

int vboard_init_flash(VBoard *b, BoardMode mode)
{
        const BoardVariant *v = b->variant;
        uint32_t app = v->flash_base + v->app_offset;
        static const char pattern[] = "VBOARD-BOOTLOADR"; /* 16 bytes, no 0xFF */
        g_autofree uint8_t *buf = NULL;

        if (b->rp2040) {
                b->initial_mode = mode;
                if (mode == BOARD_MODE_APP) {
                        /* what a Klipper build for RP2040 starts with: boot2
                         * (252 bytes + its CRC-32/MPEG-2, RP2040 datasheet
                         * 2.8.1.3.1), the vector table at 0x10000100 (SP at
                         * the top of SRAM, a Thumb reset handler in flash) */
                        uint8_t img[4096];
                        uint32_t sp = v->ram_start + v->ram_size, crc;
                        char text[96];
                        memset(img, 0, sizeof(img));
                        for (size_t i = 0; i < 252; i++)
                                img[i] = (uint8_t)(i * 5 + 1);
                        crc = rp2040_boot2_crc(img, 252);
                        for (size_t i = 0; i < 4; i++)
                                img[252 + i] = (uint8_t)(crc >> (8 * i));
                        for (size_t i = 0; i < 48; i++) {
                                uint32_t x = i == 0 ? sp : v->flash_base + 0x300 + (uint32_t)i * 4 + 1;
                                for (size_t k = 0; k < 4; k++)
                                        img[0x100 + 4 * i + k] = (uint8_t)(x >> (8 * k));
                        }
                        snprintf(text, sizeof(text), "Klipper application (vboard) for %s", v->mcu);
                        memcpy(img + 0x300, text, strlen(text));
                        for (size_t i = 0x380; i < sizeof(img); i++)
                                img[i] = (uint8_t)(i * 7 + 3);
                        flash_model_load(b->flash, v->flash_base, img, sizeof(img));
                }
                return 0;
        }
        if (v->app_offset > 0) {
                buf = g_malloc(v->app_offset);
                for (uint32_t i = 0; i < v->app_offset; i++)
                        buf[i] = (uint8_t)pattern[i % 16];
                flash_model_load(b->flash, v->flash_base, buf, v->app_offset);
        }
        if (mode == BOARD_MODE_APP) {
                /* a plausible application: Cortex-M vector table (ARMv7-M
                 * B1.5.3: initial SP, then Thumb (odd) handler addresses),
                 * then recognisable bytes */
                uint8_t img[4096];
                uint32_t sp = v->ram_start + v->ram_size;
                char text[96];
                memset(img, 0, sizeof(img));
                for (size_t i = 0; i < 98; i++) {
                        uint32_t x = i == 0 ? sp : app + 0x200 + (uint32_t)i * 4 + 1;
                        img[4 * i] = x & 0xFF;
                        img[4 * i + 1] = (x >> 8) & 0xFF;
                        img[4 * i + 2] = (x >> 16) & 0xFF;
                        img[4 * i + 3] = x >> 24;
                }
                snprintf(text, sizeof(text), "Klipper application (vboard) for %s", v->mcu);
                memcpy(img + 0x200, text, strlen(text));
                for (size_t i = 0x280; i < sizeof(img); i++)
                        img[i] = (uint8_t)(i * 7 + 3);
                if (v->app_offset + sizeof(img) <= v->flash_size)
                        flash_model_load(b->flash, app, img, sizeof(img));
        }
        b->initial_mode = mode;
        return 0;
}

int vboard_load_file(VBoard *b, const char *spec)
{
        g_autofree char *path = g_strdup(spec);
        g_autofree char *data = NULL;
        char *at = strrchr(path, '@');
        uint32_t addr = b->variant->flash_base + b->variant->app_offset;
        gsize len;

        if (at) {
                char *end;
                *at = 0;
                addr = (uint32_t)strtoul(at + 1, &end, 0);
                if (end == at + 1 || *end)
                        return -EINVAL;
        }
        if (!g_file_get_contents(path, &data, &len, NULL))
                return -ENOENT;
        return flash_model_load(b->flash, addr, (const uint8_t *)data, len);
}

bool vboard_app_plausible(VBoard *b)
{
        const BoardVariant *v = b->variant;
        uint32_t app = v->flash_base + v->app_offset;
        uint8_t vec[8];
        uint32_t sp, reset;

        if (b->avr) {
                /* an erased reset vector runs into the bootloader */
                if (flash_model_read(b->flash, 0, vec, 2) < 0)
                        return false;
                return (vec[0] & vec[1]) != 0xff;
        }
        if (b->rp2040) {
                /* the boot ROM runs flash only with a boot2 whose CRC
                 * matches; boot2 then enters the vector table at +0x100 */
                uint8_t boot2[RP2040_BOOT2_SIZE];
                uint32_t stored;
                if (flash_model_read(b->flash, v->flash_base, boot2, sizeof(boot2)) < 0)
                        return false;
                stored = boot2[252] | boot2[253] << 8 | boot2[254] << 16 | (uint32_t)boot2[255] << 24;
                if (rp2040_boot2_crc(boot2, 252) != stored)
                        return false;
                app = v->flash_base + RP2040_BOOT2_SIZE;
        }
        if (flash_model_read(b->flash, app, vec, sizeof(vec)) < 0)
                return false;
        sp = vec[0] | vec[1] << 8 | vec[2] << 16 | (uint32_t)vec[3] << 24;
        reset = vec[4] | vec[5] << 8 | vec[6] << 16 | (uint32_t)vec[7] << 24;
        /* what bootloaders check before jumping: SP inside RAM (top
         * included), a Thumb reset handler inside the application */
        return sp > v->ram_start && sp <= v->ram_start + v->ram_size && (sp & 3) == 0 && (reset & 1) &&
               reset >= app && reset < v->flash_base + v->flash_size;
}

BoardMode vboard_rom_mode(VBoard *b)
{
        return b->rp2040 ? BOARD_MODE_BOOTSEL : BOARD_MODE_DFU;
}

BoardMode vboard_boot_mode(VBoard *b)
{
        /* the USB-serial bridge is there whatever the AVR runs */
        if (b->avr)
                return BOARD_MODE_APP;
        if (vboard_app_plausible(b))
                return BOARD_MODE_APP;
        if (b->rp2040)
                return BOARD_MODE_BOOTSEL;
        return b->bootloader == BOARD_BOOTLOADER_KATAPULT ? BOARD_MODE_KATAPULT : BOARD_MODE_DFU;
}

void vboard_event(VBoard *b, const char *event, const char *detail_format, ...)
{
        json_t *e = json_object();
        double t = (double)world_now_us(b->world) / 1e6;

        json_object_set_new(e, "t", json_real(t));
        json_object_set_new(e, "event", json_string(event));
        if (detail_format) {
                va_list ap;
                g_autofree char *d = NULL;
                va_start(ap, detail_format);
                d = g_strdup_vprintf(detail_format, ap);
                va_end(ap);
                json_object_set_new(e, "detail", json_string(d));
        }
        if (b->world->verbose) {
                json_t *d = json_object_get(e, "detail");
                g_printerr("vboard: %.3f %s %s %s\n", t, b->name, event, d ? json_string_value(d) : "");
        }
        json_array_append_new(b->events, e);
}

/* ---- power ------------------------------------------------------------ */

int vboard_power_up(VBoard *b, BoardMode mode)
{
        World *w = b->world;
        const TtyModel *model = NULL;
        UsbIdentity id;
        UsbDevice *d;
        int r;

        if (b->can)
                return mode == BOARD_MODE_OFF ? 0 : can_node_power_up(b, mode);
        if (mode == BOARD_MODE_OFF || b->usb)
                return 0;
        if (mode != BOARD_MODE_DFU && mode != BOARD_MODE_BOOTSEL) {
                model = b->avr && mode == BOARD_MODE_APP ? &avr_tty_model : tty_model_for_mode(mode);
                /* gs_usb has no tty: the bridge's application is on CAN */
                if (b->bridge && mode == BOARD_MODE_APP)
                        model = NULL;
                else if (!model) {
                        g_mutex_lock(&w->lock);
                        vboard_event(b, "error", "no model for %s mode", board_mode_to_string(mode));
                        g_mutex_unlock(&w->lock);
                        return -EOPNOTSUPP;
                }
        }
        usb_device_identity(b, mode, &id);
        g_mutex_lock(&w->lock);
        if (mode == BOARD_MODE_DFU) {
                dfu_model_power_up(b->dfu, b->quirks[QUIRK_ERROR_AT_START]);
                b->blocks_at_power_up = b->dfu->dnloads;
                b->string_eio_left = b->quirks[QUIRK_STRING_EIO] ? b->string_eio_reads : 0;
        }
        if (mode == BOARD_MODE_BOOTSEL) {
                picoboot_model_power_up(b->picoboot);
                b->blocks_at_power_up = 0;
        }
        g_mutex_unlock(&w->lock);

        r = usb_device_add(w, b, mode, &id, &d);
        if (r < 0)
                return r;
        if (model) {
                /* the model is listening before the tty's "add" reaches a
                 * program that opens it at once (a 1200-baud request or a
                 * Katapult CONNECT right after the uevent) */
                g_mutex_lock(&w->lock);
                b->tty_model = model;
                b->tty_state = NULL;
                if (model->attach(b, &b->tty_state) < 0)
                        b->tty_model = NULL;
                g_mutex_unlock(&w->lock);
                r = tty_port_attach(w, b, d, &id);
                if (r < 0) {
                        g_mutex_lock(&w->lock);
                        if (b->tty_model)
                                b->tty_model->detach(b, b->tty_state);
                        b->tty_model = NULL;
                        b->tty_state = NULL;
                        g_mutex_unlock(&w->lock);
                        usb_device_remove(w, d);
                        return r;
                }
        }

        if (b->bridge && mode == BOARD_MODE_APP)
                can_bridge_powered_up(b, d->iface_syspath);

        g_mutex_lock(&w->lock);
        b->usb = d;
        /* the first power-up is no re-enumeration */
        if (b->powered_once)
                b->reenumerations++;
        b->powered_once = true;
        {
                g_autofree char *ev = g_strdup_printf("%s-added", board_mode_to_string(mode));
                vboard_event(b, ev, "devnum %u at %s", d->devnum, b->port);
        }
        if (mode == BOARD_MODE_APP && b->last_mode != BOARD_MODE_APP && b->last_mode != BOARD_MODE_OFF)
                vboard_event(b, "app-back", "devnum %u", d->devnum);
        b->mode = mode;
        if (world_on_mode_change)
                world_on_mode_change(w);
        g_mutex_unlock(&w->lock);
        return 0;
}

void vboard_power_down(VBoard *b, const char *why)
{
        World *w = b->world;
        UsbDevice *d;
        bool tty;

        if (b->can) {
                can_node_power_down(b, why);
                return;
        }
        can_bridge_powering_down(b);
        g_mutex_lock(&w->lock);
        d = b->usb;
        if (!d) {
                g_mutex_unlock(&w->lock);
                return;
        }
        b->usb = NULL;
        d->gone = true;
        tty = b->tty_model != NULL;
        if (b->tty_model) {
                b->tty_model->detach(b, b->tty_state);
                b->tty_model = NULL;
                b->tty_state = NULL;
        }
        {
                g_autofree char *ev = g_strdup_printf("%s-removed", board_mode_to_string(b->mode));
                vboard_event(b, ev, "%s", why);
        }
        b->last_mode = b->mode;
        b->mode = BOARD_MODE_OFF;
        if (world_on_mode_change)
                world_on_mode_change(w);
        g_mutex_unlock(&w->lock);

        if (tty)
                tty_port_detach(w, b);
        usb_device_remove(w, d);
}

typedef struct Scheduled {
        VBoard *board;
        BoardMode mode;
        uint64_t off_us;
        char *why;
        bool down_done;
} Scheduled;

static void scheduled_free(gpointer p)
{
        Scheduled *s = p;
        g_free(s->why);
        g_free(s);
}

static gboolean on_scheduled(gpointer userdata)
{
        Scheduled *s = userdata;
        VBoard *b = s->board;
        World *w = b->world;

        if (!s->down_done) {
                vboard_power_down(b, s->why);
                if (s->mode == BOARD_MODE_OFF) {
                        g_mutex_lock(&w->lock);
                        b->pending_source = 0;
                        g_mutex_unlock(&w->lock);
                        return G_SOURCE_REMOVE;
                }
                s->down_done = true;
                {
                        GSource *src = g_timeout_source_new((guint)(s->off_us / 1000));
                        Scheduled *next = g_new0(Scheduled, 1);
                        *next = *s;
                        next->why = g_strdup(s->why);
                        g_source_set_callback(src, on_scheduled, next, scheduled_free);
                        g_mutex_lock(&w->lock);
                        b->pending_source = g_source_attach(src, NULL);
                        g_mutex_unlock(&w->lock);
                        g_source_unref(src);
                }
                return G_SOURCE_REMOVE;
        }
        g_mutex_lock(&w->lock);
        b->pending_source = 0;
        g_mutex_unlock(&w->lock);
        {
                BoardMode m = s->mode == (BoardMode)-1 ? vboard_boot_mode(b) : s->mode;
                int r = vboard_power_up(b, m);
                if (r < 0) {
                        /* say it loudly: a test waiting for the board would
                         * otherwise only see a timeout */
                        g_printerr("vboard: board %u (%s): cannot come back in %s mode: %s\n", b->index,
                                   b->name, board_mode_to_string(m), g_strerror(-r));
                        g_mutex_lock(&w->lock);
                        vboard_event(b, "error", "power-up in %s mode failed: %s", board_mode_to_string(m),
                                     g_strerror(-r));
                        g_mutex_unlock(&w->lock);
                }
        }
        return G_SOURCE_REMOVE;
}

void vboard_schedule(VBoard *b, uint64_t delay_us, BoardMode mode, uint64_t off_us, const char *why)
{
        Scheduled *s = g_new0(Scheduled, 1);
        GSource *src;

        if (b->pending_source) {
                GSource *old = g_main_context_find_source_by_id(NULL, b->pending_source);
                if (old)
                        g_source_destroy(old);
        }
        s->board = b;
        s->mode = mode;
        s->off_us = off_us;
        s->why = g_strdup(why);
        src = g_timeout_source_new((guint)(delay_us / 1000));
        g_source_set_callback(src, on_scheduled, s, scheduled_free);
        b->pending_source = g_source_attach(src, NULL);
        g_source_unref(src);
}

/* ---- observation ------------------------------------------------------ */

json_t *vboard_describe(VBoard *b)
{
        json_t *o = json_object(), *q = json_array();
        const char *tty = tty_port_devnode(b->tty), *by_id = tty_port_by_id(b->tty);

        for (int i = 0; i < _QUIRK_MAX; i++)
                if (b->quirks[i]) {
                        if (i == QUIRK_UNPLUG) {
                                g_autofree char *s =
                                        b->unplug_replug_ms >= 0
                                                ? g_strdup_printf("unplug=%u,%d", b->unplug_after_blocks,
                                                                  b->unplug_replug_ms)
                                                : g_strdup_printf("unplug=%u", b->unplug_after_blocks);
                                json_array_append_new(q, json_string(s));
                        } else if (i == QUIRK_STRING_EIO) {
                                g_autofree char *s = g_strdup_printf("string-eio=%u", b->string_eio_reads);
                                json_array_append_new(q, json_string(s));
                        } else if (i == QUIRK_PICOBOOT_STALL) {
                                g_autofree char *s = g_strdup_printf("picoboot-stall=%" G_GUINT64_FORMAT,
                                                                     (guint64)b->picoboot->stall_on_write);
                                json_array_append_new(q, json_string(s));
                        } else
                                json_array_append_new(q, json_string(quirk_to_string(i)));
                }
        json_object_set_new(o, "index", json_integer(b->index));
        json_object_set_new(o, "name", json_string(b->name));
        json_object_set_new(o, "port", json_string(b->port));
        json_object_set_new(o, "mode", json_string(board_mode_to_string(b->mode)));
        json_object_set_new(o, "devnum", b->usb ? json_integer(b->usb->devnum) : json_null());
        json_object_set_new(o, "devnode", b->usb ? json_string(b->usb->devnode) : json_null());
        json_object_set_new(o, "tty", tty ? json_string(tty) : json_null());
        if (by_id) {
                g_autofree char *link = g_strdup_printf("/dev/serial/by-id/%s", by_id);
                json_object_set_new(o, "by_id", json_string(link));
        } else
                json_object_set_new(o, "by_id", json_null());
        json_object_set_new(o, "mcu", json_string(b->variant->mcu));
        json_object_set_new(o, "uid", json_string(b->uid));
        json_object_set_new(o, "dfu_serial", json_string(b->dfu_serial));
        json_object_set_new(o, "bootloader", json_string(board_bootloader_to_string(b->bootloader)));
        json_object_set_new(o, "flash_base", json_integer(b->variant->flash_base));
        json_object_set_new(o, "flash_size", json_integer(b->variant->flash_size));
        json_object_set_new(o, "app_address", json_integer(b->variant->flash_base + b->variant->app_offset));
        json_object_set_new(o, "quirks", q);
        if (b->can)
                can_node_describe(b->can, o);
        if (b->bridge) {
                can_node_describe(b->bridge, o);
                json_object_set_new(o, "bridge", json_true());
        }
        return o;
}

json_t *vboard_stats(VBoard *b)
{
        json_t *o = json_object(), *c = json_object(), *per = json_object();
        const FlashModel *f = b->flash;

        for (size_t i = 0; i < f->n_sectors; i++) {
                char key[16];
                snprintf(key, sizeof(key), "0x%08X", f->sectors[i].address);
                json_object_set_new(per, key, json_integer((json_int_t)f->erases_per_sector[i]));
        }
        json_object_set_new(c, "erases_per_sector", per);
        json_object_set_new(c, "sector_erases", json_integer((json_int_t)f->sector_erases));
        json_object_set_new(c, "mass_erases", json_integer((json_int_t)f->mass_erases));
        json_object_set_new(c, "bytes_written", json_integer((json_int_t)f->bytes_written));
        json_object_set_new(c, "program_errors", json_integer((json_int_t)f->program_errors));
        json_object_set_new(c, "bytes_uploaded", json_integer((json_int_t)b->dfu->bytes_uploaded));
        json_object_set_new(c, "uploads", json_integer((json_int_t)b->dfu->uploads));
        json_object_set_new(c, "dnloads", json_integer((json_int_t)b->dfu->dnloads));
        json_object_set_new(c, "stalls", json_integer((json_int_t)b->dfu->stalls));
        json_object_set_new(c, "reenumerations", json_integer((json_int_t)b->reenumerations));
        json_object_set_new(c, "unplugs", json_integer((json_int_t)b->unplugs));
        json_object_set_new(c, "baud_1200_requests", json_integer((json_int_t)b->baud_1200_requests));
        avr_board_add_stats(b, c);
        if (b->picoboot) {
                const PicobootModel *m = b->picoboot;
                json_object_set_new(c, "picoboot_commands", json_integer((json_int_t)m->commands));
                json_object_set_new(c, "picoboot_erases", json_integer((json_int_t)m->erases));
                json_object_set_new(c, "picoboot_reads", json_integer((json_int_t)m->reads));
                json_object_set_new(c, "picoboot_bytes_read", json_integer((json_int_t)m->bytes_read));
                json_object_set_new(c, "picoboot_stalls", json_integer((json_int_t)m->stalls));
                json_object_set_new(c, "picoboot_resets", json_integer((json_int_t)m->resets));
                json_object_set_new(c, "picoboot_status_requests",
                                    json_integer((json_int_t)m->status_requests));
        }
        json_object_set_new(o, "index", json_integer(b->index));
        json_object_set_new(o, "name", json_string(b->name));
        json_object_set_new(o, "counters", c);
        json_object_set_new(o, "events", json_deep_copy(b->events));
        return o;
}

VBoard *world_find_board(World *w, const char *spec)
{
        VBoard *found = NULL;
        char *end;
        unsigned long i;

        if (!spec || !*spec)
                return NULL;
        i = strtoul(spec, &end, 10);
        if (*end == 0)
                return i < w->n_boards ? w->boards[i] : NULL;
        for (size_t k = 0; k < w->n_boards; k++)
                if (streq(w->boards[k]->port, spec))
                        return w->boards[k];
        for (size_t k = 0; k < w->n_boards; k++)
                if (streq(w->boards[k]->name, spec)) {
                        if (found)
                                return NULL; /* not unique */
                        found = w->boards[k];
                }
        return found;
}

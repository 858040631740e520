/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device object of proto/API.md ("Device object"). Names are a contract
 * with flashctl and frontends: add keys, never rename them. */
#include <stdio.h>
#include <string.h>

#include "inventory/inventory.h"
#include "usb/picoboot-session.h"
#include "util/macros.h"
#include "util/utf8.h"

/* World strings (device names, process names) may be any bytes. */
static json_t *json_string_or_null(const char *s)
{
        return json_string_sanitized(s);
}

json_t *dfuse_layout_to_json(const DfuseLayout *l)
{
        json_t *regions = json_array();

        if (!regions)
                return NULL;
        for (size_t r = 0; r < l->n_regions; r++) {
                const DfuseRegion *region = &l->regions[r];
                json_t *sectors = json_array();
                for (size_t s = 0; s < region->n_segments; s++) {
                        const DfuseSegment *seg = &region->segments[s];
                        json_array_append_new(
                                sectors, json_pack("{s:I,s:I,s:I,s:I}", "address", (json_int_t)seg->address,
                                                   "count", (json_int_t)seg->count, "size",
                                                   (json_int_t)seg->size, "flags", (json_int_t)seg->flags));
                }
                json_array_append_new(regions, json_pack("{s:o,s:I,s:o}", "name",
                                                         json_string_or_null(strempty(l->name)), "address",
                                                         (json_int_t)region->address, "sectors", sectors));
        }
        return regions;
}

static json_t *alt_to_json(const InventoryAlt *a)
{
        return json_pack("{s:i,s:i,s:o,s:o,s:b,s:b,s:o}", "alt", (int)a->alt, "interface", (int)a->interface,
                         "name", json_string_or_null(a->name), "regions",
                         a->layout ? dfuse_layout_to_json(a->layout) : json_array(), "truncated",
                         a->layout ? a->layout->truncated : false, "string_patched", a->string_patched,
                         "diagnostic", json_string_or_null(a->diagnostic));
}

static bool strv_contains(char **l, const char *s)
{
        for (; l && *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

static void hints_add(json_t *hints, char **l)
{
        for (; l && *l; l++) {
                bool dup = false;
                size_t i;
                json_t *h;
                json_array_foreach (hints, i, h)
                        if (streq(json_string_value(h), *l))
                                dup = true;
                if (!dup)
                        json_array_append_new(hints, json_string(*l));
        }
}

/* The variant whose flash facts hold for the device: the one variant, else
 * the first candidate when every candidate agrees on them (an F429 in ROM
 * DFU could be an Octopus or an Octopus Pro: the same flash either way).
 * `app` also asks for the same application offset. */
static const BoardVariant *entry_agreed_variant(const InventoryEntry *e, bool app)
{
        if (e->variant)
                return e->variant;
        if (e->n_candidates == 0)
                return NULL;
        const BoardVariant *v = e->candidates[0].variant;
        for (size_t i = 1; i < e->n_candidates; i++) {
                const BoardVariant *o = e->candidates[i].variant;
                if (o->flash_base != v->flash_base || o->flash_size != v->flash_size ||
                    (app && o->app_offset != v->app_offset))
                        return NULL;
        }
        return v;
}

/* The board database's layout, when every candidate has the same one: what
 * the flash looks like while the bootloader that would report it is not
 * running. */
static json_t *entry_board_layout(const InventoryEntry *e, const BoardVariant *v)
{
        if (!v || !v->flash_layout)
                return json_null();
        for (size_t i = 0; i < e->n_candidates; i++)
                if (!streq_ptr(e->candidates[i].variant->layout, v->layout))
                        return json_null();
        json_t *o = dfuse_layout_to_json(v->flash_layout);
        return o ? o : json_null();
}

static void entry_flash_to_json(json_t *o, const InventoryEntry *e)
{
        const BoardVariant *flash = entry_agreed_variant(e, false), *app = entry_agreed_variant(e, true);

        json_object_set_new(o, "flash_base", flash ? json_integer(flash->flash_base) : json_null());
        json_object_set_new(o, "flash_size",
                            flash && flash->flash_size ? json_integer(flash->flash_size) : json_null());
        json_object_set_new(o, "app_offset", app ? json_integer(app->app_offset) : json_null());
        json_object_set_new(o, "app_address",
                            app ? json_integer((json_int_t)app->flash_base + app->app_offset) : json_null());
        json_object_set_new(o, "board_layout", entry_board_layout(e, flash));
}

json_t *inventory_entry_to_json(const InventoryEntry *e)
{
        char usb_id[10];
        const char *path;

        snprintf(usb_id, sizeof(usb_id), "%04x:%04x", e->vid, e->pid);
        /* The node a tool would open: the tty in serial modes, else the USB node. */
        path = (e->mode == DEVICE_MODE_APP || e->mode == DEVICE_MODE_KATAPULT ||
                e->mode == DEVICE_MODE_SERIAL) &&
                               e->tty
                       ? e->tty
                       : e->usb_devnode;

        json_t *candidates = json_array(), *hints = json_array(), *diagnostics = json_array();
        json_t *alts = json_array(), *layout = NULL;
        if (!candidates || !hints || !diagnostics || !alts) {
                json_decref(candidates);
                json_decref(hints);
                json_decref(diagnostics);
                json_decref(alts);
                return NULL;
        }
        for (size_t i = 0; i < e->n_candidates; i++) {
                const BoardVariant *v = e->candidates[i].variant;
                json_array_append_new(candidates, json_pack("{s:s,s:s,s:o,s:I,s:I}", "name",
                                                            e->candidates[i].board->name, "variant", v->id,
                                                            "mcu", json_string_or_null(v->mcu), "app_offset",
                                                            (json_int_t)v->app_offset, "app_address",
                                                            (json_int_t)v->flash_base + v->app_offset));
                /* Advice for a different board misleads: with a known board
                 * every hint of its candidate variants, else only the hints
                 * that every candidate shares. */
                if (e->board)
                        hints_add(hints, e->candidates[i].variant->hints);
        }
        if (!e->board && e->n_candidates > 0)
                for (char **h = e->candidates[0].variant->hints; h && *h; h++) {
                        bool everywhere = true;
                        for (size_t i = 1; i < e->n_candidates && everywhere; i++)
                                everywhere = strv_contains(e->candidates[i].variant->hints, *h);
                        if (everywhere)
                                json_array_append_new(hints, json_string(*h));
                }
        for (size_t i = 0; i < e->n_diagnostics; i++)
                json_array_append_new(diagnostics, json_string_or_null(e->diagnostics[i]));
        for (size_t i = 0; i < e->n_alts; i++) {
                json_array_append_new(alts, alt_to_json(&e->alts[i]));
                if (!layout && e->alts[i].layout && e->alts[i].alt == 0)
                        layout = dfuse_layout_to_json(e->alts[i].layout);
        }

        json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "id", e->port, "port", e->port, "mode",
                              device_mode_to_string(e->mode), "usb_id", usb_id);
        if (!o) {
                json_decref(candidates);
                json_decref(hints);
                json_decref(diagnostics);
                json_decref(alts);
                json_decref(layout);
                return NULL;
        }
        json_object_set_new(o, "manufacturer", json_string_or_null(e->manufacturer));
        json_object_set_new(o, "product", json_string_or_null(e->product));
        json_object_set_new(o, "serial", json_string_or_null(e->serial));
        json_object_set_new(o, "mcu", json_string_or_null(e->mcu));
        json_object_set_new(o, "board", json_string_or_null(e->board ? e->board->name : NULL));
        json_object_set_new(o, "board_title", json_string_or_null(e->board ? e->board->title : NULL));
        json_object_set_new(o, "board_variant", json_string_or_null(e->variant ? e->variant->id : NULL));
        json_object_set_new(o, "board_candidates", candidates);
        json_object_set_new(o, "path", json_string_or_null(path));
        json_object_set_new(o, "tty", json_string_or_null(e->tty));
        json_object_set_new(o, "usb_devnode", json_string_or_null(e->usb_devnode));
        json_object_set_new(o, "by_id", json_string_or_null(e->by_id));
        json_object_set_new(o, "busnum", json_integer(e->busnum));
        json_object_set_new(o, "devnum", json_integer(e->devnum));
        json_object_set_new(o, "layout", layout ? layout : json_null());
        json_object_set_new(o, "alt_settings", alts);
        json_object_set_new(o, "transfer_size",
                            e->transfer_size ? json_integer(e->transfer_size) : json_null());
        json_object_set_new(o, "probed", json_boolean(e->probed));
        json_object_set_new(o, "probe_error", json_string_or_null(e->probe_diagnostic));
        json_object_set_new(o, "diagnostics", diagnostics);
        json_object_set_new(o, "hints", hints);
        json_object_set_new(o, "previous_mcu", json_string_or_null(e->last_mcu));
        {
                bool fw = e->mode == DEVICE_MODE_APP && e->firmware_generation == e->generation;
                json_object_set_new(o, "firmware_version",
                                    json_string_or_null(fw ? e->firmware_version : NULL));
                json_object_set_new(o, "firmware_mcu", json_string_or_null(fw ? e->firmware_mcu : NULL));
                json_object_set_new(o, "firmware_source",
                                    json_string_or_null(fw ? e->firmware_source : NULL));
        }
        {
                /* the interface is null while the bridge's Klipper has not
                 * brought it up yet */
                CanUuid u;
                char hex[13];
                json_object_set_new(o, "bridge",
                                    inventory_entry_bridge_uuid(e, &u)
                                            ? json_pack("{s:o,s:s}", "interface",
                                                        json_string_or_null(e->can_iface), "uuid",
                                                        can_uuid_format(&u, hex))
                                            : json_null());
                json_object_set_new(o, "can_interface", json_string_or_null(e->can_iface));
        }
        json_object_set_new(o, "since", json_real((double)e->since_usec / 1e6));
        entry_flash_to_json(o, e);
        /* The RP2040 ROM does not tell its flash size: entry_flash_to_json()
         * gave the board database's, when every candidate agrees. */
        if (e->mode == DEVICE_MODE_BOOTSEL)
                json_object_set_new(o, "rom_version",
                                    json_string_or_null(rp2040_rom_version_to_string(e->rom_version)));
        return o;
}

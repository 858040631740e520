/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* server.*, device.* and board.* methods (proto/API.md). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "manager.h"
#include "server/rpc.h"

/* Bumped when a published method or object changes incompatibly. */
#define FLASHD_API_VERSION 1

static int method_identify(RpcCall *call, json_t *params)
{
        Manager *m = rpc_call_get_manager(call);
        const char *name, *version, *type, *url = NULL;
        int r;

        r = rpc_call_unpack_params(call, params, "{s:s,s:s,s:s,s?s}", "client_name", &name, "version",
                                   &version, "type", &type, "url", &url);
        if (r < 0)
                return r;
        if (m->server)
                server_identify_client(m->server, rpc_call_get_client_id(call), name, version, type, url);
        return rpc_call_reply(call,
                              json_pack("{s:I}", "connection_id", (json_int_t)rpc_call_get_client_id(call)));
}

static int method_server_info(RpcCall *call, json_t *params)
{
        Manager *m = rpc_call_get_manager(call);
        int r = rpc_call_unpack_params(call, params, "{!}");
        if (r < 0)
                return r;
        return rpc_call_reply(call, json_pack("{s:s,s:i,s:f,s:s,s:I,s:I,s:I}", "version", FLASHD_VERSION,
                                              "api_version", FLASHD_API_VERSION, "uptime", manager_uptime(m),
                                              "state_dir", m->config->state_dir, "devices",
                                              (json_int_t)inventory_count(m->inventory), "boards",
                                              (json_int_t)m->boards->n_boards, "clients",
                                              (json_int_t)(m->server ? server_n_clients(m->server) : 0)));
}

static int method_server_methods(RpcCall *call, json_t *params)
{
        int r = rpc_call_unpack_params(call, params, "{!}");
        if (r < 0)
                return r;
        json_t *names = rpc_method_names();
        if (!names)
                return -ENOMEM;
        return rpc_call_reply(call, names);
}

const RpcMethod server_methods[] = {
        { "server.connection.identify", method_identify, RPC_METHOD_READ },
        { "server.info", method_server_info, RPC_METHOD_READ },
        { "server.methods", method_server_methods, RPC_METHOD_READ },
        {},
};

static void append_device(const InventoryEntry *e, void *userdata)
{
        json_array_append_new(userdata, inventory_entry_to_json(e));
}

static int method_device_list(RpcCall *call, json_t *params)
{
        Manager *m = rpc_call_get_manager(call);
        int r = rpc_call_unpack_params(call, params, "{!}");
        if (r < 0)
                return r;
        json_t *a = json_array();
        if (!a)
                return -ENOMEM;
        inventory_foreach(m->inventory, append_device, a);
        if (m->can && can_inventory_append_json(m->can, a) < 0) {
                json_decref(a);
                return -ENOMEM;
        }
        return rpc_call_reply(call, a);
}

static int method_device_info(RpcCall *call, json_t *params)
{
        Manager *m = rpc_call_get_manager(call);
        const InventoryEntry *e = NULL, **matches = NULL;
        const char *key;
        int r;

        r = rpc_call_unpack_params(call, params, "{s:s!}", "device", &key);
        if (r < 0)
                return r;
        r = inventory_find(m->inventory, key, &e, &matches);
        if (r == -ENODEV)
                return rpc_call_reply_error(call, RPC_ERROR_DEVICE_NOT_FOUND,
                                            json_pack("{s:s}", "device", key),
                                            "No device %s: give a port path (flashctl list), a tty, a "
                                            "/dev/serial/by-id path or a board name",
                                            key);
        if (r == -ENOTUNIQ) {
                json_t *ports = json_array();
                for (size_t i = 0; matches[i]; i++)
                        json_array_append_new(ports, json_string(matches[i]->port));
                free(matches);
                return rpc_call_reply_error(call, RPC_ERROR_DEVICE_AMBIGUOUS,
                                            json_pack("{s:s,s:o}", "device", key, "candidates", ports),
                                            "Several devices could be %s: name one by its port", key);
        }
        if (r < 0)
                return r;
        json_t *o = inventory_entry_to_json(e);
        if (!o)
                return -ENOMEM;
        return rpc_call_reply(call, o);
}

const RpcMethod device_methods[] = {
        { "device.list", method_device_list, RPC_METHOD_READ },
        { "device.info", method_device_info, RPC_METHOD_READ },
        {},
};

static json_t *json_hex32(uint32_t v)
{
        return json_integer((json_int_t)v);
}

static json_t *usb_id_json(BoardUsbId id)
{
        char buf[10];
        if (id.vid == 0)
                return json_null();
        snprintf(buf, sizeof(buf), "%04x:%04x", id.vid, id.pid);
        return json_string(buf);
}

static json_t *strv_json(char **l)
{
        json_t *a = json_array();
        for (; a && l && *l; l++)
                json_array_append_new(a, json_string(*l));
        return a;
}

static json_t *board_summary_json(const Board *b)
{
        json_t *variants = json_array(), *mcus = json_array();
        for (size_t i = 0; i < b->n_variants; i++) {
                json_array_append_new(variants, json_string(b->variants[i].id));
                json_array_append_new(mcus, json_string(b->variants[i].mcu));
        }
        return json_pack("{s:s,s:s?,s:s,s:o,s:o}", "name", b->name, "title", b->title, "bootloader",
                         board_bootloader_to_string(b->bootloader), "variants", variants, "mcus", mcus);
}

static json_t *variant_json(const BoardVariant *v)
{
        json_t *o = json_pack("{s:s,s:s}", "id", v->id, "mcu", v->mcu);
        if (!o)
                return NULL;
        json_object_set_new(o, "flash_base", json_hex32(v->flash_base));
        json_object_set_new(o, "flash_size", json_hex32(v->flash_size));
        json_object_set_new(o, "app_offset", json_hex32(v->app_offset));
        json_object_set_new(o, "app_address", json_hex32(v->flash_base + v->app_offset));
        json_object_set_new(o, "ram_start", json_hex32(v->ram_start));
        json_object_set_new(o, "ram_size", json_hex32(v->ram_size));
        json_object_set_new(o, "layout_string", v->layout ? json_string(v->layout) : json_null());
        DfuseLayout *l = NULL;
        if (v->layout && dfuse_layout_parse(v->layout, strlen(v->layout), &l) >= 0) {
                json_object_set_new(o, "layout", dfuse_layout_to_json(l));
                dfuse_layout_free(l);
        } else
                json_object_set_new(o, "layout", json_null());
        json_object_set_new(o, "usb",
                            json_pack("{s:o,s:o,s:o}", "app", usb_id_json(v->usb_app), "dfu",
                                      usb_id_json(v->usb_dfu), "katapult", usb_id_json(v->usb_katapult)));
        json_object_set_new(o, "reboot", json_string(board_reboot_to_string(v->reboot)));
        json_object_set_new(o, "hints", strv_json(v->hints));
        return o;
}

static int method_board_list(RpcCall *call, json_t *params)
{
        Manager *m = rpc_call_get_manager(call);
        int r = rpc_call_unpack_params(call, params, "{!}");
        if (r < 0)
                return r;
        json_t *a = json_array();
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < m->boards->n_boards; i++)
                json_array_append_new(a, board_summary_json(&m->boards->boards[i]));
        return rpc_call_reply(call, a);
}

static int method_board_info(RpcCall *call, json_t *params)
{
        Manager *m = rpc_call_get_manager(call);
        const char *name;
        int r;

        r = rpc_call_unpack_params(call, params, "{s:s!}", "board", &name);
        if (r < 0)
                return r;
        const Board *b = board_db_find(m->boards, name);
        if (!b)
                return rpc_call_reply_error(
                        call, RPC_ERROR_BOARD_NOT_FOUND, json_pack("{s:s}", "board", name),
                        "No board %s in the board database (board.list shows them)", name);
        json_t *o = board_summary_json(b);
        if (!o)
                return -ENOMEM;
        json_t *variants = json_array();
        for (size_t i = 0; i < b->n_variants; i++)
                json_array_append_new(variants, variant_json(&b->variants[i]));
        json_object_set_new(o, "variants", variants);
        json_object_set_new(
                o, "reboot",
                json_string(b->n_variants ? board_reboot_to_string(b->variants[0].reboot) : "manual"));
        json_object_set_new(o, "source", json_string(b->source_path ? b->source_path : ""));
        return rpc_call_reply(call, o);
}

const RpcMethod board_methods[] = {
        { "board.list", method_board_list, RPC_METHOD_READ },
        { "board.info", method_board_info, RPC_METHOD_READ },
        {},
};

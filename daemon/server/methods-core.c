/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* server.*, device.* and board.* methods (proto/API.md). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util/log.h"
#include "manager.h"
#include "server/rpc.h"
#include "util/utf8.h"

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
        return rpc_call_reply(call, json_pack("{s:s,s:i,s:f,s:o,s:I,s:I,s:I}", "version", FLASHD_VERSION,
                                              "api_version", FLASHD_API_VERSION, "uptime", manager_uptime(m),
                                              "state_dir", json_string_sanitized(m->config->state_dir),
                                              "devices", (json_int_t)inventory_count(m->inventory), "boards",
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

static JobQueue *manager_queue(Manager *m)
{
        return m->jobs ? job_service_get_queue(m->jobs) : NULL;
}

/* A device object with the job busy with its port ("job": null when none). */
static json_t *device_json(Manager *m, const InventoryEntry *e)
{
        json_t *o = inventory_entry_to_json(e);
        const Job *j = job_queue_port_holder(manager_queue(m), e->port);

        if (o) {
                json_object_set_new(o, "present", json_true());
                json_object_set_new(o, "job", j ? job_port_json(j) : json_null());
        }
        return o;
}

typedef struct DeviceList {
        Manager *manager;
        json_t *array;
} DeviceList;

static void append_device(const InventoryEntry *e, void *userdata)
{
        DeviceList *l = userdata;

        json_array_append_new(l->array, device_json(l->manager, e));
}

/* A board away from its port while its job reboots it keeps its place. */
static void append_absent(const Job *holder, void *userdata)
{
        DeviceList *l = userdata;

        if (!inventory_get(l->manager->inventory, holder->port))
                json_array_append_new(l->array, job_absent_device_json(holder));
}

static int by_port(const void *a, const void *b)
{
        const char *x = json_string_value(json_object_get(*(json_t *const *)a, "port"));
        const char *y = json_string_value(json_object_get(*(json_t *const *)b, "port"));
        return strcmp(strempty(x), strempty(y));
}

static void write_port_hold(const Job *j, void *userdata)
{
        FILE *f = userdata;

        /* every field device_json() and job_absent_device_json() show */
        fprintf(f, "%s\x1f%" PRIu64 "\x1f%d\x1f%d\x1f%s\x1f%s\x1f%s\x1e", j->port, j->id, (int)j->state,
                (int)j->phase, strempty(j->mcu), strempty(j->board), strempty(j->variant));
}

/* What the jobs add to device.list, as a string to compare: the ports they
 * hold and their state; it changes with every job transition, not with
 * progress. */
static char *jobs_key(JobQueue *q)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        job_queue_foreach_held_port(q, write_port_hold, f);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static int build_device_list(Manager *m, json_t **ret);

/* The CAN nodes are not in the cached list (the CAN inventory changes on
 * its own schedule): they are encoded per request and spliced in before
 * the list's closing bracket. */
static int reply_with_can_nodes(RpcCall *call, Manager *m)
{
        json_auto_t *can = NULL;
        _cleanup_free_ char *can_text = NULL, *text = NULL;
        const char *list = m->device_list;
        size_t list_len = m->device_list_len;

        if (m->can) {
                can = json_array();
                if (!can || can_inventory_append_json(m->can, can) < 0)
                        return -ENOMEM;
        }
        if (json_array_size(can) == 0)
                return rpc_call_reply_text(call, list, list_len);
        can_text = json_dumps(can, JSON_COMPACT);
        if (!can_text)
                return -ENOMEM;
        /* "[a,b]" + "[c]" -> "[a,b,c]"; "[]" + "[c]" -> "[c]" */
        size_t can_len = strlen(can_text);
        bool empty = list_len == 2;
        text = malloc(list_len + can_len);
        if (!text)
                return -ENOMEM;
        memcpy(text, list, list_len - 1);
        size_t n = list_len - 1;
        if (!empty)
                text[n++] = ',';
        memcpy(text + n, can_text + 1, can_len - 1);
        n += can_len - 1;
        return rpc_call_reply_text(call, text, n);
}

/* Polling frontends ask for the list far more often than it changes: the
 * result is built and encoded once per change, and every reply sends that
 * text (rpc_call_reply_text()) instead of building and dumping it again. */
static int method_device_list(RpcCall *call, json_t *params)
{
        Manager *m = rpc_call_get_manager(call);
        _cleanup_free_ char *key = NULL;
        json_auto_t *list = NULL;
        int r = rpc_call_unpack_params(call, params, "{!}");
        if (r < 0)
                return r;
        key = jobs_key(manager_queue(m));
        if (!key)
                return -ENOMEM;
        if (m->device_list && m->device_list_changes == inventory_changes(m->inventory) &&
            streq_ptr(m->device_list_jobs, key))
                return reply_with_can_nodes(call, m);
        r = build_device_list(m, &list);
        if (r < 0)
                return r;
        char *text = json_dumps(list, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        free(m->device_list);
        free(m->device_list_jobs);
        m->device_list = text;
        m->device_list_len = strlen(text);
        m->device_list_changes = inventory_changes(m->inventory);
        m->device_list_jobs = TAKE_PTR(key);
        return reply_with_can_nodes(call, m);
}

static int build_device_list(Manager *m, json_t **ret)
{
        DeviceList l = { .manager = m, .array = json_array() };
        if (!l.array)
                return -ENOMEM;
        inventory_foreach(m->inventory, append_device, &l);
        size_t present = json_array_size(l.array);
        job_queue_foreach_held_port(manager_queue(m), append_absent, &l);
        if (json_array_size(l.array) > present) {
                /* in port order, as the inventory lists them */
                size_t n = json_array_size(l.array);
                json_t **items = calloc(n, sizeof(json_t *));
                if (!items) {
                        json_decref(l.array);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < n; i++)
                        items[i] = json_incref(json_array_get(l.array, i));
                qsort(items, n, sizeof(json_t *), by_port);
                json_array_clear(l.array);
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(l.array, items[i]);
                free(items);
        }
        *ret = l.array;
        return 0;
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
        if (r == -ENODEV && job_queue_port_holder(manager_queue(m), key))
                return rpc_call_reply(call,
                                      job_absent_device_json(job_queue_port_holder(manager_queue(m), key)));
        if (r == -ENODEV)
                return rpc_call_reply_error(call, RPC_ERROR_DEVICE_NOT_FOUND,
                                            json_pack("{s:s}", "device", key),
                                            "no device %s: give a port path (flashctl list), a tty, a "
                                            "/dev/serial/by-id path or a board name",
                                            key);
        if (r == -ENOTUNIQ) {
                json_t *ports = json_array();
                for (size_t i = 0; matches[i]; i++)
                        json_array_append_new(ports, json_string(matches[i]->port));
                free(matches);
                return rpc_call_reply_error(call, RPC_ERROR_DEVICE_AMBIGUOUS,
                                            json_pack("{s:s,s:o}", "device", key, "candidates", ports),
                                            "several devices could be %s: name one by its port", key);
        }
        if (r < 0)
                return r;
        json_t *o = device_json(m, e);
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
        json_object_set_new(o, "layout",
                            v->flash_layout ? dfuse_layout_to_json(v->flash_layout) : json_null());
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
                        "no board %s in the board database (board.list shows them)", name);
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

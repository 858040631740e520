/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* profile.* and update.* methods (proto/API.md, "Keeping boards in step with Klipper"). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/macros.h"
#include "manager.h"
#include "server/rpc.h"
#include "update/host-version.h"
#include "update/profile-store.h"
#include "update/update-run.h"
#include "update/update-status.h"

/* A .config from menuconfig is a few KiB; this leaves room for comments. */
#define KCONFIG_MAX (256U * 1024U)

static int method_profile_add(RpcCall *call, json_t *params)
{
        Manager *m = rpc_call_get_manager(call);
        const char *name, *board, *mcu_name = NULL, *kconfig;
        _cleanup_free_ char *error = NULL;
        json_t *profile = NULL;
        const Board *b = NULL;
        const BoardVariant *v = NULL;
        size_t len;
        int replace = 0, r;

        if (rpc_call_unpack_params(call, params, "{s:s,s:s,s?s,s:s%,s?b!}", "name", &name, "board", &board,
                                   "mcu_name", &mcu_name, "kconfig", &kconfig, &len, "replace",
                                   &replace) < 0)
                return -EINVAL;
        if (!profile_name_valid(name))
                return rpc_call_reply_error(
                        call, RPC_ERROR_INVALID_PARAMS, NULL,
                        "'%s' is no profile name: letters, digits, '-', '_' and '.' only", name);
        if (mcu_name && !profile_name_valid(mcu_name))
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "'%s' is no MCU name (the NAME of [mcu NAME] in printer.cfg)",
                                            mcu_name);
        b = board_db_find(m->boards, board);
        if (!b && board_db_find_variant(m->boards, board, &b, &v) < 0)
                return rpc_call_reply_error(
                        call, RPC_ERROR_BOARD_NOT_FOUND, NULL,
                        "no board '%s' in the board database (flashctl boards lists them)", board);
        if (len > KCONFIG_MAX || memchr(kconfig, '\0', len))
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "kconfig is not a Klipper .config text");
        r = profile_store_add(m->config->state_dir, name, board, mcu_name, kconfig, len, replace, &profile,
                              &error);
        if (r == -EEXIST)
                return rpc_call_reply_error(call, RPC_ERROR_BUSY, NULL,
                                            "a profile '%s' exists: remove it first, or pass replace", name);
        if (r == -EINVAL)
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL, "%s", strna(error));
        if (r < 0)
                return rpc_call_reply_error(call, RPC_ERROR_INTERNAL, NULL,
                                            "cannot store the profile in %s: %s", m->config->state_dir,
                                            strerror(-r));
        log_info("profile %s added: board %s, MCU %s", name, board,
                 json_string_value(json_object_get(profile, "mcu")));
        return rpc_call_reply(call, json_pack("{s:o}", "profile", profile));
}

static int method_profile_list(RpcCall *call, json_t *params)
{
        Manager *m = rpc_call_get_manager(call);
        json_t *arr = NULL;
        int r;

        if (rpc_call_unpack_params(call, params, "{!}") < 0)
                return -EINVAL;
        r = profile_store_list(m->config->state_dir, &arr);
        if (r < 0)
                return rpc_call_reply_error(call, RPC_ERROR_INTERNAL, NULL, "cannot list profiles: %s",
                                            strerror(-r));
        return rpc_call_reply(call, json_pack("{s:o}", "profiles", arr));
}

static int method_profile_show(RpcCall *call, json_t *params)
{
        Manager *m = rpc_call_get_manager(call);
        _cleanup_free_ char *text = NULL;
        const char *name;
        json_t *profile = NULL;
        size_t n = 0;
        int r;

        if (rpc_call_unpack_params(call, params, "{s:s!}", "name", &name) < 0)
                return -EINVAL;
        r = profile_store_get(m->config->state_dir, name, &profile);
        if (r < 0)
                return rpc_call_reply_error(call, RPC_ERROR_NOT_FOUND, NULL, "no profile '%s'", name);
        /* with the .config itself, so a frontend can show it */
        const char *cfg = json_string_value(json_object_get(profile, "kconfig"));
        _cleanup_fclose_ FILE *f = cfg ? fopen(cfg, "re") : NULL;
        if (f) {
                text = malloc(KCONFIG_MAX + 1);
                if (text) {
                        n = fread(text, 1, KCONFIG_MAX, f);
                        text[n] = '\0';
                }
        }
        json_object_set_new(profile, "kconfig_text", text ? json_stringn(text, n) : json_null());
        return rpc_call_reply(call, json_pack("{s:o}", "profile", profile));
}

static int method_profile_remove(RpcCall *call, json_t *params)
{
        Manager *m = rpc_call_get_manager(call);
        const char *name;
        int r;

        if (rpc_call_unpack_params(call, params, "{s:s!}", "name", &name) < 0)
                return -EINVAL;
        r = profile_store_remove(m->config->state_dir, name);
        if (r == -ENOENT)
                return rpc_call_reply_error(call, RPC_ERROR_NOT_FOUND, NULL, "no profile '%s'", name);
        if (r < 0)
                return rpc_call_reply_error(call, RPC_ERROR_INTERNAL, NULL, "cannot remove profile '%s': %s",
                                            name, strerror(-r));
        log_info("profile %s removed", name);
        return rpc_call_reply(call, NULL);
}

/* A call that waits for git describe (update/host-version.h), answered
 * once it is known: other clients go on meanwhile. */
typedef struct Deferred {
        RpcCall *call;
        json_t *params;
        int (*method)(RpcCall *call, json_t *params);
} Deferred;

static void deferred_run(void *userdata, bool cancelled)
{
        Deferred *d = userdata;

        if (cancelled)
                (void)rpc_call_reply_error(d->call, RPC_ERROR_SHUTTING_DOWN, NULL, "flashd is stopping");
        else {
                int r = d->method(d->call, d->params);
                if (r < 0 && !rpc_call_replied(d->call))
                        (void)rpc_call_reply_error(d->call, RPC_ERROR_INTERNAL, NULL, "%s", strerror(-r));
        }
        rpc_call_unref(d->call);
        json_decref(d->params);
        free(d);
}

/* 1: go on; 0: the call was put aside until the host version is known. */
static int wait_host_version(RpcCall *call, json_t *params, int (*method)(RpcCall *call, json_t *params))
{
        Manager *m = rpc_call_get_manager(call);
        Deferred *d;
        int r;

        r = update_status_host_version_ready(m);
        if (r != 0)
                return 1; /* known, or an error update_status_compute() reports */
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        r = host_version_on_ready(m->host_version, deferred_run, d);
        if (r < 0) {
                free(d);
                return r;
        }
        d->call = rpc_call_ref(call);
        d->params = json_incref(params);
        d->method = method;
        return 0;
}

static int method_update_status(RpcCall *call, json_t *params)
{
        json_t *status = NULL;
        int r;

        if (rpc_call_unpack_params(call, params, "{!}") < 0)
                return -EINVAL;
        r = wait_host_version(call, params, method_update_status);
        if (r <= 0)
                return r;
        r = update_status_compute(rpc_call_get_manager(call), &status);
        if (r < 0)
                return rpc_call_reply_error(call, RPC_ERROR_INTERNAL, NULL, "%s", strerror(-r));
        return rpc_call_reply(call, status);
}

static int parse_targets(RpcCall *call, json_t *params, json_t **ret_names, bool *ret_all, bool *ret_dry_run)
{
        json_t *names = NULL;
        int all = 0, dry_run = 0;
        size_t i;
        json_t *v;

        if (rpc_call_unpack_params(call, params, "{s?o,s?b,s?b!}", "mcus", &names, "all", &all, "dry_run",
                                   &dry_run) < 0)
                return -EINVAL;
        if (names && !json_is_array(names))
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "mcus must be an array of names");
        json_array_foreach (names, i, v)
                if (!json_is_string(v))
                        return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                                    "mcus must be an array of names");
        if (!all == (json_array_size(names) == 0))
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "give either all: true or mcus: [names]");
        *ret_names = names;
        *ret_all = all;
        if (ret_dry_run)
                *ret_dry_run = dry_run;
        return 0;
}

static int plan_or_reply(RpcCall *call, json_t *names, bool all, json_t **ret)
{
        _cleanup_free_ char *error = NULL;
        int r = update_plan_compute(rpc_call_get_manager(call), names, all, ret, &error);

        if (r == -ENOENT)
                return rpc_call_reply_error(call, RPC_ERROR_NOT_FOUND, NULL, "%s", strna(error));
        if (r < 0)
                return rpc_call_reply_error(call, RPC_ERROR_INTERNAL, NULL, "cannot plan: %s", strerror(-r));
        return 0;
}

static int method_update_plan(RpcCall *call, json_t *params)
{
        json_t *names = NULL, *plan = NULL;
        bool all = false;
        int r;

        r = parse_targets(call, params, &names, &all, NULL);
        if (r < 0 || rpc_call_replied(call))
                return r;
        r = wait_host_version(call, params, method_update_plan);
        if (r <= 0)
                return r;
        r = plan_or_reply(call, names, all, &plan);
        if (r < 0 || rpc_call_replied(call))
                return r;
        return rpc_call_reply(call, plan);
}

static int method_update_run(RpcCall *call, json_t *params)
{
        json_t *names = NULL;
        json_auto_t *plan = NULL;
        bool all = false, dry_run = false;
        int r;

        r = parse_targets(call, params, &names, &all, &dry_run);
        if (r < 0 || rpc_call_replied(call))
                return r;
        r = wait_host_version(call, params, method_update_run);
        if (r <= 0)
                return r;
        r = plan_or_reply(call, names, all, &plan);
        if (r < 0 || rpc_call_replied(call))
                return r;
        if (dry_run)
                return rpc_call_reply(call, json_incref(plan));
        r = update_run_start(rpc_call_get_manager(call), call, plan);
        if (r < 0 && !rpc_call_replied(call))
                return rpc_call_reply_error(call, RPC_ERROR_INTERNAL, NULL, "cannot start the update: %s",
                                            strerror(-r));
        return r;
}

const RpcMethod update_methods[] = {
        { "profile.add", method_profile_add, RPC_METHOD_MUTATING },
        { "profile.list", method_profile_list, RPC_METHOD_READ },
        { "profile.show", method_profile_show, RPC_METHOD_READ },
        { "profile.remove", method_profile_remove, RPC_METHOD_MUTATING },
        { "update.status", method_update_status, RPC_METHOD_READ },
        { "update.plan", method_update_plan, RPC_METHOD_READ },
        { "update.run", method_update_run, RPC_METHOD_MUTATING },
        {},
};

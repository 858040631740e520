/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rule.* methods (proto/API.md, "Rules"). */
#include <inttypes.h>
#include <stdio.h>

#include "codec/flash-image.h"
#include "jobs/job-methods.h"
#include "jobs/job-service.h"
#include "manager.h"
#include "rules/rule-service.h"
#include "server/rpc.h"
#include "util/log.h"

static RuleService *service_of(RpcCall *call)
{
        return rpc_call_get_manager(call)->rules;
}

static int reply_no_rules(RpcCall *call)
{
        return rpc_call_reply_error(call, RPC_ERROR_UNSUPPORTED, NULL, "rules are not running");
}

static int reply_rule(RpcCall *call, RuleService *s, const Rule *r)
{
        return rpc_call_reply(call, json_pack("{s:o}", "rule", rule_service_rule_json(s, r)));
}

/* The image of a new rule, into the job image store: read like job.flash
 * reads its image (fd, data or path, with the caller's rights), or named by
 * the SHA-256 of an image already stored. Replies on failure. */
static int rule_image_store(RpcCall *call, json_t *image, const char *format, const Rule *r,
                            char ret_sha256[static 65], uint64_t *ret_size)
{
        Manager *m = rpc_call_get_manager(call);
        ImageStore *store = job_queue_get_image_store(job_service_get_queue(m->jobs));
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_(flash_image_freep) FlashImage *img = NULL;
        const char *sha = json_string_value(json_object_get(image, "sha256"));
        const char *name = json_string_value(json_object_get(image, "name"));
        FlashImageFormat f = _FLASH_IMAGE_FORMAT_INVALID, detected;
        size_t size = 0;
        int k;

        if (sha) {
                if (json_object_size(image) != 1 + !!json_object_get(image, "name"))
                        return rpc_call_reply_error(
                                call, RPC_ERROR_INVALID_PARAMS, NULL,
                                "image needs exactly one of fd: true, data, path or sha256");
                k = image_store_get(store, sha, &data, &size);
                if (k < 0)
                        return rpc_call_reply_error(
                                call, RPC_ERROR_NOT_FOUND, json_pack("{s:s}", "sha256", sha),
                                "no image %s in the image store: send the file instead", sha);
        } else {
                k = job_method_read_image(call, image, &data, &size);
                if (k < 0)
                        return k;
        }

        /* Refuse what is no image at all now rather than at every board;
         * the safety checks against each board run when the job is submitted. */
        if (format) {
                f = flash_image_format_from_string(format);
                if (f < 0)
                        return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                                    "unknown image format \"%s\": use bin, hex or dfu",
                                                    format);
        }
        detected = f >= 0 ? f : flash_image_detect(data, size, name);
        /* raw formats take the address from the board at submission; 0 stands in here */
        k = flash_image_parse(data, size, f, name,
                              r->action.has_address || detected == FLASH_IMAGE_FORMAT_BIN ||
                                      detected == FLASH_IMAGE_FORMAT_DFU_RAW,
                              r->action.address, &img, &error);
        if (k < 0)
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "not a usable flash image: %s", error ? error : strerror(-k));

        k = image_store_put(store, data, size, ret_sha256);
        if (k < 0)
                return rpc_call_reply_error(call, RPC_ERROR_IO, NULL, "could not store the image: %s",
                                            strerror(-k));
        *ret_size = size;
        return 0;
}

static int method_add(RpcCall *call, json_t *params)
{
        RuleService *s = service_of(call);
        const RpcPeer *peer = rpc_call_get_peer(call);
        json_t *match = NULL, *image = NULL, *force = NULL;
        const char *format = NULL, *repeat = NULL, *name = NULL, *bad = NULL;
        json_int_t address = -1, max_retries = RULE_MAX_RETRIES_DEFAULT;
        double retry_delay = RULE_RETRY_DELAY_DEFAULT;
        int verify = 1, mass_erase = 0, enabled = 1;
        _cleanup_(rule_freep) Rule *r = NULL;
        _cleanup_free_ char *id = NULL, *error = NULL;
        char who[64];
        int k;

        if (!s)
                return reply_no_rules(call);
        k = rpc_call_unpack_params(
                call, params, "{s:o, s:o, s?s, s?I, s?b, s?b, s?o, s?s, s?I, s?F, s?b, s?s !}", "match",
                &match, "image", &image, "format", &format, "address", &address, "verify", &verify,
                "mass_erase", &mass_erase, "force", &force, "repeat", &repeat, "max_retries", &max_retries,
                "retry_delay_sec", &retry_delay, "enabled", &enabled, "name", &name);
        if (k < 0)
                return k;
        if (!json_is_object(image))
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "image must be an object: {\"fd\": true}, {\"data\": base64}, "
                                            "{\"path\": path} or {\"sha256\": hex}");
        if (address > (json_int_t)UINT32_MAX)
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "address %" PRIi64 " is not a 32-bit address", (int64_t)address);
        if (max_retries < 0 || max_retries > RULE_MAX_RETRIES_MAX)
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "max_retries must be between 0 and %u", RULE_MAX_RETRIES_MAX);
        if (!(retry_delay >= 0 && retry_delay <= RULE_RETRY_DELAY_MAX))
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "retry_delay_sec must be between 0 and %g",
                                            RULE_RETRY_DELAY_MAX);

        /* The id is taken once the image is in: with image.path this
         * handler runs twice (the file is read off the main loop). */
        k = rule_new(&r, "rule-new");
        if (k < 0)
                return k;
        k = rule_match_from_json(match, &r->match, &error);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL, "%s", strna(error));
        if (r->match.board && !board_db_find(rpc_call_get_manager(call)->boards, r->match.board))
                return rpc_call_reply_error(
                        call, RPC_ERROR_BOARD_NOT_FOUND, json_pack("{s:s}", "board", r->match.board),
                        "no board \"%s\" in the board database (flashctl boards lists them)",
                        r->match.board);
        if (rule_force_from_json(force, &r->action.force, &bad) < 0)
                return rpc_call_reply_error(
                        call, RPC_ERROR_INVALID_PARAMS, NULL,
                        "unknown check \"%s\" in force: the checks are fit, vector-table, "
                        "bootloader-region and mcu",
                        strna(bad));
        if (repeat) {
                r->action.repeat = rule_repeat_from_string(repeat);
                if (r->action.repeat < 0)
                        return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                                    "repeat is \"once\" or \"always\", not \"%s\"", repeat);
        }
        r->action.has_address = address >= 0;
        r->action.address = address >= 0 ? (uint32_t)address : 0;
        r->action.verify = verify;
        r->action.mass_erase = mass_erase;
        r->action.max_retries = (unsigned)max_retries;
        r->action.retry_delay_usec = sec_to_usec(retry_delay);
        r->enabled = enabled;
        if ((format && !(r->action.format = strdup(format))) ||
            (name && name[0] && !(r->name = strdup(name))))
                return -ENOMEM;
        if (json_is_string(json_object_get(image, "name")) &&
            !(r->action.image_name = strdup(json_string_value(json_object_get(image, "name")))))
                return -ENOMEM;

        k = rule_image_store(call, image, format, r, r->action.sha256, &r->action.size);
        if (k < 0)
                return k;
        k = rule_set_next_id(rule_service_get_set(s), &id);
        if (k < 0)
                return k;
        free(r->id);
        r->id = TAKE_PTR(id);

        job_peer_name(peer->pid, who, sizeof(who));
        r->created = now_usec(CLOCK_REALTIME);
        r->created_uid = peer->uid;
        r->created_by = strdup(who);
        if (!r->created_by)
                return -ENOMEM;

        k = rule_service_add(s, r);
        if (k < 0)
                return rpc_call_reply_error(call, RPC_ERROR_INTERNAL, NULL, "could not add the rule: %s",
                                            strerror(-k));
        return reply_rule(call, s, TAKE_PTR(r));
}

static int method_list(RpcCall *call, json_t *params)
{
        RuleService *s = service_of(call);
        RuleSet *set;
        json_t *rules;
        int k;

        if (!s)
                return reply_no_rules(call);
        k = rpc_call_unpack_params(call, params, "{!}");
        if (k < 0)
                return k;
        set = rule_service_get_set(s);
        rules = json_array();
        for (size_t i = 0; rules && i < set->n_rules; i++)
                if (json_array_append_new(rules, rule_service_rule_json(s, set->rules[i])) < 0) {
                        json_decref(rules); /* answered as an error, not as a shorter list */
                        rules = NULL;
                }
        return rpc_call_reply(call, json_pack("{s:o}", "rules", rules));
}

static int parse_rule(RpcCall *call, json_t *params, Rule **ret)
{
        RuleService *s = service_of(call);
        const char *id = NULL;
        Rule *r;
        int k;

        k = rpc_call_unpack_params(call, params, "{s:s !}", "rule", &id);
        if (k < 0)
                return k;
        r = rule_set_find(rule_service_get_set(s), id);
        if (!r)
                return rpc_call_reply_error(call, RPC_ERROR_NOT_FOUND, json_pack("{s:s}", "rule", id),
                                            "no rule \"%s\"", id);
        *ret = r;
        return 0;
}

static int method_remove(RpcCall *call, json_t *params)
{
        RuleService *s = service_of(call);
        json_t *o;
        Rule *r = NULL;
        int k;

        if (!s)
                return reply_no_rules(call);
        k = parse_rule(call, params, &r);
        if (k < 0 || !r)
                return k;
        o = rule_service_rule_json(s, r);
        k = rule_service_remove(s, r->id);
        if (k < 0) {
                json_decref(o);
                return k;
        }
        return rpc_call_reply(call, json_pack("{s:o}", "rule", o));
}

static int set_enabled(RpcCall *call, json_t *params, bool enabled)
{
        RuleService *s = service_of(call);
        Rule *r = NULL;
        int k;

        if (!s)
                return reply_no_rules(call);
        k = parse_rule(call, params, &r);
        if (k < 0 || !r)
                return k;
        k = rule_service_set_enabled(s, r, enabled);
        if (k < 0)
                return k;
        return reply_rule(call, s, r);
}

static int method_enable(RpcCall *call, json_t *params)
{
        return set_enabled(call, params, true);
}

static int method_disable(RpcCall *call, json_t *params)
{
        return set_enabled(call, params, false);
}

const RpcMethod rule_methods[] = {
        { "rule.add", method_add, RPC_METHOD_MUTATING },
        { "rule.list", method_list, RPC_METHOD_READ },
        { "rule.remove", method_remove, RPC_METHOD_MUTATING },
        { "rule.enable", method_enable, RPC_METHOD_MUTATING },
        { "rule.disable", method_disable, RPC_METHOD_MUTATING },
        {},
};

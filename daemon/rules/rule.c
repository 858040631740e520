/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "codec/image-check.h"
#include "rules/rule.h"
#include "util/utf8.h"

static const char *const rule_mode_table[_RULE_MODE_MAX] = {
        [RULE_MODE_BOOTLOADER] = "bootloader",
        [RULE_MODE_APPLICATION] = "application",
};

static const char *const rule_repeat_table[_RULE_REPEAT_MAX] = {
        [RULE_REPEAT_ONCE] = "once",
        [RULE_REPEAT_ALWAYS] = "always",
};

const char *rule_mode_to_string(RuleMode m)
{
        return m >= 0 && m < _RULE_MODE_MAX ? rule_mode_table[m] : NULL;
}

RuleMode rule_mode_from_string(const char *s)
{
        return (RuleMode)string_table_lookup(rule_mode_table, _RULE_MODE_MAX, s);
}

const char *rule_repeat_to_string(RuleRepeat r)
{
        return r >= 0 && r < _RULE_REPEAT_MAX ? rule_repeat_table[r] : NULL;
}

RuleRepeat rule_repeat_from_string(const char *s)
{
        return (RuleRepeat)string_table_lookup(rule_repeat_table, _RULE_REPEAT_MAX, s);
}

bool rule_mode_covers(RuleMode rule, DeviceMode m)
{
        switch (rule) {
        case RULE_MODE_BOOTLOADER:
                return m == DEVICE_MODE_DFU || m == DEVICE_MODE_KATAPULT || m == DEVICE_MODE_BOOTSEL;
        case RULE_MODE_APPLICATION:
                return m == DEVICE_MODE_APP;
        case _RULE_MODE_MAX:
        case _RULE_MODE_INVALID:
                break;
        }
        return false;
}

int rule_new(Rule **ret, const char *id)
{
        _cleanup_(rule_freep) Rule *r = calloc(1, sizeof(Rule));

        if (!r)
                return -ENOMEM;
        r->id = strdup(id);
        if (!r->id)
                return -ENOMEM;
        r->enabled = true;
        r->action.verify = true;
        r->action.repeat = RULE_REPEAT_ALWAYS;
        r->action.max_retries = RULE_MAX_RETRIES_DEFAULT;
        r->action.retry_delay_usec = RULE_RETRY_DELAY_DEFAULT_USEC;
        *ret = TAKE_PTR(r);
        return 0;
}

void rule_match_clear(RuleMatch *m)
{
        free(m->board);
        free(m->mcu);
        free(m->port);
        free(m->serial);
        *m = (RuleMatch){};
}

void rule_event_clear(RuleEvent *e)
{
        free(e->port);
        free(e->message);
        *e = (RuleEvent){};
}

int rule_event_set(RuleEvent *e, usec_t time, const char *port, uint64_t job, const char *message)
{
        char *p = port ? strdup(port) : NULL, *m = message ? strdup(message) : NULL;

        if ((port && !p) || (message && !m)) {
                free(p);
                free(m);
                return -ENOMEM;
        }
        rule_event_clear(e);
        e->time = time;
        e->port = p;
        e->job = job;
        e->message = m;
        return 0;
}

Rule *rule_free(Rule *r)
{
        if (!r)
                return NULL;
        free(r->id);
        free(r->name);
        rule_match_clear(&r->match);
        free(r->action.format);
        free(r->action.image_name);
        free(r->created_by);
        rule_event_clear(&r->last_fired);
        rule_event_clear(&r->last_skipped);
        rule_event_clear(&r->last_error);
        free(r->disabled_reason);
        free(r);
        return NULL;
}

/* ---- matching ---- */

void rule_device_from_entry(const InventoryEntry *e, RuleCandidate *cands, RuleDevice *d)
{
        *d = (RuleDevice){
                .port = e->port,
                .mode = e->mode,
                .board = e->board ? e->board->name : NULL,
                .mcu = e->mcu ? e->mcu : (e->variant ? e->variant->mcu : NULL),
                .candidates = cands,
                .n_candidates = e->n_candidates,
                .serial = e->serial,
                .vid = e->vid,
                .pid = e->pid,
        };
        for (size_t i = 0; i < e->n_candidates; i++)
                cands[i] = (RuleCandidate){
                        .board = e->candidates[i].board ? e->candidates[i].board->name : NULL,
                        .mcu = e->candidates[i].variant ? e->candidates[i].variant->mcu : NULL,
                };
}

static bool pattern_matches(const char *pattern, const char *value)
{
        return value && fnmatch(pattern, value, 0) == 0;
}

static bool mcu_equal(const char *a, const char *b)
{
        return a && b && strcasecmp(a, b) == 0;
}

/* Board and MCU are checked against one interpretation of the device: what
 * the inventory identified, else one candidate at a time, so "octopus-pro
 * with an F446" does not match a device that is either an Octopus Pro F429
 * or an Octopus F446. An Octopus and an Octopus Pro with the same MCU look
 * identical on USB; a rule naming either matches both (their application
 * offsets agree, and the job's safety checks still run). */
static bool board_matches(const RuleMatch *m, const RuleDevice *d)
{
        if (!m->board && !m->mcu)
                return true;
        if (d->n_candidates == 0)
                return (!m->board || streq_ptr(d->board, m->board)) &&
                       (!m->mcu || mcu_equal(d->mcu, m->mcu));
        for (size_t i = 0; i < d->n_candidates; i++) {
                const char *board = d->board ? d->board : d->candidates[i].board;
                const char *mcu = d->mcu ? d->mcu : d->candidates[i].mcu;
                if ((!m->board || streq_ptr(board, m->board)) && (!m->mcu || mcu_equal(mcu, m->mcu)))
                        return true;
        }
        return false;
}

bool rule_match_device(const RuleMatch *m, const RuleDevice *d)
{
        if (!rule_mode_covers(m->mode, d->mode))
                return false;
        if (m->port && !pattern_matches(m->port, d->port))
                return false;
        if (m->serial && !pattern_matches(m->serial, d->serial))
                return false;
        if (m->has_usb_id && (d->vid != m->vid || d->pid != m->pid))
                return false;
        return board_matches(m, d);
}

/* ---- JSON ---- */

static int parse_usb_id(const char *s, uint16_t *ret_vid, uint16_t *ret_pid)
{
        unsigned v[2] = {};

        if (!s || strlen(s) != 9 || s[4] != ':')
                return -EINVAL;
        for (size_t i = 0; i < 9; i++) {
                int x;
                if (i == 4)
                        continue;
                if (s[i] >= '0' && s[i] <= '9')
                        x = s[i] - '0';
                else if (s[i] >= 'a' && s[i] <= 'f')
                        x = s[i] - 'a' + 10;
                else if (s[i] >= 'A' && s[i] <= 'F')
                        x = s[i] - 'A' + 10;
                else
                        return -EINVAL;
                v[i > 4] = v[i > 4] << 4 | (unsigned)x;
        }
        *ret_vid = (uint16_t)v[0];
        *ret_pid = (uint16_t)v[1];
        return 0;
}

static int dup_nonempty(const char *s, char **ret)
{
        if (!s || !s[0]) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int match_error(char **ret_error, const char *format, ...) _printf_(2, 3);
static int match_error(char **ret_error, const char *format, ...)
{
        va_list ap;

        if (ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return -EINVAL;
}

int rule_match_from_json(json_t *o, RuleMatch *ret, char **ret_error)
{
        static const char *const keys[] = { "board", "mcu", "port", "mode", "usb_serial", "usb_id" };
        const char *key;
        json_t *v;
        RuleMatch m = { .mode = RULE_MODE_BOOTLOADER };
        int r = 0;

        if (!json_is_object(o))
                return match_error(ret_error, "%s", "match must be an object");
        json_object_foreach (o, key, v) {
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        known = known || streq(key, keys[i]);
                if (!known)
                        return match_error(ret_error,
                                           "unknown key \"%s\" in match: the criteria are board, mcu, port, "
                                           "mode, usb_serial and usb_id",
                                           key);
                if (!json_is_null(v) && !json_is_string(v))
                        return match_error(ret_error, "match.%s must be a string", key);
        }

        const char *board = json_string_value(json_object_get(o, "board"));
        const char *mcu = json_string_value(json_object_get(o, "mcu"));
        const char *port = json_string_value(json_object_get(o, "port"));
        const char *mode = json_string_value(json_object_get(o, "mode"));
        const char *serial = json_string_value(json_object_get(o, "usb_serial"));
        const char *usb_id = json_string_value(json_object_get(o, "usb_id"));

        if (mode) {
                m.mode = rule_mode_from_string(mode);
                if (m.mode < 0)
                        return match_error(ret_error,
                                           "unknown mode \"%s\": a rule matches boards in \"bootloader\" or "
                                           "\"application\" mode",
                                           mode);
        }
        if (usb_id) {
                if (parse_usb_id(usb_id, &m.vid, &m.pid) < 0)
                        return match_error(ret_error, "usb_id \"%s\" is not VID:PID (e.g. 0483:df11)",
                                           usb_id);
                m.has_usb_id = true;
        }
        if (!(board && board[0]) && !(mcu && mcu[0]) && !(port && port[0]) && !(serial && serial[0]) &&
            !usb_id)
                return match_error(ret_error, "%s",
                                   "a rule needs at least one of board, mcu, port, usb_serial or usb_id: "
                                   "without one it would flash every board that shows up");

        if (r >= 0)
                r = dup_nonempty(board, &m.board);
        if (r >= 0)
                r = dup_nonempty(mcu, &m.mcu);
        if (r >= 0)
                r = dup_nonempty(port, &m.port);
        if (r >= 0)
                r = dup_nonempty(serial, &m.serial);
        if (r < 0) {
                rule_match_clear(&m);
                return r;
        }
        *ret = m;
        return 0;
}

json_t *rule_match_to_json(const RuleMatch *m)
{
        char usb_id[10];

        snprintf(usb_id, sizeof(usb_id), "%04x:%04x", m->vid, m->pid);
        return json_pack("{s:s?, s:s?, s:s?, s:s, s:s?, s:s?}", "board", m->board, "mcu", m->mcu, "port",
                         m->port, "mode", rule_mode_to_string(m->mode), "usb_serial", m->serial, "usb_id",
                         m->has_usb_id ? usb_id : NULL);
}

json_t *rule_force_to_json(unsigned force)
{
        json_t *a = json_array();

        for (int c = 0; a && c < _IMAGE_CHECK_MAX; c++)
                if (force & (1u << c))
                        json_array_append_new(a, json_string(image_check_to_string((ImageCheck)c)));
        return a;
}

int rule_force_from_json(json_t *a, unsigned *ret, const char **ret_bad)
{
        unsigned force = 0;
        size_t i;
        json_t *v;

        if (!a || json_is_null(a)) {
                *ret = 0;
                return 0;
        }
        if (!json_is_array(a)) {
                if (ret_bad)
                        *ret_bad = NULL;
                return -EINVAL;
        }
        json_array_foreach (a, i, v) {
                ImageCheck c = image_check_from_string(json_string_value(v));
                if (c < 0) {
                        if (ret_bad)
                                *ret_bad = json_string_value(v);
                        return -EINVAL;
                }
                force |= 1u << c;
        }
        *ret = force;
        return 0;
}

static json_t *event_to_json(const RuleEvent *e)
{
        if (e->time == 0)
                return json_null();
        return json_pack("{s:f, s:o, s:o, s:o}", "time", usec_to_sec(e->time), "port",
                         json_string_sanitized(e->port), "job",
                         e->job ? json_integer((json_int_t)e->job) : json_null(), "message",
                         json_string_sanitized(e->message));
}

static int event_from_json(json_t *o, RuleEvent *e)
{
        json_t *job;

        if (!o || json_is_null(o))
                return 0;
        if (!json_is_object(o))
                return -EBADMSG;
        job = json_object_get(o, "job");
        return rule_event_set(
                e, sec_to_usec(json_number_value(json_object_get(o, "time"))),
                json_string_value(json_object_get(o, "port")),
                json_is_integer(job) && json_integer_value(job) > 0 ? (uint64_t)json_integer_value(job) : 0,
                json_string_value(json_object_get(o, "message")));
}

json_t *rule_to_json(const Rule *r)
{
        const RuleAction *a = &r->action;

        return json_pack(
                "{s:s, s:o, s:b, s:o, s:{s:s, s:I, s:s?, s:o}, s:o, s:b, s:b, s:o, s:s, s:i, s:f, "
                "s:f, s:{s:I, s:o}, s:i, s:i, s:i, s:i, s:o, s:o, s:o, s:o}",
                "id", r->id, "name", json_string_sanitized(r->name), "enabled", r->enabled, "match",
                rule_match_to_json(&r->match), "image", "sha256", a->sha256, "size", (json_int_t)a->size,
                "format", a->format, "name", json_string_sanitized(a->image_name), "address",
                a->has_address ? json_integer(a->address) : json_null(), "verify", a->verify, "mass_erase",
                a->mass_erase, "force", rule_force_to_json(a->force), "repeat",
                rule_repeat_to_string(a->repeat), "max_retries", (int)a->max_retries, "retry_delay_sec",
                usec_to_sec(a->retry_delay_usec), "created", usec_to_sec(r->created), "created_by", "uid",
                (json_int_t)r->created_uid, "name", json_string_sanitized(r->created_by), "fired",
                (int)r->n_fired, "flashed", (int)r->n_flashed, "failed", (int)r->n_failed, "skipped",
                (int)r->n_skipped, "last_fired", event_to_json(&r->last_fired), "last_skipped",
                event_to_json(&r->last_skipped), "last_error", event_to_json(&r->last_error),
                "disabled_reason", json_string_sanitized(r->disabled_reason));
}

json_t *rule_to_state_json(const Rule *r)
{
        /* The API object carries everything a rule needs to come back. */
        return rule_to_json(r);
}

static bool is_sha256_hex(const char *s)
{
        if (!s || strlen(s) != 64)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

static unsigned uint_field(json_t *o, const char *key, unsigned fallback)
{
        json_t *v = json_object_get(o, key);
        return json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= UINT32_MAX
                       ? (unsigned)json_integer_value(v)
                       : fallback;
}

int rule_from_state_json(json_t *o, Rule **ret)
{
        _cleanup_(rule_freep) Rule *r = NULL;
        json_t *image, *address, *by, *v;
        const char *id, *sha, *repeat;
        int k;

        if (!json_is_object(o))
                return -EBADMSG;
        id = json_string_value(json_object_get(o, "id"));
        image = json_object_get(o, "image");
        sha = json_string_value(json_object_get(image, "sha256"));
        if (!id || !id[0] || !is_sha256_hex(sha))
                return -EBADMSG;
        k = rule_new(&r, id);
        if (k < 0)
                return k;
        if (dup_nonempty(json_string_value(json_object_get(o, "name")), &r->name) < 0)
                return -ENOMEM;
        r->enabled = json_is_true(json_object_get(o, "enabled"));
        k = rule_match_from_json(json_object_get(o, "match"), &r->match, NULL);
        if (k < 0)
                return k == -ENOMEM ? k : -EBADMSG;

        memcpy(r->action.sha256, sha, 65);
        v = json_object_get(image, "size");
        r->action.size =
                json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
        if (dup_nonempty(json_string_value(json_object_get(image, "format")), &r->action.format) < 0 ||
            dup_nonempty(json_string_value(json_object_get(image, "name")), &r->action.image_name) < 0)
                return -ENOMEM;
        address = json_object_get(o, "address");
        if (json_is_integer(address)) {
                if (json_integer_value(address) < 0 || json_integer_value(address) > UINT32_MAX)
                        return -EBADMSG;
                r->action.address = (uint32_t)json_integer_value(address);
                r->action.has_address = true;
        }
        r->action.verify = !json_is_false(json_object_get(o, "verify"));
        r->action.mass_erase = json_is_true(json_object_get(o, "mass_erase"));
        if (rule_force_from_json(json_object_get(o, "force"), &r->action.force, NULL) < 0)
                return -EBADMSG;
        repeat = json_string_value(json_object_get(o, "repeat"));
        if (repeat) {
                r->action.repeat = rule_repeat_from_string(repeat);
                if (r->action.repeat < 0)
                        return -EBADMSG;
        }
        r->action.max_retries =
                MIN(uint_field(o, "max_retries", RULE_MAX_RETRIES_DEFAULT), RULE_MAX_RETRIES_MAX);
        v = json_object_get(o, "retry_delay_sec");
        if (json_is_number(v) && json_number_value(v) >= 0)
                r->action.retry_delay_usec = sec_to_usec(MIN(json_number_value(v), RULE_RETRY_DELAY_MAX));

        r->created = sec_to_usec(json_number_value(json_object_get(o, "created")));
        by = json_object_get(o, "created_by");
        r->created_uid = (uid_t)uint_field(by, "uid", 0);
        if (dup_nonempty(json_string_value(json_object_get(by, "name")), &r->created_by) < 0)
                return -ENOMEM;

        r->n_fired = uint_field(o, "fired", 0);
        r->n_flashed = uint_field(o, "flashed", 0);
        r->n_failed = uint_field(o, "failed", 0);
        r->n_skipped = uint_field(o, "skipped", 0);
        if (event_from_json(json_object_get(o, "last_fired"), &r->last_fired) < 0 ||
            event_from_json(json_object_get(o, "last_skipped"), &r->last_skipped) < 0 ||
            event_from_json(json_object_get(o, "last_error"), &r->last_error) < 0)
                return -EBADMSG;
        if (dup_nonempty(json_string_value(json_object_get(o, "disabled_reason")), &r->disabled_reason) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(r);
        return 0;
}

usec_t rule_retry_delay(const Rule *r, unsigned attempt)
{
        usec_t d = r->action.retry_delay_usec;

        for (unsigned i = 1; i < attempt && d < RULE_RETRY_DELAY_MAX_USEC; i++)
                d *= 2;
        return MIN(d, RULE_RETRY_DELAY_MAX_USEC);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>

#include "rules/rule-store.h"
#include "util/json-file.h"

int rule_set_new(RuleSet **ret)
{
        RuleSet *s = calloc(1, sizeof(RuleSet));

        if (!s)
                return -ENOMEM;
        s->next_id = 1;
        *ret = s;
        return 0;
}

static void strv_free(char **l)
{
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
}

static size_t strv_length(char *const *l)
{
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

static bool strv_contains(char *const *l, const char *s)
{
        for (char *const *p = l; s && p && *p; p++)
                if (streq(*p, s))
                        return true;
        return false;
}

static void board_image_clear(BoardImage *b)
{
        free(b->port);
        strv_free(b->serials);
        free(b->source);
        *b = (BoardImage){};
}

RuleSet *rule_set_free(RuleSet *s)
{
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_rules; i++)
                rule_free(s->rules[i]);
        free(s->rules);
        for (size_t i = 0; i < s->n_boards; i++)
                board_image_clear(&s->boards[i]);
        free(s->boards);
        free(s);
        return NULL;
}

/* ---- rules ---- */

int rule_set_next_id(RuleSet *s, char **ret)
{
        for (;; s->next_id++) {
                char id[32];
                snprintf(id, sizeof(id), "rule-%" PRIu64, s->next_id);
                if (rule_set_find(s, id))
                        continue;
                s->next_id++;
                *ret = strdup(id);
                return *ret ? 0 : -ENOMEM;
        }
}

int rule_set_add(RuleSet *s, Rule *r)
{
        Rule **p;

        if (rule_set_find(s, r->id))
                return -EEXIST;
        p = realloc(s->rules, (s->n_rules + 1) * sizeof(Rule *));
        if (!p)
                return -ENOMEM;
        s->rules = p;
        s->rules[s->n_rules++] = r;
        return 0;
}

Rule *rule_set_find(const RuleSet *s, const char *id)
{
        for (size_t i = 0; id && i < s->n_rules; i++)
                if (streq(s->rules[i]->id, id))
                        return s->rules[i];
        return NULL;
}

Rule *rule_set_take(RuleSet *s, const char *id)
{
        for (size_t i = 0; id && i < s->n_rules; i++)
                if (streq(s->rules[i]->id, id)) {
                        Rule *r = s->rules[i];
                        memmove(s->rules + i, s->rules + i + 1, (s->n_rules - i - 1) * sizeof(Rule *));
                        s->n_rules--;
                        return r;
                }
        return NULL;
}

size_t rule_set_image_users(const RuleSet *s, const char *sha256)
{
        size_t n = 0;

        for (size_t i = 0; i < s->n_rules; i++)
                n += streq(s->rules[i]->action.sha256, sha256);
        return n;
}

/* ---- boards ---- */

/* The same board: same port, and a serial in common (a side without any
 * serial cannot tell, so the port decides). */
static bool board_is(const BoardImage *b, const char *port, char *const *serials)
{
        if (!streq_ptr(b->port, port))
                return false;
        if (strv_length(b->serials) == 0 || strv_length(serials) == 0)
                return true;
        for (char *const *p = serials; *p; p++)
                if (strv_contains(b->serials, *p))
                        return true;
        return false;
}

const BoardImage *rule_set_board_image(const RuleSet *s, const char *port, const char *serial)
{
        char *one[2] = { (char *)serial, NULL };

        /* newest first: the last flash is what the board holds */
        for (size_t i = s->n_boards; i > 0; i--)
                if (board_is(&s->boards[i - 1], port, one))
                        return &s->boards[i - 1];
        return NULL;
}

bool rule_set_forget(RuleSet *s, const char *port, char *const *serials)
{
        bool any = false;

        for (size_t i = 0; i < s->n_boards;) {
                if (!board_is(&s->boards[i], port, serials)) {
                        i++;
                        continue;
                }
                board_image_clear(&s->boards[i]);
                memmove(s->boards + i, s->boards + i + 1, (s->n_boards - i - 1) * sizeof(BoardImage));
                s->n_boards--;
                any = true;
        }
        return any;
}

static int strv_copy(char *const *l, char ***ret)
{
        size_t n = strv_length(l), k = 0;
        char **c = calloc(n + 1, sizeof(char *));

        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (strv_contains(c, l[i]) || !l[i][0])
                        continue;
                c[k] = strdup(l[i]);
                if (!c[k]) {
                        strv_free(c);
                        return -ENOMEM;
                }
                k++;
        }
        *ret = c;
        return 0;
}

int rule_set_remember(RuleSet *s, const char *port, char *const *serials, const char *sha256, usec_t time,
                      uint64_t job, const char *source)
{
        BoardImage b = { .time = time, .job = job };
        BoardImage *p;

        if (!port || !sha256 || strlen(sha256) != 64)
                return -EINVAL;
        b.port = strdup(port);
        b.source = source ? strdup(source) : NULL;
        if (!b.port || (source && !b.source) || strv_copy(serials, &b.serials) < 0) {
                board_image_clear(&b);
                return -ENOMEM;
        }
        memcpy(b.sha256, sha256, 65);

        (void)rule_set_forget(s, port, serials);
        if (s->n_boards >= RULE_SET_BOARDS_MAX) {
                board_image_clear(&s->boards[0]);
                memmove(s->boards, s->boards + 1, (s->n_boards - 1) * sizeof(BoardImage));
                s->n_boards--;
        }
        p = realloc(s->boards, (s->n_boards + 1) * sizeof(BoardImage));
        if (!p) {
                board_image_clear(&b);
                return -ENOMEM;
        }
        s->boards = p;
        s->boards[s->n_boards++] = b;
        return 0;
}

/* ---- persistence ---- */

static json_t *board_image_to_json(const BoardImage *b)
{
        json_t *serials = json_array();

        for (char **p = b->serials; serials && p && *p; p++)
                json_array_append_new(serials, json_string(*p));
        return json_pack("{s:s, s:o, s:s, s:f, s:I, s:s?}", "port", b->port, "serials", serials, "sha256",
                         b->sha256, "time", usec_to_sec(b->time), "job", (json_int_t)b->job, "source",
                         b->source);
}

static int board_image_from_json(RuleSet *s, json_t *o)
{
        json_t *serials = json_object_get(o, "serials"), *v;
        const char *port = json_string_value(json_object_get(o, "port"));
        const char *sha = json_string_value(json_object_get(o, "sha256"));
        json_t *job = json_object_get(o, "job");
        _cleanup_free_ char **l = NULL;
        size_t i, n = 0;

        if (!port || !sha || strlen(sha) != 64 || (serials && !json_is_array(serials)))
                return -EBADMSG;
        l = calloc(json_array_size(serials) + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        json_array_foreach (serials, i, v)
                if (json_is_string(v))
                        l[n++] = (char *)json_string_value(v);
        return rule_set_remember(
                s, port, l, sha, sec_to_usec(json_number_value(json_object_get(o, "time"))),
                json_is_integer(job) && json_integer_value(job) > 0 ? (uint64_t)json_integer_value(job) : 0,
                json_string_value(json_object_get(o, "source")));
}

static json_t *json_decref_null(json_t *j)
{
        json_decref(j);
        return NULL;
}

int rule_set_save(const RuleSet *s, const char *path)
{
        json_t *rules = json_array(), *boards = json_array(), *root;
        int r;

        /* A rule or board that cannot become JSON fails the save: never
         * write a file that silently lacks it. */
        for (size_t i = 0; rules && i < s->n_rules; i++)
                if (json_array_append_new(rules, rule_to_state_json(s->rules[i])) < 0)
                        rules = json_decref_null(rules);
        for (size_t i = 0; boards && i < s->n_boards; i++)
                if (json_array_append_new(boards, board_image_to_json(&s->boards[i])) < 0)
                        boards = json_decref_null(boards);
        if (!rules || !boards) {
                json_decref(rules);
                json_decref(boards);
                return -ENOMEM;
        }
        root = json_pack("{s:i, s:I, s:o, s:o}", "version", 1, "next_id", (json_int_t)s->next_id, "rules",
                         rules, "boards", boards);
        if (!root)
                return -ENOMEM;
        r = json_file_write_atomic(path, root, 0600);
        json_decref(root);
        return r;
}

int rule_set_load(RuleSet **ret, const char *path, size_t *ret_skipped, char **ret_error)
{
        _cleanup_(rule_set_freep) RuleSet *s = NULL;
        json_auto_t *root = NULL;
        json_t *rules, *boards, *o, *next;
        size_t i, skipped = 0;
        int r;

        r = rule_set_new(&s);
        if (r < 0)
                return r;
        r = json_file_read(path, &root, ret_error);
        if (r == -ENOENT) {
                if (ret_skipped)
                        *ret_skipped = 0;
                *ret = TAKE_PTR(s);
                return 0;
        }
        if (r < 0)
                return r;
        rules = json_object_get(root, "rules");
        boards = json_object_get(root, "boards");
        if (!json_is_object(root) || (rules && !json_is_array(rules)) ||
            (boards && !json_is_array(boards))) {
                if (ret_error)
                        (void)asprintf(ret_error, "%s: not a rules file (an object with rules and boards)",
                                       path);
                return -EBADMSG;
        }
        json_array_foreach (rules, i, o) {
                Rule *rule = NULL;
                r = rule_from_state_json(o, &rule);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || rule_set_add(s, rule) < 0) {
                        rule_free(rule);
                        skipped++;
                }
        }
        json_array_foreach (boards, i, o) {
                r = board_image_from_json(s, o);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        skipped++;
        }
        next = json_object_get(root, "next_id");
        if (json_is_integer(next) && json_integer_value(next) > 0)
                s->next_id = (uint64_t)json_integer_value(next);
        if (ret_skipped)
                *ret_skipped = skipped;
        *ret = TAKE_PTR(s);
        return 0;
}

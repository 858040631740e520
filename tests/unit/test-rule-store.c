/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Rules: persistence in rules.json (round trip, broken files) and the board
 * records that keep a rule from flashing a board that holds its image. */
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rules/rule-store.h"
#include "tests.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char tmpdir[] = "/tmp/test-rule-store-XXXXXX";

static char *path_in_tmp(const char *name)
{
        char *p = NULL;
        CHECK(asprintf(&p, "%s/%s", tmpdir, name) > 0);
        return p;
}

static void write_file(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
        close(fd);
}

static Rule *make_rule(RuleSet *s, const char *board, RuleMode mode, const char *sha)
{
        _cleanup_free_ char *id = NULL;
        Rule *r = NULL;

        CHECK_INT(rule_set_next_id(s, &id), 0);
        CHECK_INT(rule_new(&r, id), 0);
        r->match.board = strdup(board);
        r->match.mode = mode;
        memcpy(r->action.sha256, sha, 65);
        r->action.size = 1234;
        return r;
}

static void test_round_trip(void)
{
        _cleanup_free_ char *path = path_in_tmp("rules.json");
        _cleanup_(rule_set_freep) RuleSet *s = NULL, *back = NULL;
        Rule *r1, *r2, *r;
        size_t skipped = 99;
        char *serials[] = { "356234553133", "001C00305130323230303030", NULL };

        CHECK_INT(rule_set_new(&s), 0);
        r1 = make_rule(s, "octopus-pro", RULE_MODE_BOOTLOADER, SHA_A);
        r2 = make_rule(s, "skr-3", RULE_MODE_APPLICATION, SHA_B);
        CHECK_STR(r1->id, "rule-1");
        CHECK_STR(r2->id, "rule-2");
        r2->enabled = false;
        r2->name = strdup("bench");
        r2->match.port = strdup("1-1.*");
        r2->match.serial = strdup("35*");
        r2->match.has_usb_id = true;
        r2->match.vid = 0x1d50;
        r2->match.pid = 0x614e;
        r2->action.format = strdup("bin");
        r2->action.image_name = strdup("klipper.bin");
        r2->action.has_address = true;
        r2->action.address = 0x08008000;
        r2->action.verify = false;
        r2->action.mass_erase = true;
        r2->action.force = 1u << 3;
        r2->action.repeat = RULE_REPEAT_ONCE;
        r2->action.max_retries = 5;
        r2->action.retry_delay_usec = sec_to_usec(0.25);
        r2->created = sec_to_usec(1763950000.5);
        r2->created_uid = 1000;
        r2->created_by = strdup("flashctl");
        r2->n_fired = 4;
        r2->n_flashed = 2;
        r2->n_failed = 1;
        r2->n_skipped = 3;
        CHECK_INT(rule_event_set(&r2->last_fired, sec_to_usec(1763950001.0), "1-1.3", 7, NULL), 0);
        CHECK_INT(rule_event_set(&r2->last_skipped, sec_to_usec(1763950002.0), "1-1.4", 6,
                                 "the board already holds it"),
                  0);
        CHECK_INT(rule_event_set(&r2->last_error, sec_to_usec(1763950003.0), "1-1.5", 8, "device-gone"), 0);
        r2->disabled_reason = strdup("once: flashed the board on 1-1.3 (job 7)");
        CHECK_INT(rule_set_add(s, r1), 0);
        CHECK_INT(rule_set_add(s, r2), 0);
        CHECK_INT(rule_set_remember(s, "1-1.3", serials, SHA_A, sec_to_usec(1763950001.0), 7, "rule-1"), 0);
        CHECK_INT(rule_set_remember(s, "1-1.4", NULL, SHA_B, sec_to_usec(1763950002.0), 9, "manual"), 0);
        CHECK_INT(rule_set_save(s, path), 0);

        struct stat st;
        CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

        CHECK_INT(rule_set_load(&back, path, &skipped, NULL), 0);
        CHECK_INT(skipped, 0);
        CHECK_INT(back->n_rules, 2);
        CHECK_INT(back->n_boards, 2);
        CHECK_INT(back->next_id, 3);

        /* every field of both rules survives: compare the API objects */
        for (size_t i = 0; i < 2; i++) {
                json_auto_t *a = rule_to_json(s->rules[i]);
                json_auto_t *b = rule_to_json(back->rules[i]);
                if (!json_equal(a, b)) {
                        _cleanup_free_ char *ta = json_dumps(a, JSON_SORT_KEYS);
                        _cleanup_free_ char *tb = json_dumps(b, JSON_SORT_KEYS);
                        fprintf(stderr, "rule %zu differs:\n%s\n%s\n", i, ta, tb);
                        tests_failed++;
                }
        }
        r = rule_set_find(back, "rule-2");
        CHECK(r && !r->enabled && r->action.repeat == RULE_REPEAT_ONCE && r->action.address == 0x08008000);

        /* the board records too */
        const BoardImage *b = rule_set_board_image(back, "1-1.3", "001C00305130323230303030");
        CHECK(b && streq(b->sha256, SHA_A) && b->job == 7 && streq_ptr(b->source, "rule-1"));
        CHECK(rule_set_board_image(back, "1-1.4", "whatever") != NULL); /* recorded without serials */

        /* ids are not reused after a removal and a reload */
        Rule *gone = rule_set_take(back, "rule-2");
        CHECK(gone != NULL);
        rule_free(gone);
        CHECK(rule_set_find(back, "rule-2") == NULL);
        CHECK(rule_set_take(back, "rule-2") == NULL);
        _cleanup_free_ char *id = NULL;
        CHECK_INT(rule_set_next_id(back, &id), 0);
        CHECK_STR(id, "rule-3");
}

static void test_board_records(void)
{
        _cleanup_(rule_set_freep) RuleSet *s = NULL;
        char *board1[] = { "DFU-1", "APP-1", NULL };
        char *board2[] = { "DFU-2", "APP-2", NULL };
        char *only_dfu1[] = { "DFU-1", NULL };

        CHECK_INT(rule_set_new(&s), 0);
        CHECK(rule_set_board_image(s, "1-1.1", "DFU-1") == NULL);

        CHECK_INT(rule_set_remember(s, "1-1.1", board1, SHA_A, 1, 1, "rule-1"), 0);
        static const struct {
                const char *port, *serial;
                const char *sha; /* NULL: nothing known */
        } lookups[] = {
                { "1-1.1", "DFU-1", SHA_A }, /* the bootloader's serial */
                { "1-1.1", "APP-1", SHA_A }, /* the application's */
                { "1-1.1", NULL, SHA_A },    /* no serial: the port decides */
                { "1-1.1", "DFU-2", NULL },  /* another board on the same port */
                { "1-1.2", "DFU-1", NULL },  /* the same board moved: another identity */
        };
        for (size_t i = 0; i < ELEMENTSOF(lookups); i++) {
                const BoardImage *b = rule_set_board_image(s, lookups[i].port, lookups[i].serial);
                if (!streq_ptr(b ? b->sha256 : NULL, lookups[i].sha)) {
                        fprintf(stderr, "lookup %zu: got %s\n", i, b ? b->sha256 : "nothing");
                        tests_failed++;
                }
        }

        /* a bench: boards one after another on one port are told apart */
        CHECK_INT(rule_set_remember(s, "1-1.1", board2, SHA_B, 2, 2, "rule-1"), 0);
        CHECK_INT(s->n_boards, 2);
        CHECK_STR(rule_set_board_image(s, "1-1.1", "APP-1")->sha256, SHA_A);
        CHECK_STR(rule_set_board_image(s, "1-1.1", "APP-2")->sha256, SHA_B);

        /* reflashing a board replaces its record */
        CHECK_INT(rule_set_remember(s, "1-1.1", only_dfu1, SHA_B, 3, 3, "manual"), 0);
        CHECK_INT(s->n_boards, 2);
        CHECK_STR(rule_set_board_image(s, "1-1.1", "DFU-1")->sha256, SHA_B);

        /* a flash that failed midway: nothing is known about board 2 any more */
        CHECK(rule_set_forget(s, "1-1.1", board2));
        CHECK(rule_set_board_image(s, "1-1.1", "APP-2") == NULL);
        CHECK(!rule_set_forget(s, "1-1.1", board2));
        CHECK(rule_set_board_image(s, "1-1.1", "DFU-1") != NULL);

        /* bounded: the oldest go first */
        for (unsigned i = 0; i < RULE_SET_BOARDS_MAX + 10; i++) {
                char port[32];
                snprintf(port, sizeof(port), "3-%u", i);
                CHECK_INT(rule_set_remember(s, port, NULL, SHA_A, i, i, NULL), 0);
        }
        CHECK_INT(s->n_boards, RULE_SET_BOARDS_MAX);
        CHECK(rule_set_board_image(s, "3-0", NULL) == NULL);
        CHECK(rule_set_board_image(s, "3-265", NULL) != NULL);

        CHECK_INT(rule_set_remember(s, "1-1.1", NULL, "short", 1, 1, NULL), -EINVAL);
}

static void test_files(void)
{
        static const struct {
                const char *name;
                const char *text; /* NULL: no file */
                int expected;
                size_t rules, boards, skipped;
        } cases[] = {
                { "missing.json", NULL, 0, 0, 0, 0 },
                { "empty-object.json", "{}", 0, 0, 0, 0 },
                { "not-json.json", "{\"rules\": [", -EBADMSG, 0, 0, 0 },
                { "array.json", "[]", -EBADMSG, 0, 0, 0 },
                { "rules-not-array.json", "{\"rules\": 3}", -EBADMSG, 0, 0, 0 },
                /* one good rule, one without image, one with a bad match; a good and a bad board */
                { "partly.json",
                  "{\"version\": 1, \"next_id\": 9, \"rules\": ["
                  "{\"id\": \"rule-4\", \"enabled\": true, \"match\": {\"board\": \"octopus-pro\"}, "
                  "\"image\": {\"sha256\": \"" SHA_A "\"}},"
                  "{\"id\": \"rule-5\", \"match\": {\"board\": \"x\"}, \"image\": {}},"
                  "{\"id\": \"rule-6\", \"match\": {\"mode\": \"sideways\", \"board\": \"x\"}, "
                  "\"image\": {\"sha256\": \"" SHA_B "\"}}],"
                  "\"boards\": [{\"port\": \"1-1.3\", \"serials\": [\"A\"], \"sha256\": \"" SHA_A "\"},"
                  "{\"port\": \"1-1.4\"}]}",
                  0, 1, 1, 3 },
                /* two rules with one id: the second is skipped */
                { "dup.json",
                  "{\"rules\": ["
                  "{\"id\": \"rule-1\", \"match\": {\"port\": \"1-1\"}, \"image\": {\"sha256\": \"" SHA_A
                  "\"}},"
                  "{\"id\": \"rule-1\", \"match\": {\"port\": \"1-2\"}, \"image\": {\"sha256\": \"" SHA_A
                  "\"}}]}",
                  0, 1, 0, 1 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *path = path_in_tmp(cases[i].name);
                _cleanup_(rule_set_freep) RuleSet *s = NULL;
                _cleanup_free_ char *error = NULL;
                size_t skipped = 0;
                int r;

                if (cases[i].text)
                        write_file(path, cases[i].text);
                r = rule_set_load(&s, path, &skipped, &error);
                CHECK_INT(r, cases[i].expected);
                if (r < 0) {
                        CHECK(error != NULL);
                        continue;
                }
                CHECK_INT(s->n_rules, cases[i].rules);
                CHECK_INT(s->n_boards, cases[i].boards);
                CHECK_INT(skipped, cases[i].skipped);
        }

        /* next_id from the file, and a loaded rule has the defaults of rule.add */
        _cleanup_free_ char *path = path_in_tmp("partly.json");
        _cleanup_(rule_set_freep) RuleSet *s = NULL;
        _cleanup_free_ char *id = NULL;
        CHECK_INT(rule_set_load(&s, path, NULL, NULL), 0);
        CHECK_INT(rule_set_next_id(s, &id), 0);
        CHECK_STR(id, "rule-9");
        Rule *r = rule_set_find(s, "rule-4");
        CHECK(r && r->action.verify && r->action.repeat == RULE_REPEAT_ALWAYS &&
              r->action.max_retries == RULE_MAX_RETRIES_DEFAULT && r->match.mode == RULE_MODE_BOOTLOADER);
        CHECK_INT(rule_set_image_users(s, SHA_A), 1);
        CHECK_INT(rule_set_image_users(s, SHA_B), 0);
}

int main(void)
{
        CHECK(mkdtemp(tmpdir) != NULL);
        test_round_trip();
        test_board_records();
        test_files();
        _cleanup_free_ char *cmd = NULL;
        if (asprintf(&cmd, "rm -rf '%s'", tmpdir) > 0)
                (void)!system(cmd);
        TESTS_EXIT();
}

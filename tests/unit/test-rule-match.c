/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Rules: which boards a rule matches, and which match objects rule.add accepts. */
#include <jansson.h>

#include "codec/image-check.h"
#include "rules/rule.h"
#include "tests.h"

/* An Octopus Pro F446 in ROM DFU: identified. */
static const RuleCandidate octopus_pro_f446[] = { { "octopus-pro", "stm32f446xx" } };
/* An F429 in ROM DFU: an Octopus or an Octopus Pro, USB cannot tell. */
static const RuleCandidate f429_either[] = { { "octopus", "stm32f429xx" },
                                             { "octopus-pro", "stm32f429xx" } };
/* An F446 that could be an Octopus Pro F446 or an Octopus F446; and a
 * device whose candidates disagree on the MCU. */
static const RuleCandidate mixed[] = { { "octopus", "stm32f446xx" }, { "octopus-pro", "stm32f429xx" } };

static const RuleDevice dfu_f446 = { .port = "1-1.3",
                                     .mode = DEVICE_MODE_DFU,
                                     .board = "octopus-pro",
                                     .mcu = "stm32f446xx",
                                     .candidates = octopus_pro_f446,
                                     .n_candidates = 1,
                                     .serial = "356234553133",
                                     .vid = 0x0483,
                                     .pid = 0xdf11 };
static const RuleDevice dfu_f429 = { .port = "1-1.4",
                                     .mode = DEVICE_MODE_DFU,
                                     .mcu = "stm32f429xx",
                                     .candidates = f429_either,
                                     .n_candidates = 2,
                                     .serial = "3762355B3231",
                                     .vid = 0x0483,
                                     .pid = 0xdf11 };
static const RuleDevice app_f446 = { .port = "1-1.3",
                                     .mode = DEVICE_MODE_APP,
                                     .board = "octopus-pro",
                                     .mcu = "stm32f446xx",
                                     .candidates = octopus_pro_f446,
                                     .n_candidates = 1,
                                     .serial = "001C00305130323230303030",
                                     .vid = 0x1d50,
                                     .pid = 0x614e };
static const RuleDevice katapult = { .port = "2-1",
                                     .mode = DEVICE_MODE_KATAPULT,
                                     .mcu = "stm32g0b1xx",
                                     .serial = "ABCD",
                                     .vid = 0x1d50,
                                     .pid = 0x6177 };
static const RuleDevice serial_dev = {
        .port = "1-1.3", .mode = DEVICE_MODE_SERIAL, .board = "octopus-pro", .serial = "X"
};
static const RuleDevice mixed_dev = {
        .port = "1-2", .mode = DEVICE_MODE_DFU, .candidates = mixed, .n_candidates = 2
};
static const RuleDevice no_serial = { .port = "1-1.3", .mode = DEVICE_MODE_DFU, .board = "octopus-pro" };

#define BL  RULE_MODE_BOOTLOADER
#define APP RULE_MODE_APPLICATION

static void test_match_table(void)
{
        static const struct {
                RuleMatch m;
                const RuleDevice *d;
                bool expected;
        } cases[] = {
                /* board name */
                { { .board = "octopus-pro", .mode = BL }, &dfu_f446, true },
                { { .board = "octopus", .mode = BL }, &dfu_f446, false },
                { { .board = "octopus-pro", .mode = BL }, &dfu_f429, true }, /* a candidate */
                { { .board = "octopus", .mode = BL }, &dfu_f429, true },
                { { .board = "skr-3", .mode = BL }, &dfu_f429, false },
                /* mode: a rule for the bootloader never fires on a running board; an
                 * application rule only on one */
                { { .board = "octopus-pro", .mode = BL }, &app_f446, false },
                { { .board = "octopus-pro", .mode = APP }, &app_f446, true },
                { { .board = "octopus-pro", .mode = APP }, &dfu_f446, false },
                { { .mcu = "stm32g0b1xx", .mode = BL }, &katapult, true }, /* Katapult is a bootloader */
                { { .mcu = "stm32g0b1xx", .mode = APP }, &katapult, false },
                { { .board = "octopus-pro", .mode = BL }, &serial_dev, false },
                { { .board = "octopus-pro", .mode = APP }, &serial_dev, false },
                /* MCU, case-insensitive */
                { { .mcu = "stm32f446xx", .mode = BL }, &dfu_f446, true },
                { { .mcu = "STM32F446XX", .mode = BL }, &dfu_f446, true },
                { { .mcu = "stm32f429xx", .mode = BL }, &dfu_f446, false },
                /* board and MCU hold for the same candidate */
                { { .board = "octopus-pro", .mcu = "stm32f429xx", .mode = BL }, &dfu_f429, true },
                { { .board = "octopus-pro", .mcu = "stm32f446xx", .mode = BL }, &mixed_dev, false },
                { { .board = "octopus", .mcu = "stm32f446xx", .mode = BL }, &mixed_dev, true },
                { { .mcu = "stm32f429xx", .mode = BL }, &mixed_dev, true },
                /* port: exact or a pattern */
                { { .port = "1-1.3", .mode = BL }, &dfu_f446, true },
                { { .port = "1-1.4", .mode = BL }, &dfu_f446, false },
                { { .port = "1-1.*", .mode = BL }, &dfu_f429, true },
                { { .port = "1-1.*", .mode = BL }, &mixed_dev, false },
                { { .port = "1-1", .mode = BL }, &dfu_f446, false },
                /* USB serial */
                { { .serial = "356234553133", .mode = BL }, &dfu_f446, true },
                { { .serial = "3562*", .mode = BL }, &dfu_f446, true },
                { { .serial = "3562*", .mode = BL }, &dfu_f429, false },
                { { .serial = "*", .mode = BL }, &no_serial, false }, /* no serial to match */
                /* USB id */
                { { .has_usb_id = true, .vid = 0x0483, .pid = 0xdf11, .mode = BL }, &dfu_f429, true },
                { { .has_usb_id = true, .vid = 0x1d50, .pid = 0x614e, .mode = BL }, &dfu_f429, false },
                { { .has_usb_id = true, .vid = 0x1d50, .pid = 0x614e, .mode = APP }, &app_f446, true },
                /* everything at once */
                { { .board = "octopus-pro",
                    .mcu = "stm32f446xx",
                    .port = "1-1.3",
                    .serial = "3562*",
                    .has_usb_id = true,
                    .vid = 0x0483,
                    .pid = 0xdf11,
                    .mode = BL },
                  &dfu_f446,
                  true },
                { { .board = "octopus-pro",
                    .mcu = "stm32f446xx",
                    .port = "1-1.3",
                    .serial = "nope",
                    .has_usb_id = true,
                    .vid = 0x0483,
                    .pid = 0xdf11,
                    .mode = BL },
                  &dfu_f446,
                  false },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                bool got = rule_match_device(&cases[i].m, cases[i].d);
                if (got != cases[i].expected) {
                        fprintf(stderr, "case %zu: matched %d, expected %d\n", i, got, cases[i].expected);
                        tests_failed++;
                }
        }
}

static void test_match_from_json(void)
{
        static const struct {
                const char *json;
                int expected;
                const char *board, *port, *serial;
                RuleMode mode;
                unsigned vid, pid;
                const char *error_has;
        } cases[] = {
                { "{\"board\": \"octopus-pro\"}", 0, "octopus-pro", NULL, NULL, BL, 0, 0, NULL },
                { "{\"board\": \"octopus-pro\", \"mode\": \"application\"}", 0, "octopus-pro", NULL, NULL,
                  APP, 0, 0, NULL },
                { "{\"port\": \"1-1.*\", \"mode\": \"bootloader\", \"usb_serial\": \"35*\"}", 0, NULL,
                  "1-1.*", "35*", BL, 0, 0, NULL },
                { "{\"usb_id\": \"0483:DF11\"}", 0, NULL, NULL, NULL, BL, 0x0483, 0xdf11, NULL },
                { "{\"usb_id\": \"0483df11\"}", -EINVAL, NULL, NULL, NULL, BL, 0, 0, "VID:PID" },
                { "{\"usb_id\": \"04g3:df11\"}", -EINVAL, NULL, NULL, NULL, BL, 0, 0, "VID:PID" },
                { "{\"mode\": \"bootloader\"}", -EINVAL, NULL, NULL, NULL, BL, 0, 0, "every board" },
                { "{}", -EINVAL, NULL, NULL, NULL, BL, 0, 0, "every board" },
                { "{\"board\": \"\"}", -EINVAL, NULL, NULL, NULL, BL, 0, 0, "every board" },
                { "{\"board\": \"x\", \"mode\": \"dfu\"}", -EINVAL, NULL, NULL, NULL, BL, 0, 0,
                  "bootloader" },
                { "{\"board\": \"x\", \"colour\": \"red\"}", -EINVAL, NULL, NULL, NULL, BL, 0, 0, "colour" },
                { "{\"board\": 3}", -EINVAL, NULL, NULL, NULL, BL, 0, 0, "string" },
                { "[\"board\"]", -EINVAL, NULL, NULL, NULL, BL, 0, 0, "object" },
                { "{\"board\": \"x\", \"mcu\": null}", 0, "x", NULL, NULL, BL, 0, 0, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_auto_t *o = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
                _cleanup_free_ char *error = NULL;
                RuleMatch m = {};
                int r;

                CHECK(o != NULL);
                r = rule_match_from_json(o, &m, &error);
                CHECK_INT(r, cases[i].expected);
                if (r < 0) {
                        if (!error || !strstr(error, cases[i].error_has)) {
                                fprintf(stderr, "case %zu: error \"%s\" lacks \"%s\"\n", i,
                                        error ? error : "(null)", cases[i].error_has);
                                tests_failed++;
                        }
                        continue;
                }
                CHECK(streq_ptr(m.board, cases[i].board));
                CHECK(streq_ptr(m.port, cases[i].port));
                CHECK(streq_ptr(m.serial, cases[i].serial));
                CHECK_INT(m.mode, cases[i].mode);
                CHECK_INT(m.has_usb_id, cases[i].vid != 0);
                CHECK_INT(m.vid, cases[i].vid);
                CHECK_INT(m.pid, cases[i].pid);

                /* and back */
                json_auto_t *back = rule_match_to_json(&m);
                RuleMatch m2 = {};
                CHECK_INT(rule_match_from_json(back, &m2, NULL), 0);
                CHECK(streq_ptr(m2.board, m.board) && streq_ptr(m2.port, m.port) && m2.mode == m.mode &&
                      m2.vid == m.vid && m2.pid == m.pid && m2.has_usb_id == m.has_usb_id);
                rule_match_clear(&m2);
                rule_match_clear(&m);
        }
}

static void test_names_and_delays(void)
{
        for (int i = 0; i < _RULE_MODE_MAX; i++)
                CHECK_INT(rule_mode_from_string(rule_mode_to_string((RuleMode)i)), i);
        for (int i = 0; i < _RULE_REPEAT_MAX; i++)
                CHECK_INT(rule_repeat_from_string(rule_repeat_to_string((RuleRepeat)i)), i);
        CHECK_INT(rule_mode_from_string("dfu"), -EINVAL);
        CHECK_INT(rule_repeat_from_string(NULL), -EINVAL);
        CHECK(rule_mode_to_string(_RULE_MODE_MAX) == NULL);

        static const struct {
                double base;
                unsigned attempt;
                double expected;
        } delays[] = {
                { 2, 1, 2 },     { 2, 2, 4 },     { 2, 3, 8 }, { 2, 10, RULE_RETRY_DELAY_MAX },
                { 0.1, 1, 0.1 }, { 0.1, 3, 0.4 }, { 0, 5, 0 }, { 50, 2, RULE_RETRY_DELAY_MAX },
        };
        _cleanup_(rule_freep) Rule *r = NULL;
        CHECK_INT(rule_new(&r, "rule-1"), 0);
        for (size_t i = 0; i < ELEMENTSOF(delays); i++) {
                r->action.retry_delay_usec = sec_to_usec(delays[i].base);
                double d = usec_to_sec(rule_retry_delay(r, delays[i].attempt));
                if (d < delays[i].expected - 1e-9 || d > delays[i].expected + 1e-9) {
                        fprintf(stderr, "delay case %zu: %g, expected %g\n", i, d, delays[i].expected);
                        tests_failed++;
                }
        }

        /* force: names and back */
        unsigned force = 0;
        const char *bad = NULL;
        json_auto_t *a = json_pack("[s, s]", "mcu", "vector-table");
        CHECK_INT(rule_force_from_json(a, &force, &bad), 0);
        CHECK_INT(force, (1u << IMAGE_CHECK_MCU) | (1u << IMAGE_CHECK_VECTOR_TABLE));
        json_auto_t *back = rule_force_to_json(force);
        CHECK_INT(json_array_size(back), 2);
        json_auto_t *wrong = json_pack("[s]", "everything");
        CHECK_INT(rule_force_from_json(wrong, &force, &bad), -EINVAL);
        CHECK_STR(bad, "everything");
}

int main(void)
{
        test_match_table();
        test_match_from_json();
        test_names_and_delays();
        TESTS_EXIT();
}

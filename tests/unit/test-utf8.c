/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "util/macros.h"
#include "tests.h"
#include "util/utf8.h"

#define R "\xef\xbf\xbd" /* U+FFFD */

int main(void)
{
        static const struct {
                const char *in;
                bool valid;
                const char *out;
        } cases[] = {
                { "", true, "" },
                { "klipper", true, "klipper" },
                { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", true,
                  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
                { "fl\xffsh", false, "fl" R "sh" },
                { "\xc3(", false, R "(" },              /* missing continuation */
                { "\xc0\xaf", false, R R },             /* overlong '/' */
                { "\xe0\x80\xaf", false, R R R },       /* overlong, 3 bytes */
                { "\xed\xa0\x80", false, R R R },       /* surrogate U+D800 */
                { "\xf4\x90\x80\x80", false, R R R R }, /* above U+10FFFF */
                { "\xe2\x82", false, R R },             /* truncated at the end */
                { "\x80x", false, R "x" },              /* stray continuation */
                { "\xf5\x80\x80\x80", false, R R R R },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                CHECK_INT(utf8_is_valid(cases[i].in, strlen(cases[i].in)), cases[i].valid);
                char *v = utf8_make_valid(cases[i].in);
                CHECK_STR(v, cases[i].out);
                free(v);
                json_t *j = json_string_sanitized(cases[i].in);
                CHECK_STR(json_string_value(j), cases[i].out);
                json_decref(j);
        }

        json_t *null = json_string_sanitized(NULL);
        CHECK(json_is_null(null));
        json_decref(null);

        /* In place within a fixed buffer: cut at a whole character. */
        static const struct {
                const char *in;
                size_t size;
                const char *out;
        } in_place[] = {
                { "ab\xff", 16, "ab" R },   { "ab\xff", 5, "ab" }, /* U+FFFD does not fit after "ab" */
                { "ab\xff", 6, "ab" R },                           /* just fits */
                { "\xff\xff\xff", 8, R R }, { "ok", 3, "ok" },
        };
        for (size_t i = 0; i < ELEMENTSOF(in_place); i++) {
                char buf[32];
                strcpy(buf, in_place[i].in);
                utf8_make_valid_in_place(buf, in_place[i].size);
                CHECK_STR(buf, in_place[i].out);
        }

        TESTS_EXIT();
}

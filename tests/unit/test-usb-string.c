/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>

#include "codec/usb-string.h"
#include "tests.h"
#include "util/macros.h"

typedef struct StringCase {
        const char *what;
        uint8_t buf[24];
        size_t received;
        int ret;
        const char *utf8;
        bool patched;
} StringCase;

static const StringCase cases[] = {
        { "ascii", { 8, 3, 'a', 0, 'b', 0, 'c', 0 }, 8, 0, "abc", false },
        { "empty", { 2, 3 }, 2, 0, "", false },
        { "extra bytes after bLength are ignored", { 4, 3, 'a', 0, 'b', 0 }, 6, 0, "a", false },
        { "short delivery (bLength 166)", { 166, 3, 'a', 0, 'b', 0 }, 6, 0, "ab", true },
        { "odd received length", { 166, 3, 'a', 0, 'b' }, 5, 0, "a", true },
        { "odd bLength", { 5, 3, 'a', 0, 'b', 0 }, 6, 0, "a", true },
        { "bLength 0", { 0, 3, 'a', 0 }, 4, 0, "a", true },
        { "latin-1", { 4, 3, 0xE9, 0x00 }, 4, 0, "\u00e9", false },
        { "BMP", { 6, 3, 0x50, 0xCC, 0xA8, 0x01 }, 6, 0, "\uCC50\u01A8", false },
        { "surrogate pair", { 6, 3, 0x3D, 0xD8, 0x00, 0xDE }, 6, 0, "\U0001F600", false },
        { "lone high surrogate at end", { 6, 3, 'a', 0, 0x3D, 0xD8 }, 6, 0, "a\uFFFD", false },
        { "high surrogate then ascii", { 6, 3, 0x3D, 0xD8, 'a', 0 }, 6, 0, "\uFFFDa", false },
        { "lone low surrogate", { 6, 3, 0x00, 0xDE, 'a', 0 }, 6, 0, "\uFFFDa", false },
        { "two high surrogates", { 6, 3, 0x3D, 0xD8, 0x3D, 0xD8 }, 6, 0, "\uFFFD\uFFFD", false },
        { "NUL padding ends the string", { 8, 3, 'a', 0, 0, 0, 'b', 0 }, 8, 0, "a", false },
        { "U+FFFF kept", { 4, 3, 0xFF, 0xFF }, 4, 0, "\uFFFF", false },
        { "wrong descriptor type", { 4, 2, 'a', 0 }, 4, -EBADMSG },
        { "one byte", { 4 }, 1, -EBADMSG },
        { "nothing", { 0 }, 0, -EBADMSG },
};

static void test_cases(void)
{
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *s = NULL;
                bool patched = !cases[i].patched;
                int r;

                fprintf(stderr, "case: %s\n", cases[i].what);
                r = usb_string_descriptor_decode(cases[i].buf, cases[i].received, &s, &patched);
                CHECK_INT(r, cases[i].ret);
                if (r >= 0) {
                        CHECK_STR(s, cases[i].utf8);
                        CHECK_INT(patched, cases[i].patched);
                } else
                        CHECK(!s);
                free(s);
        }
}

/* The garbage-tail string as a 255-byte descriptor: every unit decodes. */
static void test_long(void)
{
        uint8_t buf[255] = { 255, 3 };
        char *s = NULL;
        bool patched;

        for (size_t i = 2; i < sizeof(buf); i++)
                buf[i] = (uint8_t)(0x41 + i % 7);
        CHECK_INT(usb_string_descriptor_decode(buf, sizeof(buf), &s, &patched), 0);
        CHECK(patched); /* odd bLength */
        CHECK(s && strlen(s) > 0);
        free(s);

        CHECK_INT(usb_string_descriptor_decode(buf, sizeof(buf), &s, NULL), 0);
        free(s);
        CHECK_INT(usb_string_descriptor_decode(NULL, 4, &s, NULL), -EINVAL);
}

int main(void)
{
        test_cases();
        test_long();
        TESTS_EXIT();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* flashctl's presentation helpers: sizes, addresses, permissions, layout
 * summaries and table fitting, each as a table of inputs and outputs. */
#include <errno.h>
#include <stdio.h>

#include "util/macros.h"
#include "output.h"
#include "tests.h"

static void test_sizes(void)
{
        static const struct {
                uint64_t bytes;
                const char *human;
                const char *dfuse;
        } cases[] = {
                { 0, "0 B", "0" },
                { 1, "1 B", "1" },
                { 512, "512 B", "512" },
                { 1023, "1023 B", "1023" },
                { 1024, "1 KiB", "1K" },
                { 1536, "1.5 KiB", "1536" },
                { 2048, "2 KiB", "2K" },
                { 16 * 1024, "16 KiB", "16K" },
                { 64 * 1024, "64 KiB", "64K" },
                { 128 * 1024, "128 KiB", "128K" },
                { 1997, "2.0 KiB", "1997" }, /* rounds to one decimal, not down */
                { 1024 * 1024, "1 MiB", "1M" },
                { 1024 * 1024 + 512 * 1024, "1.5 MiB", "1536K" },
                { 2 * 1024 * 1024, "2 MiB", "2M" },
                { UINT64_C(1) << 30, "1 GiB", "1G" },
                { 300000, "293.0 KiB", "300000" },
        };
        char buf[FORMAT_BUF_MAX];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                CHECK_STR(format_size(buf, cases[i].bytes), cases[i].human);
                CHECK_STR(format_size_short(buf, cases[i].bytes), cases[i].dfuse);
        }
}

static void test_address_flags(void)
{
        static const struct {
                uint64_t address;
                const char *text;
        } addrs[] = {
                { 0x08000000, "0x08000000" },
                { 0x08008000, "0x08008000" },
                { 0, "0x00000000" },
                { 0x1fff7800, "0x1fff7800" },
                { UINT64_C(0x100000000), "0x100000000" },
        };
        static const struct {
                unsigned flags;
                const char *text;
        } flags[] = {
                { 0, "---" }, { 1, "r--" }, { 2, "-e-" },    { 4, "--w" },
                { 5, "r-w" }, { 7, "rew" }, { 0xff, "rew" },
        };
        char buf[FORMAT_BUF_MAX];

        for (size_t i = 0; i < ELEMENTSOF(addrs); i++)
                CHECK_STR(format_address(buf, addrs[i].address), addrs[i].text);
        for (size_t i = 0; i < ELEMENTSOF(flags); i++)
                CHECK_STR(format_flags(buf, flags[i].flags), flags[i].text);
}

static void test_layout_summary(void)
{
        static const struct {
                const char *json;
                int ret;
                const char *summary;
        } cases[] = {
                /* F429 with its full 1 MiB, as the daemon reports it after garbage-tail repair */
                { "[{\"name\":\"Internal Flash\",\"address\":134217728,\"sectors\":["
                  "{\"count\":4,\"size\":16384,\"flags\":7},{\"count\":1,\"size\":65536,\"flags\":7},"
                  "{\"count\":7,\"size\":131072,\"flags\":7}]}]",
                  0, "4x16K 1x64K 7x128K" },
                { "[{\"name\":\"Internal Flash\",\"address\":134217728,\"sectors\":["
                  "{\"count\":4,\"size\":16384,\"flags\":7},{\"count\":1,\"size\":65536,\"flags\":7},"
                  "{\"count\":3,\"size\":131072,\"flags\":7}]}]",
                  0, "4x16K 1x64K 3x128K" },
                { "[{\"name\":\"Internal "
                  "Flash\",\"address\":134217728,\"sectors\":[{\"count\":8,\"size\":131072,"
                  "\"flags\":7}]}]",
                  0, "8x128K" },
                /* two banks */
                { "[{\"name\":\"Flash\",\"address\":134217728,\"sectors\":[{\"count\":8,\"size\":131072,"
                  "\"flags\":7}]},"
                  "{\"name\":\"Flash\",\"address\":135266304,\"sectors\":[{\"count\":8,\"size\":131072,"
                  "\"flags\":7}]}]",
                  0, "8x128K + 8x128K" },
                /* option bytes: an odd size in bytes */
                { "[{\"name\":\"Option Bytes\",\"address\":536854528,\"sectors\":[{\"count\":1,\"size\":16,"
                  "\"flags\":3}]}]",
                  0, "1x16" },
                { "[]", 0, "" },
                { NULL, 0, "" },   /* no layout member */
                { "null", 0, "" }, /* layout null (app mode), as the daemon sends it */
                { "{}", -EBADMSG, NULL },
                { "[{\"name\":\"x\"}]", -EBADMSG, NULL },
                { "[{\"sectors\":[{\"count\":\"4\",\"size\":16384}]}]", -EBADMSG, NULL },
                { "[{\"sectors\":[{\"count\":-1,\"size\":16384}]}]", -EBADMSG, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_t *j = cases[i].json ? json_loads(cases[i].json, JSON_DECODE_ANY, NULL) : NULL;
                char *s = NULL;

                CHECK(!cases[i].json || j);
                int r = layout_summary(j, &s);
                CHECK_INT(r, cases[i].ret);
                if (r == 0)
                        CHECK_STR(s, cases[i].summary);
                free(s);
                json_decref(j);
        }
}

static void test_text_width(void)
{
        static const struct {
                const char *text;
                size_t width;
        } cases[] = {
                { "", 0 }, { "1-1.3", 5 }, { "…", 1 }, { "ä€x", 3 }, { "g챐ƨ", 3 },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CHECK_INT(output_text_width(cases[i].text), cases[i].width);
}

static char *render(unsigned width, bool legend)
{
        static const char *const headers[] = { "PORT", "MODE", "BOARD", "LAYOUT" };
        static const char *const rows[][4] = {
                { "1-1.3", "dfu", "octopus-pro", "4x16K 1x64K 7x128K" },
                { "1-1.4.2", "app", NULL, "" },
                { "2-1", "serial", "x\033[2Jy", "-" }, /* escape sequence from a device string */
        };
        Table *t = NULL;
        char *out = NULL;
        size_t len = 0;

        CHECK_INT(table_new(&t, 4, headers), 0);
        for (size_t i = 0; i < ELEMENTSOF(rows); i++)
                CHECK_INT(table_add_row(t, rows[i]), 0);
        CHECK_INT(table_rows(t), 3);
        FILE *f = open_memstream(&out, &len);
        CHECK_INT(table_print(t, f, width, false, legend), 0);
        fclose(f);
        table_free(t);
        return out;
}

static void test_table(void)
{
        static const struct {
                unsigned width;
                bool legend;
                const char *expected;
        } cases[] = {
                { 0, true,
                  "PORT     MODE    BOARD        LAYOUT\n"
                  "1-1.3    dfu     octopus-pro  4x16K 1x64K 7x128K\n"
                  "1-1.4.2  app     -            -\n"
                  "2-1      serial  x?[2Jy       -\n" },
                { 0, false,
                  "1-1.3    dfu     octopus-pro  4x16K 1x64K 7x128K\n"
                  "1-1.4.2  app     -            -\n"
                  "2-1      serial  x?[2Jy       -\n" },
                /* 48 columns needed, 44 given: the widest (layout) is cut with an ellipsis */
                { 44, true,
                  "PORT     MODE    BOARD        LAYOUT\n"
                  "1-1.3    dfu     octopus-pro  4x16K 1x64K 7…\n"
                  "1-1.4.2  app     -            -\n"
                  "2-1      serial  x?[2Jy       -\n" },
                /* very narrow: columns stop at their minimum, the port is never
                 * cut, and the line overflows */
                { 10, false,
                  "1-1.3    dfu   oct…  4x1…\n"
                  "1-1.4.2  app   -     -\n"
                  "2-1      ser…  x?[…  -\n" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *s = render(cases[i].width, cases[i].legend);
                CHECK_STR(s, cases[i].expected);
                free(s);
        }
}

static void test_labels(void)
{
        static const struct {
                const char *key, *label;
        } cases[] = {
                { "board_variant", "Board variant" },
                { "mcu", "MCU" },
                { "x", "X" },
                { "", "" },
                { "api_version", "API version" },
                { "previous_mcu", "Previous MCU" },
                { "idle", "Idle" },
                { "usb", "USB" },
                { "by_id", "By ID" },
        };
        char buf[64];
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CHECK_STR(output_label(buf, sizeof(buf), cases[i].key), cases[i].label);
}

static void test_durations(void)
{
        static const struct {
                uint64_t seconds;
                const char *text;
        } cases[] = {
                { 0, "0s" },        { 1, "1s" },          { 59, "59s" },           { 60, "1min" },
                { 61, "1min 1s" },  { 3600, "1h" },       { 3725, "1h 2min" },     { 86400, "1d" },
                { 90061, "1d 1h" }, { 86461, "1d 1min" }, { 400 * 86400, "400d" },
        };
        char buf[FORMAT_BUF_MAX];
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CHECK_STR(format_duration(buf, cases[i].seconds), cases[i].text);
}

int main(void)
{
        test_durations();
        test_sizes();
        test_address_flags();
        test_layout_summary();
        test_text_width();
        test_table();
        test_labels();
        TESTS_EXIT();
}

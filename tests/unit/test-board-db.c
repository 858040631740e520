/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <unistd.h>
#include <sys/stat.h>

#include "config.h"

#include "boards/board-db.h"
#include "codec/dfuse-layout.h"
#include "tests.h"
#include "util/macros.h"

static const char *boards_dir(void)
{
        const char *e = getenv("FLASHD_BOARDS_DIR");
        return e ?: FLASHD_SOURCE_BOARDS_DIR;
}

static BoardDb *load_shipped(void)
{
        const char *dirs[] = { boards_dir(), NULL };
        BoardDb *db = NULL;
        char *err = NULL;
        int r = board_db_load(&db, dirs, &err);

        if (r < 0)
                fprintf(stderr, "board_db_load: %d %s\n", r, strna(err));
        CHECK_INT(r, 0);
        free(err);
        return db;
}

/* Every file, checked independently of the parser's own checks. */
static void test_validate_all(const BoardDb *db)
{
        CHECK(db->n_boards >= 8);
        for (size_t i = 0; i < db->n_boards; i++) {
                const Board *b = &db->boards[i];
                const char *base = strrchr(b->source_path, '/');
                _cleanup_free_ char *expect_file = NULL;

                CHECK(asprintf(&expect_file, "%s.json", b->name) > 0);
                CHECK_STR(base ? base + 1 : b->source_path, expect_file);
                CHECK(b->title && strlen(b->title) > 3);
                CHECK(board_bootloader_to_string(b->bootloader) != NULL);
                CHECK(b->n_variants > 0);
                for (size_t j = 0; j < db->n_boards; j++)
                        CHECK(i == j || !streq(b->name, db->boards[j].name));

                for (size_t k = 0; k < b->n_variants; k++) {
                        const BoardVariant *v = &b->variants[k];
                        DfuseLayout *l = NULL;
                        uint32_t start = 0;

                        fprintf(stderr, "checking %s-%s\n", b->name, v->id);
                        for (size_t m = 0; m < b->n_variants; m++)
                                CHECK(k == m || !streq(v->id, b->variants[m].id));
                        /* STM32 boards go through the ST ROM (DfuSe) or Katapult; a
                         * plain DFU 1.1 board (Smoothieboard, LPC1769) names its
                         * own bootloader's id */
                        bool rp2040 = b->bootloader == BOARD_BOOTLOADER_BOOTSEL;
                        /* AVR boards: an Arduino bootloader behind a USB-serial bridge */
                        bool avr = b->bootloader == BOARD_BOOTLOADER_STK500V2 ||
                                   b->bootloader == BOARD_BOOTLOADER_STK500V1;
                        bool stm32 = b->bootloader != BOARD_BOOTLOADER_DFU && !rp2040 && !avr;
                        CHECK(avr == v->avr.present);
                        if (avr) {
                                CHECK(strncmp(v->mcu, "atmega", 6) == 0);
                                CHECK_INT(v->flash_base, 0);
                                CHECK_INT(v->app_offset, 0);
                                CHECK_INT(v->avr.signature[0], 0x1e);
                                CHECK(v->avr.boot_size > 0 && v->avr.boot_size < v->flash_size);
                                CHECK_INT(v->flash_size % v->avr.page_size, 0);
                                CHECK_INT(v->reboot, BOARD_REBOOT_DTR);
                                CHECK_INT(v->avr.baud, 115200);
                                CHECK_INT(v->usb_app.vid, 0x2341);
                                CHECK_INT(v->usb_dfu.vid, 0);
                                CHECK_INT(dfuse_layout_parse(v->layout, strlen(v->layout), &l), 0);
                                CHECK(l && !l->truncated && dfuse_layout_total_size(l) == v->flash_size);
                                dfuse_layout_free(l);
                                continue;
                        }
                        CHECK(!stm32 || strncmp(v->mcu, "stm32", 5) == 0);
                        CHECK(!stm32 || (strlen(v->mcu) > 7 && streq(v->mcu + strlen(v->mcu) - 2, "xx")));
                        CHECK(v->flash_size >= 64 * 1024);
                        /* RP2040 boards run Klipper from the start of flash (boot2 first) */
                        CHECK((rp2040 || v->app_offset > 0) && v->app_offset < v->flash_size);
                        CHECK(v->ram_size >= 16 * 1024);
                        CHECK(v->ram_start >= v->flash_base + v->flash_size ||
                              v->ram_start + v->ram_size <= v->flash_base);

                        CHECK_INT(dfuse_layout_parse(v->layout, strlen(v->layout), &l), 0);
                        if (l) {
                                CHECK(!l->truncated);
                                CHECK_STR(l->name, rp2040 ? "Flash" : "Internal Flash");
                                CHECK_INT(l->regions[0].address, v->flash_base);
                                CHECK_INT(dfuse_layout_total_size(l), v->flash_size);
                                CHECK(dfuse_layout_find_sector(l, v->flash_base + v->app_offset, NULL,
                                                               &start, NULL));
                                CHECK_INT(start, v->flash_base + v->app_offset);
                        }
                        dfuse_layout_free(l);

                        CHECK_INT(v->usb_app.vid, 0x1d50);
                        CHECK_INT(v->usb_app.pid, 0x614e);
                        if (rp2040) {
                                /* the RP2040 boot ROM (datasheet 2.8); no DFU id */
                                CHECK_STR(v->mcu, "rp2040");
                                CHECK_INT(v->flash_base, 0x10000000);
                                CHECK_INT(v->usb_bootsel.vid, 0x2e8a);
                                CHECK_INT(v->usb_bootsel.pid, 0x0003);
                                CHECK_INT(v->usb_dfu.vid, 0);
                        } else if (stm32) {
                                CHECK_INT(v->usb_dfu.vid, 0x0483);
                                CHECK_INT(v->usb_dfu.pid, 0xdf11);
                        } else
                                CHECK(v->usb_dfu.vid != 0 &&
                                      !(v->usb_dfu.vid == 0x0483 && v->usb_dfu.pid == 0xdf11));
                        CHECK(v->usb_katapult.vid == 0 ||
                              (v->usb_katapult.vid == 0x1d50 && v->usb_katapult.pid == 0x6177));
                        CHECK(board_reboot_to_string(v->reboot) != NULL);
                        CHECK(v->hints != NULL);
                        for (char **h = v->hints; h && *h; h++)
                                CHECK(strlen(*h) > 10);
                }
        }
}

typedef struct Expect {
        const char *vboard; /* <board>-<variant> */
        const char *mcu;
        uint32_t flash_size, app_offset;
        const char *hint; /* substring of some hint, or NULL */
} Expect;

/* The boards flashd promises to know, with facts from Klipper's config files. */
static const Expect expected[] = {
        { "octopus-f446", "stm32f446xx", 512 * 1024, 32 * 1024, NULL },
        { "octopus-f429", "stm32f429xx", 1024 * 1024, 32 * 1024, "BOOT0" },
        { "octopus-pro-f446", "stm32f446xx", 512 * 1024, 32 * 1024, NULL },
        { "octopus-pro-f429", "stm32f429xx", 1024 * 1024, 32 * 1024,
          "the F429 may ignore the 1200-baud reboot: set BOOT0 and press reset" },
        { "octopus-pro-h723", "stm32h723xx", 1024 * 1024, 128 * 1024, NULL },
        { "octopus-max-ez-h723", "stm32h723xx", 1024 * 1024, 128 * 1024, NULL },
        { "skr-3-h743", "stm32h743xx", 2048 * 1024, 128 * 1024, NULL },
        { "skr-3-h723", "stm32h723xx", 1024 * 1024, 128 * 1024, NULL },
        { "skr-pro-f407", "stm32f407xx", 1024 * 1024, 32 * 1024, NULL },
        { "skr-mini-e3-v3-g0b1", "stm32g0b1xx", 512 * 1024, 8 * 1024, NULL },
        { "manta-m8p-g0b1", "stm32g0b1xx", 512 * 1024, 8 * 1024, NULL },
        { "fysetc-s6-f446", "stm32f446xx", 512 * 1024, 64 * 1024, NULL },
        /* Klipper docs/Bootloaders.md: Smoothieboards' LPC17xx-DFU-Bootloader, 16KiB */
        { "smoothieboard-lpc1769", "lpc1769", 512 * 1024, 16 * 1024, "Play button" },
        /* Klipper docs: SKR Pico without bootloader, 2 MiB; the Pico's W25Q16JV */
        { "skr-pico-rp2040", "rp2040", 2048 * 1024, 0, "BOOT" },
        { "rp2040-rp2040", "rp2040", 2048 * 1024, 0, "2 MiB" },
        /* BTT EBB36/42 v1.2: STM32G0B1CBT6 (128 KiB), Katapult 8 KiB */
        { "ebb36-v1.2", "stm32g0b1xx", 128 * 1024, 8 * 1024, "CAN" },
        { "ebb42-v1.2", "stm32g0b1xx", 128 * 1024, 8 * 1024, "CAN" },
        /* ATmega2560 / ATmega328P datasheets; Klipper's AVR build at 0 */
        { "mega2560-atmega2560", "atmega2560", 256 * 1024, 0, "DTR" },
        { "arduino-uno-atmega328p", "atmega328p", 32 * 1024, 0, "optiboot" },
};

static void test_expected(const BoardDb *db)
{
        for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
                const Board *b = NULL;
                const BoardVariant *v = NULL;
                bool hint_found = !expected[i].hint;

                fprintf(stderr, "expect %s\n", expected[i].vboard);
                CHECK_INT(board_db_find_variant(db, expected[i].vboard, &b, &v), 0);
                if (!v)
                        continue;
                CHECK_STR(v->mcu, expected[i].mcu);
                CHECK_INT(v->flash_size, expected[i].flash_size);
                CHECK_INT(v->app_offset, expected[i].app_offset);
                /* STM32 flash at 0x08000000; the LPC1769 (plain DFU board) at 0 */
                bool avr = v->avr.present;
                CHECK_INT(v->flash_base, b->bootloader == BOARD_BOOTLOADER_DFU || avr ? 0
                                         : b->bootloader == BOARD_BOOTLOADER_BOOTSEL  ? 0x10000000
                                                                                      : 0x08000000);
                for (char **h = v->hints; h && *h && !hint_found; h++)
                        hint_found = strstr(*h, expected[i].hint) != NULL;
                CHECK(hint_found);
                CHECK(board_db_find(db, b->name) == b);
        }
}

static void test_find_match(const BoardDb *db)
{
        const BoardVariant *vs[32];
        const Board *bs[32];
        const Board *b;
        size_t n;

        CHECK(board_db_find(db, "octopus-pro") != NULL);
        CHECK(board_db_find(db, "octopus") != NULL);
        CHECK(board_db_find(db, "octopus-pr") == NULL);
        CHECK(board_db_find(db, "") == NULL);
        CHECK(board_db_find(db, NULL) == NULL);
        CHECK(board_db_find(NULL, "octopus") == NULL);

        b = board_db_find(db, "octopus-pro");
        CHECK(b && board_find_variant(b, "h723") && !board_find_variant(b, "g0b1"));
        CHECK_INT(board_db_find_variant(db, "octopus-pro-g0b1", NULL, NULL), -ENOENT);
        CHECK_INT(board_db_find_variant(db, "octopus-pro", NULL, NULL), -ENOENT);
        CHECK_INT(board_db_find_variant(db, "octopus", NULL, NULL), -ENOENT);

        /* MCU matching: case-insensitive, every variant. */
        static const struct {
                const char *mcu;
                size_t n;
        } mcus[] = {
                { "stm32f429xx", 2 }, { "STM32F429XX", 2 }, { "stm32f446xx", 3 }, { "stm32h723xx", 3 },
                { "stm32h743xx", 1 }, { "stm32g0b1xx", 4 }, { "stm32f407xx", 1 }, { "rp2040", 2 },
                { "RP2040", 2 },      { "rp2350", 0 },
        };
        for (size_t i = 0; i < ELEMENTSOF(mcus); i++) {
                n = board_db_match_mcu(db, mcus[i].mcu, vs, bs, ELEMENTSOF(vs));
                CHECK_INT(n, mcus[i].n);
                for (size_t j = 0; j < n; j++)
                        CHECK(strcasecmp(vs[j]->mcu, mcus[i].mcu) == 0 && bs[j]->n_variants > 0);
        }
        CHECK_INT(board_db_match_mcu(db, "stm32f446xx", vs, bs, 1), 1);
        CHECK_INT(board_db_match_mcu(db, "stm32f446xx", NULL, NULL, 0), 0);

        /* Every shipped STM32 variant has all three ids; the Smoothieboard
         * has Klipper's and its DFU bootloader's (1d50:6015). */
        size_t total = 0, plain = 0, rp = 0, avr = 0;
        for (size_t i = 0; i < db->n_boards; i++) {
                total += db->boards[i].n_variants;
                if (db->boards[i].bootloader == BOARD_BOOTLOADER_STK500V2 ||
                    db->boards[i].bootloader == BOARD_BOOTLOADER_STK500V1)
                        avr += db->boards[i].n_variants;
                if (db->boards[i].bootloader == BOARD_BOOTLOADER_DFU)
                        plain += db->boards[i].n_variants;
                if (db->boards[i].bootloader == BOARD_BOOTLOADER_BOOTSEL)
                        rp += db->boards[i].n_variants;
        }
        CHECK_INT(plain, 1);
        CHECK_INT(rp, 2);
        /* the RP2040 ROM in BOOTSEL; RP2350's (2e8a:000f) is no board of ours */
        CHECK_INT(board_db_match_usb(db, 0x2e8a, 0x0003, vs, bs, ELEMENTSOF(vs)), rp);
        CHECK_INT(board_db_match_usb(db, 0x2e8a, 0x000f, vs, bs, ELEMENTSOF(vs)), 0);
        /* the AVR boards are known by their Arduino USB-serial ids only */
        CHECK_INT(avr, 2);
        CHECK_INT(board_db_match_usb(db, 0x2341, 0x0042, vs, bs, ELEMENTSOF(vs)), 1);
        CHECK(bs[0] && streq(bs[0]->name, "mega2560"));
        total -= rp + avr;
        CHECK_INT(board_db_match_usb(db, 0x0483, 0xdf11, vs, bs, ELEMENTSOF(vs)), total - plain);
        CHECK_INT(board_db_match_usb(db, 0x1d50, 0x614e, vs, bs, ELEMENTSOF(vs)), total + rp);
        CHECK_INT(board_db_match_usb(db, 0x1d50, 0x6177, vs, bs, ELEMENTSOF(vs)), total - plain);
        CHECK_INT(board_db_match_usb(db, 0x1d50, 0x6015, vs, bs, ELEMENTSOF(vs)), 1);
        CHECK(bs[0] && streq(bs[0]->name, "smoothieboard"));
        CHECK_INT(board_db_match_usb(db, 0, 0, vs, bs, ELEMENTSOF(vs)), 0);
}

static void test_enums(void)
{
        for (int i = 0; i < _BOARD_BOOTLOADER_MAX; i++)
                CHECK_INT(board_bootloader_from_string(board_bootloader_to_string(i)), i);
        for (int i = 0; i < _BOARD_REBOOT_MAX; i++)
                CHECK_INT(board_reboot_from_string(board_reboot_to_string(i)), i);
        CHECK_INT(board_bootloader_from_string("hid"), -EINVAL);
        CHECK_INT(board_reboot_from_string(NULL), -EINVAL);
        CHECK(board_reboot_to_string(_BOARD_REBOOT_MAX) == NULL);
        CHECK(board_bootloader_to_string(-1) == NULL);
}

#define GOOD_VARIANT                                                                                    \
        "{\"id\":\"f446\",\"mcu\":\"stm32f446xx\",\"flash_base\":\"0x08000000\",\"flash_size\":524288," \
        "\"app_offset\":32768,\"ram_start\":536870912,\"ram_size\":\"0x20000\","                        \
        "\"layout\":\"@Internal Flash  /0x08000000/04*016Kg,01*064Kg,03*128Kg\","                       \
        "\"usb\":{\"dfu\":\"0483:DF11\"}}"
#define BOARD(variant)                                                                                   \
        "{\"name\":\"t\",\"title\":\"T\",\"bootloader\":\"rom-dfu\",\"reboot\":\"manual\",\"variants\":" \
        "[" variant "]}"

typedef struct ParseCase {
        const char *json;
        int ret;
        const char *error; /* substring of the message */
} ParseCase;

static const ParseCase parse_cases[] = {
        { BOARD(GOOD_VARIANT), 0 },
        { "{\"_comment\":\"x\",\"name\":\"t\",\"title\":\"T\",\"bootloader\":\"rom-dfu\",\"reboot\":"
          "\"manual\","
          "\"variants\":[" GOOD_VARIANT "]}",
          0 },
        { "", -EBADMSG, "line" },
        { "[]", -EBADMSG, "one JSON object" },
        { "{\"name\":\"t\",\"name\":\"u\"}", -EBADMSG, "duplicate" },
        { "{\"name\":\"T\"}", -EBADMSG, "lower-case" },
        { "{\"name\":\"-t\"}", -EBADMSG, "lower-case" },
        { "{\"name\":\"t\",\"titel\":\"x\"}", -EBADMSG, "unknown key \"titel\"" },
        { "{\"name\":\"t\",\"title\":\"T\",\"bootloader\":\"hid\"}", -EBADMSG, "unknown bootloader" },
        { "{\"name\":\"t\",\"title\":\"T\",\"bootloader\":\"rom-dfu\",\"reboot\":\"magic\"}", -EBADMSG,
          "unknown reboot" },
        { "{\"name\":\"t\",\"title\":\"T\",\"bootloader\":\"rom-dfu\",\"reboot\":\"manual\",\"variants\":[]"
          "}",
          -EBADMSG, "non-empty array" },
        { "{\"name\":\"t\",\"title\":\"T\",\"bootloader\":\"rom-dfu\",\"reboot\":\"manual\",\"hints\":\"x\","
          "\"variants\":[" GOOD_VARIANT "]}",
          -EBADMSG, "hints" },
        { BOARD(GOOD_VARIANT "," GOOD_VARIANT), -EBADMSG, "appears twice" },
        { BOARD("{\"id\":\"f446\"}"), -EBADMSG, "\"mcu\" is missing" },
        { BOARD("{\"id\":\".v1\"}"), -EBADMSG, "dashes and dots" },
        { BOARD("{\"id\":\"v1.\"}"), -EBADMSG, "dashes and dots" },
        { BOARD("{\"id\":\"V1.2\"}"), -EBADMSG, "dashes and dots" },
        { BOARD("1"), -EBADMSG, "must be an object" },
        /* app offset not on a sector boundary (16 KiB sectors) */
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x08000000\",\"flash_size\":524288,"
                "\"app_offset\":8192,\"ram_start\":536870912,\"ram_size\":131072,"
                "\"layout\":\"@Internal Flash  "
                "/0x08000000/04*016Kg,01*064Kg,03*128Kg\",\"usb\":{\"dfu\":\"0483:df11\"}}"),
          -EBADMSG, "sector boundary" },
        /* layout size differs from flash_size */
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x08000000\",\"flash_size\":1048576,"
                "\"app_offset\":32768,\"ram_start\":536870912,\"ram_size\":131072,"
                "\"layout\":\"@Internal Flash  "
                "/0x08000000/04*016Kg,01*064Kg,03*128Kg\",\"usb\":{\"dfu\":\"0483:df11\"}}"),
          -EBADMSG, "describes 524288 bytes" },
        /* layout with trailing garbage */
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x08000000\",\"flash_size\":524288,"
                "\"app_offset\":32768,\"ram_start\":536870912,\"ram_size\":131072,"
                "\"layout\":\"@Internal Flash  "
                "/0x08000000/04*016Kg,01*064Kg,03*128Kgxx\",\"usb\":{\"dfu\":\"0483:df11\"}}"),
          -EBADMSG, "trailing text" },
        /* layout elsewhere */
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x08000000\",\"flash_size\":524288,"
                "\"app_offset\":32768,\"ram_start\":536870912,\"ram_size\":131072,"
                "\"layout\":\"@Internal Flash  "
                "/0x08100000/04*016Kg,01*064Kg,03*128Kg\",\"usb\":{\"dfu\":\"0483:df11\"}}"),
          -EBADMSG, "does not start at flash_base" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x08000000\",\"flash_size\":524288,"
                "\"app_offset\":524288,\"ram_start\":536870912,\"ram_size\":131072,"
                "\"layout\":\"@Internal Flash  "
                "/0x08000000/04*016Kg,01*064Kg,03*128Kg\",\"usb\":{\"dfu\":\"0483:df11\"}}"),
          -EBADMSG, "not inside" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x08000000\",\"flash_size\":524288,"
                "\"app_offset\":32768,\"ram_start\":\"0x08010000\",\"ram_size\":131072,"
                "\"layout\":\"@Internal Flash  "
                "/0x08000000/04*016Kg,01*064Kg,03*128Kg\",\"usb\":{\"dfu\":\"0483:df11\"}}"),
          -EBADMSG, "overlaps" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x108000000\",\"flash_size\":524288}"),
          -EBADMSG, "flash_base" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":-1}"), -EBADMSG, "out of range" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x\"}"), -EBADMSG, "flash_base" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0xzz\"}"), -EBADMSG, "flash_base" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":1.5}"), -EBADMSG, "flash_base" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x08000000\",\"flash_size\":524288,"
                "\"app_offset\":32768,\"ram_start\":536870912,\"ram_size\":131072,"
                "\"layout\":\"@Internal Flash  "
                "/0x08000000/04*016Kg,01*064Kg,03*128Kg\",\"usb\":{\"dfu\":\"483:df11\"}}"),
          -EBADMSG, "\"vvvv:pppp\"" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x08000000\",\"flash_size\":524288,"
                "\"app_offset\":32768,\"ram_start\":536870912,\"ram_size\":131072,"
                "\"layout\":\"@Internal Flash  "
                "/0x08000000/04*016Kg,01*064Kg,03*128Kg\",\"usb\":{\"dfu\":\"0000:df11\"}}"),
          -EBADMSG, "\"vvvv:pppp\"" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x08000000\",\"flash_size\":524288,"
                "\"app_offset\":32768,\"ram_start\":536870912,\"ram_size\":131072,"
                "\"layout\":\"@Internal Flash  "
                "/0x08000000/04*016Kg,01*064Kg,03*128Kg\",\"usb\":{\"dfu\":\"0483:df1g\"}}"),
          -EBADMSG, "\"vvvv:pppp\"" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x08000000\",\"flash_size\":524288,"
                "\"app_offset\":32768,\"ram_start\":536870912,\"ram_size\":131072,"
                "\"layout\":\"@Internal Flash  /0x08000000/04*016Kg,01*064Kg,03*128Kg\",\"usb\":{}}"),
          -EBADMSG, "names no id" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x08000000\",\"flash_size\":524288,"
                "\"app_offset\":32768,\"ram_start\":536870912,\"ram_size\":131072,"
                "\"layout\":\"@Internal Flash  "
                "/0x08000000/04*016Kg,01*064Kg,03*128Kg\",\"usb\":{\"hid\":\"1209:beba\"}}"),
          -EBADMSG, "unknown key \"hid\"" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x08000000\",\"flash_size\":524288,"
                "\"app_offset\":32768,\"ram_start\":536870912,\"ram_size\":131072,\"reboot\":\"x\","
                "\"layout\":\"@Internal Flash  "
                "/0x08000000/04*016Kg,01*064Kg,03*128Kg\",\"usb\":{\"dfu\":\"0483:df11\"}}"),
          -EBADMSG, "unknown reboot" },
        { BOARD("{\"id\":\"f446\",\"mcu\":\"m\",\"flash_base\":\"0x08000000\",\"flash_size\":524288,"
                "\"app_offset\":32768,\"ram_start\":536870912,\"ram_size\":131072,\"hints\":[1],"
                "\"layout\":\"@Internal Flash  "
                "/0x08000000/04*016Kg,01*064Kg,03*128Kg\",\"usb\":{\"dfu\":\"0483:df11\"}}"),
          -EBADMSG, "hints" },
};

static void test_parse_cases(void)
{
        for (size_t i = 0; i < ELEMENTSOF(parse_cases); i++) {
                Board b = {};
                char *err = NULL;
                int r;

                r = board_db_parse_board(parse_cases[i].json, strlen(parse_cases[i].json), &b, &err);
                if (r != parse_cases[i].ret)
                        fprintf(stderr, "case %zu: %s\n", i, strna(err));
                CHECK_INT(r, parse_cases[i].ret);
                if (r < 0 && parse_cases[i].error) {
                        CHECK(err && strstr(err, parse_cases[i].error));
                        if (err && !strstr(err, parse_cases[i].error))
                                fprintf(stderr, "case %zu: \"%s\" lacks \"%s\"\n", i, err,
                                        parse_cases[i].error);
                        CHECK(!b.name && !b.variants);
                } else if (r >= 0) {
                        CHECK_STR(b.name, "t");
                        CHECK_INT(b.n_variants, 1);
                        CHECK_INT(b.variants[0].ram_size, 0x20000);
                        CHECK_INT(b.variants[0].ram_start, 0x20000000);
                        CHECK_INT(b.variants[0].usb_dfu.pid, 0xdf11);
                        CHECK_INT(b.variants[0].usb_app.vid, 0);
                        CHECK_INT(b.variants[0].reboot, BOARD_REBOOT_MANUAL);
                        CHECK(b.variants[0].hints && !b.variants[0].hints[0]);
                }
                free(err);
                board_clear(&b);
        }
}

#define AVR_BOARD(bl, avr)                                                                             \
        "{\"name\":\"t\",\"title\":\"tt\",\"bootloader\":\"" bl "\",\"reboot\":\"dtr\",\"variants\":[" \
        "{\"id\":\"m\",\"mcu\":\"atmega2560\",\"flash_base\":0,\"flash_size\":262144,"                 \
        "\"app_offset\":0,\"ram_start\":\"0x800200\",\"ram_size\":8192,"                               \
        "\"layout\":\"@Flash /0x00000000/1024*256 g\",\"usb\":{\"app\":\"2341:0042\"}" avr "}]}"

/* The "avr" object: required by the AVR bootloaders, refused elsewhere. */
static void test_parse_avr(void)
{
        static const struct {
                const char *json;
                int ret;
                const char *error;
        } cases[] = {
                { AVR_BOARD("stk500v2", ",\"avr\":{\"signature\":\"1e9801\",\"page_size\":256,"
                                        "\"boot_size\":8192,\"baud\":115200}"),
                  0, NULL },
                { AVR_BOARD("stk500v2", ""), -EBADMSG, "\"avr\"" },
                { AVR_BOARD("rom-dfu", ",\"avr\":{\"signature\":\"1e9801\",\"page_size\":256,"
                                       "\"boot_size\":8192,\"baud\":115200}"),
                  -EBADMSG, "belongs to" },
                { AVR_BOARD("stk500v1", ",\"avr\":{\"signature\":\"1e98\",\"page_size\":256,"
                                        "\"boot_size\":8192,\"baud\":115200}"),
                  -EBADMSG, "signature" },
                { AVR_BOARD("stk500v1", ",\"avr\":{\"signature\":\"1e98zz\",\"page_size\":256,"
                                        "\"boot_size\":8192,\"baud\":115200}"),
                  -EBADMSG, "signature" },
                { AVR_BOARD("stk500v2", ",\"avr\":{\"signature\":\"1e9801\",\"page_size\":200,"
                                        "\"boot_size\":8192,\"baud\":115200}"),
                  -EBADMSG, "page_size" },
                { AVR_BOARD("stk500v2", ",\"avr\":{\"signature\":\"1e9801\",\"page_size\":256,"
                                        "\"boot_size\":262144,\"baud\":115200}"),
                  -EBADMSG, "boot_size" },
                { AVR_BOARD("stk500v2", ",\"avr\":{\"signature\":\"1e9801\",\"page_size\":256,"
                                        "\"boot_size\":8192,\"baud\":0}"),
                  -EBADMSG, "baud" },
                { AVR_BOARD("stk500v2", ",\"avr\":{\"signature\":\"1e9801\",\"page_size\":256,"
                                        "\"boot_size\":8192,\"baud\":115200,\"fuse\":1}"),
                  -EBADMSG, "fuse" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Board b = {};
                char *err = NULL;
                int r = board_db_parse_board(cases[i].json, strlen(cases[i].json), &b, &err);
                if (r != cases[i].ret)
                        fprintf(stderr, "avr case %zu: %s\n", i, strna(err));
                CHECK_INT(r, cases[i].ret);
                if (r < 0)
                        CHECK(err && strstr(err, cases[i].error));
                else {
                        CHECK_INT(b.bootloader, BOARD_BOOTLOADER_STK500V2);
                        CHECK(b.variants[0].avr.present);
                        CHECK(memcmp(b.variants[0].avr.signature, "\x1e\x98\x01", 3) == 0);
                        CHECK_INT(b.variants[0].avr.page_size, 256);
                        CHECK_INT(b.variants[0].avr.boot_size, 8192);
                        CHECK_INT(b.variants[0].avr.baud, 115200);
                        CHECK_INT(b.variants[0].reboot, BOARD_REBOOT_DTR);
                }
                free(err);
                board_clear(&b);
        }
}

static void write_file(const char *dir, const char *name, const char *content)
{
        _cleanup_free_ char *path = NULL;
        FILE *f;

        CHECK(asprintf(&path, "%s/%s", dir, name) > 0);
        f = fopen(path, "we");
        CHECK(f);
        if (!f)
                return;
        fputs(content, f);
        fclose(f);
}

static void remove_dir(const char *dir, const char *const *names)
{
        for (const char *const *n = names; *n; n++) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/%s", dir, *n) > 0)
                        (void)unlink(path);
        }
        (void)rmdir(dir);
}

/* /etc/flashd/boards.d replaces installed files by file name. */
static void test_override(const BoardDb *shipped)
{
        char tmp[] = "/tmp/test-board-db-XXXXXX";
        const char *names[] = { "octopus-pro.json", "zz-extra.json", "notjson.txt", "broken.json", NULL };
        BoardDb *db = NULL;
        char *err = NULL;
        const Board *b;

        CHECK(mkdtemp(tmp));
        write_file(tmp, "octopus-pro.json",
                   "{\"name\":\"octopus-pro\",\"title\":\"Local Octopus Pro\",\"bootloader\":\"katapult\","
                   "\"reboot\":\"usb-1200\",\"hints\":[\"local hint\"],\"variants\":[" GOOD_VARIANT "]}");
        write_file(tmp, "zz-extra.json",
                   "{\"name\":\"zz-extra\",\"title\":\"Extra\",\"bootloader\":\"rom-dfu\",\"reboot\":"
                   "\"manual\","
                   "\"variants\":[" GOOD_VARIANT "]}");
        write_file(tmp, "notjson.txt", "not a board");

        const char *dirs[] = { boards_dir(), "/nonexistent/flashd-boards.d", tmp, NULL };
        CHECK_INT(board_db_load(&db, dirs, &err), 0);
        if (db) {
                CHECK_INT(db->n_boards, shipped->n_boards + 1);
                b = board_db_find(db, "octopus-pro");
                CHECK(b);
                if (b) {
                        CHECK_STR(b->title, "Local Octopus Pro");
                        CHECK_INT(b->bootloader, BOARD_BOOTLOADER_KATAPULT);
                        CHECK(strncmp(b->source_path, tmp, strlen(tmp)) == 0);
                        CHECK_INT(b->n_variants, 1);
                        CHECK_STR(b->variants[0].hints[0], "local hint");
                        CHECK(!b->variants[0].hints[1]);
                }
                CHECK(board_db_find(db, "zz-extra"));
                b = board_db_find(db, "octopus");
                CHECK(b && strncmp(b->source_path, tmp, strlen(tmp)) != 0);
        }
        db = board_db_free(db);
        free(err);
        err = NULL;

        /* A broken file refuses the whole load and names itself. */
        write_file(tmp, "broken.json", "{\"name\": \"broken\",");
        CHECK_INT(board_db_load(&db, dirs, &err), -EBADMSG);
        CHECK(!db);
        CHECK(err && strstr(err, "broken.json"));
        free(err);
        err = NULL;

        /* A second file defining an existing board name is an error. */
        write_file(
                tmp, "broken.json",
                "{\"name\":\"octopus\",\"title\":\"Dup\",\"bootloader\":\"rom-dfu\",\"reboot\":\"manual\","
                "\"variants\":[" GOOD_VARIANT "]}");
        CHECK_INT(board_db_load(&db, dirs, &err), -EBADMSG);
        CHECK(err && strstr(err, "already defined"));
        free(err);
        err = NULL;

        /* No directories at all: an empty database. */
        const char *none[] = { "/nonexistent/a", NULL };
        CHECK_INT(board_db_load(&db, none, NULL), 0);
        CHECK(db && db->n_boards == 0);
        db = board_db_free(db);

        remove_dir(tmp, names);
}

int main(void)
{
        BoardDb *db = load_shipped();

        test_enums();
        test_parse_cases();
        test_parse_avr();
        if (db) {
                test_validate_all(db);
                test_expected(db);
                test_find_match(db);
                test_override(db);
        }
        board_db_free(db);
        TESTS_EXIT();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The board database. Parsing is strict: a file with an unknown key, a
 * missing field or an inconsistent variant (application offset outside the
 * flash, a fallback layout that does not describe the flash) is refused with
 * a message naming the file and the field, because a wrong board entry is
 * how a bootloader gets erased.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boards/board-db.h"
#include "config.h" /* generated: the installed and the build tree's board data */
#include "codec/codec-util.h"
#include "codec/dfuse-layout.h"
#include "util/macros.h"

/* Board files are a few KiB; anything much larger is not a board file. */
#define BOARD_FILE_MAX_SIZE (1024 * 1024)

static const char *const bootloader_table[_BOARD_BOOTLOADER_MAX] = {
        [BOARD_BOOTLOADER_ROM_DFU] = "rom-dfu",   [BOARD_BOOTLOADER_KATAPULT] = "katapult",
        [BOARD_BOOTLOADER_DFU] = "dfu",           [BOARD_BOOTLOADER_BOOTSEL] = "bootsel",
        [BOARD_BOOTLOADER_STK500V2] = "stk500v2", [BOARD_BOOTLOADER_STK500V1] = "stk500v1",
};

static const char *const reboot_table[_BOARD_REBOOT_MAX] = {
        [BOARD_REBOOT_USB_1200] = "usb-1200",
        [BOARD_REBOOT_UART_REQUEST] = "uart-request",
        [BOARD_REBOOT_MANUAL] = "manual",
        [BOARD_REBOOT_DTR] = "dtr",
};

const char *board_bootloader_to_string(BoardBootloader b)
{
        if (b < 0 || b >= _BOARD_BOOTLOADER_MAX)
                return NULL;
        return bootloader_table[b];
}

BoardBootloader board_bootloader_from_string(const char *s)
{
        return (BoardBootloader)string_table_lookup(bootloader_table, _BOARD_BOOTLOADER_MAX, s);
}

const char *board_reboot_to_string(BoardReboot r)
{
        if (r < 0 || r >= _BOARD_REBOOT_MAX)
                return NULL;
        return reboot_table[r];
}

BoardReboot board_reboot_from_string(const char *s)
{
        return (BoardReboot)string_table_lookup(reboot_table, _BOARD_REBOOT_MAX, s);
}

static void strv_free(char **l)
{
        for (char **i = l; i && *i; i++)
                free(*i);
        free(l);
}

static void board_variant_clear(BoardVariant *v)
{
        free(v->id);
        free(v->mcu);
        free(v->layout);
        dfuse_layout_free(v->flash_layout);
        strv_free(v->hints);
        *v = (BoardVariant){};
}

void board_clear(Board *b)
{
        if (!b)
                return;
        free(b->name);
        free(b->title);
        for (size_t i = 0; i < b->n_variants; i++)
                board_variant_clear(&b->variants[i]);
        free(b->variants);
        free(b->source_path);
        *b = (Board){};
}

BoardDb *board_db_free(BoardDb *db)
{
        if (!db)
                return NULL;
        for (size_t i = 0; i < db->n_boards; i++)
                board_clear(&db->boards[i]);
        free(db->boards);
        free(db);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(BoardDb *, board_db_free);

/* Every parse error is -EBADMSG with a sentence naming the file's field. */
#define errorf(ret_error, ...) codec_message((ret_error), -EBADMSG, __VA_ARGS__)

/* Lower-case letters, digits and inner dashes: what a person types. */
static bool name_is_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > 64 || s[0] == '-' || s[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return false;
        return true;
}

/* A variant id may name a revision with dots ("v1.2"); never at either end. */
static bool variant_id_is_valid(const char *s)
{
        _cleanup_free_ char *t = strdup(s);
        size_t n = strlen(s);

        if (!t || n == 0 || s[0] == '.' || s[n - 1] == '.')
                return false;
        for (char *p = t; *p; p++)
                if (*p == '.')
                        *p = '-';
        return name_is_valid(t);
}

/* Keys starting with "_" are comments; anything else not in `allowed` is a typo. */
static int check_keys(json_t *obj, const char *const *allowed, const char *where, char **ret_error)
{
        const char *key;
        json_t *value;

        json_object_foreach (obj, key, value) {
                bool ok = key[0] == '_';
                for (const char *const *a = allowed; !ok && *a; a++)
                        ok = streq(*a, key);
                if (!ok)
                        return errorf(ret_error, "%s: unknown key \"%s\"", where, key);
        }
        return 0;
}

static int get_string(json_t *obj, const char *key, bool required, const char *where, char **ret,
                      char **ret_error)
{
        json_t *v = json_object_get(obj, key);
        char *s;

        if (!v) {
                if (required)
                        return errorf(ret_error, "%s: \"%s\" is missing", where, key);
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            strlen(json_string_value(v)) != json_string_length(v))
                return errorf(ret_error, "%s: \"%s\" must be a non-empty string", where, key);
        s = strdup(json_string_value(v));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 1;
}

/* A JSON integer or a "0x..." string, within 32 bits. */
static int get_u32(json_t *obj, const char *key, const char *where, uint32_t *ret, char **ret_error)
{
        json_t *v = json_object_get(obj, key);

        if (!v)
                return errorf(ret_error, "%s: \"%s\" is missing", where, key);
        if (json_is_integer(v)) {
                json_int_t i = json_integer_value(v);
                if (i < 0 || i > (json_int_t)UINT32_MAX)
                        return errorf(ret_error, "%s: \"%s\" is out of range", where, key);
                *ret = (uint32_t)i;
                return 0;
        }
        if (json_is_string(v)) {
                const char *s = json_string_value(v);
                unsigned long long x;
                char *end;

                if ((s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) || s[2] == 0 || strlen(s) > 10)
                        return errorf(ret_error, "%s: \"%s\" must be a number or a \"0x...\" string", where,
                                      key);
                errno = 0;
                x = strtoull(s + 2, &end, 16);
                if (errno != 0 || *end != 0 || s[2] == '-' || s[2] == '+' || s[2] == ' ' || x > UINT32_MAX)
                        return errorf(ret_error, "%s: \"%s\" is not a valid hex number", where, key);
                *ret = (uint32_t)x;
                return 0;
        }
        return errorf(ret_error, "%s: \"%s\" must be a number or a \"0x...\" string", where, key);
}

/* "vvvv:pppp", four lower- or upper-case hex digits each. */
static bool parse_usb_id(const char *s, BoardUsbId *ret)
{
        uint32_t v[2] = {};

        if (strlen(s) != 9 || s[4] != ':')
                return false;
        for (size_t i = 0; i < 9; i++) {
                int d;

                if (i == 4)
                        continue;
                d = codec_unhex(s[i]);
                if (d < 0)
                        return false;
                v[i > 4] = (v[i > 4] << 4) | (uint32_t)d;
        }
        if (v[0] == 0)
                return false;
        *ret = (BoardUsbId){ .vid = (uint16_t)v[0], .pid = (uint16_t)v[1] };
        return true;
}

static int parse_usb(json_t *obj, const char *where, BoardVariant *v, char **ret_error)
{
        static const char *const keys[] = { "app", "dfu", "katapult", "bootsel", NULL };
        BoardUsbId *targets[] = { &v->usb_app, &v->usb_dfu, &v->usb_katapult, &v->usb_bootsel };
        json_t *usb = json_object_get(obj, "usb");
        int r;

        if (!usb)
                return errorf(ret_error, "%s: \"usb\" is missing", where);
        if (!json_is_object(usb))
                return errorf(ret_error, "%s: \"usb\" must be an object", where);
        r = check_keys(usb, keys, where, ret_error);
        if (r < 0)
                return r;
        for (size_t i = 0; keys[i]; i++) {
                json_t *id = json_object_get(usb, keys[i]);
                if (!id)
                        continue;
                if (!json_is_string(id) || !parse_usb_id(json_string_value(id), targets[i]))
                        return errorf(ret_error, "%s: usb \"%s\" must be a \"vvvv:pppp\" hex id", where,
                                      keys[i]);
        }
        if (v->usb_app.vid == 0 && v->usb_dfu.vid == 0 && v->usb_katapult.vid == 0 &&
            v->usb_bootsel.vid == 0)
                return errorf(ret_error, "%s: \"usb\" names no id", where);
        return 0;
}

static int strv_append(char ***l, const char *s)
{
        size_t n = 0;
        char **nl;

        while (*l && (*l)[n])
                n++;
        nl = reallocarray(*l, n + 2, sizeof(char *));
        if (!nl)
                return -ENOMEM;
        *l = nl;
        nl[n] = strdup(s);
        nl[n + 1] = NULL;
        return nl[n] ? 0 : -ENOMEM;
}

/* Append the strings of a JSON array to a NULL-terminated list. */
static int strv_extend_json(char ***l, json_t *arr, const char *where, char **ret_error)
{
        size_t idx;
        json_t *item;
        int r;

        if (!arr)
                return 0;
        if (!json_is_array(arr))
                return errorf(ret_error, "%s: \"hints\" must be an array of strings", where);
        json_array_foreach (arr, idx, item) {
                if (!json_is_string(item) || json_string_length(item) == 0 ||
                    strlen(json_string_value(item)) != json_string_length(item))
                        return errorf(ret_error, "%s: \"hints\" must be an array of non-empty strings",
                                      where);
                r = strv_append(l, json_string_value(item));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The fallback layout must describe exactly this flash, with the
 * application offset on a sector boundary (erasing the first application
 * sector must not touch the bootloader). */
static int check_variant_layout(BoardVariant *v, const char *where, char **ret_error)
{
        _cleanup_(dfuse_layout_freep) DfuseLayout *l = NULL;
        uint32_t start = 0;
        uint64_t total;
        bool found, first_region_ok;
        int r;

        r = dfuse_layout_parse(v->layout, strlen(v->layout), &l);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return errorf(ret_error, "%s: \"layout\" is not a DfuSe layout string", where);
        total = dfuse_layout_total_size(l);
        first_region_ok = l->regions[0].address == v->flash_base;
        found = dfuse_layout_find_sector(l, v->flash_base + v->app_offset, NULL, &start, NULL);
        if (l->truncated)
                return errorf(ret_error, "%s: \"layout\" has trailing text that is not part of the layout",
                              where);
        if (!first_region_ok)
                return errorf(ret_error, "%s: \"layout\" does not start at flash_base 0x%08x", where,
                              v->flash_base);
        if (total != v->flash_size)
                return errorf(ret_error, "%s: \"layout\" describes %llu bytes, flash_size is %u", where,
                              (unsigned long long)total, v->flash_size);
        if (!found || start != v->flash_base + v->app_offset)
                return errorf(ret_error, "%s: app_offset 0x%x is not on a sector boundary of the layout",
                              where, v->app_offset);
        v->flash_layout = TAKE_PTR(l);
        return 0;
}

static bool board_bootloader_is_avr(BoardBootloader b)
{
        return b == BOARD_BOOTLOADER_STK500V2 || b == BOARD_BOOTLOADER_STK500V1;
}

/* "avr": the facts the serial bootloaders need; required exactly for the
 * AVR bootloaders. */
static int parse_avr(json_t *obj, const char *where, BoardBootloader bl, BoardVariant *v, char **ret_error)
{
        static const char *const keys[] = { "signature", "page_size", "boot_size", "baud", NULL };
        json_t *avr = json_object_get(obj, "avr");
        json_t *sig;
        const char *s;
        int r;

        if (!board_bootloader_is_avr(bl)) {
                if (avr)
                        return errorf(ret_error, "%s: \"avr\" belongs to the stk500v2/stk500v1 bootloaders",
                                      where);
                return 0;
        }
        if (!json_is_object(avr))
                return errorf(ret_error, "%s: \"avr\" (signature, page_size, boot_size, baud) is missing",
                              where);
        r = check_keys(avr, keys, where, ret_error);
        if (r < 0)
                return r;
        sig = json_object_get(avr, "signature");
        s = json_string_value(sig);
        if (!s || strlen(s) != 6)
                return errorf(ret_error, "%s: avr \"signature\" must be 6 hex digits (\"1e9801\")", where);
        for (size_t i = 0; i < 3; i++) {
                int hi = codec_unhex(s[2 * i]), lo = codec_unhex(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return errorf(ret_error, "%s: avr \"signature\" must be 6 hex digits", where);
                v->avr.signature[i] = (uint8_t)(hi << 4 | lo);
        }
        if ((r = get_u32(avr, "page_size", where, &v->avr.page_size, ret_error)) < 0 ||
            (r = get_u32(avr, "boot_size", where, &v->avr.boot_size, ret_error)) < 0 ||
            (r = get_u32(avr, "baud", where, &v->avr.baud, ret_error)) < 0)
                return r;
        if (v->avr.page_size == 0 || v->avr.page_size > 256 || (v->avr.page_size & (v->avr.page_size - 1)) ||
            v->flash_size % v->avr.page_size != 0)
                return errorf(ret_error,
                              "%s: avr \"page_size\" must be a power of two up to 256 dividing flash_size",
                              where);
        if (v->avr.boot_size >= v->flash_size || v->avr.boot_size % v->avr.page_size != 0)
                return errorf(ret_error, "%s: avr \"boot_size\" must be whole pages below flash_size",
                              where);
        if (v->avr.baud == 0)
                return errorf(ret_error, "%s: avr \"baud\" must not be 0", where);
        v->avr.present = true;
        return 0;
}

static int parse_variant(json_t *obj, const char *board_where, size_t index, char **board_hints,
                         BoardReboot board_reboot, BoardBootloader bl, BoardVariant *ret, char **ret_error)
{
        static const char *const keys[] = { "id",         "mcu",       "flash_base", "flash_size",
                                            "app_offset", "ram_start", "ram_size",   "layout",
                                            "usb",        "reboot",    "hints",      "avr",
                                            NULL };
        _cleanup_(board_variant_clear) BoardVariant v = {};
        _cleanup_free_ char *where = NULL, *reboot = NULL;
        int r;

        if (asprintf(&where, "%s: variants[%zu]", board_where, index) < 0)
                return -ENOMEM;
        if (!json_is_object(obj))
                return errorf(ret_error, "%s: must be an object", where);
        r = check_keys(obj, keys, where, ret_error);
        if (r < 0)
                return r;

        r = get_string(obj, "id", true, where, &v.id, ret_error);
        if (r < 0)
                return r;
        if (!variant_id_is_valid(v.id))
                return errorf(ret_error, "%s: id \"%s\" must be lower-case letters, digits, dashes and dots",
                              where, v.id);
        free(where);
        if (asprintf(&where, "%s: variant \"%s\"", board_where, v.id) < 0) {
                where = NULL;
                return -ENOMEM;
        }

        r = get_string(obj, "mcu", true, where, &v.mcu, ret_error);
        if (r < 0)
                return r;
        if ((r = get_u32(obj, "flash_base", where, &v.flash_base, ret_error)) < 0 ||
            (r = get_u32(obj, "flash_size", where, &v.flash_size, ret_error)) < 0 ||
            (r = get_u32(obj, "app_offset", where, &v.app_offset, ret_error)) < 0 ||
            (r = get_u32(obj, "ram_start", where, &v.ram_start, ret_error)) < 0 ||
            (r = get_u32(obj, "ram_size", where, &v.ram_size, ret_error)) < 0)
                return r;

        if (v.flash_size == 0 || (uint64_t)v.flash_base + v.flash_size > (uint64_t)UINT32_MAX + 1)
                return errorf(ret_error, "%s: flash_base/flash_size do not describe memory", where);
        if (v.app_offset >= v.flash_size)
                return errorf(ret_error, "%s: app_offset 0x%x is not inside the %u bytes of flash", where,
                              v.app_offset, v.flash_size);
        if (v.ram_size == 0 || (uint64_t)v.ram_start + v.ram_size > (uint64_t)UINT32_MAX + 1)
                return errorf(ret_error, "%s: ram_start/ram_size do not describe memory", where);
        if ((uint64_t)v.ram_start < (uint64_t)v.flash_base + v.flash_size &&
            v.flash_base < (uint64_t)v.ram_start + v.ram_size)
                return errorf(ret_error, "%s: RAM overlaps flash", where);

        r = get_string(obj, "layout", true, where, &v.layout, ret_error);
        if (r < 0)
                return r;
        r = check_variant_layout(&v, where, ret_error);
        if (r < 0)
                return r;

        r = parse_usb(obj, where, &v, ret_error);
        if (r < 0)
                return r;
        r = parse_avr(obj, where, bl, &v, ret_error);
        if (r < 0)
                return r;

        v.reboot = board_reboot;
        r = get_string(obj, "reboot", false, where, &reboot, ret_error);
        if (r < 0)
                return r;
        if (reboot) {
                v.reboot = board_reboot_from_string(reboot);
                if (v.reboot < 0)
                        return errorf(ret_error, "%s: unknown reboot method \"%s\"", where, reboot);
        }

        /* Board hints first, then the variant's own. */
        v.hints = calloc(1, sizeof(char *));
        if (!v.hints)
                return -ENOMEM;
        for (char **h = board_hints; h && *h; h++) {
                r = strv_append(&v.hints, *h);
                if (r < 0)
                        return r;
        }
        r = strv_extend_json(&v.hints, json_object_get(obj, "hints"), where, ret_error);
        if (r < 0)
                return r;

        *ret = v;
        v = (BoardVariant){};
        return 0;
}

int board_db_parse_board(const char *json, size_t len, Board *ret, char **ret_error)
{
        static const char *const keys[] = { "name",  "title",    "bootloader", "reboot",
                                            "hints", "variants", NULL };
        _cleanup_(board_clear) Board b = {};
        json_auto_t *root = NULL;
        _cleanup_free_ char *bootloader = NULL, *reboot = NULL, *where = NULL;
        char **board_hints = NULL;
        json_error_t jerr;
        json_t *variants, *item;
        BoardReboot board_reboot;
        size_t idx;
        int r;

        if (!json || !ret)
                return -EINVAL;

        root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return errorf(ret_error, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        if (!json_is_object(root))
                return errorf(ret_error, "the file must hold one JSON object");
        r = check_keys(root, keys, "board", ret_error);
        if (r < 0)
                return r;

        r = get_string(root, "name", true, "board", &b.name, ret_error);
        if (r < 0)
                return r;
        if (!name_is_valid(b.name))
                return errorf(ret_error, "board name \"%s\" must be lower-case letters, digits and dashes",
                              b.name);
        if (asprintf(&where, "board \"%s\"", b.name) < 0) {
                where = NULL;
                return -ENOMEM;
        }

        r = get_string(root, "title", true, where, &b.title, ret_error);
        if (r < 0)
                return r;
        r = get_string(root, "bootloader", true, where, &bootloader, ret_error);
        if (r < 0)
                return r;
        b.bootloader = board_bootloader_from_string(bootloader);
        if (b.bootloader < 0)
                return errorf(ret_error, "%s: unknown bootloader \"%s\"", where, bootloader);
        r = get_string(root, "reboot", true, where, &reboot, ret_error);
        if (r < 0)
                return r;
        board_reboot = board_reboot_from_string(reboot);
        if (board_reboot < 0)
                return errorf(ret_error, "%s: unknown reboot method \"%s\"", where, reboot);

        r = strv_extend_json(&board_hints, json_object_get(root, "hints"), where, ret_error);
        if (r < 0) {
                strv_free(board_hints);
                return r;
        }

        variants = json_object_get(root, "variants");
        if (!json_is_array(variants) || json_array_size(variants) == 0) {
                strv_free(board_hints);
                return errorf(ret_error, "%s: \"variants\" must be a non-empty array", where);
        }
        b.variants = calloc(json_array_size(variants), sizeof(BoardVariant));
        if (!b.variants) {
                strv_free(board_hints);
                return -ENOMEM;
        }
        json_array_foreach (variants, idx, item) {
                r = parse_variant(item, where, idx, board_hints, board_reboot, b.bootloader,
                                  &b.variants[idx], ret_error);
                if (r < 0) {
                        strv_free(board_hints);
                        return r;
                }
                b.n_variants++;
                for (size_t j = 0; j < idx; j++)
                        if (streq(b.variants[j].id, b.variants[idx].id)) {
                                strv_free(board_hints);
                                return errorf(ret_error, "%s: variant id \"%s\" appears twice", where,
                                              b.variants[idx].id);
                        }
        }
        strv_free(board_hints);

        *ret = b;
        b = (Board){};
        return 0;
}

static int read_file(const char *path, char **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if (st.st_size > BOARD_FILE_MAX_SIZE)
                return -EFBIG;
        buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (len < (size_t)st.st_size) {
                ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

typedef struct BoardFile {
        char *name; /* file name, the override key */
        char *path;
} BoardFile;

static int board_file_compare(const void *a, const void *b)
{
        return strcmp(((const BoardFile *)a)->name, ((const BoardFile *)b)->name);
}

static void board_files_free(BoardFile *files, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(files[i].name);
                free(files[i].path);
        }
        free(files);
}

static bool has_json_suffix(const char *name)
{
        size_t n = strlen(name);
        return n > 5 && streq(name + n - 5, ".json") && name[0] != '.';
}

/* Collect *.json of one directory into files[], replacing entries with the same file name. */
static int collect_dir(const char *dir, BoardFile **files, size_t *n_files, char **ret_error)
{
        DIR *d;
        struct dirent *de;
        int r = 0;

        d = opendir(dir);
        if (!d) {
                if (errno == ENOENT)
                        return 0;
                r = -errno;
                if (ret_error &&
                    asprintf(ret_error, "%s: cannot open board directory: %s", dir, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        while ((errno = 0, de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *name = NULL;
                size_t i;

                if (!has_json_suffix(de->d_name))
                        continue;
                if (asprintf(&path, "%s/%s", dir, de->d_name) < 0 || !(name = strdup(de->d_name))) {
                        path = NULL;
                        r = -ENOMEM;
                        break;
                }
                for (i = 0; i < *n_files; i++)
                        if (streq((*files)[i].name, name))
                                break;
                if (i < *n_files) {
                        free((*files)[i].path);
                        (*files)[i].path = TAKE_PTR(path);
                        continue;
                }
                BoardFile *nf = reallocarray(*files, *n_files + 1, sizeof(BoardFile));
                if (!nf) {
                        r = -ENOMEM;
                        break;
                }
                *files = nf;
                (*files)[(*n_files)++] = (BoardFile){ .name = TAKE_PTR(name), .path = TAKE_PTR(path) };
        }
        if (r == 0 && errno != 0)
                r = -errno;
        closedir(d);
        return r;
}

int board_db_load(BoardDb **ret, const char *const *dirs, char **ret_error)
{
        _cleanup_(board_db_freep) BoardDb *db = NULL;
        BoardFile *files = NULL;
        size_t n_files = 0;
        int r = 0;

        if (!ret)
                return -EINVAL;

        for (const char *const *d = dirs; d && *d; d++) {
                r = collect_dir(*d, &files, &n_files, ret_error);
                if (r < 0) {
                        board_files_free(files, n_files);
                        return r;
                }
        }
        if (n_files > 0)
                qsort(files, n_files, sizeof(BoardFile), board_file_compare);

        db = calloc(1, sizeof(*db));
        if (!db || (n_files > 0 && !(db->boards = calloc(n_files, sizeof(Board))))) {
                board_files_free(files, n_files);
                return -ENOMEM;
        }

        for (size_t i = 0; i < n_files; i++) {
                _cleanup_free_ char *content = NULL, *err = NULL;
                size_t len = 0;
                Board b = {};

                r = read_file(files[i].path, &content, &len);
                if (r == -ENOMEM)
                        break;
                if (r < 0) {
                        if (ret_error && asprintf(ret_error, "%s: cannot read board file: %s", files[i].path,
                                                  strerror(-r)) < 0)
                                *ret_error = NULL;
                        break;
                }
                r = board_db_parse_board(content, len, &b, &err);
                if (r < 0) {
                        if (r != -ENOMEM && ret_error &&
                            asprintf(ret_error, "%s: %s", files[i].path, strna(err)) < 0)
                                *ret_error = NULL;
                        break;
                }
                b.source_path = strdup(files[i].path);
                if (!b.source_path) {
                        board_clear(&b);
                        r = -ENOMEM;
                        break;
                }
                for (size_t j = 0; j < db->n_boards; j++)
                        if (streq(db->boards[j].name, b.name)) {
                                if (ret_error &&
                                    asprintf(ret_error, "%s: board \"%s\" is already defined by %s",
                                             files[i].path, b.name, db->boards[j].source_path) < 0)
                                        *ret_error = NULL;
                                board_clear(&b);
                                r = -EBADMSG;
                                break;
                        }
                if (r < 0)
                        break;
                db->boards[db->n_boards++] = b;
        }
        board_files_free(files, n_files);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(db);
        return 0;
}

/* Whether this process is the flashd binary in the build tree: the build
 * tree's binary is never installed (meson install copies it), so a match
 * means "not installed", whatever the prefix. */
static bool running_from_build_tree(void)
{
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        size_t root = strlen(FLASHD_BUILD_ROOT);

        if (n <= 0)
                return false;
        exe[n] = '\0';
        return strncmp(exe, FLASHD_BUILD_ROOT, root) == 0 && exe[root] == '/';
}

const char *const *board_db_default_dirs(void)
{
        static const char *const installed[] = { FLASHD_BOARDS_DATADIR, FLASHD_BOARDS_CONFDIR, NULL };
        static const char *const uninstalled[] = { FLASHD_SOURCE_BOARDS_DIR, FLASHD_BOARDS_CONFDIR, NULL };

        return running_from_build_tree() ? uninstalled : installed;
}

char *board_db_dirs_to_string(const char *const *dirs)
{
        size_t len = 1;
        char *s;

        for (const char *const *d = dirs; d && *d; d++)
                len += strlen(*d) + 2;
        s = calloc(1, len);
        if (!s)
                return NULL;
        for (const char *const *d = dirs; d && *d; d++) {
                if (d != dirs)
                        strcat(s, ", ");
                strcat(s, *d);
        }
        return s;
}

const Board *board_db_find(const BoardDb *db, const char *name)
{
        if (!db || !name)
                return NULL;
        for (size_t i = 0; i < db->n_boards; i++)
                if (streq(db->boards[i].name, name))
                        return &db->boards[i];
        return NULL;
}

const BoardVariant *board_find_variant(const Board *b, const char *id)
{
        if (!b || !id)
                return NULL;
        for (size_t i = 0; i < b->n_variants; i++)
                if (streq(b->variants[i].id, id))
                        return &b->variants[i];
        return NULL;
}

int board_db_find_variant(const BoardDb *db, const char *name, const Board **ret_board,
                          const BoardVariant **ret_variant)
{
        if (!db || !name)
                return -EINVAL;
        for (size_t i = 0; i < db->n_boards; i++) {
                const Board *b = &db->boards[i];
                size_t n = strlen(b->name);
                const BoardVariant *v;

                if (strncmp(name, b->name, n) != 0 || name[n] != '-')
                        continue;
                v = board_find_variant(b, name + n + 1);
                if (!v)
                        continue;
                if (ret_board)
                        *ret_board = b;
                if (ret_variant)
                        *ret_variant = v;
                return 0;
        }
        return -ENOENT;
}

size_t board_db_match_mcu(const BoardDb *db, const char *mcu, const BoardVariant **ret_variants,
                          const Board **ret_boards, size_t max)
{
        size_t n = 0;

        if (!db || !mcu)
                return 0;
        for (size_t i = 0; i < db->n_boards; i++)
                for (size_t j = 0; j < db->boards[i].n_variants && n < max; j++) {
                        if (strcasecmp(db->boards[i].variants[j].mcu, mcu) != 0)
                                continue;
                        if (ret_variants)
                                ret_variants[n] = &db->boards[i].variants[j];
                        if (ret_boards)
                                ret_boards[n] = &db->boards[i];
                        n++;
                }
        return n;
}

static bool usb_id_equal(BoardUsbId id, uint16_t vid, uint16_t pid)
{
        return id.vid != 0 && id.vid == vid && id.pid == pid;
}

size_t board_db_match_usb(const BoardDb *db, uint16_t vid, uint16_t pid, const BoardVariant **ret_variants,
                          const Board **ret_boards, size_t max)
{
        size_t n = 0;

        if (!db)
                return 0;
        for (size_t i = 0; i < db->n_boards; i++)
                for (size_t j = 0; j < db->boards[i].n_variants && n < max; j++) {
                        const BoardVariant *v = &db->boards[i].variants[j];

                        if (!usb_id_equal(v->usb_app, vid, pid) && !usb_id_equal(v->usb_dfu, vid, pid) &&
                            !usb_id_equal(v->usb_katapult, vid, pid) &&
                            !usb_id_equal(v->usb_bootsel, vid, pid))
                                continue;
                        if (ret_variants)
                                ret_variants[n] = v;
                        if (ret_boards)
                                ret_boards[n] = &db->boards[i];
                        n++;
                }
        return n;
}

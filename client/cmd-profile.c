/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * flashctl profile add|list|show|remove|menuconfig: Klipper build profiles
 * (profile.* methods). A profile is a Klipper .config plus the board it is
 * for; the daemon keeps a copy, so the file given to `add` may go away.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flashctl.h"
#include "util/macros.h"
#include "output.h"

#define KCONFIG_MAX (256U * 1024U)

static int read_file(const char *path, char **ret, size_t *ret_len)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char *buf;
        size_t n;

        if (!f)
                return -errno;
        buf = malloc(KCONFIG_MAX + 1);
        if (!buf)
                return -ENOMEM;
        n = fread(buf, 1, KCONFIG_MAX + 1, f);
        if (n > KCONFIG_MAX) {
                free(buf);
                return -EFBIG;
        }
        buf[n] = '\0';
        *ret = buf;
        *ret_len = n;
        return 0;
}

static void print_profile(const json_t *p)
{
        printf("%-16s board %-16s mcu %-8s %s\n", strna(output_json_str(p, "name")),
               strna(output_json_str(p, "board")), strna(output_json_str(p, "mcu_name")),
               strna(output_json_str(p, "mcu")));
}

static int profile_add(Flashctl *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                { "board", required_argument, NULL, 'b' },   { "mcu-name", required_argument, NULL, 'm' },
                { "kconfig", required_argument, NULL, 'k' }, { "replace", no_argument, NULL, 'r' },
                { "help", no_argument, NULL, 'h' },          {},
        };
        const char *board = NULL, *mcu_name = NULL, *kconfig = NULL;
        _cleanup_free_ char *text = NULL;
        json_auto_t *params = NULL, *result = NULL;
        bool replace = false;
        size_t len = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "b:m:k:rh", options, NULL)) >= 0)
                switch (c) {
                case 'b':
                        board = optarg;
                        break;
                case 'm':
                        mcu_name = optarg;
                        break;
                case 'k':
                        kconfig = optarg;
                        break;
                case 'r':
                        replace = true;
                        break;
                default:
                        return flashctl_usage_error("profile", "see flashctl profile --help");
                }
        if (argc - optind != 1 || !board || !kconfig)
                return flashctl_usage_error(
                        "profile", "usage: profile add NAME --board BOARD [--mcu-name NAME] --kconfig FILE");
        r = read_file(kconfig, &text, &len);
        if (r < 0) {
                fprintf(stderr, "flashctl: cannot read %s: %s\n", kconfig, strerror(-r));
                return FLASHCTL_EXIT_USAGE;
        }
        params = json_pack("{s:s,s:s,s:s%,s:b}", "name", argv[optind], "board", board, "kconfig", text, len,
                           "replace", replace);
        if (!params)
                return flashctl_report_error(ctx, -ENOMEM, "profile");
        if (mcu_name)
                json_object_set_new(params, "mcu_name", json_string(mcu_name));
        r = flashctl_call(ctx, "profile.add", params, &result, NULL);
        if (r != 0)
                return r;
        if (ctx->json)
                return flashctl_print_json_exit(ctx, json_object_get(result, "profile"));
        print_profile(json_object_get(result, "profile"));
        return FLASHCTL_EXIT_OK;
}

static int profile_list(Flashctl *ctx, int argc, char **argv)
{
        json_auto_t *result = NULL;
        const json_t *arr;
        const json_t *p;
        size_t i;
        int r;

        if (argc != 1)
                return flashctl_usage_error("profile", "'profile list' takes no arguments");
        r = flashctl_call_list(ctx, "profile.list", NULL, "profiles", &result, &arr);
        if (r != FLASHCTL_LIST_TABLE)
                return r;
        if (json_array_size(arr) == 0)
                printf("No profiles: add one with flashctl profile add NAME --board BOARD --kconfig FILE\n");
        json_array_foreach (arr, i, p)
                print_profile(p);
        return FLASHCTL_EXIT_OK;
}

static int profile_by_name(Flashctl *ctx, int argc, char **argv, const char *method)
{
        json_auto_t *result = NULL, *params = NULL;
        int r;

        if (argc != 2)
                return flashctl_usage_error("profile", "'profile %s' needs exactly one profile NAME",
                                            argv[0]);
        params = json_pack("{s:s}", "name", argv[1]);
        if (!params)
                return flashctl_report_error(ctx, -ENOMEM, "profile");
        r = flashctl_call(ctx, method, params, &result, NULL);
        if (r != 0)
                return r;
        if (streq(method, "profile.remove")) {
                if (!ctx->json)
                        printf("removed %s\n", argv[1]);
                return ctx->json ? flashctl_print_json_exit(ctx, result) : FLASHCTL_EXIT_OK;
        }
        const json_t *p = json_object_get(result, "profile");
        if (ctx->json)
                return flashctl_print_json_exit(ctx, p);
        printf("Profile: %s\n  Board: %s\n    MCU: %s (printer.cfg [%s%s])\nKconfig: %s\n\n%s",
               strna(output_json_str(p, "name")), strna(output_json_str(p, "board")),
               strna(output_json_str(p, "mcu")),
               streq(output_json_str(p, "mcu_name") ?: "mcu", "mcu") ? "" : "mcu ",
               strna(output_json_str(p, "mcu_name")), strna(output_json_str(p, "kconfig")),
               output_json_str(p, "kconfig_text") ?: "");
        return FLASHCTL_EXIT_OK;
}

/*
 * Klipper's menuconfig on a copy of the profile's .config, on the user's
 * terminal and as the user (the daemon's copy may not be theirs to write),
 * then the result stored back with profile.add --replace.
 */
static int profile_menuconfig(Flashctl *ctx, int argc, char **argv)
{
        json_auto_t *shown = NULL, *status = NULL, *params = NULL, *added = NULL, *name = NULL;
        _cleanup_free_ char *text = NULL, *kconfig_arg = NULL;
        char tmpl[] = "/tmp/flashctl-menuconfig-XXXXXX";
        const json_t *p;
        const char *tree;
        size_t len = 0;
        int r, fd;

        if (argc != 2)
                return flashctl_usage_error("profile",
                                            "'profile menuconfig' needs exactly one profile NAME");
        name = json_pack("{s:s}", "name", argv[1]);
        r = flashctl_call(ctx, "profile.show", name, &shown, NULL);
        if (r != 0)
                return r;
        r = flashctl_call(ctx, "update.status", NULL, &status, NULL);
        if (r != 0)
                return r;
        p = json_object_get(shown, "profile");
        tree = output_json_str(status, "klipper_path");
        if (!tree) {
                fprintf(stderr,
                        "flashctl: the daemon knows no Klipper tree: set path in the [klipper] section\n");
                return FLASHCTL_EXIT_DAEMON_ERROR;
        }
        fd = mkstemp(tmpl);
        if (fd < 0)
                return flashctl_report_error(ctx, -errno, "menuconfig");
        const char *cfg = output_json_str(p, "kconfig_text") ?: "";
        if (write(fd, cfg, strlen(cfg)) != (ssize_t)strlen(cfg)) {
                close(fd);
                unlink(tmpl);
                return flashctl_report_error(ctx, -EIO, "menuconfig");
        }
        close(fd);
        if (asprintf(&kconfig_arg, "KCONFIG_CONFIG=%s", tmpl) < 0)
                return flashctl_report_error(ctx, -ENOMEM, "menuconfig");
        pid_t pid = fork();
        if (pid == 0) {
                execlp("make", "make", "-C", tree, "menuconfig", kconfig_arg, (char *)NULL);
                fprintf(stderr, "flashctl: cannot run make: %m\n");
                _exit(127);
        }
        int status_code = 0;
        if (pid < 0 || waitpid(pid, &status_code, 0) < 0 || !WIFEXITED(status_code) ||
            WEXITSTATUS(status_code) != 0) {
                fprintf(stderr, "flashctl: make menuconfig in %s failed; profile %s is unchanged\n", tree,
                        argv[1]);
                unlink(tmpl);
                return FLASHCTL_EXIT_DAEMON_ERROR;
        }
        r = read_file(tmpl, &text, &len);
        unlink(tmpl);
        if (r < 0)
                return flashctl_report_error(ctx, r, "menuconfig");
        if (streq(text, cfg)) {
                printf("%s unchanged\n", argv[1]);
                return FLASHCTL_EXIT_OK;
        }
        params = json_pack("{s:s,s:s,s:s,s:s%,s:b}", "name", argv[1], "board",
                           strna(output_json_str(p, "board")), "mcu_name",
                           output_json_str(p, "mcu_name") ?: "mcu", "kconfig", text, len, "replace", true);
        r = flashctl_call(ctx, "profile.add", params, &added, NULL);
        if (r != 0)
                return r;
        print_profile(json_object_get(added, "profile"));
        return FLASHCTL_EXIT_OK;
}

static int verb_profile(Flashctl *ctx, int argc, char **argv)
{
        if (argc < 2)
                return flashctl_usage_error("profile",
                                            "'profile' needs a subcommand: add, list, show, remove");
        argc--;
        argv++;
        if (streq(argv[0], "add"))
                return profile_add(ctx, argc, argv);
        if (streq(argv[0], "list"))
                return profile_list(ctx, argc, argv);
        if (streq(argv[0], "show"))
                return profile_by_name(ctx, argc, argv, "profile.show");
        if (streq(argv[0], "remove"))
                return profile_by_name(ctx, argc, argv, "profile.remove");
        if (streq(argv[0], "menuconfig"))
                return profile_menuconfig(ctx, argc, argv);
        return flashctl_usage_error("profile",
                                    "unknown subcommand '%s': add, list, show, remove, menuconfig", argv[0]);
}

static const Verb profile_verbs[] = {
        {
                .name = "profile",
                .args = "add|list|show|remove|menuconfig ...",
                .summary = "Klipper build profiles: a .config and the board it is for",
                .help = "  profile add NAME --board BOARD [--mcu-name NAME] --kconfig FILE [--replace]\n"
                        "  profile list\n"
                        "  profile show NAME\n"
                        "  profile remove NAME\n"
                        "  profile menuconfig NAME\n"
                        "\n"
                        "FILE is the .config Klipper's `make menuconfig` wrote; the daemon keeps a copy\n"
                        "in its state directory and builds with it (`flashctl update`). --mcu-name ties\n"
                        "the profile to an MCU of printer.cfg: `mcu` (the default) for [mcu], NAME for\n"
                        "[mcu NAME].\n"
                        "menuconfig runs Klipper's `make menuconfig` on a copy of the profile's .config\n"
                        "(in the daemon's Klipper tree, on this terminal, as you) and stores the result.\n",
                .run = verb_profile,
        },
        {},
};

const CommandGroup command_group_profile = {
        .name = "profile",
        .verbs = profile_verbs,
};

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/macros.h"
#include "tests.h"
#include "update/printer-config.h"
#include "update/profile-store.h"

static void test_parse(void)
{
        static const struct {
                const char *text;
                const char *name, *serial, *canbus_uuid;
                size_t n_mcus;
                const char *canbus_interface;
        } cases[] = {
                { "[mcu]\nserial: /dev/serial/by-id/usb-Klipper_a-if00\n", "mcu",
                  "/dev/serial/by-id/usb-Klipper_a-if00", NULL, 1 },
                { "[mcu]\nserial = /dev/ttyAMA0  # the Pi's UART\nbaud: 250000\n", "mcu", "/dev/ttyAMA0",
                  NULL, 1 },
                { "[mcu ebb36]\ncanbus_uuid: 0e0d81e4210c\n", "ebb36", NULL, "0e0d81e4210c", 1 },
                { "[mcu ebb36]\ncanbus_uuid: 0e0d81e4210c\ncanbus_interface = can1 ; the second bus\n",
                  "ebb36", NULL, "0e0d81e4210c", 1, "can1" },
                /* comments, other sections, continuation lines, a #*# SAVE_CONFIG block */
                { "# [mcu]\n[printer]\nkinematics: corexy\n[gcode_macro X]\ngcode:\n  [mcu]\n[mcu]\nserial: "
                  "/a\n",
                  "mcu", "/a", NULL, 1 },
                { "[mcu]\nserial: /a\n[mcu]\nserial: /b\n", "mcu", "/b", NULL,
                  1 }, /* merged, the later wins */
                { "[mcu]\nserial: /a\n#*# [mcu rpi]\n#*# serial: /tmp/klipper_host_mcu\n", "mcu", "/a", NULL,
                  2 },
                { "[mcu x]\n", NULL, NULL, NULL, 0 },                    /* a section without options */
                { "[stepper_x]\nserial: /nope\n", NULL, NULL, NULL, 0 }, /* not an MCU */
                { "[mcus]\nserial: /nope\n", NULL, NULL, NULL, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                PrinterConfig *pc = NULL;
                CHECK_INT(printer_config_parse(cases[i].text, "/nonexistent", &pc, NULL), 0);
                if (!pc)
                        continue;
                CHECK_INT(pc->n_mcus, cases[i].n_mcus);
                if (cases[i].name) {
                        const PrinterMcu *m = printer_config_find(pc, cases[i].name);
                        CHECK(m != NULL);
                        if (m) {
                                CHECK(cases[i].serial ? m->serial && streq(m->serial, cases[i].serial)
                                                      : !m->serial);
                                CHECK(cases[i].canbus_uuid
                                              ? m->canbus_uuid && streq(m->canbus_uuid, cases[i].canbus_uuid)
                                              : !m->canbus_uuid);
                                CHECK(cases[i].canbus_interface
                                              ? m->canbus_interface &&
                                                        streq(m->canbus_interface, cases[i].canbus_interface)
                                              : !m->canbus_interface);
                        }
                }
                printer_config_free(pc);
        }

        char *error = NULL;
        PrinterConfig *pc = NULL;
        CHECK_INT(printer_config_parse("[mcu\nserial: /a\n", "/", &pc, &error), -EINVAL);
        CHECK(error && strstr(error, "printer.cfg:1"));
        free(error);
        error = NULL;
        CHECK_INT(printer_config_parse("[include missing.cfg]\n", "/nonexistent", &pc, &error), -ENOENT);
        free(error);
        /* a glob that matches nothing is fine, as in Klipper */
        CHECK_INT(printer_config_parse("[include nothing/*.cfg]\n", "/nonexistent", &pc, NULL), 0);
        pc = printer_config_free(pc);
}

static void test_includes(void)
{
        char dir[] = "/tmp/test-printer-config-XXXXXX";
        char path[256];
        PrinterConfig *pc = NULL;
        FILE *f;

        CHECK(mkdtemp(dir) != NULL);
        snprintf(path, sizeof(path), "%s/printer.cfg", dir);
        f = fopen(path, "w");
        fputs("[include parts/*.cfg]\n[mcu]\nserial: /main\n", f);
        fclose(f);
        snprintf(path, sizeof(path), "%s/parts", dir);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/parts/toolhead.cfg", dir);
        f = fopen(path, "w");
        fputs("[mcu tool]\ncanbus_uuid: 112233445566\n[include ../loop.cfg]\n", f);
        fclose(f);
        snprintf(path, sizeof(path), "%s/loop.cfg", dir);
        f = fopen(path, "w");
        fputs("[include loop.cfg]\n", f); /* includes itself */
        fclose(f);
        snprintf(path, sizeof(path), "%s/printer.cfg", dir);
        CHECK_INT(printer_config_load(path, &pc, NULL), -ELOOP);

        snprintf(path, sizeof(path), "%s/loop.cfg", dir);
        f = fopen(path, "w");
        fputs("[mcu tool]\nserial: /tool\n", f);
        fclose(f);
        snprintf(path, sizeof(path), "%s/printer.cfg", dir);
        CHECK_INT(printer_config_load(path, &pc, NULL), 0);
        if (pc) {
                CHECK_INT(pc->n_mcus, 2);
                CHECK_STR(pc->mcus[0].name, "tool"); /* file order: the include comes first */
                CHECK_STR(pc->mcus[0].canbus_uuid, "112233445566");
                CHECK_STR(pc->mcus[0].serial, "/tool");
                CHECK_STR(pc->mcus[1].serial, "/main");
        }
        printer_config_free(pc);

        /* profiles in the same directory */
        static const char kconfig[] = "# Klipper\nCONFIG_MCU=\"stm32f446xx\"\nCONFIG_CLOCK_FREQ=180000000\n";
        json_t *p = NULL, *all = NULL;
        char *mcu = profile_kconfig_mcu(kconfig, sizeof(kconfig) - 1);
        CHECK_STR(mcu, "stm32f446xx");
        free(mcu);
        CHECK(!profile_kconfig_mcu("CONFIG_MCU=\n", 12));
        CHECK(profile_name_valid("octopus-pro_1.0") && !profile_name_valid("../x") &&
              !profile_name_valid(".x") && !profile_name_valid(""));
        CHECK_INT(profile_store_add(dir, "oct", "octopus-pro", NULL, kconfig, sizeof(kconfig) - 1, false, &p,
                                    NULL),
                  0);
        json_decref(p);
        CHECK_INT(profile_store_add(dir, "oct", "octopus-pro", NULL, kconfig, sizeof(kconfig) - 1, false,
                                    NULL, NULL),
                  -EEXIST);
        CHECK_INT(profile_store_add(dir, "bad", "octopus-pro", NULL, "x=1\n", 4, false, NULL, NULL),
                  -EINVAL);
        CHECK_INT(profile_store_add(dir, "ebb", "ebb36", "tool", kconfig, sizeof(kconfig) - 1, false, NULL,
                                    NULL),
                  0);
        CHECK_INT(profile_store_list(dir, &all), 0);
        CHECK_INT(json_array_size(all), 2);
        CHECK_STR(json_string_value(json_object_get(json_array_get(all, 0), "name")), "ebb");
        json_decref(all);
        CHECK_INT(profile_store_find_mcu(dir, "tool", &p), 0);
        CHECK_STR(json_string_value(json_object_get(p, "name")), "ebb");
        json_decref(p);
        CHECK_INT(profile_store_find_mcu(dir, "mcu", &p), 0);
        CHECK_STR(json_string_value(json_object_get(p, "name")), "oct");
        json_decref(p);
        CHECK_INT(profile_store_remove(dir, "oct"), 0);
        CHECK_INT(profile_store_remove(dir, "oct"), -ENOENT);
        CHECK_INT(profile_store_find_mcu(dir, "mcu", &p), -ENOENT);
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        CHECK_INT(system(cmd), 0);
}

/* Klipper's configfile.config as Moonraker relays it */
static void test_from_klipper(void)
{
        PrinterConfig *pc = NULL;
        json_t *config =
                json_loads("{\"printer\": {\"kinematics\": \"corexy\"},"
                           " \"mcu\": {\"serial\": \" /dev/serial/by-id/usb-a \", \"baud\": \"250000\"},"
                           " \"mcu  tool\": {\"canbus_uuid\": \"0e0d81e4210c\", \"serial\": \"\","
                           " \"canbus_interface\": \"can1\"},"
                           " \"mcus\": {\"serial\": \"/dev/x\"},"
                           " \"mcu rpi\": {\"serial\": \"/tmp/klipper_host_mcu\"}}",
                           0, NULL);

        CHECK(config);
        CHECK_INT(printer_config_from_klipper(config, &pc), 0);
        /* the sections' order, "mcus" is no MCU, the name after any spaces */
        CHECK_INT(pc->n_mcus, 3);
        CHECK_STR(pc->mcus[0].name, "mcu");
        CHECK_STR(pc->mcus[0].serial, "/dev/serial/by-id/usb-a");
        CHECK(!pc->mcus[0].canbus_uuid);
        CHECK_STR(pc->mcus[1].name, "tool");
        CHECK(!pc->mcus[1].serial);
        CHECK_STR(pc->mcus[1].canbus_uuid, "0e0d81e4210c");
        CHECK_STR(pc->mcus[1].canbus_interface, "can1");
        CHECK(!pc->mcus[0].canbus_interface);
        CHECK_STR(printer_config_find(pc, "rpi")->serial, "/tmp/klipper_host_mcu");
        printer_config_free(pc);
        pc = NULL;
        json_decref(config);
        config = json_string("x");
        CHECK_INT(printer_config_from_klipper(config, &pc), -EINVAL);
        CHECK(!pc);
        json_decref(config);
}

int main(void)
{
        test_parse();
        test_from_klipper();
        test_includes();
        TESTS_EXIT();
}

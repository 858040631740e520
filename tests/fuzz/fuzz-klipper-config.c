/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Klipper configurations flashd reads: a printer.cfg (as text, and as
 * the `configfile` object Moonraker returns), and a profile's Kconfig
 * .config. Users write them by hand; any text must parse or be refused,
 * never crash. The first byte picks the reader.
 */
#include <assert.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "update/printer-config.h"
#include "update/profile-store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(PrinterConfig *pc)
{
        for (size_t i = 0; i < pc->n_mcus; i++) {
                assert(pc->mcus[i].name);
                assert(printer_config_find(pc, pc->mcus[i].name));
        }
        printer_config_free(pc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        PrinterConfig *pc = NULL;
        char *text, *error = NULL, *mcu;

        if (size < 1)
                return 0;
        text = strndup((const char *)data + 1, size - 1);
        if (!text)
                return 0;
        switch (data[0] % 3) {
        case 0:
                /* includes resolve against a folder with nothing in it */
                if (printer_config_parse(text, "/nonexistent", &pc, &error) >= 0)
                        check(pc);
                else
                        free(error);
                break;
        case 1: {
                json_t *config = json_loads(text, JSON_DECODE_ANY, NULL);
                if (config && printer_config_from_klipper(config, &pc) >= 0)
                        check(pc);
                json_decref(config);
                break;
        }
        default:
                mcu = profile_kconfig_mcu((const char *)data + 1, size - 1);
                assert(!mcu || strlen(mcu) < size);
                free(mcu);
        }
        free(text);
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Rule firing without udev or USB: a Manager with its job queue and rules
 * on a private event loop, a board put into the inventory by hand. A rule
 * whose job is refused counts one failure (the job's later notification is
 * not counted again); a board that holds the rule's image is skipped; a
 * job that fails ends the firing once, after its notification. */
#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include "inventory/inventory-internal.h"
#include "manager.h"
#include "rules/rule-service.h"
#include "rules/rule-store.h"
#include "tests.h"

#define PORT "1-1.3"

typedef struct Fixture {
        char dir[64];
        sd_event *event;
        Manager *m;
        char sha[65];
} Fixture;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static void fixture_start(Fixture *f)
{
        Config *c = NULL;
        const char *boards = getenv("FLASHD_BOARDS_DIR");

        *f = (Fixture){};
        snprintf(f->dir, sizeof(f->dir), "/tmp/test-rule-service-XXXXXX");
        CHECK(mkdtemp(f->dir) != NULL);
        CHECK_INT(config_new(&c), 0);
        CHECK_INT(config_set_string(&c->state_dir, f->dir), 0);
        CHECK_INT(config_add_boards_dir(c, boards ? boards : "daemon/boards/data"), 0);
        CHECK_INT(sd_event_new(&f->event), 0);
        CHECK_INT(manager_new(&f->m, f->event, c), 0);
        /* no DFU probe helper: the probe result is put in by hand */
        inventory_set_probe_enabled(f->m->inventory, false);
        CHECK_INT(job_service_start(f->m->jobs), 0);
        CHECK_INT(rule_service_start(f->m->rules), 0);
}

static void fixture_stop(Fixture *f)
{
        manager_free(f->m);
        sd_event_unref(f->event);
        nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void run_idle(Fixture *f)
{
        for (int i = 0; i < 1000 && sd_event_run(f->event, 0) > 0; i++)
                ;
}

/* An F429 in ROM DFU on PORT, its layout read. */
static void plug_dfu_board(Fixture *f)
{
        InventoryUsbInfo dfu = {
                .syspath = "/sys/devices/usb1/1-1/1-1.3",
                .port = PORT,
                .devnode = "/dev/bus/usb/001/126",
                .busnum = 1,
                .devnum = 126,
                .vid = 0x0483,
                .pid = 0xdf11,
                .manufacturer = "STMicroelectronics",
                .product = "STM32  BOOTLOADER",
                .serial = "356234553133",
                .has_dfu_interface = true,
        };
        const InventoryEntry *e;

        CHECK_INT(inventory_apply_usb(f->m->inventory, &dfu), 0);
        e = inventory_get(f->m->inventory, PORT);
        CHECK(e != NULL);
        if (!e)
                return;
        InventoryProbeResult r = { .port = strdup(PORT),
                                   .generation = e->generation,
                                   .transfer_size = 2048 };
        r.alts = calloc(1, sizeof(InventoryAlt));
        r.n_alts = 1;
        r.alts[0].name = strdup("@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg");
        CHECK_INT(dfuse_layout_parse(r.alts[0].name, strlen(r.alts[0].name), &r.alts[0].layout), 0);
        CHECK_INT(inventory_apply_probe(f->m->inventory, &r), 0);
        e = inventory_get(f->m->inventory, PORT);
        CHECK(e && e->probed && !e->probing);
}

/* An application image for 0x08008000; `sp` 0 makes it one the checks refuse. */
static void store_image(Fixture *f, uint32_t sp)
{
        uint8_t data[4096] = {};
        uint32_t reset = 0x08008101;

        for (int i = 0; i < 4; i++) {
                data[i] = (uint8_t)(sp >> (8 * i));
                data[4 + i] = (uint8_t)(reset >> (8 * i));
        }
        CHECK_INT(image_store_put(job_queue_get_image_store(job_service_get_queue(f->m->jobs)), data,
                                  sizeof(data), f->sha),
                  0);
}

static Rule *add_rule(Fixture *f, unsigned max_retries)
{
        Rule *r = NULL;

        CHECK_INT(rule_new(&r, "rule-1"), 0);
        r->match.board = strdup("octopus-pro");
        r->match.mode = RULE_MODE_BOOTLOADER;
        memcpy(r->action.sha256, f->sha, sizeof(r->action.sha256));
        r->action.repeat = RULE_REPEAT_ALWAYS;
        r->action.verify = true;
        r->action.max_retries = max_retries;
        r->action.retry_delay_usec = 10 * USEC_PER_MSEC;
        r->enabled = true;
        r->created = now_usec(CLOCK_REALTIME);
        CHECK_INT(rule_service_add(f->m->rules, r), 0); /* fires at once: the board is there */
        return r;
}

static size_t pending_of(Fixture *f, const Rule *r)
{
        json_t *o = rule_service_rule_json(f->m->rules, r);
        size_t n = json_array_size(json_object_get(o, "pending"));

        json_decref(o);
        return n;
}

static void test_refused(void)
{
        Fixture f;
        Rule *r;
        Job *j;

        fixture_start(&f);
        plug_dfu_board(&f);
        store_image(&f, 0); /* no stack pointer: refused by the vector-table check */
        r = add_rule(&f, 3);

        CHECK_INT(r->n_fired, 1);
        CHECK_INT(r->n_failed, 1);
        CHECK(r->last_error.message && strstr(r->last_error.message, "refused"));
        j = job_queue_find(job_service_get_queue(f.m->jobs), 1);
        CHECK(j && j->state == JOB_STATE_FAILED && streq_ptr(j->source, "rule-1"));
        CHECK_INT(pending_of(&f, r), 0);

        /* the refused job's notification comes now: not a second failure,
         * no retry, the rule has not given up on the board */
        run_idle(&f);
        CHECK_INT(r->n_fired, 1);
        CHECK_INT(r->n_failed, 1);
        CHECK_INT(r->n_flashed, 0);
        CHECK_INT(pending_of(&f, r), 0);
        CHECK(r->last_error.message && strstr(r->last_error.message, "refused"));

        /* the board holds the image already (flashed by hand): skipped */
        CHECK_INT(rule_set_remember(rule_service_get_set(f.m->rules), PORT, NULL, f.sha,
                                    now_usec(CLOCK_REALTIME), 9, "manual"),
                  0);
        CHECK_INT(rule_service_set_enabled(f.m->rules, r, false), 0);
        CHECK_INT(rule_service_set_enabled(f.m->rules, r, true), 0);
        CHECK_INT(r->n_skipped, 1);
        CHECK(r->last_skipped.message && strstr(r->last_skipped.message, "already holds image"));
        CHECK_INT(r->n_fired, 1);
        CHECK(job_queue_find(job_service_get_queue(f.m->jobs), 2) == NULL);
        fixture_stop(&f);
}

/* The job starts and fails (there is no USB device behind the entry): the
 * firing waits for the job's notification, then gives up (no retries). */
static void test_job_fails(void)
{
        Fixture f;
        Rule *r;
        Job *j;

        fixture_start(&f);
        plug_dfu_board(&f);
        store_image(&f, 0x20020000);
        r = add_rule(&f, 0);
        CHECK_INT(r->n_fired, 1);
        CHECK_INT(r->n_failed, 0);
        CHECK_INT(pending_of(&f, r), 1); /* its job in flight */
        j = job_queue_find(job_service_get_queue(f.m->jobs), 1);
        CHECK(j && j->attempts == 1);

        for (int i = 0; i < 400 && j && !job_state_is_final(j->state); i++)
                (void)sd_event_run(f.event, 50 * 1000);
        run_idle(&f);
        CHECK(j && j->state == JOB_STATE_FAILED);
        if (j && j->state != JOB_STATE_FAILED)
                fprintf(stderr, "job ended %s: %s\n", job_state_to_string(j->state), strna(j->message));
        CHECK_INT(r->n_failed, 1);
        CHECK_INT(pending_of(&f, r), 0);
        CHECK(r->last_error.message && strstr(r->last_error.message, "gave up on the board"));
        fixture_stop(&f);
}

int main(void)
{
        test_refused();
        test_job_fails();
        TESTS_EXIT();
}

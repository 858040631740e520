/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dfu-model.h"
#include "util/macros.h"
#include "../unit/tests.h"

#define BASE 0x08000000u
static const FlashSector sectors[] = {
        { 0x08000000, 0x4000 }, { 0x08004000, 0x4000 },  { 0x08008000, 0x4000 },
        { 0x0800C000, 0x4000 }, { 0x08010000, 0x10000 },
};

enum { OUT = 0x21, IN = 0xA1 };

typedef struct Step {
        uint64_t t_us;   /* injected clock */
        uint8_t type;    /* OUT / IN */
        uint8_t request; /* DfuRequest */
        uint16_t value;
        uint16_t length;
        const char *data;     /* OUT payload (length bytes) */
        int ret;              /* expected return */
        DfuState state;       /* expected state afterwards */
        DfuStatusCode status; /* expected status afterwards */
        int poll_ms;          /* expected bwPollTimeout for GETSTATUS answers, -1: don't care */
} Step;

#define GETSTATUS(t, r, st, stat, poll)                                     \
        {                                                                   \
                t, IN, DFU_REQUEST_GETSTATUS, 0, 6, NULL, r, st, stat, poll \
        }
#define S(st) DFU_STATE_DFU_##st
#define E(e)  DFU_STATUS_##e

static void run_steps(DfuModel *m, const char *name, const Step *steps, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                const Step *s = &steps[i];
                uint8_t buf[2048] = {};
                int r;

                if (s->data)
                        memcpy(buf, s->data, s->length);
                r = dfu_model_request(m, s->t_us, s->type, s->request, s->value, s->length, buf);
                if (r != s->ret || m->state != s->state || m->status != s->status) {
                        fprintf(stderr, "%s step %zu (%s): ret %d state %s status %s, expected %d %s %s\n",
                                name, i, s->request == DFU_REQUEST_GETSTATUS ? "GETSTATUS" : "request", r,
                                dfu_state_to_string(m->state), dfu_status_to_string(m->status), s->ret,
                                dfu_state_to_string(s->state), dfu_status_to_string(s->status));
                        tests_failed++;
                }
                if (s->request == DFU_REQUEST_GETSTATUS && r == 6) {
                        int poll = buf[1] | buf[2] << 8 | buf[3] << 16;
                        CHECK_INT(buf[4], m->state);
                        CHECK_INT(buf[0], m->status);
                        if (s->poll_ms >= 0 && poll != s->poll_ms) {
                                fprintf(stderr, "%s step %zu: poll %d ms, expected %d\n", name, i, poll,
                                        s->poll_ms);
                                tests_failed++;
                        }
                }
        }
}

static void run(const char *name, const Step *steps, size_t n, bool error_at_start, bool reset_on_leave,
                TimingMode mode, DfuAction expected_action)
{
        Timing timing = { .mode = mode, .scale = 1.0 };
        FlashModel *f;
        DfuModel *m;

        CHECK_INT(flash_model_new(&f, BASE, 0x20000, true, sectors, ELEMENTSOF(sectors)), 0);
        CHECK_INT(dfu_model_new(&m, &timing, 2048), 0);
        CHECK_INT(dfu_model_add_alt(m, f), 0);
        m->reset_on_leave = reset_on_leave;
        dfu_model_power_up(m, error_at_start);
        run_steps(m, name, steps, n);
        CHECK_INT(dfu_model_pending_action(m, NULL), expected_action);
        dfu_model_free(m);
        flash_model_free(f);
}

/* ---- plain DFU 1.1: firmware region from 0x08008000 (the third sector) ---- */

#define PLAIN_START 0x08008000u
#define ATTR_RW     (DFU_ATTR_CAN_DNLOAD | DFU_ATTR_CAN_UPLOAD)

typedef struct PlainCase {
        const char *name;
        const Step *steps;
        size_t n;
        uint8_t attributes;
        bool reset_on_leave;
        DfuAction action; /* pending afterwards */
        uint64_t action_at;
        const char *flash; /* expected at PLAIN_START, or NULL */
        unsigned erases;   /* sector erases expected */
        bool manifest_silent;
} PlainCase;

static void new_plain(FlashModel **ret_f, DfuModel **ret_m, const Timing *timing, uint8_t attributes)
{
        CHECK_INT(flash_model_new(ret_f, BASE, 0x20000, true, sectors, ELEMENTSOF(sectors)), 0);
        CHECK_INT(dfu_model_new(ret_m, timing, 2048), 0);
        CHECK_INT(dfu_model_add_alt(*ret_m, *ret_f), 0);
        CHECK_INT(dfu_model_set_plain(*ret_m, PLAIN_START, attributes), 0);
        dfu_model_power_up(*ret_m, false);
}

static void run_plain(const PlainCase *c)
{
        Timing timing = { .mode = TIMING_FAST, .scale = 1.0 };
        uint64_t at = 0;
        FlashModel *f;
        DfuModel *m;

        new_plain(&f, &m, &timing, c->attributes);
        m->reset_on_leave = c->reset_on_leave;
        m->manifest_silent = c->manifest_silent;
        run_steps(m, c->name, c->steps, c->n);
        CHECK_INT(dfu_model_pending_action(m, &at), c->action);
        if (c->action != DFU_ACTION_NONE)
                CHECK_INT(at, c->action_at);
        if (c->flash) {
                uint8_t buf[64] = {};
                CHECK_INT(flash_model_read(f, PLAIN_START, buf, strlen(c->flash)), 0);
                CHECK(memcmp(buf, c->flash, strlen(c->flash)) == 0);
                /* the bootloader region below is never touched */
                CHECK_INT(f->erases_per_sector[0] + f->erases_per_sector[1], 0);
        }
        CHECK_INT(f->sector_erases, c->erases);
        dfu_model_free(m);
        flash_model_free(f);
}

/* Two blocks from wBlockNum 0, a zero-length block ends the download;
 * not manifestation tolerant, no bitWillDetach: the device waits in
 * dfuMANIFEST-WAIT-RESET for the host's USB reset. A DfuSe command byte
 * in block 0 is only data. */
static const Step plain_download[] = {
        GETSTATUS(0, 6, S(IDLE), E(OK), 0),
        { 0, OUT, DFU_REQUEST_DNLOAD, 0, 5, "\x21\x00\x80\x00\x08", 0, S(DNLOAD_SYNC), E(OK), -1 },
        /* first block: erase the sector (fast: 1 ms) + program (1 ms) */
        GETSTATUS(0, 6, S(DNBUSY), E(OK), 2),
        GETSTATUS(1000, 6, S(DNBUSY), E(OK), 1),
        GETSTATUS(2000, 6, S(DNLOAD_IDLE), E(OK), 0),
        { 2000, OUT, DFU_REQUEST_DNLOAD, 1, 3, "abc", 0, S(DNLOAD_SYNC), E(OK), -1 },
        GETSTATUS(2000, 6, S(DNBUSY), E(OK), 1),
        GETSTATUS(3000, 6, S(DNLOAD_IDLE), E(OK), 0),
        { 3000, OUT, DFU_REQUEST_DNLOAD, 2, 0, NULL, 0, S(MANIFEST_SYNC), E(OK), -1 },
        /* programmed already: dfuMANIFEST-WAIT-RESET at once */
        GETSTATUS(3000, 6, S(MANIFEST_WAIT_RESET), E(OK), 0),
        /* DFU 1.1 A.2.8: nothing is answered any more */
        { 3000, IN, DFU_REQUEST_GETSTATE, 0, 1, NULL, -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
};

/* Manifestation tolerant: dfuMANIFEST-SYNC, then dfuIDLE; a second
 * download starts over from the start of the region. */
static const Step plain_tolerant[] = {
        { 0, OUT, DFU_REQUEST_DNLOAD, 0, 4, "abcd", 0, S(DNLOAD_SYNC), E(OK), -1 },
        GETSTATUS(0, 6, S(DNBUSY), E(OK), 2),
        GETSTATUS(2000, 6, S(DNLOAD_IDLE), E(OK), 0),
        { 2000, OUT, DFU_REQUEST_DNLOAD, 1, 0, NULL, 0, S(MANIFEST_SYNC), E(OK), -1 },
        GETSTATUS(2000, 6, S(MANIFEST), E(OK), 5),
        GETSTATUS(7000, 6, S(MANIFEST_SYNC), E(OK), 0),
        GETSTATUS(7000, 6, S(IDLE), E(OK), 0),
        /* upload from the start of the region */
        { 7000, IN, DFU_REQUEST_UPLOAD, 0, 4, NULL, 4, S(UPLOAD_IDLE), E(OK), -1 },
        { 7000, OUT, DFU_REQUEST_ABORT, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        /* again: the sector is erased again, "wxyz" replaces "abcd" */
        { 7000, OUT, DFU_REQUEST_DNLOAD, 0, 4, "wxyz", 0, S(DNLOAD_SYNC), E(OK), -1 },
        GETSTATUS(7000, 6, S(DNBUSY), E(OK), 2),
        GETSTATUS(9000, 6, S(DNLOAD_IDLE), E(OK), 0),
        { 9000, OUT, DFU_REQUEST_DNLOAD, 1, 0, NULL, 0, S(MANIFEST_SYNC), E(OK), -1 },
        GETSTATUS(9000, 6, S(MANIFEST), E(OK), 5),
        GETSTATUS(14000, 6, S(MANIFEST_SYNC), E(OK), 0),
        GETSTATUS(14000, 6, S(IDLE), E(OK), 0),
};

/* bitWillDetach, not tolerant: the device leaves on its own once manifested. */
static const Step plain_will_detach[] = {
        { 0, OUT, DFU_REQUEST_DNLOAD, 0, 4, "abcd", 0, S(DNLOAD_SYNC), E(OK), -1 },
        GETSTATUS(0, 6, S(DNBUSY), E(OK), 2),
        GETSTATUS(2000, 6, S(DNLOAD_IDLE), E(OK), 0),
        { 2000, OUT, DFU_REQUEST_DNLOAD, 1, 0, NULL, 0, S(MANIFEST_SYNC), E(OK), -1 },
        GETSTATUS(2000, 6, S(MANIFEST_WAIT_RESET), E(OK), 0),
};

/* Silent manifestation (manifest_silent): dfuMANIFEST is answered once,
 * then nothing until the USB reset; the state stays. */
static const Step plain_silent[] = {
        { 0, OUT, DFU_REQUEST_DNLOAD, 0, 4, "abcd", 0, S(DNLOAD_SYNC), E(OK), -1 },
        GETSTATUS(0, 6, S(DNBUSY), E(OK), 2),
        GETSTATUS(2000, 6, S(DNLOAD_IDLE), E(OK), 0),
        { 2000, OUT, DFU_REQUEST_DNLOAD, 1, 0, NULL, 0, S(MANIFEST_SYNC), E(OK), -1 },
        GETSTATUS(2000, 6, S(MANIFEST), E(OK), 5),
        GETSTATUS(3000, -EPIPE, S(MANIFEST), E(OK), -1),
        GETSTATUS(7000, -EPIPE, S(MANIFEST_WAIT_RESET), E(OK), -1),
        GETSTATUS(8000, -EPIPE, S(MANIFEST_WAIT_RESET), E(OK), -1),
};

/* reset-on-leave: gone before answering the GETSTATUS after the end. */
static const Step plain_reset_on_leave[] = {
        { 0, OUT, DFU_REQUEST_DNLOAD, 0, 4, "abcd", 0, S(DNLOAD_SYNC), E(OK), -1 },
        GETSTATUS(0, 6, S(DNBUSY), E(OK), 2),
        GETSTATUS(2000, 6, S(DNLOAD_IDLE), E(OK), 0),
        { 2000, OUT, DFU_REQUEST_DNLOAD, 1, 0, NULL, 0, S(MANIFEST_SYNC), E(OK), -1 },
        GETSTATUS(2000, -ENODEV, S(MANIFEST_WAIT_RESET), E(OK), -1),
};

/* Out of sequence and misplaced requests stall (DFU 1.1 Appendix A). */
static const Step plain_invalid[] = {
        /* a download starts with block 0 */
        { 0, OUT, DFU_REQUEST_DNLOAD, 1, 4, "abcd", -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 0, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        /* a zero-length DNLOAD in dfuIDLE */
        { 0, OUT, DFU_REQUEST_DNLOAD, 0, 0, NULL, -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 0, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        { 0, OUT, DFU_REQUEST_DNLOAD, 0, 4, "abcd", 0, S(DNLOAD_SYNC), E(OK), -1 },
        GETSTATUS(0, 6, S(DNBUSY), E(OK), 2),
        GETSTATUS(2000, 6, S(DNLOAD_IDLE), E(OK), 0),
        /* block 0 again instead of 1 */
        { 2000, OUT, DFU_REQUEST_DNLOAD, 0, 4, "abcd", -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 2000, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        /* more than wTransferSize */
        { 2000, OUT, DFU_REQUEST_DNLOAD, 0, 4096, NULL, -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
};

static const PlainCase plain_cases[] = {
        { "plain-download", plain_download, ELEMENTSOF(plain_download), ATTR_RW, false, DFU_ACTION_NONE, 0,
          "\x21\x00\x80\x00\x08"
          "abc",
          1 },
        { "plain-tolerant", plain_tolerant, ELEMENTSOF(plain_tolerant),
          ATTR_RW | DFU_ATTR_MANIFESTATION_TOLERANT, false, DFU_ACTION_NONE, 0, "wxyz", 2 },
        { "plain-will-detach", plain_will_detach, ELEMENTSOF(plain_will_detach),
          ATTR_RW | DFU_ATTR_WILL_DETACH, false, DFU_ACTION_LEAVE, 7000, "abcd", 1 },
        { "plain-reset-on-leave", plain_reset_on_leave, ELEMENTSOF(plain_reset_on_leave), ATTR_RW, true,
          DFU_ACTION_VANISH, 2000, "abcd", 1 },
        { "plain-silent", plain_silent, ELEMENTSOF(plain_silent), ATTR_RW, false, DFU_ACTION_NONE, 0, "abcd",
          1, true },
        { "plain-invalid", plain_invalid, ELEMENTSOF(plain_invalid), ATTR_RW, false, DFU_ACTION_NONE, 0,
          NULL, 1 },
};

static int plain_request(DfuModel *m, uint64_t *now, uint8_t type, uint8_t req, uint16_t value, uint16_t len,
                         uint8_t *data)
{
        int r = dfu_model_request(m, *now, type, req, value, len, data);
        *now += 1000;
        return r;
}

/* The whole region: 96 KiB in 2 KiB blocks (one erase per sector, in
 * order), one block more is past the end (errADDRESS); uploading in 1000
 * byte frames returns it all and ends with a short frame. */
static void test_plain_region(void)
{
        Timing timing = { .mode = TIMING_FAST, .scale = 1.0 };
        uint8_t block[2048], st[6], *back = malloc(0x18000);
        uint64_t now = 0;
        uint32_t got = 0;
        FlashModel *f;
        DfuModel *m;
        int r;

        CHECK(back != NULL);
        new_plain(&f, &m, &timing, ATTR_RW);
        for (uint16_t b = 0; b < 0x18000 / 2048; b++) {
                memset(block, (uint8_t)(b + 1), sizeof(block));
                CHECK_INT(plain_request(m, &now, OUT, DFU_REQUEST_DNLOAD, b, 2048, block), 0);
                do
                        CHECK_INT(plain_request(m, &now, IN, DFU_REQUEST_GETSTATUS, 0, 6, st), 6);
                while (st[4] == DFU_STATE_DFU_DNBUSY);
                CHECK_INT(st[4], DFU_STATE_DFU_DNLOAD_IDLE);
        }
        CHECK_INT(f->sector_erases, 3);
        CHECK_INT(f->erases_per_sector[2] + f->erases_per_sector[3] + f->erases_per_sector[4], 3);
        CHECK_INT(plain_request(m, &now, OUT, DFU_REQUEST_DNLOAD, 0x18000 / 2048, 2048, block), 0);
        do
                CHECK_INT(plain_request(m, &now, IN, DFU_REQUEST_GETSTATUS, 0, 6, st), 6);
        while (st[4] == DFU_STATE_DFU_DNBUSY);
        CHECK_INT(st[4], DFU_STATE_DFU_ERROR);
        CHECK_INT(st[0], DFU_STATUS_ERR_ADDRESS);
        CHECK_INT(plain_request(m, &now, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL), 0);

        for (uint16_t b = 0;; b++) {
                r = plain_request(m, &now, IN, DFU_REQUEST_UPLOAD, b, 1000, back + got);
                CHECK(r >= 0 && got + (uint32_t)r <= 0x18000);
                if (r < 0)
                        break;
                got += (uint32_t)r;
                if (r < 1000)
                        break;
        }
        CHECK_INT(got, 0x18000);
        CHECK_INT(m->state, DFU_STATE_DFU_IDLE);
        for (uint32_t i = 0; i < got; i++)
                if (back[i] != (uint8_t)(i / 2048 + 1)) {
                        CHECK_INT(back[i], (uint8_t)(i / 2048 + 1));
                        break;
                }
        /* one alt setting only; a USB reset makes it leave (run the firmware) */
        CHECK_INT(dfu_model_set_alt(m, 1), -EINVAL);
        dfu_model_bus_reset(m, now);
        CHECK_INT(dfu_model_pending_action(m, NULL), DFU_ACTION_LEAVE);
        CHECK_INT(dfu_model_set_plain(m, 0x09000000, ATTR_RW), -ERANGE);
        dfu_model_free(m);
        flash_model_free(f);
        free(back);
}

/* A dfu-util style download: set address, erase, write, leave; real timing. */
static const Step download_real[] = {
        GETSTATUS(0, 6, S(IDLE), E(OK), 0),
        /* SET_ADDRESS 0x08008000 */
        { 0, OUT, DFU_REQUEST_DNLOAD, 0, 5, "\x21\x00\x80\x00\x08", 0, S(DNLOAD_SYNC), E(OK), 0 },
        GETSTATUS(0, 6, S(DNBUSY), E(OK), 1),
        GETSTATUS(1000, 6, S(DNLOAD_IDLE), E(OK), 0),
        /* ERASE_PAGE 0x08008000: 16 KiB = 250 ms */
        { 1000, OUT, DFU_REQUEST_DNLOAD, 0, 5, "\x41\x00\x80\x00\x08", 0, S(DNLOAD_SYNC), E(OK), 0 },
        GETSTATUS(2000, 6, S(DNBUSY), E(OK), 250),
        /* too early: still busy, with the remaining time */
        GETSTATUS(102000, 6, S(DNBUSY), E(OK), 150),
        GETSTATUS(252000, 6, S(DNLOAD_IDLE), E(OK), 0),
        /* data block 2 at the pointer: 2048 bytes = 512 words * 16 us */
        { 252000, OUT, DFU_REQUEST_DNLOAD, 2, 2048, NULL, 0, S(DNLOAD_SYNC), E(OK), 0 },
        GETSTATUS(252000, 6, S(DNBUSY), E(OK), 9),
        /* any other request while busy stalls (DFU 1.1 A.2.4) */
        { 253000, IN, DFU_REQUEST_GETSTATE, 0, 1, NULL, -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 253000, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        /* writing the same (all-zero) block again over programmed zeros is fine */
        { 253000, OUT, DFU_REQUEST_DNLOAD, 2, 2048, NULL, 0, S(DNLOAD_SYNC), E(OK), 0 },
        GETSTATUS(253000, 6, S(DNBUSY), E(OK), 9),
        GETSTATUS(262000, 6, S(DNLOAD_IDLE), E(OK), 0),
        /* leave: zero-length DNLOAD (dfu-util sends wValue 2) */
        { 262000, OUT, DFU_REQUEST_DNLOAD, 2, 0, NULL, 0, S(MANIFEST_SYNC), E(OK), 0 },
        GETSTATUS(262000, 6, S(MANIFEST), E(OK), 10),
        GETSTATUS(262000, 6, S(MANIFEST), E(OK), 10),
        GETSTATUS(272000, 6, S(MANIFEST_WAIT_RESET), E(OK), 0),
};

/* Programming a location that is not erased: errPROG after the busy time. */
static const Step program_not_erased[] = {
        { 0, OUT, DFU_REQUEST_DNLOAD, 2, 4, "\x01\x02\x03\x04", 0, S(DNLOAD_SYNC), E(OK), 0 },
        GETSTATUS(0, 6, S(DNBUSY), E(OK), 1),
        GETSTATUS(1000, 6, S(DNLOAD_IDLE), E(OK), 0),
        { 1000, OUT, DFU_REQUEST_DNLOAD, 2, 4, "\x05\x06\x07\x08", 0, S(DNLOAD_SYNC), E(OK), 0 },
        GETSTATUS(1000, 6, S(DNBUSY), E(OK), 1),
        GETSTATUS(1500, 6, S(DNBUSY), E(OK), 1),
        GETSTATUS(2000, 6, S(ERROR), E(ERR_PROG), 0),
        { 2000, OUT, DFU_REQUEST_ABORT, 0, 0, NULL, -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 2000, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        /* bad addresses */
        { 2000, OUT, DFU_REQUEST_DNLOAD, 0, 5, "\x21\x00\x00\x00\x09", 0, S(DNLOAD_SYNC), E(OK), 0 },
        GETSTATUS(2000, 6, S(DNBUSY), E(OK), 1),
        GETSTATUS(3000, 6, S(ERROR), E(ERR_TARGET), 0),
        { 3000, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        { 3000, OUT, DFU_REQUEST_DNLOAD, 0, 5, "\x41\x00\x00\x02\x08", 0, S(DNLOAD_SYNC), E(OK), 0 },
        GETSTATUS(3000, 6, S(DNBUSY), E(OK), 1),
        GETSTATUS(4000, 6, S(ERROR), E(ERR_TARGET), 0),
        { 4000, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        /* block 100 from 0x08000000 = 0x08031000: beyond the flash */
        { 4000, OUT, DFU_REQUEST_DNLOAD, 100, 4, "\x00\x00\x00\x00", 0, S(DNLOAD_SYNC), E(OK), 0 },
        GETSTATUS(4000, 6, S(DNBUSY), E(OK), 1),
        GETSTATUS(5000, 6, S(ERROR), E(ERR_ADDRESS), 0),
        /* unknown DfuSe command */
        { 5000, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        { 5000, OUT, DFU_REQUEST_DNLOAD, 0, 1, "\x55", 0, S(DNLOAD_SYNC), E(OK), 0 },
        GETSTATUS(5000, 6, S(DNBUSY), E(OK), 1),
        GETSTATUS(6000, 6, S(ERROR), E(ERR_TARGET), 0),
};

/* Upload: GET_COMMANDS, full blocks, short last block ends it. */
static const Step upload[] = {
        { 0, IN, DFU_REQUEST_UPLOAD, 0, 2048, NULL, 4, S(IDLE), E(OK), -1 },
        { 0, IN, DFU_REQUEST_UPLOAD, 2, 2048, NULL, 2048, S(UPLOAD_IDLE), E(OK), -1 },
        { 0, IN, DFU_REQUEST_UPLOAD, 3, 2048, NULL, 2048, S(UPLOAD_IDLE), E(OK), -1 },
        { 0, IN, DFU_REQUEST_GETSTATE, 0, 1, NULL, 1, S(UPLOAD_IDLE), E(OK), -1 },
        /* block 65 = 0x08000000 + 63 * 2048 = 0x0801F800: the last 2 KiB */
        { 0, IN, DFU_REQUEST_UPLOAD, 65, 2048, NULL, 2048, S(UPLOAD_IDLE), E(OK), -1 },
        { 0, IN, DFU_REQUEST_UPLOAD, 66, 2048, NULL, -EPIPE, S(ERROR), E(ERR_ADDRESS), -1 },
        { 0, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        { 0, IN, DFU_REQUEST_UPLOAD, 2, 100, NULL, 100, S(UPLOAD_IDLE), E(OK), -1 },
        /* DNLOAD in dfuUPLOAD-IDLE stalls; ABORT leaves upload */
        { 0, IN, DFU_REQUEST_UPLOAD, 2, 4096, NULL, -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 0, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        { 0, IN, DFU_REQUEST_UPLOAD, 2, 16, NULL, 16, S(UPLOAD_IDLE), E(OK), -1 },
        { 0, OUT, DFU_REQUEST_DNLOAD, 2, 4, "abcd", -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 0, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        { 0, IN, DFU_REQUEST_UPLOAD, 2, 16, NULL, 16, S(UPLOAD_IDLE), E(OK), -1 },
        { 0, OUT, DFU_REQUEST_ABORT, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
};

/* Requests not allowed in a state, from dfuIDLE (DFU 1.1 Appendix A). */
static const Step invalid[] = {
        { 0, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 0, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        { 0, OUT, DFU_REQUEST_DNLOAD, 0, 0, NULL, -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 0, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        { 0, OUT, DFU_REQUEST_DETACH, 0, 0, NULL, -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 0, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        { 0, OUT, DFU_REQUEST_DNLOAD, 1, 4, "abcd", -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 0, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        { 0, OUT, 9, 0, 0, NULL, -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 0, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        /* an OUT GETSTATUS is malformed */
        { 0, OUT, DFU_REQUEST_GETSTATUS, 0, 0, NULL, -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 0, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        { 0, IN, DFU_REQUEST_GETSTATE, 0, 1, NULL, 1, S(IDLE), E(OK), -1 },
        /* DNLOAD-SYNC: only GETSTATUS / GETSTATE; ABORT is allowed */
        { 0, OUT, DFU_REQUEST_DNLOAD, 2, 4, "abcd", 0, S(DNLOAD_SYNC), E(OK), -1 },
        { 0, IN, DFU_REQUEST_GETSTATE, 0, 1, NULL, 1, S(DNLOAD_SYNC), E(OK), -1 },
        { 0, OUT, DFU_REQUEST_ABORT, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        { 0, OUT, DFU_REQUEST_DNLOAD, 2, 4, "abcd", 0, S(DNLOAD_SYNC), E(OK), -1 },
        { 0, IN, DFU_REQUEST_UPLOAD, 2, 4, NULL, -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
};

static const Step error_at_start[] = {
        GETSTATUS(0, 6, S(ERROR), E(ERR_FIRMWARE), 0),
        { 0, IN, DFU_REQUEST_UPLOAD, 2, 16, NULL, -EPIPE, S(ERROR), E(ERR_STALLEDPKT), -1 },
        { 0, OUT, DFU_REQUEST_CLRSTATUS, 0, 0, NULL, 0, S(IDLE), E(OK), -1 },
        GETSTATUS(0, 6, S(IDLE), E(OK), 0),
};

static const Step reset_on_leave[] = {
        { 0, OUT, DFU_REQUEST_DNLOAD, 0, 5, "\x21\x00\x80\x00\x08", 0, S(DNLOAD_SYNC), E(OK), 0 },
        GETSTATUS(0, 6, S(DNBUSY), E(OK), 1),
        GETSTATUS(1000, 6, S(DNLOAD_IDLE), E(OK), 0),
        { 1000, OUT, DFU_REQUEST_DNLOAD, 0, 0, NULL, 0, S(MANIFEST_SYNC), E(OK), 0 },
        GETSTATUS(1000, -ENODEV, S(MANIFEST_WAIT_RESET), E(OK), 0),
        GETSTATUS(1000, -ENODEV, S(MANIFEST_WAIT_RESET), E(OK), 0),
};

static const Step mass_erase[] = {
        { 0, OUT, DFU_REQUEST_DNLOAD, 0, 1, "\x41", 0, S(DNLOAD_SYNC), E(OK), 0 },
        GETSTATUS(0, 6, S(DNBUSY), E(OK), 1000),
        GETSTATUS(999999, 6, S(DNBUSY), E(OK), 1),
        GETSTATUS(1000000, 6, S(DNLOAD_IDLE), E(OK), 0),
        /* READ_UNPROTECT: erase and reset */
        { 1000000, OUT, DFU_REQUEST_DNLOAD, 0, 1, "\x92", 0, S(DNLOAD_SYNC), E(OK), 0 },
        GETSTATUS(1000000, 6, S(DNBUSY), E(OK), 1000),
};

static void test_strings(void)
{
        for (int i = 0; i < _DFU_ACTION_MAX; i++)
                CHECK(dfu_action_to_string(i) != NULL);
        CHECK_STR(dfu_state_to_string(DFU_STATE_DFU_DNBUSY), "dfuDNBUSY");
        CHECK_STR(dfu_status_to_string(DFU_STATUS_ERR_STALLEDPKT), "errSTALLEDPKT");
}

static void test_timing(void)
{
        Timing real = { TIMING_REAL, 1.0 }, tenth = { TIMING_REAL, 0.1 }, fast = { TIMING_FAST, 1.0 };
        static const struct {
                uint32_t size;
                uint64_t us;
        } erase[] = { { 16384, 250000 }, { 65536, 550000 }, { 131072, 1000000 }, { 2048, 22000 } };

        for (size_t i = 0; i < ELEMENTSOF(erase); i++)
                CHECK_INT(timing_sector_erase_us(&real, erase[i].size), erase[i].us);
        CHECK_INT(timing_sector_erase_us(&tenth, 131072), 100000);
        CHECK_INT(timing_sector_erase_us(&fast, 131072), 1000);
        CHECK_INT(timing_program_us(&real, 2048), 8192);
        CHECK_INT(timing_control_transfer_us(&real), 1000);
        CHECK_INT(timing_control_transfer_us(&fast), 0);
        CHECK_INT(timing_reenumerate_us(&real), 1000000);
        CHECK_INT(timing_poll_timeout_ms(1), 1);
        CHECK_INT(timing_poll_timeout_ms(0), 1);
        CHECK_INT(timing_poll_timeout_ms(250000), 250);
        CHECK_INT(timing_mode_from_string("real"), TIMING_REAL);
        CHECK_INT(timing_mode_from_string("slow"), _TIMING_MODE_INVALID);
}

int main(void)
{
        /* mass erase of the 128 KiB test flash: 8 s/MiB -> 1 s */
        run("download", download_real, ELEMENTSOF(download_real), false, false, TIMING_REAL,
            DFU_ACTION_LEAVE);
        run("program", program_not_erased, ELEMENTSOF(program_not_erased), false, false, TIMING_FAST,
            DFU_ACTION_NONE);
        run("upload", upload, ELEMENTSOF(upload), false, false, TIMING_FAST, DFU_ACTION_NONE);
        run("invalid", invalid, ELEMENTSOF(invalid), false, false, TIMING_FAST, DFU_ACTION_NONE);
        run("error-at-start", error_at_start, ELEMENTSOF(error_at_start), true, false, TIMING_FAST,
            DFU_ACTION_NONE);
        run("reset-on-leave", reset_on_leave, ELEMENTSOF(reset_on_leave), false, true, TIMING_FAST,
            DFU_ACTION_VANISH);
        run("mass-erase", mass_erase, ELEMENTSOF(mass_erase), false, false, TIMING_REAL, DFU_ACTION_RESET);
        for (size_t i = 0; i < ELEMENTSOF(plain_cases); i++)
                run_plain(&plain_cases[i]);
        test_plain_region();
        test_strings();
        test_timing();
        TESTS_EXIT();
}

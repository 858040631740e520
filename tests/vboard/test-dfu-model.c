/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "dfu-model.h"
#include "macros.h"
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
        CHECK_INT(dfu_model_pending_action(m, NULL), expected_action);
        dfu_model_free(m);
        flash_model_free(f);
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
        test_strings();
        test_timing();
        TESTS_EXIT();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/macros.h"
#include "picoboot-model.h"
#include "../unit/tests.h"

#define BASE 0x10000000u
#define SIZE (64u * 1024u)

static PicobootModel *setup(FlashModel **ret_flash, Timing *t)
{
        FlashSector s[SIZE / 4096];
        PicobootModel *m = NULL;

        for (size_t i = 0; i < ELEMENTSOF(s); i++)
                s[i] = (FlashSector){ BASE + (uint32_t)i * 4096, 4096 };
        CHECK_INT(flash_model_new(ret_flash, BASE, SIZE, true, s, ELEMENTSOF(s)), 0);
        CHECK_INT(picoboot_model_new(&m, t, *ret_flash), 0);
        return m;
}

/* One step: 'C' command (id, addr, size), 'O' OUT data (size bytes of the
 * pattern), 'I' IN of size bytes, 'R' interface reset, 'S' status. */
typedef struct Step {
        char kind;
        uint8_t id;
        uint32_t addr, size;
        int expected;        /* return value */
        PicobootPhase phase; /* afterwards */
        uint32_t status;     /* 'S': the status code expected */
} Step;

static int run(PicobootModel *m, const Step *s, uint64_t now)
{
        uint8_t buf[8192], cmd[PICOBOOT_CMD_SIZE];

        switch (s->kind) {
        case 'C':
                if (s->id == PICOBOOT_EXCLUSIVE_ACCESS)
                        picoboot_encode_exclusive(cmd, 7, (uint8_t)s->addr);
                else if (s->id == PICOBOOT_EXIT_XIP)
                        picoboot_encode_simple(cmd, 7, PICOBOOT_EXIT_XIP);
                else if (s->id == PICOBOOT_REBOOT)
                        picoboot_encode_reboot(cmd, 7, 0, 0, s->addr);
                else if (s->id == 0xEE) {
                        picoboot_encode_range(cmd, 7, PICOBOOT_WRITE, s->addr, s->size);
                        cmd[0] ^= 1; /* bad magic */
                } else
                        picoboot_encode_range(cmd, 7, s->id, s->addr, s->size);
                return picoboot_model_out(m, now, cmd, sizeof(cmd));
        case 'O':
                for (uint32_t i = 0; i < s->size; i++)
                        buf[i] = (uint8_t)(i * 3 + 1);
                return picoboot_model_out(m, now, buf, s->size);
        case 'I': {
                int r = picoboot_model_in(m, now, buf, s->size);
                /* reads of the flash written by the 'O' steps give the pattern back */
                if (r > 0 && s->addr)
                        for (int i = 0; i < r; i++)
                                CHECK_INT(buf[i], (uint8_t)(i * 3 + 1));
                return r;
        }
        case 'R':
                return picoboot_model_control(m, 0x41, PICOBOOT_IF_RESET, 0, NULL);
        case 'S': {
                PicobootCmdStatus st;
                int r = picoboot_model_control(m, 0xC1, PICOBOOT_IF_CMD_STATUS, 16, buf);
                CHECK_INT(picoboot_status_decode(buf, 16, &st), 0);
                CHECK_INT(st.status, s->status);
                return r;
        }
        }
        return -EINVAL;
}

#define CMD  PICOBOOT_PHASE_COMMAND
#define DOUT PICOBOOT_PHASE_DATA_OUT
#define DIN  PICOBOOT_PHASE_DATA_IN
#define AIN  PICOBOOT_PHASE_ACK_IN
#define AOUT PICOBOOT_PHASE_ACK_OUT
#define HALT PICOBOOT_PHASE_HALTED

static void test_sequences(void)
{
        static const struct {
                const char *what;
                Step steps[10];
        } cases[] = {
                { "erase, write, read back",
                  { { 'C', PICOBOOT_EXCLUSIVE_ACCESS, 1, 0, 32, AIN },
                    { 'I', 0, 0, 1, 0, CMD },
                    { 'C', PICOBOOT_FLASH_ERASE, BASE, 4096, 32, AIN },
                    { 'I', 0, 0, 1, 0, CMD },
                    { 'C', PICOBOOT_WRITE, BASE, 512, 32, DOUT },
                    { 'O', 0, 0, 512, 512, AIN },
                    { 'I', 0, 0, 1, 0, CMD },
                    { 'C', PICOBOOT_READ, BASE, 512, 32, DIN },
                    { 'I', 0, 1, 512, 512, AOUT },
                    { 'O', 0, 0, 0, 0, CMD } } },
                { "unaligned erase halts until reset",
                  { { 'C', PICOBOOT_FLASH_ERASE, BASE + 256, 4096, -EPIPE, HALT },
                    { 'S', 0, 0, 0, 16, HALT, PICOBOOT_BAD_ALIGNMENT },
                    { 'I', 0, 0, 1, -EPIPE, HALT },
                    { 'C', PICOBOOT_EXIT_XIP, 0, 0, -EPIPE, HALT },
                    { 'R', 0, 0, 0, 0, CMD },
                    { 'C', PICOBOOT_EXIT_XIP, 0, 0, 32, AIN },
                    { 'I', 0, 0, 1, 0, CMD },
                    { 'S', 0, 0, 0, 16, CMD, PICOBOOT_OK } } },
                { "write outside the flash",
                  { { 'C', PICOBOOT_WRITE, BASE + SIZE, 256, -EPIPE, HALT },
                    { 'S', 0, 0, 0, 16, HALT, PICOBOOT_INVALID_ADDRESS } } },
                { "write of half a page",
                  { { 'C', PICOBOOT_WRITE, BASE, 128, -EPIPE, HALT },
                    { 'S', 0, 0, 0, 16, HALT, PICOBOOT_BAD_ALIGNMENT } } },
                { "write to SRAM of any size",
                  { { 'C', PICOBOOT_WRITE, 0x20000000, 5, 32, DOUT },
                    { 'O', 0, 0, 5, 5, AIN },
                    { 'I', 0, 0, 1, 0, CMD } } },
                { "bad magic: halted, no status change",
                  { { 'C', 0xEE, BASE, 256, -EPIPE, HALT }, { 'R', 0, 0, 0, 0, CMD } } },
                { "ack in the wrong direction",
                  { { 'C', PICOBOOT_FLASH_ERASE, BASE, 4096, 32, AIN },
                    { 'O', 0, 0, 0, -EPIPE, HALT },
                    { 'S', 0, 0, 0, 16, HALT, PICOBOOT_UNKNOWN_ERROR } } },
                { "more data than announced",
                  { { 'C', PICOBOOT_WRITE, BASE, 256, 32, DOUT },
                    { 'O', 0, 0, 512, -EPIPE, HALT },
                    { 'S', 0, 0, 0, 16, HALT, PICOBOOT_INVALID_TRANSFER_LENGTH } } },
                { "read of the ROM version",
                  { { 'C', PICOBOOT_READ, 0x10, 4, 32, DIN },
                    { 'I', 0, 0, 4, 4, AOUT },
                    { 'O', 0, 0, 0, 0, CMD } } },
                { "reboot", { { 'C', PICOBOOT_REBOOT, 500, 0, 32, AIN }, { 'I', 0, 0, 1, 0, CMD } } },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Timing t = { TIMING_REAL, 1.0 };
                FlashModel *f = NULL;
                PicobootModel *m = setup(&f, &t);

                fprintf(stderr, "case %s\n", cases[i].what);
                for (size_t k = 0; k < ELEMENTSOF(cases[i].steps) && cases[i].steps[k].kind; k++) {
                        const Step *s = &cases[i].steps[k];
                        CHECK_INT(run(m, s, 1000), s->expected);
                        CHECK_INT(m->phase, s->phase);
                }
                if (streq(cases[i].what, "erase, write, read back")) {
                        uint8_t b[2];
                        flash_model_read(f, BASE + 512, b, 2);
                        CHECK(b[0] == 0xff && b[1] == 0xff);
                        CHECK_INT(f->sector_erases, 1);
                        CHECK_INT(f->bytes_written, 512);
                        /* W25Q16JV: 45 ms erase + 2 x 0.7 ms pages after t = 1 ms */
                        CHECK_INT(picoboot_model_busy_until(m), 1000 + 45000 + 1400);
                }
                if (streq(cases[i].what, "reboot")) {
                        uint32_t d = 0;
                        CHECK(picoboot_model_take_reboot(m, &d));
                        CHECK_INT(d, 500);
                        CHECK(!picoboot_model_take_reboot(m, &d));
                }
                if (streq(cases[i].what, "bad magic: halted, no status change"))
                        CHECK_INT(m->status.token, 0);
                picoboot_model_free(m);
                flash_model_free(f);
        }
}

static void test_stall_quirk(void)
{
        Timing t = { TIMING_FAST, 1.0 };
        FlashModel *f = NULL;
        PicobootModel *m = setup(&f, &t);
        static const Step write = { 'C', PICOBOOT_WRITE, BASE, 256, 0, 0 };

        m->stall_on_write = 2;
        CHECK_INT(run(m, &write, 0), 32);
        CHECK_INT(run(m, &(Step){ 'O', 0, 0, 256 }, 0), 256);
        CHECK_INT(run(m, &(Step){ 'I', 0, 0, 1 }, 0), 0);
        CHECK_INT(run(m, &write, 0), -EPIPE);
        CHECK_INT(m->status.status, PICOBOOT_UNKNOWN_ERROR);
        CHECK_INT(run(m, &(Step){ 'R' }, 0), 0);
        /* the third write (a retry) goes through */
        CHECK_INT(run(m, &write, 0), 32);
        CHECK_INT(m->stalls, 1);
        CHECK_INT(m->resets, 1);
        picoboot_model_free(m);
        flash_model_free(f);
}

int main(void)
{
        test_sequences();
        test_stall_quirk();
        TESTS_EXIT();
}

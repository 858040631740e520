/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/macros.h"
#include "picoboot-model.h"

static const char *const phase_table[_PICOBOOT_PHASE_MAX] = {
        [PICOBOOT_PHASE_COMMAND] = "command", [PICOBOOT_PHASE_DATA_OUT] = "data-out",
        [PICOBOOT_PHASE_DATA_IN] = "data-in", [PICOBOOT_PHASE_ACK_IN] = "ack-in",
        [PICOBOOT_PHASE_ACK_OUT] = "ack-out", [PICOBOOT_PHASE_HALTED] = "halted",
};

const char *picoboot_phase_to_string(PicobootPhase p)
{
        return p < _PICOBOOT_PHASE_MAX ? phase_table[p] : NULL;
}

int picoboot_model_new(PicobootModel **ret, const Timing *timing, FlashModel *flash)
{
        PicobootModel *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        m->sram = calloc(1, RP2040_SRAM_SIZE);
        if (!m->sram) {
                free(m);
                return -ENOMEM;
        }
        m->timing = timing;
        m->flash = flash;
        m->rom_version = 3;
        picoboot_model_power_up(m);
        *ret = m;
        return 0;
}

PicobootModel *picoboot_model_free(PicobootModel *m)
{
        if (!m)
                return NULL;
        free(m->sram);
        free(m);
        return NULL;
}

void picoboot_model_power_up(PicobootModel *m)
{
        m->phase = PICOBOOT_PHASE_COMMAND;
        m->status = (PicobootCmdStatus){};
        m->exclusive = PICOBOOT_NOT_EXCLUSIVE;
        m->xip_exited = false;
        m->reboot_requested = false;
        m->busy_until_us = 0;
        m->writes = 0;
}

static void event(PicobootModel *m, const char *what, uint32_t address, uint32_t length)
{
        if (m->on_event)
                m->on_event(m->userdata, what, address, length);
}

static int halt(PicobootModel *m, PicobootStatus s)
{
        m->status.status = (uint32_t)s;
        m->status.in_progress = false;
        m->phase = PICOBOOT_PHASE_HALTED;
        m->stalls++;
        event(m, "picoboot-stall", (uint32_t)s, m->status.cmd_id);
        return -EPIPE;
}

static bool in_flash(const PicobootModel *m, uint32_t addr, uint32_t size)
{
        return addr >= m->flash->base && (uint64_t)addr + size <= (uint64_t)m->flash->base + m->flash->size;
}

static bool in_sram(uint32_t addr, uint32_t size)
{
        return addr >= RP2040_SRAM_BASE &&
               (uint64_t)addr + size <= (uint64_t)RP2040_SRAM_BASE + RP2040_SRAM_SIZE;
}

/* The ROM's own bytes that a host reads: the 'M' 'u' magic and version
 * at 0x10 (datasheet 2.8.2.1.1); the rest reads as zeros here. */
static uint8_t rom_byte(const PicobootModel *m, uint32_t addr)
{
        switch (addr) {
        case 0x10:
                return 'M';
        case 0x11:
                return 'u';
        case 0x12:
                return 1;
        case RP2040_ROM_VERSION_ADDR:
                return m->rom_version;
        default:
                return 0;
        }
}

/* Run a command without data phase, or check one with data. */
static int start(PicobootModel *m, uint64_t now, const PicobootCmd *c)
{
        switch (c->id) {
        case PICOBOOT_EXCLUSIVE_ACCESS:
                if (c->exclusive > PICOBOOT_EXCLUSIVE_AND_EJECT)
                        return halt(m, PICOBOOT_UNKNOWN_ERROR);
                m->exclusive = c->exclusive;
                break;
        case PICOBOOT_EXIT_XIP:
                m->xip_exited = true;
                break;
        case PICOBOOT_ENTER_CMD_XIP:
                m->xip_exited = false;
                break;
        case PICOBOOT_REBOOT:
                m->reboot_requested = true;
                m->reboot_delay_ms = c->delay_ms;
                event(m, "picoboot-reboot", c->addr, c->delay_ms);
                break;
        case PICOBOOT_FLASH_ERASE:
                if (c->addr % RP2040_FLASH_SECTOR || c->size % RP2040_FLASH_SECTOR)
                        return halt(m, PICOBOOT_BAD_ALIGNMENT);
                if (!in_flash(m, c->addr, c->size))
                        return halt(m, PICOBOOT_INVALID_ADDRESS);
                for (uint32_t a = c->addr; a < c->addr + c->size; a += RP2040_FLASH_SECTOR) {
                        flash_model_erase_sector(m->flash, a);
                        m->busy_until_us = MAX(m->busy_until_us, now) + timing_qspi_erase_us(m->timing);
                }
                m->erases++;
                event(m, "erase", c->addr, c->size);
                break;
        case PICOBOOT_WRITE:
                if (in_flash(m, c->addr, c->size)) {
                        if (c->addr % RP2040_FLASH_PAGE || c->size % RP2040_FLASH_PAGE)
                                return halt(m, PICOBOOT_BAD_ALIGNMENT);
                } else if (!in_sram(c->addr, c->size))
                        return halt(m, PICOBOOT_INVALID_ADDRESS);
                m->writes++;
                if (m->stall_on_write && m->writes == m->stall_on_write)
                        return halt(m, PICOBOOT_UNKNOWN_ERROR);
                if (m->writes == 1)
                        event(m, "first-write", c->addr, c->size);
                break;
        case PICOBOOT_READ: {
                bool rom = (uint64_t)c->addr + c->size <= 0x4000;
                if (!rom && !in_flash(m, c->addr, c->size) && !in_sram(c->addr, c->size))
                        return halt(m, PICOBOOT_INVALID_ADDRESS);
                m->reads++;
                break;
        }
        case PICOBOOT_EXEC:
        case PICOBOOT_VECTORIZE_FLASH:
                /* running host code on the chip is not modelled */
                return halt(m, PICOBOOT_UNKNOWN_CMD);
        default:
                return halt(m, PICOBOOT_UNKNOWN_CMD);
        }
        return 0;
}

static int command(PicobootModel *m, uint64_t now, const uint8_t *data, size_t len)
{
        PicobootCmd c;
        int r;

        m->commands++;
        r = picoboot_cmd_decode(data, len, &c);
        if (r == -EBADMSG) {
                /* not a command: halt; the status keeps the last command */
                m->phase = PICOBOOT_PHASE_HALTED;
                m->stalls++;
                return -EPIPE;
        }
        m->cmd = c;
        m->done = 0;
        m->status = (PicobootCmdStatus){ .token = c.token, .cmd_id = c.id, .in_progress = true };
        if (r != PICOBOOT_OK)
                return halt(m, (PicobootStatus)r);
        r = start(m, now, &c);
        if (r < 0)
                return r;
        if (c.transfer_length == 0)
                m->phase = PICOBOOT_PHASE_ACK_IN;
        else
                m->phase = (c.id & PICOBOOT_CMD_IN) ? PICOBOOT_PHASE_DATA_IN : PICOBOOT_PHASE_DATA_OUT;
        return (int)len;
}

static void finish(PicobootModel *m)
{
        m->status.status = PICOBOOT_OK;
        m->status.in_progress = false;
        m->phase = PICOBOOT_PHASE_COMMAND;
}

int picoboot_model_out(PicobootModel *m, uint64_t now, const uint8_t *data, size_t len)
{
        switch (m->phase) {
        case PICOBOOT_PHASE_COMMAND:
                return command(m, now, data, len);
        case PICOBOOT_PHASE_DATA_OUT: {
                const PicobootCmd *c = &m->cmd;
                if (len > c->size - m->done)
                        return halt(m, PICOBOOT_INVALID_TRANSFER_LENGTH);
                for (size_t i = 0; i < len; i++) {
                        uint32_t a = c->addr + m->done;
                        if (in_sram(a, 1))
                                m->sram[a - RP2040_SRAM_BASE] = data[i];
                        else {
                                m->page[a % RP2040_FLASH_PAGE] = data[i];
                                if (a % RP2040_FLASH_PAGE == RP2040_FLASH_PAGE - 1) {
                                        /* the QSPI part ANDs unerased bits
                                         * without complaint; the model
                                         * counts them */
                                        (void)flash_model_program(m->flash, a - (RP2040_FLASH_PAGE - 1),
                                                                  m->page, RP2040_FLASH_PAGE);
                                        m->busy_until_us =
                                                MAX(m->busy_until_us, now) +
                                                timing_qspi_program_us(m->timing, RP2040_FLASH_PAGE);
                                }
                        }
                        m->done++;
                }
                if (m->done == c->size)
                        m->phase = PICOBOOT_PHASE_ACK_IN;
                return (int)len;
        }
        case PICOBOOT_PHASE_ACK_OUT:
                if (len != 0)
                        return halt(m, PICOBOOT_INVALID_TRANSFER_LENGTH);
                finish(m);
                return 0;
        case PICOBOOT_PHASE_DATA_IN:
        case PICOBOOT_PHASE_ACK_IN:
                /* the host sends while the ROM expects to send */
                return halt(m, PICOBOOT_UNKNOWN_ERROR);
        case PICOBOOT_PHASE_HALTED:
        case _PICOBOOT_PHASE_MAX:
                break;
        }
        m->stalls++;
        return -EPIPE;
}

int picoboot_model_in(PicobootModel *m, uint64_t now, uint8_t *data, size_t len)
{
        (void)now;
        switch (m->phase) {
        case PICOBOOT_PHASE_DATA_IN: {
                const PicobootCmd *c = &m->cmd;
                size_t n = MIN(len, (size_t)(c->size - m->done));
                for (size_t i = 0; i < n; i++) {
                        uint32_t a = c->addr + m->done + (uint32_t)i;
                        if (in_sram(a, 1))
                                data[i] = m->sram[a - RP2040_SRAM_BASE];
                        else if (a < 0x4000)
                                data[i] = rom_byte(m, a);
                        else
                                flash_model_read(m->flash, a, data + i, 1);
                }
                m->done += (uint32_t)n;
                m->bytes_read += n;
                if (m->done == c->size)
                        m->phase = PICOBOOT_PHASE_ACK_OUT;
                return (int)n;
        }
        case PICOBOOT_PHASE_ACK_IN:
                finish(m);
                return 0;
        case PICOBOOT_PHASE_COMMAND:
        case PICOBOOT_PHASE_DATA_OUT:
        case PICOBOOT_PHASE_ACK_OUT:
                return halt(m, PICOBOOT_UNKNOWN_ERROR);
        case PICOBOOT_PHASE_HALTED:
        case _PICOBOOT_PHASE_MAX:
                break;
        }
        m->stalls++;
        return -EPIPE;
}

int picoboot_model_control(PicobootModel *m, uint8_t type, uint8_t request, uint16_t length, uint8_t *data)
{
        if (type == 0x41 && request == PICOBOOT_IF_RESET && length == 0) {
                /* clears the halt and abandons the command (datasheet 2.8.5.4) */
                m->phase = PICOBOOT_PHASE_COMMAND;
                m->status.in_progress = false;
                m->resets++;
                event(m, "picoboot-reset", 0, 0);
                return 0;
        }
        if (type == 0xC1 && request == PICOBOOT_IF_CMD_STATUS && length >= PICOBOOT_STATUS_SIZE) {
                picoboot_status_encode(data, &m->status);
                m->status_requests++;
                return PICOBOOT_STATUS_SIZE;
        }
        return -EPIPE;
}

uint64_t picoboot_model_busy_until(const PicobootModel *m)
{
        return m->busy_until_us;
}

bool picoboot_model_take_reboot(PicobootModel *m, uint32_t *ret_delay_ms)
{
        if (!m->reboot_requested || m->phase != PICOBOOT_PHASE_COMMAND)
                return false;
        m->reboot_requested = false;
        if (ret_delay_ms)
                *ret_delay_ms = m->reboot_delay_ms;
        return true;
}

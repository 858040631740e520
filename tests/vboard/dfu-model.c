/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dfu-model.h"
#include "util/macros.h"

static const char *const dfu_action_table[_DFU_ACTION_MAX] = {
        [DFU_ACTION_NONE] = "none",
        [DFU_ACTION_LEAVE] = "leave",
        [DFU_ACTION_RESET] = "reset",
        [DFU_ACTION_VANISH] = "vanish",
};

const char *dfu_action_to_string(DfuAction a)
{
        return a < _DFU_ACTION_MAX ? dfu_action_table[a] : NULL;
}

int dfu_model_new(DfuModel **ret, const Timing *timing, uint16_t transfer_size)
{
        DfuModel *m;

        if (!timing || transfer_size == 0)
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->block = malloc(transfer_size);
        if (!m->block)
                return free(m), -ENOMEM;
        m->timing = timing;
        m->transfer_size = transfer_size;
        dfu_model_power_up(m, false);
        *ret = m;
        return 0;
}

DfuModel *dfu_model_free(DfuModel *m)
{
        if (!m)
                return NULL;
        free(m->block);
        free(m);
        return NULL;
}

int dfu_model_add_alt(DfuModel *m, FlashModel *memory)
{
        if (m->n_alts >= DFU_MODEL_MAX_ALTS)
                return -E2BIG;
        m->alts[m->n_alts++] = memory;
        return 0;
}

void dfu_model_power_up(DfuModel *m, bool error_at_start)
{
        m->alt = 0;
        m->address = m->n_alts > 0 ? m->alts[0]->base : 0;
        m->block_len = 0;
        m->busy_until = 0;
        m->action = DFU_ACTION_NONE;
        m->action_at = 0;
        m->plain_offset = m->upload_offset = 0;
        m->plain_erased = m->plain_start;
        m->plain_block = 0;
        m->manifested = false;
        if (error_at_start) {
                m->state = DFU_STATE_DFU_ERROR;
                m->status = DFU_STATUS_ERR_FIRMWARE;
        } else {
                m->state = DFU_STATE_DFU_IDLE;
                m->status = DFU_STATUS_OK;
        }
}

void dfu_model_bus_reset(DfuModel *m, uint64_t now_us)
{
        /* DFU 1.1 Appendix A (USB reset in any dfu* state): a plain DFU
         * bootloader checks its firmware and runs it when it is valid (the
         * glue decides from the flash content); only the ST ROM, held there
         * by BOOT0, stays in DFU mode. */
        if (m->plain) {
                m->action = DFU_ACTION_LEAVE;
                m->action_at = now_us;
                return;
        }
        /* DFU 1.1 Appendix A: a USB reset in dfuMANIFEST-WAIT-RESET (or while
         * manifesting) ends DFU mode; elsewhere the ROM stays in DFU mode
         * and starts over in dfuIDLE. */
        if (m->state == DFU_STATE_DFU_MANIFEST_WAIT_RESET || m->state == DFU_STATE_DFU_MANIFEST) {
                m->action = DFU_ACTION_LEAVE;
                m->action_at = now_us;
                return;
        }
        dfu_model_power_up(m, false);
}

int dfu_model_set_alt(DfuModel *m, unsigned alt)
{
        if (alt >= m->n_alts || (m->plain && alt > 0))
                return -EINVAL;
        m->alt = alt;
        m->address = m->alts[alt]->base;
        return 0;
}

int dfu_model_set_plain(DfuModel *m, uint32_t start, uint8_t attributes)
{
        if (m->n_alts == 0 || !flash_model_contains(m->alts[0], start, 1))
                return -ERANGE;
        m->plain = true;
        m->attributes = attributes;
        m->plain_start = start;
        m->plain_erased = start;
        return 0;
}

DfuAction dfu_model_pending_action(const DfuModel *m, uint64_t *ret_at_us)
{
        if (ret_at_us)
                *ret_at_us = m->action_at;
        return m->action;
}

void dfu_model_clear_action(DfuModel *m)
{
        m->action = DFU_ACTION_NONE;
        m->action_at = 0;
}

static void emit(DfuModel *m, const char *event, uint32_t address, uint32_t length)
{
        if (m->on_event)
                m->on_event(m->userdata, event, address, length);
}

static FlashModel *memory(DfuModel *m)
{
        return m->n_alts > 0 ? m->alts[m->alt] : NULL;
}

/* DFU 1.1 Appendix A: a request not allowed in the current state is
 * answered with a stall and the device moves to dfuERROR/errSTALLEDPKT. */
static int stall(DfuModel *m)
{
        m->stalls++;
        m->state = DFU_STATE_DFU_ERROR;
        m->status = DFU_STATUS_ERR_STALLEDPKT;
        return -EPIPE;
}

static void start_busy(DfuModel *m, uint64_t now_us, uint64_t duration_us, DfuStatusCode result)
{
        m->state = DFU_STATE_DFU_DNBUSY;
        m->busy_until = now_us + duration_us;
        m->busy_status = result;
        m->busy_next = result == DFU_STATUS_OK ? DFU_STATE_DFU_DNLOAD_IDLE : DFU_STATE_DFU_ERROR;
}

/* Plain DFU 1.1 (6.1.1): the block goes right after the previous one. Like
 * the flash-as-you-go bootloaders (LPC17xx and others), a sector is erased
 * when the download first reaches it, so one download costs one erase per
 * sector it covers. */
static void execute_plain_block(DfuModel *m, uint64_t now_us)
{
        FlashModel *mem = memory(m);
        const Timing *t = m->timing;
        uint32_t addr = m->plain_start + m->plain_offset;
        uint64_t busy = 0;
        int r;

        if (!mem || !flash_model_contains(mem, addr, m->block_len))
                /* past the end of the firmware region */
                return start_busy(m, now_us, timing_program_us(t, 0), DFU_STATUS_ERR_ADDRESS);
        while (m->plain_erased < addr + m->block_len) {
                uint32_t at = MAX(m->plain_erased, addr);
                int i = flash_model_find_sector(mem, at);
                if (i < 0)
                        return start_busy(m, now_us, timing_program_us(t, 0), DFU_STATUS_ERR_ADDRESS);
                r = flash_model_erase_sector(mem, mem->sectors[i].address);
                if (r < 0)
                        return start_busy(m, now_us, timing_program_us(t, 0), DFU_STATUS_ERR_ERASE);
                emit(m, "erase", mem->sectors[i].address, mem->sectors[i].size);
                busy += timing_sector_erase_us(t, mem->sectors[i].size);
                m->plain_erased = mem->sectors[i].address + mem->sectors[i].size;
        }
        if (m->plain_offset == 0)
                emit(m, "first-write", addr, m->block_len);
        m->dnloads++;
        r = flash_model_program(mem, addr, m->block, m->block_len);
        emit(m, "write", addr, m->block_len);
        m->plain_offset += m->block_len;
        m->plain_block++;
        start_busy(m, now_us, busy + timing_program_us(t, m->block_len),
                   r == -EIO ? DFU_STATUS_ERR_PROG
                   : r < 0   ? DFU_STATUS_ERR_ADDRESS
                             : DFU_STATUS_OK);
}

/* Run the DNLOAD block received in dfuDNLOAD-SYNC (UM0424 / AN3156 3.x):
 * DfuSe commands for wBlockNum 0, data for wBlockNum >= 2. */
static void execute_block(DfuModel *m, uint64_t now_us)
{
        FlashModel *mem = memory(m);
        const Timing *t = m->timing;
        uint32_t addr;
        int r;

        if (m->plain)
                return execute_plain_block(m, now_us);
        if (m->block_num == 0) {
                uint8_t cmd = m->block[0];

                if (cmd == DFUSE_CMD_SET_ADDRESS && m->block_len == 5) {
                        memcpy(&addr, m->block + 1, 4);
                        addr = le32toh(addr);
                        /* AN3156 6.1.3: a wrong address answers errTARGET */
                        if (!mem || !flash_model_contains(mem, addr, 1))
                                return start_busy(m, now_us, timing_program_us(t, 0), DFU_STATUS_ERR_TARGET);
                        m->address = addr;
                        return start_busy(m, now_us, timing_program_us(t, 0), DFU_STATUS_OK);
                }
                if (cmd == DFUSE_CMD_ERASE && m->block_len == 5) {
                        memcpy(&addr, m->block + 1, 4);
                        addr = le32toh(addr);
                        r = mem ? flash_model_erase_sector(mem, addr) : -ERANGE;
                        if (r < 0)
                                return start_busy(m, now_us, timing_program_us(t, 0), DFU_STATUS_ERR_TARGET);
                        emit(m, "erase", mem->sectors[flash_model_find_sector(mem, addr)].address,
                             (uint32_t)r);
                        return start_busy(m, now_us, timing_sector_erase_us(t, (uint32_t)r), DFU_STATUS_OK);
                }
                if (cmd == DFUSE_CMD_ERASE && m->block_len == 1) {
                        if (!mem)
                                return start_busy(m, now_us, timing_program_us(t, 0), DFU_STATUS_ERR_TARGET);
                        flash_model_mass_erase(mem);
                        emit(m, "mass-erase", mem->base, mem->size);
                        return start_busy(m, now_us, timing_mass_erase_us(t, mem->size), DFU_STATUS_OK);
                }
                if (cmd == DFUSE_CMD_READ_UNPROTECT && m->block_len == 1) {
                        /* AN3156 6.1.5: the device mass-erases and resets. */
                        uint64_t d = timing_mass_erase_us(t, mem ? mem->size : 0);
                        if (mem)
                                flash_model_mass_erase(mem);
                        emit(m, "read-unprotect", mem ? mem->base : 0, mem ? mem->size : 0);
                        start_busy(m, now_us, d, DFU_STATUS_OK);
                        m->action = DFU_ACTION_RESET;
                        m->action_at = now_us + d;
                        return;
                }
                /* unknown command or wrong length: the ROM rejects it */
                return start_busy(m, now_us, timing_program_us(t, 0), DFU_STATUS_ERR_TARGET);
        }

        /* UM0424: address = pointer + (wBlockNum - 2) * wTransferSize */
        addr = (uint32_t)(m->address + (uint64_t)(m->block_num - 2) * m->transfer_size);
        if (!mem || !flash_model_contains(mem, addr, m->block_len))
                return start_busy(m, now_us, timing_program_us(t, 0), DFU_STATUS_ERR_ADDRESS);
        if (mem->bytes_written == 0)
                emit(m, "first-write", addr, m->block_len);
        m->dnloads++;
        r = flash_model_program(mem, addr, m->block, m->block_len);
        emit(m, "write", addr, m->block_len);
        start_busy(m, now_us, timing_program_us(t, m->block_len),
                   r == -EIO ? DFU_STATUS_ERR_PROG
                   : r < 0   ? DFU_STATUS_ERR_ADDRESS
                             : DFU_STATUS_OK);
}

static int getstatus(DfuModel *m, uint64_t now_us, uint8_t *data, uint16_t w_length)
{
        uint32_t poll = 0;

        switch (m->state) {
        case DFU_STATE_DFU_DNLOAD_SYNC:
                execute_block(m, now_us);
                poll = timing_poll_timeout_ms(m->busy_until - now_us);
                break;
        case DFU_STATE_DFU_DNBUSY:
                if (now_us < m->busy_until) {
                        /* asked too early: still busy */
                        poll = timing_poll_timeout_ms(m->busy_until - now_us);
                        break;
                }
                m->state = m->busy_next;
                m->status = m->busy_status;
                break;
        case DFU_STATE_DFU_MANIFEST_SYNC:
                if (m->plain && m->manifested) {
                        /* DFU 1.1 A.2.6: manifestation done on a tolerant
                         * device: back to dfuIDLE, ready for more */
                        m->manifested = false;
                        m->state = DFU_STATE_DFU_IDLE;
                        break;
                }
                if (m->reset_on_leave) {
                        /* the defect: the ROM resets before it answers */
                        m->state = DFU_STATE_DFU_MANIFEST_WAIT_RESET;
                        m->action = DFU_ACTION_VANISH;
                        m->action_at = now_us;
                        emit(m, "leave", m->address, 0);
                        return -ENODEV;
                }
                /* DFU 1.1 A.2.6: answer dfuMANIFEST; the ROM is not
                 * manifestation tolerant and, with bitWillDetach, resets on
                 * its own (AN3156 "Leave DFU mode"). */
                if (m->plain && !(m->attributes & DFU_ATTR_MANIFESTATION_TOLERANT)) {
                        /* Like Smoothieware's bootloader (its dfu.c): the
                         * blocks are programmed already, so the answer is
                         * dfuMANIFEST-WAIT-RESET at once (DFU 1.1 A.2.6 allows
                         * it); with bitWillDetach the device then drops off
                         * the bus by itself (4.1.3), without it it waits for
                         * the host's USB reset. */
                        emit(m, "manifest", m->plain_start, m->plain_offset);
                        m->state = m->manifest_silent ? DFU_STATE_DFU_MANIFEST
                                                      : DFU_STATE_DFU_MANIFEST_WAIT_RESET;
                        m->busy_until = now_us + timing_manifest_us(m->timing);
                        if (m->manifest_silent)
                                poll = timing_poll_timeout_ms(m->busy_until - now_us);
                        if (m->attributes & DFU_ATTR_WILL_DETACH) {
                                m->action = DFU_ACTION_LEAVE;
                                m->action_at = m->busy_until;
                        }
                        break;
                }
                m->state = DFU_STATE_DFU_MANIFEST;
                m->busy_until = now_us + timing_manifest_us(m->timing);
                poll = timing_poll_timeout_ms(m->busy_until - now_us);
                if (m->plain) {
                        /* tolerant: manifests, then dfuMANIFEST-SYNC (below) */
                        emit(m, "manifest", m->plain_start, m->plain_offset);
                        break;
                }
                m->action = DFU_ACTION_LEAVE;
                m->action_at = m->busy_until;
                emit(m, "leave", m->address, 0);
                break;
        case DFU_STATE_DFU_MANIFEST:
                if (m->plain && m->manifest_silent) {
                        /* no answer while manifesting, nor after */
                        if (now_us >= m->busy_until)
                                m->state = DFU_STATE_DFU_MANIFEST_WAIT_RESET;
                        m->stalls++;
                        return -EPIPE;
                }
                if (now_us < m->busy_until) {
                        poll = timing_poll_timeout_ms(m->busy_until - now_us);
                        break;
                }
                if (m->plain) {
                        /* DFU 1.1 A.2.7: tolerant: dfuMANIFEST-SYNC, whose
                         * next GETSTATUS ends in dfuIDLE */
                        m->manifested = true;
                        m->state = DFU_STATE_DFU_MANIFEST_SYNC;
                        break;
                }
                m->state = DFU_STATE_DFU_MANIFEST_WAIT_RESET;
                break;
        case DFU_STATE_DFU_MANIFEST_WAIT_RESET:
                /* DFU 1.1 A.2.8: the device no longer answers; a plain
                 * device keeps waiting for its reset */
                if (m->plain) {
                        m->stalls++;
                        return -EPIPE;
                }
                return stall(m);
        case DFU_STATE_APP_IDLE:
        case DFU_STATE_APP_DETACH:
        case DFU_STATE_DFU_IDLE:
        case DFU_STATE_DFU_DNLOAD_IDLE:
        case DFU_STATE_DFU_UPLOAD_IDLE:
        case DFU_STATE_DFU_ERROR:
        case _DFU_STATE_MAX:
                break;
        }

        if (w_length < 6)
                return stall(m);
        /* DFU 1.1 6.1.2: bStatus, bwPollTimeout (3 bytes LE), bState, iString */
        data[0] = (uint8_t)m->status;
        data[1] = poll & 0xFF;
        data[2] = (poll >> 8) & 0xFF;
        data[3] = (poll >> 16) & 0xFF;
        data[4] = (uint8_t)m->state;
        data[5] = 0;
        return 6;
}

static int dnload(DfuModel *m, uint16_t w_value, uint16_t w_length, const uint8_t *data)
{
        if (w_length == 0) {
                /* DFU 1.1 A.2.5 / UM0424 "Leave": a zero-length DNLOAD in
                 * dfuDNLOAD-IDLE ends the download (dfu-util sends wValue 2,
                 * the ROM ignores it); in dfuIDLE it is a stall. */
                if (m->state != DFU_STATE_DFU_DNLOAD_IDLE)
                        return stall(m);
                m->state = DFU_STATE_DFU_MANIFEST_SYNC;
                return 0;
        }
        if (m->state != DFU_STATE_DFU_IDLE && m->state != DFU_STATE_DFU_DNLOAD_IDLE)
                return stall(m);
        if (m->plain) {
                /* DFU 1.1 6.1.1: a download starts in dfuIDLE with block 0
                 * and counts up; a block out of sequence is refused */
                if (m->state == DFU_STATE_DFU_IDLE) {
                        m->plain_offset = 0;
                        m->plain_erased = m->plain_start;
                        m->plain_block = 0;
                }
                if (w_length > m->transfer_size || w_value != m->plain_block)
                        return stall(m);
        } else if (w_length > m->transfer_size || w_value == 1)
                return stall(m);
        memcpy(m->block, data, w_length);
        m->block_len = w_length;
        m->block_num = w_value;
        m->state = DFU_STATE_DFU_DNLOAD_SYNC;
        return 0;
}

static int upload(DfuModel *m, uint16_t w_value, uint16_t w_length, uint8_t *data)
{
        FlashModel *mem = memory(m);
        uint32_t addr, n;

        if (m->state != DFU_STATE_DFU_IDLE && m->state != DFU_STATE_DFU_UPLOAD_IDLE)
                return stall(m);
        if (m->plain) {
                /* DFU 1.1 6.2: the firmware from its start, block after
                 * block; a short frame (the end of the region) ends it */
                if (w_length > m->transfer_size || !mem)
                        return stall(m);
                if (m->state == DFU_STATE_DFU_IDLE)
                        m->upload_offset = 0;
                addr = m->plain_start + m->upload_offset;
                n = (uint32_t)MIN((uint64_t)w_length, (uint64_t)mem->base + mem->size - addr);
                flash_model_read(mem, addr, data, n);
                m->upload_offset += n;
                m->uploads++;
                m->bytes_uploaded += n;
                m->state = n < w_length ? DFU_STATE_DFU_IDLE : DFU_STATE_DFU_UPLOAD_IDLE;
                return (int)n;
        }
        if (w_length > m->transfer_size || w_value == 1)
                return stall(m);

        if (w_value == 0) {
                /* UM0424 "Get Commands" */
                static const uint8_t cmds[] = { DFUSE_CMD_GET_COMMANDS, DFUSE_CMD_SET_ADDRESS,
                                                DFUSE_CMD_ERASE, DFUSE_CMD_READ_UNPROTECT };
                n = MIN(w_length, (uint32_t)sizeof(cmds));
                memcpy(data, cmds, n);
        } else {
                addr = (uint32_t)(m->address + (uint64_t)(w_value - 2) * m->transfer_size);
                if (!mem || !flash_model_contains(mem, addr, 1)) {
                        stall(m);
                        m->status = DFU_STATUS_ERR_ADDRESS;
                        return -EPIPE;
                }
                n = (uint32_t)MIN((uint64_t)w_length, (uint64_t)mem->base + mem->size - addr);
                flash_model_read(mem, addr, data, n);
                m->uploads++;
                m->bytes_uploaded += n;
        }
        /* DFU 1.1 A.2.10: a short frame ends the upload */
        m->state = n < w_length ? DFU_STATE_DFU_IDLE : DFU_STATE_DFU_UPLOAD_IDLE;
        return (int)n;
}

int dfu_model_request(DfuModel *m, uint64_t now_us, uint8_t bm_request_type, uint8_t b_request,
                      uint16_t w_value, uint16_t w_length, uint8_t *data)
{
        bool in = bm_request_type & 0x80;

        if (m->action == DFU_ACTION_VANISH)
                return -ENODEV;

        /* dfuDNBUSY: DFU 1.1 A.2.4, any request but (an early) GETSTATUS
         * stalls; same for dfuMANIFEST (A.2.7). */
        if ((m->state == DFU_STATE_DFU_DNBUSY || m->state == DFU_STATE_DFU_MANIFEST) &&
            b_request != DFU_REQUEST_GETSTATUS)
                return stall(m);

        switch (b_request) {
        case DFU_REQUEST_DETACH:
                if (in)
                        return stall(m);
                /* only meaningful in appIDLE; the ROM is in DFU mode */
                if (m->state != DFU_STATE_APP_IDLE)
                        return stall(m);
                m->state = DFU_STATE_APP_DETACH;
                return 0;
        case DFU_REQUEST_DNLOAD:
                if (in)
                        return stall(m);
                return dnload(m, w_value, w_length, data);
        case DFU_REQUEST_UPLOAD:
                if (!in)
                        return stall(m);
                return upload(m, w_value, w_length, data);
        case DFU_REQUEST_GETSTATUS:
                if (!in)
                        return stall(m);
                return getstatus(m, now_us, data, w_length);
        case DFU_REQUEST_CLRSTATUS:
                if (in || m->state != DFU_STATE_DFU_ERROR)
                        return stall(m);
                m->state = DFU_STATE_DFU_IDLE;
                m->status = DFU_STATUS_OK;
                return 0;
        case DFU_REQUEST_GETSTATE:
                if (!in || w_length < 1)
                        return stall(m);
                if (m->state == DFU_STATE_DFU_MANIFEST_WAIT_RESET)
                        return stall(m);
                data[0] = (uint8_t)m->state;
                return 1;
        case DFU_REQUEST_ABORT:
                if (in)
                        return stall(m);
                switch (m->state) {
                case DFU_STATE_DFU_IDLE:
                case DFU_STATE_DFU_DNLOAD_SYNC:
                case DFU_STATE_DFU_DNLOAD_IDLE:
                case DFU_STATE_DFU_MANIFEST_SYNC:
                case DFU_STATE_DFU_UPLOAD_IDLE:
                        m->state = DFU_STATE_DFU_IDLE;
                        m->status = DFU_STATUS_OK;
                        return 0;
                case DFU_STATE_APP_IDLE:
                case DFU_STATE_APP_DETACH:
                case DFU_STATE_DFU_DNBUSY:
                case DFU_STATE_DFU_MANIFEST:
                case DFU_STATE_DFU_MANIFEST_WAIT_RESET:
                case DFU_STATE_DFU_ERROR:
                case _DFU_STATE_MAX:
                        return stall(m);
                }
                return stall(m);
        default:
                return stall(m);
        }
}

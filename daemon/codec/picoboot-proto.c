/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "codec/codec-util.h"
#include "codec/picoboot-proto.h"
#include "util/macros.h"

static const char *const status_table[_PICOBOOT_STATUS_MAX] = {
        [PICOBOOT_OK] = "ok",
        [PICOBOOT_UNKNOWN_CMD] = "unknown-cmd",
        [PICOBOOT_INVALID_CMD_LENGTH] = "invalid-cmd-length",
        [PICOBOOT_INVALID_TRANSFER_LENGTH] = "invalid-transfer-length",
        [PICOBOOT_INVALID_ADDRESS] = "invalid-address",
        [PICOBOOT_BAD_ALIGNMENT] = "bad-alignment",
        [PICOBOOT_INTERLEAVED_WRITE] = "interleaved-write",
        [PICOBOOT_REBOOTING] = "rebooting",
        [PICOBOOT_UNKNOWN_ERROR] = "unknown-error",
};

const char *picoboot_status_to_string(PicobootStatus s)
{
        if (s < 0 || s >= _PICOBOOT_STATUS_MAX)
                return NULL;
        return status_table[s];
}

static void put_le32(uint8_t *p, uint32_t v)
{
        p[0] = v & 0xff;
        p[1] = (v >> 8) & 0xff;
        p[2] = (v >> 16) & 0xff;
        p[3] = v >> 24;
}

static void header(uint8_t *out, uint32_t token, uint8_t id, uint8_t arg_size, uint32_t transfer_length)
{
        memset(out, 0, PICOBOOT_CMD_SIZE);
        put_le32(out, PICOBOOT_MAGIC);
        put_le32(out + 4, token);
        out[8] = id;
        out[9] = arg_size;
        put_le32(out + 12, transfer_length);
}

void picoboot_encode_exclusive(uint8_t out[static PICOBOOT_CMD_SIZE], uint32_t token, uint8_t exclusive)
{
        header(out, token, PICOBOOT_EXCLUSIVE_ACCESS, 1, 0);
        out[16] = exclusive;
}

void picoboot_encode_range(uint8_t out[static PICOBOOT_CMD_SIZE], uint32_t token, PicobootCmdId id,
                           uint32_t addr, uint32_t size)
{
        header(out, token, (uint8_t)id, 8, id == PICOBOOT_FLASH_ERASE ? 0 : size);
        put_le32(out + 16, addr);
        put_le32(out + 20, size);
}

void picoboot_encode_reboot(uint8_t out[static PICOBOOT_CMD_SIZE], uint32_t token, uint32_t pc, uint32_t sp,
                            uint32_t delay_ms)
{
        header(out, token, PICOBOOT_REBOOT, 12, 0);
        put_le32(out + 16, pc);
        put_le32(out + 20, sp);
        put_le32(out + 24, delay_ms);
}

void picoboot_encode_simple(uint8_t out[static PICOBOOT_CMD_SIZE], uint32_t token, PicobootCmdId id)
{
        header(out, token, (uint8_t)id, 0, 0);
}

/* Argument size the ROM expects for a command, -1 for an unknown id. */
static int expected_arg_size(uint8_t id)
{
        switch (id) {
        case PICOBOOT_EXCLUSIVE_ACCESS:
                return 1;
        case PICOBOOT_REBOOT:
                return 12;
        case PICOBOOT_FLASH_ERASE:
        case PICOBOOT_READ:
        case PICOBOOT_WRITE:
                return 8;
        case PICOBOOT_EXIT_XIP:
        case PICOBOOT_ENTER_CMD_XIP:
                return 0;
        case PICOBOOT_EXEC:
        case PICOBOOT_VECTORIZE_FLASH:
                return 4;
        default:
                return -1;
        }
}

int picoboot_cmd_decode(const uint8_t *buf, size_t len, PicobootCmd *ret)
{
        PicobootCmd c;
        int want;

        if (!buf || !ret)
                return -EINVAL;
        if (len != PICOBOOT_CMD_SIZE || codec_le32(buf) != PICOBOOT_MAGIC)
                return -EBADMSG;
        c = (PicobootCmd){
                .token = codec_le32(buf + 4),
                .id = buf[8],
                .arg_size = buf[9],
                .transfer_length = codec_le32(buf + 12),
        };
        switch (c.id) {
        case PICOBOOT_EXCLUSIVE_ACCESS:
                c.exclusive = buf[16];
                break;
        case PICOBOOT_REBOOT:
                c.addr = codec_le32(buf + 16);
                c.size = codec_le32(buf + 20);
                c.delay_ms = codec_le32(buf + 24);
                break;
        default:
                c.addr = codec_le32(buf + 16);
                c.size = codec_le32(buf + 20);
                break;
        }
        *ret = c;

        want = expected_arg_size(c.id);
        if (want < 0)
                return PICOBOOT_UNKNOWN_CMD;
        if (c.arg_size != want)
                return PICOBOOT_INVALID_CMD_LENGTH;
        if (c.id == PICOBOOT_READ || c.id == PICOBOOT_WRITE) {
                if (c.transfer_length != c.size)
                        return PICOBOOT_INVALID_TRANSFER_LENGTH;
        } else if (c.transfer_length != 0)
                return PICOBOOT_INVALID_TRANSFER_LENGTH;
        return PICOBOOT_OK;
}

void picoboot_status_encode(uint8_t out[static PICOBOOT_STATUS_SIZE], const PicobootCmdStatus *s)
{
        memset(out, 0, PICOBOOT_STATUS_SIZE);
        put_le32(out, s->token);
        put_le32(out + 4, s->status);
        out[8] = s->cmd_id;
        out[9] = s->in_progress ? 1 : 0;
}

int picoboot_status_decode(const uint8_t *buf, size_t len, PicobootCmdStatus *ret)
{
        if (!buf || !ret)
                return -EINVAL;
        if (len < PICOBOOT_STATUS_SIZE)
                return -EBADMSG;
        *ret = (PicobootCmdStatus){
                .token = codec_le32(buf),
                .status = codec_le32(buf + 4),
                .cmd_id = buf[8],
                .in_progress = buf[9] != 0,
        };
        return 0;
}

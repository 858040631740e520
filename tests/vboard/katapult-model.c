/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "katapult-model.h"
#include "util/macros.h"

struct KatapultModel {
        FlashModel *flash;
        KatapultModelConfig cfg;
        char mcu[KATAPULT_MCU_MAX];
        char version[KATAPULT_VERSION_MAX];
        KatapultDecoder decoder;
        uint64_t dropped_seen; /* decoder drop counters at the last check */
        bool nack_sent;        /* one NACK per loss of sync (Katapult command.c) */
        bool completed;
        bool has_uuid;
        uint8_t uuid[6];
        uint32_t page_write_count;
        uint64_t replies;
        KatapultModelStats stats;
        uint8_t *out;
        size_t out_len, out_alloc;
};

int katapult_model_new(KatapultModel **ret, FlashModel *flash, const KatapultModelConfig *cfg)
{
        KatapultModel *m;

        if (!flash || !cfg || !cfg->mcu || !katapult_block_size_valid(cfg->block_size) ||
            cfg->start_address % cfg->block_size != 0 ||
            !flash_model_contains(flash, cfg->start_address, cfg->block_size))
                return -EINVAL;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->flash = flash;
        m->cfg = *cfg;
        if (m->cfg.proto_version == 0)
                m->cfg.proto_version = KATAPULT_PROTO_1_1_0;
        snprintf(m->mcu, sizeof(m->mcu), "%s", cfg->mcu);
        snprintf(m->version, sizeof(m->version), "%s", cfg->version ? cfg->version : "v0.0.1-flashd-vboard");
        m->cfg.mcu = m->mcu;
        m->cfg.version = m->version;
        if (cfg->canbus_uuid) {
                memcpy(m->uuid, cfg->canbus_uuid, sizeof(m->uuid));
                m->has_uuid = true;
        }
        m->cfg.canbus_uuid = NULL;
        katapult_decoder_init(&m->decoder);
        *ret = m;
        return 0;
}

KatapultModel *katapult_model_free(KatapultModel *m)
{
        if (!m)
                return NULL;
        free(m->out);
        free(m);
        return NULL;
}

void katapult_model_set_quirks(KatapultModel *m, const KatapultModelQuirks *q)
{
        m->cfg.quirks = q ? *q : (KatapultModelQuirks){};
}

static void queue(KatapultModel *m, const uint8_t *frame, size_t len)
{
        if (m->out_len + len > m->out_alloc) {
                size_t n = MAX(m->out_alloc * 2, m->out_len + len + 1024);
                uint8_t *p = realloc(m->out, n);
                if (!p)
                        return; /* a lost reply: the host retries */
                m->out = p;
                m->out_alloc = n;
        }
        memcpy(m->out + m->out_len, frame, len);

        m->replies++;
        if (m->cfg.quirks.corrupt_every && m->replies % m->cfg.quirks.corrupt_every == 0) {
                /* First payload byte, or the CRC of an empty reply. */
                m->out[m->out_len + 4] ^= 0x5a;
                m->stats.corrupted++;
        }
        m->out_len += len;
}

static void reply(KatapultModel *m, uint8_t code)
{
        uint8_t frame[KATAPULT_FRAME_OVERHEAD];
        int len = katapult_frame_encode(code, NULL, 0, frame, sizeof(frame));
        if (code == KATAPULT_REPLY_NACK)
                m->stats.nacks++;
        else if (code == KATAPULT_REPLY_BUSY)
                m->stats.busies++;
        else if (code == KATAPULT_REPLY_ERROR)
                m->stats.errors++;
        queue(m, frame, (size_t)len);
}

static void ack(KatapultModel *m, uint8_t cmd, const void *data, size_t size)
{
        uint8_t frame[KATAPULT_FRAME_MAX];
        int len = katapult_ack_encode(cmd, data, size, frame, sizeof(frame));
        if (len < 0) {
                reply(m, KATAPULT_REPLY_ERROR);
                return;
        }
        queue(m, frame, (size_t)len);
}

static bool is_erased(const KatapultModel *m, uint32_t address, uint32_t size)
{
        uint8_t buf[512];
        for (uint32_t off = 0; off < size; off += sizeof(buf)) {
                uint32_t n = MIN((uint32_t)sizeof(buf), size - off);
                if (flash_model_read(m->flash, address + off, buf, n) < 0)
                        return false;
                for (uint32_t i = 0; i < n; i++)
                        if (buf[i] != 0xff)
                                return false;
        }
        return true;
}

static bool is_equal(const KatapultModel *m, uint32_t address, const uint8_t *data, uint32_t size)
{
        uint8_t buf[KATAPULT_BLOCK_SIZE_MAX];
        return flash_model_read(m->flash, address, buf, size) >= 0 && memcmp(buf, data, size) == 0;
}

/* The erase unit holding `address` (a sector of the flash model). */
static void page_of(const KatapultModel *m, uint32_t address, uint32_t *ret_start, uint32_t *ret_size)
{
        int i = flash_model_find_sector(m->flash, address);
        if (i >= 0) {
                *ret_start = m->flash->sectors[i].address;
                *ret_size = m->flash->sectors[i].size;
        } else {
                *ret_start = address - address % m->cfg.block_size;
                *ret_size = m->cfg.block_size;
        }
}

/* Katapult src/stm32/flash.c flash_write_block(): 0, or < 0 for ERROR. */
static int write_block(KatapultModel *m, uint32_t address, const uint8_t *data)
{
        uint32_t bs = m->cfg.block_size, page, page_size;

        if (address % bs != 0 || address < m->cfg.start_address ||
            !flash_model_contains(m->flash, address, bs))
                return -EINVAL;

        page_of(m, address, &page, &page_size);
        if (page == address) {
                if (is_erased(m, page, page_size)) {
                        /* nothing to erase */
                } else if (is_equal(m, address, data, bs) && is_erased(m, address + bs, page_size - bs)) {
                        m->stats.blocks_repeated++;
                        return 0; /* retransmission */
                } else {
                        if (flash_model_erase_sector(m->flash, page) < 0)
                                return -EIO;
                        m->stats.sectors_erased++;
                }
                m->page_write_count++;
        } else if (!is_erased(m, address, bs)) {
                if (is_equal(m, address, data, bs)) {
                        m->stats.blocks_repeated++;
                        return 0; /* retransmission */
                }
                return -EEXIST; /* out of order */
        }

        if (flash_model_program(m->flash, address, data, bs) < 0)
                return -EIO;
        m->stats.blocks_written++;
        return 0;
}

static void handle(KatapultModel *m, const KatapultFrame *f)
{
        uint32_t bs = m->cfg.block_size;

        m->stats.commands++;
        if (m->cfg.quirks.nack_every && m->stats.commands % m->cfg.quirks.nack_every == 0) {
                reply(m, KATAPULT_REPLY_NACK);
                return;
        }
        if (m->cfg.quirks.busy_every && m->stats.commands % m->cfg.quirks.busy_every == 0) {
                reply(m, KATAPULT_REPLY_BUSY);
                return;
        }

        switch (f->cmd) {
        case KATAPULT_CMD_CONNECT: {
                KatapultConnectInfo info = {
                        .proto_version = m->cfg.proto_version,
                        .start_address = m->cfg.start_address,
                        .block_size = bs,
                };
                uint8_t payload[KATAPULT_PAYLOAD_MAX];
                snprintf(info.mcu, sizeof(info.mcu), "%s", m->mcu);
                snprintf(info.software_version, sizeof(info.software_version), "%s", m->version);
                int len = katapult_connect_encode(&info, payload, sizeof(payload));
                m->stats.connects++;
                if (len < 0)
                        reply(m, KATAPULT_REPLY_ERROR);
                else
                        ack(m, f->cmd, payload, (size_t)len);
                return;
        }
        case KATAPULT_CMD_SEND_BLOCK: {
                /* Katapult checks the word count: address + one block. */
                if (f->size != 4 + bs || write_block(m, katapult_get_le32(f->payload), f->payload + 4) < 0) {
                        reply(m, KATAPULT_REPLY_ERROR);
                        return;
                }
                ack(m, f->cmd, f->payload, 4);
                return;
        }
        case KATAPULT_CMD_EOF: {
                uint8_t out[4];
                katapult_put_le32(out, m->page_write_count);
                m->stats.eofs++;
                ack(m, f->cmd, out, sizeof(out));
                return;
        }
        case KATAPULT_CMD_REQUEST_BLOCK: {
                uint8_t out[4 + KATAPULT_BLOCK_SIZE_MAX];
                if (f->size < 4) {
                        reply(m, KATAPULT_REPLY_ERROR);
                        return;
                }
                uint32_t address = katapult_get_le32(f->payload);
                memcpy(out, f->payload, 4);
                if (flash_model_read(m->flash, address, out + 4, bs) < 0) {
                        reply(m, KATAPULT_REPLY_ERROR);
                        return;
                }
                m->stats.blocks_read++;
                ack(m, f->cmd, out, 4 + bs);
                return;
        }
        case KATAPULT_CMD_COMPLETE:
                ack(m, f->cmd, NULL, 0);
                m->completed = true;
                return;
        case KATAPULT_CMD_GET_CANBUS_ID:
                if (m->has_uuid) {
                        /* the UUID padded to whole words */
                        uint8_t out[8] = {};
                        memcpy(out, m->uuid, sizeof(m->uuid));
                        ack(m, f->cmd, out, sizeof(out));
                        return;
                }
                reply(m, KATAPULT_REPLY_ERROR);
                return;
        default:
                /* GET_CANBUS_ID only exists on CAN builds; unknown commands
                 * and the host's priming command get ERROR. */
                reply(m, KATAPULT_REPLY_ERROR);
                return;
        }
}

void katapult_model_feed(KatapultModel *m, const void *data, size_t size)
{
        const uint8_t *p = data;

        while (size > 0) {
                size_t n = katapult_decoder_feed(&m->decoder, p, size);
                p += n;
                size -= n;

                KatapultFrame f;
                for (;;) {
                        int r = katapult_decoder_next(&m->decoder, &f);
                        uint64_t dropped = m->decoder.n_bad + m->decoder.n_skipped;
                        if (dropped != m->dropped_seen) {
                                m->dropped_seen = dropped;
                                if (!m->nack_sent) {
                                        m->nack_sent = true;
                                        reply(m, KATAPULT_REPLY_NACK);
                                }
                        }
                        if (r <= 0)
                                break;
                        m->nack_sent = false;
                        handle(m, &f);
                }
        }
}

size_t katapult_model_take_output(KatapultModel *m, void *buf, size_t size, uint64_t *ret_delay_us)
{
        size_t n = MIN(size, m->out_len);

        if (ret_delay_us)
                *ret_delay_us = n > 0 ? m->cfg.quirks.reply_delay_us : 0;
        /* nothing answered yet: m->out may still be NULL, and memcpy's
         * source must not be NULL even for 0 bytes (UBSan) */
        if (n == 0)
                return 0;
        memcpy(buf, m->out, n);
        memmove(m->out, m->out + n, m->out_len - n);
        m->out_len -= n;
        return n;
}

size_t katapult_model_output_pending(const KatapultModel *m)
{
        return m->out_len;
}

bool katapult_model_completed(const KatapultModel *m)
{
        return m->completed;
}

bool katapult_model_app_plausible(const KatapultModel *m)
{
        uint8_t v[8];

        if (flash_model_read(m->flash, m->cfg.start_address, v, sizeof(v)) < 0)
                return false;
        uint32_t sp = katapult_get_le32(v), reset = katapult_get_le32(v + 4);
        uint32_t flash_end = m->flash->base + m->flash->size;
        return sp >= 0x20000000u && sp < 0x40000000u && (reset & 1) &&
               (reset & ~1u) >= m->cfg.start_address && (reset & ~1u) < flash_end;
}

const KatapultModelStats *katapult_model_get_stats(const KatapultModel *m)
{
        return &m->stats;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The flash procedures of a DfuSession.
 *
 * DfuSe (UM0424, AN3156): plan the touched sectors, read them back and
 * leave those that already hold the image, erase the changed ones (all
 * erases first, so the write phase is one stream; the sector holding the
 * vector table is erased first and written last whenever anything changes),
 * write in wTransferSize chunks aligned to the sector start, the vector
 * table's chunk last,
 * verify by UPLOAD, then leave with
 * SET_ADDRESS + zero-length DNLOAD + GETSTATUS.
 *
 * Plain DFU 1.1 (section 6.1): sequential DNLOAD blocks from wBlockNum 0, a
 * zero-length block to end, manifestation, optional UPLOAD verify, leave by
 * USB reset.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usb/dfu-session-internal.h"
#include "usb/dfu-session.h"

/* Manifestation of a plain DFU device: DFU 1.1 leaves the time to the
 * device's bwPollTimeout; bound the whole of it. */
#define DFU_MANIFEST_TIMEOUT_MS 10000

typedef struct FlashCtx {
        DfuSession *s;
        const DfuFlashRequest *req;
        const FlashCallbacks *cb;
        FlashPlan *plan;
        uint8_t *target; /* plan->max_sector_size bytes */
        uint64_t done;
        uint64_t total;
        /* read-back verdict of the current sector */
        bool equal;
        bool blank;
        /* verify */
        uint32_t verify_base; /* sector offset of the span being read */
        bool mismatch;
        uint32_t mismatch_offset;
        uint8_t mismatch_expected;
        uint8_t mismatch_read;
} FlashCtx;

static bool is_erased(const uint8_t *p, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (p[i] != 0xFF)
                        return false;
        return true;
}

static bool sector_gets_written(const FlashPlanSector *sec)
{
        return sec->action == FLASH_SECTOR_CHANGED || sec->action == FLASH_SECTOR_BLANK;
}

/* A device that vanished, in the words the job shows to the user. */
static int device_gone(DfuSession *s, const char *doing, uint32_t address)
{
        return dfu_session_fail(
                s, -ENODEV,
                "the board disappeared while %s 0x%08" PRIx32 "; it is still in its bootloader "
                "(DFU mode) with an incomplete image: once it is connected again, run the flash "
                "again; a retry starts over and will work",
                doing, address);
}

static int readback_chunk(void *userdata, uint32_t offset, const uint8_t *data, size_t len)
{
        FlashCtx *c = userdata;

        flash_compare_update(c->target + offset, data, len, &c->equal, &c->blank);
        flash_callbacks_progress(c->cb, c->done + offset + len, c->total);
        /* Once the sector is neither unchanged nor blank, the rest cannot help. */
        return c->equal || c->blank ? 0 : 1;
}

static int phase_read_back(FlashCtx *c)
{
        FlashPlan *p = c->plan;
        int r;

        c->done = 0;
        c->total = 0;
        for (size_t i = 0; i < p->n_sectors; i++)
                c->total += p->sectors[i].size;
        flash_callbacks_phase(c->cb, FLASH_PHASE_READ_BACK);
        flash_callbacks_progress(c->cb, 0, c->total);

        for (size_t i = 0; i < p->n_sectors; i++) {
                FlashPlanSector *sec = &p->sectors[i];

                flash_plan_sector_target(p, i, c->target);
                c->equal = c->blank = true;
                r = dfu_session_dfuse_upload_each(c->s, sec->address, sec->size, c->cb, readback_chunk, c);
                if (r == -ENODEV)
                        return device_gone(c->s, "reading back", sec->address);
                if (r < 0)
                        return r;
                sec->action = flash_sector_action_from(c->equal, c->blank);
                c->done += sec->size;
                flash_callbacks_progress(c->cb, c->done, c->total);
        }
        return 0;
}

static int phase_erase(FlashCtx *c)
{
        FlashPlan *p = c->plan;
        DfuSession *s = c->s;
        int r;

        c->done = 0;
        c->total = c->req->mass_erase ? 1 : flash_plan_bytes(p, FLASH_SECTOR_CHANGED);
        if (c->total == 0)
                return 0;
        flash_callbacks_phase(c->cb, FLASH_PHASE_ERASE);
        flash_callbacks_progress(c->cb, 0, c->total);

        if (c->req->mass_erase) {
                r = dfu_session_check_cancel(s, c->cb, "mass erase", p->sectors[0].address);
                if (r < 0)
                        return r;
                r = dfu_session_dfuse_mass_erase(s);
                if (r == -ENODEV)
                        return device_gone(s, "mass-erasing from", p->sectors[0].address);
                if (r < 0)
                        return r;
                s->stats.mass_erased = true;
                /* Everything is 0xFF now: write every touched sector, erase none. */
                for (size_t i = 0; i < p->n_sectors; i++)
                        p->sectors[i].action = FLASH_SECTOR_BLANK;
                flash_callbacks_progress(c->cb, 1, 1);
                return 0;
        }

        /* Ascending order: sector 0, which holds the image's vector table,
         * is erased before anything else is touched, so from the first
         * erase on the board has no plausible application and stays in its
         * bootloader if the flash is interrupted. */
        for (size_t i = 0; i < p->n_sectors; i++) {
                const FlashPlanSector *sec = &p->sectors[i];

                if (sec->action != FLASH_SECTOR_CHANGED)
                        continue;
                r = dfu_session_check_cancel(s, c->cb, "erase", sec->address);
                if (r < 0)
                        return r;
                r = dfu_session_dfuse_erase_page(s, sec->address);
                if (r == -ENODEV)
                        return device_gone(s, "erasing the sector at", sec->address);
                if (r < 0)
                        return r;
                s->stats.sectors_erased++;
                c->done += sec->size;
                flash_callbacks_progress(c->cb, c->done, c->total);
        }
        return 0;
}

static uint64_t bytes_to_write(FlashCtx *c)
{
        FlashPlan *p = c->plan;
        uint16_t xfer = c->s->transfer_size;
        uint64_t n = 0;

        for (size_t i = 0; i < p->n_sectors; i++) {
                if (!sector_gets_written(&p->sectors[i]))
                        continue;
                flash_plan_sector_target(p, i, c->target);
                for (uint32_t off = 0; off < p->sectors[i].size; off += xfer) {
                        size_t len = MIN((size_t)xfer, (size_t)(p->sectors[i].size - off));

                        if (!is_erased(c->target + off, len))
                                n += len;
                }
        }
        return n;
}

static int write_chunk(FlashCtx *c, uint32_t address, const uint8_t *data, size_t len)
{
        DfuSession *s = c->s;
        char what[64];
        int r;

        /* UM0424: block N lands at the last SET_ADDRESS + (N - 2) * wTransferSize,
         * so a contiguous run needs one SET_ADDRESS; dfu-util sends one per chunk. */
        if (!s->block_addressing || !s->run_valid || s->run_block > UINT16_MAX ||
            (uint64_t)s->run_address +
                            (uint64_t)(s->run_block - DFUSE_FIRST_DATA_BLOCK) * s->transfer_size !=
                    address) {
                r = dfu_session_dfuse_set_address(s, address);
                if (r < 0)
                        return r;
        }
        snprintf(what, sizeof(what), "writing 0x%08" PRIx32, address);
        r = dfu_session_download_block(s, (uint16_t)s->run_block, data, len, what);
        if (r < 0)
                return r;
        s->run_block++;
        return 0;
}

/* Write chunks [from, to) of sector i, whose target is in c->target. Chunks
 * are aligned to the sector start, so every chunk lies in one sector;
 * all-0xFF chunks (gaps the image does not cover, or 0xFF runs in it) are
 * already right after the erase. */
static int write_range(FlashCtx *c, size_t i, uint32_t from, uint32_t to)
{
        const FlashPlanSector *sec = &c->plan->sectors[i];
        DfuSession *s = c->s;
        uint16_t xfer = s->transfer_size;
        int r;

        for (uint32_t off = from; off < MIN(to, sec->size); off += xfer) {
                uint32_t address = sec->address + off;
                size_t len = MIN((size_t)xfer, (size_t)(sec->size - off));

                if (is_erased(c->target + off, len))
                        continue;
                r = dfu_session_check_cancel(s, c->cb, "write", address);
                if (r < 0)
                        return r;
                r = write_chunk(c, address, c->target + off, len);
                if (r == -ENODEV)
                        return device_gone(s, "writing", address);
                if (r < 0)
                        return dfu_session_fail(s, r,
                                                "%s; the board stays in DFU mode with an incomplete image: "
                                                "check the address and the board, then flash again",
                                                strempty(s->error));
                c->done += len;
                flash_callbacks_progress(c->cb, c->done, c->total);
        }
        return 0;
}

static int phase_write(FlashCtx *c)
{
        FlashPlan *p = c->plan;
        DfuSession *s = c->s;
        uint16_t xfer = s->transfer_size;
        uint32_t vt = 0;
        bool vt_last;
        int r;

        c->done = 0;
        c->total = bytes_to_write(c);
        if (c->total == 0)
                return 0;
        flash_callbacks_phase(c->cb, FLASH_PHASE_WRITE);
        flash_callbacks_progress(c->cb, 0, c->total);
        s->run_valid = false;

        /* The image's first bytes, its vector table (initial SP and reset
         * vector, ARMv7-M B1.5.3), are what a bootloader checks before it
         * starts an application. The erase cleared them; writing the sector
         * that holds them last, and their chunk very last, keeps the flash
         * free of a plausible application until everything else is in: a
         * board that loses power or its cable mid-write stays in its
         * bootloader, and a retry works. (The sectors are sorted, so the
         * first one holds the image's lowest address; the plan marks it
         * for writing whenever any other sector is written.) */
        vt_last = sector_gets_written(&p->sectors[0]);
        if (vt_last)
                vt = (p->segments[0].address - p->sectors[0].address) / xfer * xfer;

        for (size_t i = vt_last ? 1 : 0; i < p->n_sectors; i++) {
                if (!sector_gets_written(&p->sectors[i]))
                        continue;
                flash_plan_sector_target(p, i, c->target);
                r = write_range(c, i, 0, p->sectors[i].size);
                if (r < 0)
                        return r;
        }
        if (vt_last) {
                flash_plan_sector_target(p, 0, c->target);
                r = write_range(c, 0, 0, vt);
                if (r < 0)
                        return r;
                r = write_range(c, 0, vt + xfer, p->sectors[0].size);
                if (r < 0)
                        return r;
                r = write_range(c, 0, vt, vt + xfer);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The span of sector i (target in c->target) that the write phase programs:
 * from the first to the end of the last chunk that is not all 0xFF. */
static bool written_span(FlashCtx *c, const FlashPlanSector *sec, uint32_t *ret_first, uint32_t *ret_end)
{
        uint16_t xfer = c->s->transfer_size;
        uint32_t first = UINT32_MAX, end = 0;

        for (uint32_t off = 0; off < sec->size; off += xfer) {
                size_t len = MIN((size_t)xfer, (size_t)(sec->size - off));

                if (is_erased(c->target + off, len))
                        continue;
                first = MIN(first, off);
                end = off + (uint32_t)len;
        }
        if (first == UINT32_MAX)
                return false;
        *ret_first = first;
        *ret_end = end;
        return true;
}

static int verify_chunk(void *userdata, uint32_t offset, const uint8_t *data, size_t len)
{
        FlashCtx *c = userdata;
        const uint8_t *expected = c->target + c->verify_base + offset;

        for (size_t i = 0; i < len; i++)
                if (data[i] != expected[i]) {
                        c->mismatch = true;
                        c->mismatch_offset = c->verify_base + offset + (uint32_t)i;
                        c->mismatch_expected = expected[i];
                        c->mismatch_read = data[i];
                        return 1;
                }
        c->s->stats.bytes_verified += len;
        flash_callbacks_progress(c->cb, c->done + offset + len, c->total);
        return 0;
}

static int phase_verify(FlashCtx *c)
{
        FlashPlan *p = c->plan;
        DfuSession *s = c->s;
        uint32_t first, end;
        int r;

        c->done = 0;
        c->total = 0;
        for (size_t i = 0; i < p->n_sectors; i++)
                if (sector_gets_written(&p->sectors[i])) {
                        flash_plan_sector_target(p, i, c->target);
                        if (written_span(c, &p->sectors[i], &first, &end))
                                c->total += end - first;
                }
        if (c->total == 0)
                return 0;
        flash_callbacks_phase(c->cb, FLASH_PHASE_VERIFY);
        flash_callbacks_progress(c->cb, 0, c->total);

        for (size_t i = 0; i < p->n_sectors; i++) {
                const FlashPlanSector *sec = &p->sectors[i];

                if (!sector_gets_written(sec))
                        continue;
                flash_plan_sector_target(p, i, c->target);
                /* Read back what was programmed. The rest of the sector is 0xFF
                 * already checked: by the device's erase status (CHANGED) or by
                 * the read-back (BLANK); reading it again would cost as much as
                 * the write. */
                if (!written_span(c, sec, &first, &end))
                        continue;
                c->verify_base = first;
                r = dfu_session_dfuse_upload_each(s, sec->address + first, end - first, c->cb, verify_chunk,
                                                  c);
                if (r == -ENODEV)
                        return device_gone(s, "verifying", sec->address + first);
                if (r < 0)
                        return r;
                if (c->mismatch) {
                        uint32_t at = sec->address + c->mismatch_offset;

                        s->stats.verify_mismatch = true;
                        s->stats.mismatch_address = at;
                        return dfu_session_fail(s, -EILSEQ,
                                                "verify failed at 0x%08" PRIx32
                                                ": wrote 0x%02x, read back 0x%02x; "
                                                "the board is still in DFU mode: flash it again",
                                                at, c->mismatch_expected, c->mismatch_read);
                }
                c->done += end - first;
        }
        return 0;
}

static bool gone_after_leave(int r)
{
        /* The STM32 ROM resets as soon as it manifests, often before it answers;
         * the host then sees the device vanish, a stall or an I/O error. */
        return r == -ENODEV || r == -EIO || r == -EPIPE;
}

static int dfuse_leave(FlashCtx *c)
{
        DfuSession *s = c->s;
        DfuStatus st;
        int r;

        flash_callbacks_phase(c->cb, FLASH_PHASE_LEAVE);
        /* UM0424 "Leave DFU mode": SET_ADDRESS (the jump target), then a
         * zero-length DNLOAD, then GETSTATUS starts manifestation. */
        r = dfu_session_dfuse_set_address(s, c->req->leave_address);
        if (r < 0)
                return dfu_session_fail(s, r,
                                        "the image was written, but setting the start address 0x%08" PRIx32
                                        " to leave DFU mode failed: %s",
                                        c->req->leave_address, strempty(s->error));
        s->run_valid = false;
        r = dfu_session_request_out(s, DFU_REQUEST_DNLOAD, 0, NULL, 0);
        if (gone_after_leave(r)) {
                dfu_session_note(s, c->cb,
                                 "the device reset during the leave request (%s); it will re-enumerate",
                                 strerror(-r));
                return FLASH_RESULT_LEFT_DEVICE_GONE;
        }
        if (r < 0)
                return dfu_session_device_error(s, r, "the leave request");

        r = dfu_session_get_status(s, &st);
        if (gone_after_leave(r)) {
                dfu_session_note(
                        s, c->cb,
                        "the device reset before answering the leave request (%s); it will re-enumerate",
                        strerror(-r));
                return FLASH_RESULT_LEFT_DEVICE_GONE;
        }
        if (r < 0)
                return dfu_session_device_error(s, r, "the leave request");

        switch (st.state) {
        case DFU_STATE_DFU_MANIFEST_SYNC:
        case DFU_STATE_DFU_MANIFEST:
        case DFU_STATE_DFU_MANIFEST_WAIT_RESET:
                return FLASH_RESULT_LEFT;
        case DFU_STATE_DFU_ERROR:
                (void)dfu_session_clear_status(s);
                return dfu_session_fail(
                        s, -EIO,
                        "the image was written, but the device refused to leave DFU mode at 0x%08" PRIx32
                        ": %s (%s)",
                        c->req->leave_address, dfu_status_to_string(st.status),
                        dfu_status_to_message(st.status));
        case DFU_STATE_APP_IDLE:
        case DFU_STATE_APP_DETACH:
        case DFU_STATE_DFU_IDLE:
        case DFU_STATE_DFU_DNLOAD_SYNC:
        case DFU_STATE_DFU_DNBUSY:
        case DFU_STATE_DFU_DNLOAD_IDLE:
        case DFU_STATE_DFU_UPLOAD_IDLE:
        case _DFU_STATE_MAX:
                break;
        }
        return dfu_session_fail(s, -EPROTO,
                                "the image was written, but after the leave request the device is in %s",
                                dfu_state_to_string(st.state));
}

static int flash_dfuse(FlashCtx *c)
{
        _cleanup_(dfuse_layout_freep) DfuseLayout *own_layout = NULL;
        _cleanup_(flash_plan_freep) FlashPlan *plan = NULL;
        _cleanup_free_ uint8_t *target = NULL;
        _cleanup_free_ char *msg = NULL;
        const DfuseLayout *layout = c->req->layout;
        DfuSession *s = c->s;
        int r;

        if (!layout) {
                r = dfu_session_read_layout(s, &own_layout);
                if (r < 0)
                        return r;
                if (own_layout->diagnostic)
                        dfu_session_note(s, c->cb, "memory layout: %s", own_layout->diagnostic);
                layout = own_layout;
        }

        r = flash_plan_new(&plan, layout, c->req->image->segments, c->req->image->n_segments, &msg);
        if (r < 0)
                return dfu_session_fail(s, r, "%s; nothing was erased", msg ? msg : strerror(-r));
        target = malloc(plan->max_sector_size);
        if (!target)
                return -ENOMEM;
        c->plan = plan;
        c->target = target;
        s->stats.sectors_touched = plan->n_sectors;

        if (c->req->skip_unchanged && !c->req->mass_erase) {
                if (!(s->functional.attributes & DFU_ATTR_CAN_UPLOAD))
                        dfu_session_note(s, c->cb,
                                         "the device cannot upload; every touched sector is rewritten");
                else {
                        r = phase_read_back(c);
                        if (r < 0)
                                return r;
                }
        }
        /* An unchanged first sector keeps a valid vector table; rewriting
         * the rest under it would let an interrupted flash boot half an
         * image. Erase it first and write it last instead (flash-plan.h). */
        if (flash_plan_protect_vector_table(plan))
                dfu_session_note(s, c->cb,
                                 "the sector at 0x%08" PRIx32
                                 " is unchanged but holds the vector table: it is erased first and "
                                 "written last, so an interrupted flash leaves no bootable half image",
                                 plan->sectors[0].address);
        s->stats.sectors_unchanged = flash_plan_count(plan, FLASH_SECTOR_UNCHANGED);
        s->stats.sectors_blank = flash_plan_count(plan, FLASH_SECTOR_BLANK);

        r = phase_erase(c);
        if (r < 0)
                return r;
        r = phase_write(c);
        if (r < 0)
                return r;
        if (c->req->verify) {
                if (!(s->functional.attributes & DFU_ATTR_CAN_UPLOAD))
                        dfu_session_note(s, c->cb,
                                         "the device cannot upload; the written image was not verified");
                else {
                        r = phase_verify(c);
                        if (r < 0)
                                return r;
                }
        }
        c->plan = NULL;
        c->target = NULL;

        if (!c->req->leave) {
                /* Leave the device in dfuIDLE for whoever comes next. */
                r = dfu_session_end_upload(s);
                if (r < 0)
                        return dfu_session_device_error(s, r, "ending the upload");
                return FLASH_RESULT_DONE;
        }
        return dfuse_leave(c);
}

int dfu_session_plain_upload(DfuSession *s, uint8_t *buf, size_t len, const FlashCallbacks *cb)
{
        size_t off = 0;
        int r;

        /* DFU 1.1 section 6.2: blocks from 0; a short frame ends the upload. */
        for (uint32_t block = 0; off < len; block++) {
                size_t n = MIN((size_t)s->transfer_size, len - off);
                char what[64];

                if (block > UINT16_MAX)
                        return dfu_session_fail(s, -EFBIG,
                                                "the firmware is too large to read in 65536 blocks");
                r = dfu_session_check_cancel(s, cb, "reading", (uint32_t)off);
                if (r < 0)
                        return r;
                r = dfu_session_request_in(s, DFU_REQUEST_UPLOAD, (uint16_t)block, buf + off, n);
                if (r < 0) {
                        snprintf(what, sizeof(what), "reading byte %zu", off);
                        return dfu_session_device_error(s, r, what);
                }
                off += (size_t)r;
                s->stats.bytes_read += (size_t)r;
                flash_callbacks_progress(cb, off, len);
                if ((size_t)r < n)
                        return (int)off; /* the device ended the upload: back in dfuIDLE */
        }
        r = dfu_session_abort(s);
        if (r < 0)
                return dfu_session_device_error(s, r, "ending the upload");
        return (int)off;
}

static int flash_plain(FlashCtx *c)
{
        const FlashSegment *seg = NULL;
        DfuSession *s = c->s;
        bool gone = false;
        DfuState state = DFU_STATE_DFU_IDLE;
        uint64_t deadline;
        uint32_t block = 0;
        DfuStatus st;
        int r;

        for (size_t i = 0; i < c->req->image->n_segments; i++) {
                if (c->req->image->segments[i].size == 0)
                        continue;
                if (seg)
                        return dfu_session_fail(s, -EINVAL,
                                                "this device speaks plain DFU 1.1, which has no addresses: "
                                                "the image must be one contiguous piece");
                seg = &c->req->image->segments[i];
        }
        if (!seg)
                return dfu_session_fail(s, -EINVAL, "the image contains no data");
        if (c->req->mass_erase)
                dfu_session_note(
                        s, c->cb,
                        "plain DFU devices have no mass erase command; the device erases as it needs");

        flash_callbacks_phase(c->cb, FLASH_PHASE_WRITE);
        c->total = seg->size;
        for (size_t off = 0; off < seg->size; off += s->transfer_size, block++) {
                size_t n = MIN((size_t)s->transfer_size, seg->size - off);
                char what[64];

                if (block > UINT16_MAX)
                        return dfu_session_fail(s, -EFBIG, "the image is too large for 65536 DFU blocks");
                r = dfu_session_check_cancel(s, c->cb, "write", (uint32_t)off);
                if (r < 0)
                        return r;
                snprintf(what, sizeof(what), "writing block %" PRIu32 " (byte %zu)", block, off);
                /* DFU 1.1 section 6.1.1: wBlockNum counts up from 0 (and may wrap). */
                r = dfu_session_download_block(s, (uint16_t)block, seg->data + off, n, what);
                if (r == -ENODEV)
                        return device_gone(s, "writing byte offset", (uint32_t)off);
                if (r < 0)
                        return r;
                flash_callbacks_progress(c->cb, off + n, c->total);
        }

        /* DFU 1.1 section 6.1.1: a zero-length DNLOAD ends the download and
         * starts manifestation (dfuMANIFEST-SYNC). */
        r = dfu_session_request_out(s, DFU_REQUEST_DNLOAD, (uint16_t)block, NULL, 0);
        if (r < 0)
                return dfu_session_device_error(s, r, "ending the download");
        deadline = dfu_session_now_ms(s) + DFU_MANIFEST_TIMEOUT_MS;
        for (;;) {
                r = dfu_session_get_status(s, &st);
                if (r == -EPIPE || r == -ETIMEDOUT) {
                        /* DFU 1.1 A.2.7 / A.2.8: a device need not answer GETSTATUS
                         * while manifesting or waiting for its reset. It is still on
                         * the bus, so it still needs the USB reset below. */
                        state = DFU_STATE_DFU_MANIFEST_WAIT_RESET;
                        break;
                }
                if (gone_after_leave(r)) {
                        /* Not manifestation tolerant: the device resets by itself. */
                        gone = true;
                        break;
                }
                if (r < 0)
                        return dfu_session_device_error(s, r, "manifestation");
                state = st.state;
                if (state == DFU_STATE_DFU_ERROR) {
                        (void)dfu_session_clear_status(s);
                        return dfu_session_fail(
                                s, -EIO, "the device rejected the image during manifestation: %s (%s)",
                                dfu_status_to_string(st.status), dfu_status_to_message(st.status));
                }
                if (state != DFU_STATE_DFU_MANIFEST_SYNC && state != DFU_STATE_DFU_MANIFEST)
                        break;
                if (dfu_session_now_ms(s) + st.poll_timeout_ms > deadline)
                        return dfu_session_fail(s, -ETIMEDOUT,
                                                "the device did not finish manifestation in time");
                dfu_session_sleep_ms(s, st.poll_timeout_ms);
        }

        if (c->req->verify) {
                if (gone || state != DFU_STATE_DFU_IDLE || !(s->functional.attributes & DFU_ATTR_CAN_UPLOAD))
                        dfu_session_note(
                                s, c->cb,
                                "the device cannot upload after manifestation; the image was not verified");
                else {
                        _cleanup_free_ uint8_t *buf = malloc(seg->size);

                        if (!buf)
                                return -ENOMEM;
                        flash_callbacks_phase(c->cb, FLASH_PHASE_VERIFY);
                        r = dfu_session_plain_upload(s, buf, seg->size, c->cb);
                        if (r < 0)
                                return r;
                        for (size_t i = 0; i < seg->size; i++)
                                if (i >= (size_t)r || buf[i] != seg->data[i]) {
                                        s->stats.verify_mismatch = true;
                                        s->stats.mismatch_address = (uint32_t)i;
                                        return dfu_session_fail(
                                                s, -EILSEQ,
                                                "verify failed at byte %zu of the image%s; flash it again",
                                                i, i >= (size_t)r ? " (the device returned less)" : "");
                                }
                        s->stats.bytes_verified = seg->size;
                }
        }

        if (gone) {
                dfu_session_note(s, c->cb, "the device reset after manifestation; it will re-enumerate");
                return FLASH_RESULT_LEFT_DEVICE_GONE;
        }
        if (!c->req->leave)
                return FLASH_RESULT_DONE;

        flash_callbacks_phase(c->cb, FLASH_PHASE_LEAVE);
        /* DFU 1.1 section 6.1.4 / A.2.8: a USB reset ends DFU mode. */
        r = usb_transport_reset(s->transport);
        if (r == -ENODEV || r == -ENOENT || r == -EIO)
                return FLASH_RESULT_LEFT_DEVICE_GONE;
        if (r < 0)
                return dfu_session_device_error(s, r, "the USB reset to leave DFU mode");
        return FLASH_RESULT_LEFT;
}

static char *flash_summary(const DfuSession *s, int result, uint64_t ms, bool verified)
{
        const DfuFlashStats *st = &s->stats;
        const char *left = result == FLASH_RESULT_LEFT_DEVICE_GONE
                                   ? "; the device left DFU mode and is re-enumerating"
                           : result == FLASH_RESULT_LEFT ? "; the device is leaving DFU mode"
                                                         : "";
        char *m;

        if (!s->dfuse) {
                /* plain DFU 1.1: no sectors the host could see or skip */
                if (asprintf(&m, "flashed: %" PRIu64 " bytes written%s in %" PRIu64 ".%01" PRIu64 " s%s",
                             st->bytes_written, verified ? " and verified" : "", ms / 1000, ms % 1000 / 100,
                             left) < 0)
                        return NULL;
                return m;
        }
        if (asprintf(&m,
                     "%s: %zu sector(s) touched, %zu unchanged, %zu blank, %zu erased%s; %" PRIu64
                     " bytes written%s in %" PRIu64 ".%01" PRIu64 " s%s",
                     st->bytes_written == 0 && st->sectors_erased == 0 ? "already up to date" : "flashed",
                     st->sectors_touched, st->sectors_unchanged, st->sectors_blank, st->sectors_erased,
                     st->mass_erased ? " (mass erase)" : "", st->bytes_written,
                     verified ? " and verified" : "", ms / 1000, ms % 1000 / 100, left) < 0)
                return NULL;
        return m;
}

int dfu_session_flash(DfuSession *s, const DfuFlashRequest *req, const FlashCallbacks *cb,
                      char **ret_message)
{
        FlashCtx c = { .s = s, .req = req, .cb = cb };
        uint64_t start = dfu_session_now_ms(s);
        int r;

        s->stats = (DfuFlashStats){};
        free(s->error);
        s->error = NULL;
        if (!req->image)
                return -EINVAL;

        r = dfu_session_make_idle(s, cb);
        /* A device in appIDLE runs its application: a failed flash, not an
         * image built for another chip (FLASH_ERR_MCU shares its errno). */
        if (r == -EMEDIUMTYPE)
                r = FLASH_ERR_REMOTE;
        if (r >= 0)
                r = s->dfuse ? flash_dfuse(&c) : flash_plain(&c);

        if (ret_message) {
                if (r < 0)
                        *ret_message = strdup(s->error ? s->error : strerror(-r));
                else
                        *ret_message = flash_summary(s, r, dfu_session_now_ms(s) - start,
                                                     req->verify && s->stats.bytes_verified > 0);
        }
        return r;
}

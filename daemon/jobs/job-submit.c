/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "codec/codec-util.h"
#include "codec/dfuse-layout.h"
#include "codec/flash-image.h"
#include "codec/image-check.h"
#include "jobs/job-board.h"
#include "jobs/job-check.h"
#include "jobs/job-flow-can.h"
#include "jobs/job-queue-internal.h"
#include "util/log.h"

/* ---- candidates an image tells apart ---- */

/* What the image says of the board it was built for. */
typedef struct ImageFacts {
        char *mcu;        /* Klipper's dictionary config.MCU, or NULL */
        bool has_vectors; /* sp and reset read from the vector table */
        uint32_t sp, reset;
        bool raw;            /* a raw image: placed at the application start */
        bool has_start;      /* the image's own start address (hex, dfu, explicit --address) */
        uint32_t start, end; /* [start, end) of the data; for a raw image relative to 0 */
} ImageFacts;

static void image_facts_clear(ImageFacts *f)
{
        free(f->mcu);
        *f = (ImageFacts){};
}

static uint32_t le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void image_facts_read(const JobRequest *req, ImageFacts *ret)
{
        _cleanup_(flash_image_freep) FlashImage *img = NULL;
        _cleanup_free_ char *error = NULL, *version = NULL;
        FlashImageFormat format = req->format ? flash_image_format_from_string(req->format)
                                              : flash_image_detect(req->data, req->size, NULL);
        ImageFacts f = {};

        f.raw = !req->has_address &&
                (format == FLASH_IMAGE_FORMAT_BIN || format == FLASH_IMAGE_FORMAT_DFU_RAW);
        /* a raw image anywhere: only its bytes matter here, not the address */
        if (flash_image_parse(req->data, req->size, format, NULL,
                              req->has_address || format == FLASH_IMAGE_FORMAT_BIN ||
                                      format == FLASH_IMAGE_FORMAT_DFU_RAW,
                              req->has_address ? req->address : 0, &img, &error) < 0 ||
            img->n_segments == 0) {
                *ret = f;
                return;
        }
        (void)klipper_dictionary_find(img, &f.mcu, &version);
        const FlashSegment *first = &img->segments[0], *last = &img->segments[img->n_segments - 1];
        if (first->size >= 8) {
                f.has_vectors = true;
                f.sp = le32(first->data);
                f.reset = le32(first->data + 4) & ~1u;
        }
        f.has_start = !f.raw;
        f.start = first->address;
        f.end = last->address + (uint32_t)last->size;
        *ret = f;
}

/* The candidate could be the board the image was built for. */
static bool candidate_fits_image(const BoardVariant *v, const ImageFacts *f)
{
        uint32_t app = v->flash_base + v->app_offset;

        if (f->mcu && v->mcu && strcasecmp(f->mcu, v->mcu) != 0)
                return false;
        /* the initial stack pointer lies in the board's RAM (at most its end) */
        if (f->has_vectors && v->ram_size > 0 &&
            (f->sp <= v->ram_start || f->sp > v->ram_start + v->ram_size))
                return false;
        /* a raw image is linked for the application start: its reset vector points into it */
        if (f->raw && f->has_vectors && (f->reset < app || f->reset >= app + (f->end - f->start)))
                return false;
        /* a hex or dfu image names its own start */
        if (f->has_start && !f->raw && f->start != app && f->start != v->flash_base)
                return false;
        /* it fits the board's flash above the application start */
        if (v->flash_size > v->app_offset && f->end > f->start &&
            (uint64_t)(f->end - f->start) > (uint64_t)(v->flash_size - v->app_offset))
                return false;
        return true;
}

/* The size of the flash sector the application starts in (what a
 * bootloader erases first), or 0 when the database has no layout. */
static uint32_t variant_app_sector_size(const BoardVariant *v)
{
        const DfuseLayout *l = v->flash_layout;
        uint32_t app = v->flash_base + v->app_offset;

        if (!l)
                return 0;
        for (size_t r = 0; r < l->n_regions; r++)
                for (size_t i = 0; i < l->regions[r].n_segments; i++) {
                        const DfuseSegment *seg = &l->regions[r].segments[i];
                        if (app >= seg->address &&
                            (uint64_t)app < (uint64_t)seg->address + (uint64_t)seg->count * seg->size)
                                return seg->size;
                }
        return 0;
}

/*
 * Everything a flash takes from the board database is the same: where the
 * application starts and the sector it starts in. The flash size may differ
 * (an EBB36's G0B1 has 128 KiB, an SKR Mini's 512 KiB): candidate_fits_image()
 * kept only the boards the image fits, and the bootloader's own layout is
 * checked again once the board is in it.
 */
static bool variants_agree(const BoardVariant *a, const BoardVariant *b)
{
        return a->flash_base == b->flash_base && a->app_offset == b->app_offset &&
               variant_app_sector_size(a) == variant_app_sector_size(b);
}

/*
 * A device several boards fit (an F429 in ROM DFU: an Octopus, an Octopus
 * Pro or, by its USB ids, an SKR Pro): keep the candidates the image fits,
 * and when they agree on everything the flash needs, take the first and
 * name the others. Returns the pick or NULL; *ret_message says why not
 * when the remaining candidates differ.
 */
static const InventoryCandidate *pick_candidate(const InventoryEntry *e, const JobRequest *req,
                                                char **ret_alternatives, bool *ret_one_mcu,
                                                char **ret_message)
{
        _cleanup_free_ const InventoryCandidate **fit = calloc(e->n_candidates + 1, sizeof(*fit));
        _cleanup_(image_facts_clear) ImageFacts f = {};
        size_t n = 0;
        bool agree = true;

        if (!fit)
                return NULL;
        image_facts_read(req, &f);
        for (size_t i = 0; i < e->n_candidates; i++)
                if (e->candidates[i].variant && candidate_fits_image(e->candidates[i].variant, &f))
                        fit[n++] = &e->candidates[i];
        if (n == 0) /* the image fits none: the checks say why */
                for (size_t i = 0; i < e->n_candidates; i++)
                        if (e->candidates[i].variant)
                                fit[n++] = &e->candidates[i];
        for (size_t i = 1; i < n; i++)
                agree = agree && variants_agree(fit[0]->variant, fit[i]->variant);

        char *s = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&s, &len);
        if (!m)
                return NULL;
        if (agree) {
                bool first = true;
                *ret_one_mcu = true;
                for (size_t i = 1; i < n; i++)
                        *ret_one_mcu = *ret_one_mcu && streq_ptr(fit[i]->variant->mcu, fit[0]->variant->mcu);
                for (size_t i = 1; i < n; i++)
                        if (!streq(fit[i]->board->name, fit[0]->board->name)) {
                                fprintf(m, "%s%s", first ? "" : "|", fit[i]->board->name);
                                first = false;
                        }
                fclose(m);
                *ret_alternatives = s;
                return n > 0 ? fit[0] : NULL;
        }
        fprintf(m, "the board on %s could be ", e->port);
        for (size_t i = 0; i < n; i++)
                fprintf(m, "%s%s/%s (%s, application at 0x%08" PRIx32 ")",
                        i == 0       ? ""
                        : i + 1 == n ? " or "
                                     : ", ",
                        fit[i]->board->name, strna(fit[i]->variant->id), strna(fit[i]->variant->mcu),
                        fit[i]->variant->flash_base + fit[i]->variant->app_offset);
        fprintf(m,
                ", and the image does not tell which: flash by board/variant (as `flashctl info` prints "
                "them, e.g. %s/%s) or pass --address (the address the image was built for)",
                fit[0]->board->name, strna(fit[0]->variant->id));
        fclose(m);
        *ret_message = s;
        return NULL;
}

/* ---- submission ---- */

static void job_submit_note(void *userdata, const char *line)
{
        job_log(userdata, "%s", line);
}

/* "octopus-pro", or "octopus-pro|octopus" while the device is ambiguous */
static void print_entry_boards(FILE *f, const InventoryEntry *e)
{
        if (e->board) {
                fprintf(f, "%s%s%s", e->board->name, e->variant ? "/" : "",
                        e->variant ? e->variant->id : "");
                return;
        }
        if (e->n_candidates == 0) {
                fputs("not in the board database", f);
                return;
        }
        for (size_t i = 0; i < e->n_candidates; i++)
                fprintf(f, "%s%s/%s", i ? "|" : "", e->candidates[i].board->name,
                        strna(e->candidates[i].variant->id));
}

static char *describe_candidates(const char *target, const InventoryEntry **matches)
{
        char *s = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&s, &n);

        if (!f)
                return NULL;
        fprintf(f, "'%s' matches several boards:", target);
        for (size_t i = 0; matches && matches[i]; i++) {
                fprintf(f, "%s %s (", i ? ";" : "", matches[i]->port);
                print_entry_boards(f, matches[i]);
                fprintf(f, ", %s mode%s%s)", device_mode_to_string(matches[i]->mode),
                        matches[i]->tty ? ", " : "", matches[i]->tty ? matches[i]->tty : "");
        }
        fprintf(f, "; pass one of these port paths instead");
        fclose(f);
        return s;
}

static int submit_refuse(JobError e, char *message, JobError *ret_error, char **ret_message)
{
        *ret_error = e;
        *ret_message = message;
        return -EINVAL;
}

int job_queue_submit(JobQueue *q, const JobRequest *req, Job **ret_job, JobError *ret_error,
                     char **ret_message)
{
        _cleanup_(job_freep) Job *j = NULL;
        _cleanup_free_ const InventoryEntry **matches = NULL;
        _cleanup_free_ char *message = NULL;
        _cleanup_(job_payload_freep) JobPayload *image = NULL;
        const InventoryEntry *e = NULL;
        JobFlowBoard fb = {};
        const Board *b;
        const BoardVariant *v;
        JobError err = JOB_ERROR_NONE;
        char *text = NULL;
        int r;

        *ret_job = NULL;
        if (req->size > IMAGE_STORE_MAX_SIZE) {
                (void)asprintf(&text, "the image is %s; flashd accepts at most %s",
                               codec_format_size((char[CODEC_SIZE_MAX]){}, req->size),
                               codec_format_size((char[CODEC_SIZE_MAX]){}, IMAGE_STORE_MAX_SIZE));
                return submit_refuse(JOB_ERROR_IMAGE_TOO_LARGE, text, ret_error, ret_message);
        }

        /* IFACE:UUID is a node on a CAN bus, which the USB inventory does not hold */
        char can_iface[16];
        CanUuid can_uuid;
        bool can = job_can_target_parse(req->target, can_iface, &can_uuid) >= 0;

        r = can ? 0 : inventory_find(q->inventory, req->target, &e, &matches);
        if (r == -ENOTUNIQ)
                return submit_refuse(JOB_ERROR_TARGET_AMBIGUOUS, describe_candidates(req->target, matches),
                                     ret_error, ret_message);
        /* A board away from its port while a job reboots it is still that
         * port's board: queue behind that job, with what it knows of it. */
        const Job *holder = !can && r == -ENODEV ? job_queue_port_holder(q, req->target) : NULL;
        if (holder)
                r = 0;
        else if (!can && (r < 0 || !e)) {
                (void)asprintf(&text, "no connected board matches '%s'%s", req->target,
                               q->boards && board_db_find(q->boards, req->target)
                                       ? " (a known board name, but no such board is connected)"
                                       : "");
                return submit_refuse(JOB_ERROR_TARGET_NOT_FOUND, text, ret_error, ret_message);
        }

        r = job_new(&j, q->next_id);
        if (r < 0)
                return r;
        if (job_set_string(&j->target, req->target) < 0 ||
            job_set_string(&j->port, can ? req->target
                                     : e ? e->port
                                         : holder->port) < 0 ||
            job_set_string(&j->mode, can ? "can"
                                     : e ? device_mode_to_string(e->mode)
                                         : holder->mode) < 0 ||
            job_set_string(&j->device, can ? req->target
                                       : e ? (e->tty ? e->tty : e->usb_devnode)
                                           : NULL) < 0 ||
            job_set_string(&j->source, req->source ? req->source : "manual") < 0 ||
            job_set_string(&j->requested_by.name, req->requested_by.name) < 0)
                return -ENOMEM;
        j->requested_by.uid = req->requested_by.uid;
        j->requested_by.pid = req->requested_by.pid;
        j->verify = req->verify;
        j->mass_erase = req->mass_erase;
        j->force = req->force;
        /* the board the request names picks among the entry's candidates */
        if (job_set_string(&j->board, req->board ? req->board : (holder ? holder->board : NULL)) < 0 ||
            job_set_string(&j->variant, holder && !req->board ? holder->variant : NULL) < 0)
                return -ENOMEM;
        /* "board/variant" as `flashctl info` prints a candidate */
        const char *slash = strchr(req->target, '/');
        if (!req->board && !holder && slash && slash != req->target) {
                _cleanup_free_ char *name = strndup(req->target, (size_t)(slash - req->target));
                if (!name || job_set_string(&j->board, name) < 0 ||
                    job_set_string(&j->variant, slash + 1) < 0)
                        return -ENOMEM;
        }
        job_board_of(q->boards, j, e, &b, &v);
        _cleanup_free_ char *ambiguity = NULL;
        bool one_mcu = true;
        if (!b && e && e->n_candidates > 1) {
                _cleanup_free_ char *others = NULL;
                const InventoryCandidate *c = pick_candidate(e, req, &others, &one_mcu, &ambiguity);
                if (c) {
                        b = c->board;
                        v = c->variant;
                        if (others && others[0]) {
                                job_log(j,
                                        "the board on %s could be %s or %s; the image fits them, and they "
                                        "agree on everything the flash needs (application at 0x%08" PRIx32
                                        ", %" PRIu32 " KiB of flash)",
                                        e->port, b->name, others, v->flash_base + v->app_offset,
                                        v->flash_size / 1024);
                                if (job_set_string(&j->board_alternatives, others) < 0)
                                        return -ENOMEM;
                        }
                }
        }
        if (b &&
            (job_set_string(&j->board, b->name) < 0 || job_set_string(&j->variant, v ? v->id : NULL) < 0))
                return -ENOMEM;
        if (job_set_string(&j->mcu, v && v->mcu ? v->mcu
                                    : e         ? (e->mcu ? e->mcu : e->last_mcu)
                                    : holder    ? holder->mcu
                                                : NULL) < 0)
                return -ENOMEM;
        /* boards alike for the flash but not in their MCU: the job does not
         * know which it is (nor which variant) */
        if (!one_mcu && (job_set_string(&j->mcu, e->mcu ? e->mcu : e->last_mcu) < 0 ||
                         job_set_string(&j->variant, NULL) < 0))
                return -ENOMEM;
        job_log(j, "submitted by %s (uid %u, pid %d): %s on %s", strna(req->requested_by.name),
                (unsigned)req->requested_by.uid, (int)req->requested_by.pid, req->target, j->port);
        if (holder)
                job_log(j,
                        "the board on %s is away while job %" PRIu64
                        " reboots it; this job runs after that one",
                        j->port, holder->id);

        /* Refuse a wrong image now, before the board is even rebooted. */
        {
                JobDevice *dev = NULL;
                JobCheckInput in = {
                        .data = req->data,
                        .size = req->size,
                        .format = req->format,
                        .address = req->address,
                        .has_address = req->has_address,
                        .force = req->force,
                        .mass_erase = req->mass_erase,
                        .hide_bytes = req->opened_by_path,
                };
                if (b && job_flow_board_fill(&fb, b, v) >= 0)
                        in.board = &fb;
                if (e && e->mode == DEVICE_MODE_DFU && job_device_from_entry(e, &dev) >= 0 && dev->layout)
                        in.layout = dev->layout;
                /* A CAN node of unknown board: only its Katapult tells the
                 * application start and the MCU; the job checks there,
                 * before any block is written. */
                if (can && !in.board && !in.has_address) {
                        job_log(j,
                                "checks deferred until Katapult on %s reports its application start and "
                                "MCU",
                                req->target);
                        r = 0;
                } else
                        r = job_check_image(&in, job_submit_note, j, &image, &err, &message);
                if (r < 0 && err == JOB_ERROR_IMAGE_INVALID && !b && ambiguity) {
                        free(message);
                        message = TAKE_PTR(ambiguity);
                } else if (r < 0 && err == JOB_ERROR_IMAGE_INVALID && !b && e && e->n_candidates > 1) {
                        /* say which boards it could be */
                        _cleanup_free_ char *names = NULL;
                        size_t n = 0;
                        FILE *f = open_memstream(&names, &n);
                        if (f) {
                                for (size_t i = 0; i < e->n_candidates; i++)
                                        if (e->candidates[i].board)
                                                fprintf(f, "%s%s%s%s", i ? ", " : "",
                                                        e->candidates[i].board->name,
                                                        e->candidates[i].variant ? "-" : "",
                                                        e->candidates[i].variant
                                                                ? e->candidates[i].variant->id
                                                                : "");
                                fclose(f);
                                free(message);
                                message = NULL;
                                (void)asprintf(
                                        &message,
                                        "the board on %s could be any of %s, whose application offsets "
                                        "differ: pass --address (the address the image was built for) "
                                        "or flash by board name",
                                        e->port, strna(names));
                        }
                }
                job_device_free(dev);
                job_flow_board_clear(&fb);
        }
        if (r >= 0) {
                r = image_store_put(q->store, req->data, req->size, j->image.sha256);
                if (r < 0)
                        return log_error_errno(r, "failed to store the image: %m");
                j->image.size = req->size;
                j->image.has_address = req->has_address;
                (void)job_set_string(&j->image.name, req->image_name);
                if (image) {
                        (void)job_set_string(&j->image.format, image->format);
                        j->image.address = image->address;
                        j->image.payload_size = image->size;
                        j->bytes_total = image->size;
                } else {
                        (void)job_set_string(&j->image.format, req->format);
                        j->image.payload_size = req->size;
                        j->bytes_total = req->size;
                }
        } else {
                /* keep the refused job in the history: it says why */
                (void)image_store_hash(req->data, req->size, j->image.sha256);
                j->image.size = req->size;
                (void)job_set_string(&j->image.name, req->image_name);
                job_fail(j, err, "%s", strna(message));
        }

        q->next_id++;
        r = job_queue_append(q, j);
        if (r < 0)
                return r;
        *ret_job = TAKE_PTR(j);
        job_mark_dirty(*ret_job, JOB_DIRTY_ALL);
        bool refused = (*ret_job)->state == JOB_STATE_FAILED;
        if (!refused)
                job_queue_supersede_older(q, *ret_job);
        /* Not only at the end of the loop turn: the job (and a refusal,
         * which stays in the history) is on disk, and started when its
         * board is free, before the submission is answered. */
        (void)job_queue_flush(q);
        if (refused)
                return submit_refuse(err, TAKE_PTR(message), ret_error, ret_message);
        return 0;
}

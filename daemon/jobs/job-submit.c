/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "codec/codec-util.h"
#include "jobs/job-check.h"
#include "jobs/job-queue-internal.h"
#include "util/log.h"

/* ---- board information ---- */

static const BoardVariant *find_variant(const Board *b, const char *id)
{
        if (!b)
                return NULL;
        for (size_t i = 0; i < b->n_variants; i++)
                if (streq_ptr(b->variants[i].id, id))
                        return &b->variants[i];
        return b->n_variants == 1 ? &b->variants[0] : NULL;
}

/* The hints a person needs while the job waits for the bootloader: those
 * about BOOT0/reset when the board has such, else all of them. */
static char *waiting_hint(char **hints)
{
        bool boot0 = false;
        size_t len = 1;
        char *s;

        for (char **h = hints; h && *h; h++) {
                boot0 = boot0 || strstr(*h, "BOOT0");
                len += strlen(*h) + 2;
        }
        if (len == 1)
                return NULL;
        s = calloc(1, len);
        if (!s)
                return NULL;
        for (char **h = hints; *h; h++) {
                if (boot0 && !strstr(*h, "BOOT0"))
                        continue;
                if (s[0])
                        strcat(s, "; ");
                strcat(s, *h);
        }
        return s;
}

int job_flow_board_fill(JobFlowBoard *fb, const Board *b, const BoardVariant *v)
{
        fb->name = strdup(b->name);
        fb->variant = v && v->id ? strdup(v->id) : NULL;
        fb->mcu = v && v->mcu ? strdup(v->mcu) : NULL;
        fb->katapult = b->bootloader == BOARD_BOOTLOADER_KATAPULT;
        if (v) {
                fb->flash_base = v->flash_base;
                fb->flash_size = v->flash_size;
                fb->app_offset = v->app_offset;
                fb->ram_start = v->ram_start;
                fb->ram_size = v->ram_size;
                fb->layout = v->layout ? strdup(v->layout) : NULL;
                fb->manual_reboot = v->reboot == BOARD_REBOOT_MANUAL;
                fb->uart_request = v->reboot == BOARD_REBOOT_UART_REQUEST;
                fb->hint = waiting_hint(v->hints);
        }
        return fb->name ? 0 : -ENOMEM;
}

/* Board and variant of a job: from the inventory entry when it is
 * identified, else from the names recorded at submission. */
void job_queue_board_of(JobQueue *q, const Job *j, const InventoryEntry *e, const Board **ret_b,
                        const BoardVariant **ret_v)
{
        const Board *b = e && e->board ? e->board : NULL;
        const BoardVariant *v = e && e->variant ? e->variant : NULL;

        /* Several boards share an MCU (and USB ids): the one the user named
         * (or that was recorded at submission) picks among the candidates. */
        if (!b && e)
                for (size_t i = 0; i < e->n_candidates; i++) {
                        const InventoryCandidate *c = &e->candidates[i];
                        if (!c->board ||
                            !(streq_ptr(c->board->name, j->board) || streq_ptr(c->board->name, j->target)))
                                continue;
                        if (b == c->board) {
                                v = NULL; /* two variants of the named board: not unique */
                                continue;
                        }
                        b = c->board;
                        v = c->variant;
                }
        /* Boards that the inventory cannot tell apart (an Octopus and an
         * Octopus Pro with the same MCU and USB ids) but that share the flash
         * geometry: any of them gives the right application offset. */
        if (!b && e && e->n_candidates > 0 && e->candidates[0].variant) {
                const BoardVariant *first = e->candidates[0].variant;
                bool same = true;
                for (size_t i = 1; i < e->n_candidates; i++) {
                        const BoardVariant *o = e->candidates[i].variant;
                        if (!o || o->flash_base != first->flash_base || o->flash_size != first->flash_size ||
                            o->app_offset != first->app_offset || o->ram_start != first->ram_start ||
                            !streq_ptr(o->mcu, first->mcu))
                                same = false;
                }
                if (same) {
                        b = e->candidates[0].board;
                        v = first;
                }
        }
        if (!b && j->board && q->boards)
                b = board_db_find(q->boards, j->board);
        if (b && !v)
                v = find_variant(b, j->variant);
        *ret_b = b;
        *ret_v = v;
}

/* ---- submission ---- */

static void job_submit_note(void *userdata, const char *line)
{
        job_log(userdata, "%s", line);
}

static char *describe_candidates(const char *target, const InventoryEntry **matches)
{
        char *s = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&s, &n);

        if (!f)
                return NULL;
        fprintf(f, "'%s' matches several boards:", target);
        for (size_t i = 0; matches && matches[i]; i++)
                fprintf(f, "%s %s (%s%s%s, %s mode%s%s)", i ? ";" : "", matches[i]->port,
                        matches[i]->board ? matches[i]->board->name : "unknown board",
                        matches[i]->variant ? "-" : "", matches[i]->variant ? matches[i]->variant->id : "",
                        device_mode_to_string(matches[i]->mode), matches[i]->tty ? ", " : "",
                        matches[i]->tty ? matches[i]->tty : "");
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

        r = inventory_find(q->inventory, req->target, &e, &matches);
        if (r == -ENOTUNIQ)
                return submit_refuse(JOB_ERROR_TARGET_AMBIGUOUS, describe_candidates(req->target, matches),
                                     ret_error, ret_message);
        if (r < 0 || !e) {
                (void)asprintf(&text, "no connected board matches '%s'%s", req->target,
                               q->boards && board_db_find(q->boards, req->target)
                                       ? " (a known board name, but no such board is connected)"
                                       : "");
                return submit_refuse(JOB_ERROR_TARGET_NOT_FOUND, text, ret_error, ret_message);
        }

        r = job_new(&j, q->next_id);
        if (r < 0)
                return r;
        if (job_set_string(&j->target, req->target) < 0 || job_set_string(&j->port, e->port) < 0 ||
            job_set_string(&j->mode, device_mode_to_string(e->mode)) < 0 ||
            job_set_string(&j->device, e->tty ? e->tty : e->usb_devnode) < 0 ||
            job_set_string(&j->source, req->source ? req->source : "manual") < 0 ||
            job_set_string(&j->requested_by.name, req->requested_by.name) < 0)
                return -ENOMEM;
        j->requested_by.uid = req->requested_by.uid;
        j->requested_by.pid = req->requested_by.pid;
        j->verify = req->verify;
        j->mass_erase = req->mass_erase;
        j->force = req->force;
        /* the board the request names picks among the entry's candidates */
        if (job_set_string(&j->board, req->board) < 0)
                return -ENOMEM;
        job_queue_board_of(q, j, e, &b, &v);
        if (b &&
            (job_set_string(&j->board, b->name) < 0 || job_set_string(&j->variant, v ? v->id : NULL) < 0))
                return -ENOMEM;
        if (job_set_string(&j->mcu, v && v->mcu ? v->mcu : (e->mcu ? e->mcu : e->last_mcu)) < 0)
                return -ENOMEM;
        job_log(j, "submitted by %s (uid %u, pid %d): %s on %s", strna(req->requested_by.name),
                (unsigned)req->requested_by.uid, (int)req->requested_by.pid, req->target, e->port);

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
                };
                if (b && job_flow_board_fill(&fb, b, v) >= 0)
                        in.board = &fb;
                if (e->mode == DEVICE_MODE_DFU && job_device_from_entry(e, &dev) >= 0 && dev->layout)
                        in.layout = dev->layout;
                r = job_check_image(&in, job_submit_note, j, &image, &err, &message);
                if (r < 0 && err == JOB_ERROR_IMAGE_INVALID && !b && e->n_candidates > 1) {
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
                        return log_error_errno(r, "Failed to store the image: %m");
                j->image.size = req->size;
                j->image.data_size = image->size;
                (void)job_set_string(&j->image.format, image->format);
                j->image.address = image->address;
                j->image.has_address = req->has_address;
                j->bytes_total = image->size;
        } else {
                /* keep the refused job in the history: it says why */
                (void)image_store_hash(req->data, req->size, j->image.sha256);
                j->image.size = req->size;
                job_fail(j, err, "%s", strna(message));
        }

        q->next_id++;
        r = job_queue_append(q, j);
        if (r < 0)
                return r;
        *ret_job = TAKE_PTR(j);
        job_queue_notify(q, *ret_job);
        if ((*ret_job)->state == JOB_STATE_FAILED) {
                job_queue_prune(q);
                (void)job_queue_save(q);
                return submit_refuse(err, TAKE_PTR(message), ret_error, ret_message);
        }
        (void)job_queue_save(q);
        job_queue_schedule(q);
        return 0;
}

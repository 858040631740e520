/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "jobs/job-service.h"
#include "manager.h"
#include "rules/rule-service.h"
#include "util/list.h"
#include "util/log.h"

/* A rule busy with one board: its job in flight, or the wait for a retry. */
typedef struct RuleFiring {
        RuleService *service;
        char *rule_id;
        char *port;
        unsigned attempt;       /* 1: the first job; 2...: retries */
        uint64_t job;           /* the job in flight; 0 while waiting to retry */
        usec_t retry_at;        /* CLOCK_REALTIME, while the timer runs */
        bool waiting_for_board; /* the retry is due; the board is not (usable) on its port */
        /* The board vanished (device-gone): the device the inventory still
         * shows under this generation is the one that went away; the retry
         * waits for the board's next appearance. */
        bool has_stale;
        uint64_t stale_generation;
        sd_event_source *timer;
        LIST_FIELDS(struct RuleFiring, firings);
} RuleFiring;

/* The last appearance (InventoryEntry.generation) looked at, per port. */
typedef struct PortSeen {
        char *port;
        uint64_t generation;
        LIST_FIELDS(struct PortSeen, seen);
} PortSeen;

/* USB serial numbers seen on a job's port while it ran: the board's
 * identity for the board records (bootloader and application differ). */
typedef struct JobTrack {
        uint64_t job;
        char **serials; /* NULL-terminated */
        size_t n_serials;
        bool refused; /* refused at submission: rule_fire() said why */
        LIST_FIELDS(struct JobTrack, tracks);
} JobTrack;

/* A board a rule gave up on after its last retry: skipped on its next
 * appearances (a flaky cable that plugs itself back must not start the
 * retries over and over) until the rule is disabled and enabled again.
 * Kept in memory only. */
typedef struct GaveUp {
        char *rule_id;
        char *port;
        char **serials; /* NULL-terminated; the board's USB serials seen during its jobs */
        LIST_FIELDS(struct GaveUp, gave_up);
} GaveUp;

struct RuleService {
        Manager *manager;
        GaveUp *gave_up;
        char *state_file;
        RuleSet *set;
        RuleFiring *firings;
        PortSeen *seen;
        JobTrack *tracks;
        bool started;
};

static JobQueue *queue_of(RuleService *s)
{
        return s->manager->jobs ? job_service_get_queue(s->manager->jobs) : NULL;
}

static ImageStore *store_of(RuleService *s)
{
        return job_queue_get_image_store(queue_of(s));
}

/* Whether a job in the queue or the history names the image (the job
 * queue removes it itself when it prunes the last such job). */
static bool image_named_by_job(RuleService *s, const char *sha256)
{
        json_auto_t *jobs = job_queue_list_json(queue_of(s), true);
        size_t i;
        json_t *j;

        json_array_foreach (jobs, i, j)
                if (streq_ptr(json_string_value(json_object_get(json_object_get(j, "image"), "sha256")),
                              sha256))
                        return true;
        return false;
}

static void rule_service_save(RuleService *s)
{
        int r = rule_set_save(s->set, s->state_file);
        if (r < 0)
                log_error_errno(r, "failed to save %s: %m", s->state_file);
}

static void broadcast(RuleService *s, const char *method, json_t *object)
{
        json_t *params = json_array();

        if (object && params && json_array_append_new(params, object) >= 0 && s->manager->server)
                (void)server_broadcast(s->manager->server, method, params);
        else if (!params)
                json_decref(object);
        json_decref(params);
}

static void notify_changed(RuleService *s, const Rule *r)
{
        broadcast(s, "notify_rule_changed", rule_service_rule_json(s, r));
}

/* ---- firings ---- */

static RuleFiring *firing_find(RuleService *s, const char *rule_id, const char *port)
{
        RuleFiring *f;

        LIST_FOREACH (firings, f, s->firings)
                if (streq(f->rule_id, rule_id) && (!port || streq_ptr(f->port, port)))
                        return f;
        return NULL;
}

static RuleFiring *firing_find_port(RuleService *s, const char *port)
{
        RuleFiring *f;

        LIST_FOREACH (firings, f, s->firings)
                if (streq_ptr(f->port, port))
                        return f;
        return NULL;
}

static RuleFiring *firing_new(RuleService *s, const char *rule_id, const char *port)
{
        RuleFiring *f = calloc(1, sizeof(RuleFiring));

        if (!f)
                return NULL;
        f->service = s;
        f->rule_id = strdup(rule_id);
        f->port = strdup(port);
        if (!f->rule_id || !f->port) {
                free(f->rule_id);
                free(f->port);
                free(f);
                return NULL;
        }
        LIST_PREPEND(firings, s->firings, f);
        return f;
}

static void firing_drop(RuleService *s, RuleFiring *f)
{
        LIST_REMOVE(firings, s->firings, f);
        sd_event_source_disable_unref(f->timer);
        free(f->rule_id);
        free(f->port);
        free(f);
}

static void firings_drop_rule(RuleService *s, const char *rule_id)
{
        RuleFiring *f, *next;

        LIST_FOREACH_SAFE(firings, f, next, s->firings)
        {
                if (streq(f->rule_id, rule_id))
                        firing_drop(s, f);
        }
}

/* ---- job tracks ---- */

static JobTrack *track_find(RuleService *s, uint64_t job)
{
        JobTrack *t;

        LIST_FOREACH (tracks, t, s->tracks)
                if (t->job == job)
                        return t;
        return NULL;
}

static JobTrack *track_get(RuleService *s, uint64_t job)
{
        JobTrack *t = track_find(s, job);

        if (t)
                return t;
        t = calloc(1, sizeof(JobTrack));
        if (!t)
                return NULL;
        t->job = job;
        LIST_PREPEND(tracks, s->tracks, t);
        return t;
}

static void track_add_serial(RuleService *s, uint64_t job, const char *serial)
{
        JobTrack *t = track_get(s, job);
        char **l;

        if (!t || !serial || !serial[0])
                return;
        for (size_t i = 0; i < t->n_serials; i++)
                if (streq(t->serials[i], serial))
                        return;
        l = realloc(t->serials, (t->n_serials + 2) * sizeof(char *));
        if (!l)
                return;
        t->serials = l;
        t->serials[t->n_serials] = strdup(serial);
        if (t->serials[t->n_serials])
                t->n_serials++;
        t->serials[t->n_serials] = NULL;
}

static void track_drop(RuleService *s, uint64_t job)
{
        JobTrack *t = track_find(s, job);

        if (!t)
                return;
        LIST_REMOVE(tracks, s->tracks, t);
        for (size_t i = 0; i < t->n_serials; i++)
                free(t->serials[i]);
        free(t->serials);
        free(t);
}

/* ---- boards given up on ---- */

static void gave_up_free(GaveUp *g)
{
        for (char **p = g->serials; p && *p; p++)
                free(*p);
        free(g->serials);
        free(g->rule_id);
        free(g->port);
        free(g);
}

static void gave_up_add(RuleService *s, const char *rule_id, const char *port, char *const *serials,
                        const char *current)
{
        GaveUp *g = calloc(1, sizeof(GaveUp));
        size_t n = 0;

        if (!g)
                return (void)log_oom();
        while (serials && serials[n])
                n++;
        g->serials = calloc(n + 2, sizeof(char *));
        g->rule_id = strdup(rule_id);
        g->port = strdup(port);
        if (!g->serials || !g->rule_id || !g->port) {
                gave_up_free(g);
                return (void)log_oom();
        }
        n = 0;
        for (char *const *p = serials; p && *p; p++)
                if ((g->serials[n] = strdup(*p)))
                        n++;
        if (current && (g->serials[n] = strdup(current)))
                n++;
        LIST_PREPEND(gave_up, s->gave_up, g);
}

static bool gave_up_on(RuleService *s, const Rule *r, const InventoryEntry *e)
{
        GaveUp *g;

        LIST_FOREACH (gave_up, g, s->gave_up) {
                if (!streq(g->rule_id, r->id) || !streq_ptr(g->port, e->port))
                        continue;
                if (!g->serials[0] || !e->serial)
                        return true;
                for (char **p = g->serials; *p; p++)
                        if (streq(*p, e->serial))
                                return true;
        }
        return false;
}

static void gave_up_clear_rule(RuleService *s, const char *rule_id)
{
        GaveUp *g, *next;

        LIST_FOREACH_SAFE(gave_up, g, next, s->gave_up)
        if (streq(g->rule_id, rule_id)) {
                LIST_REMOVE(gave_up, s->gave_up, g);
                gave_up_free(g);
        }
}

/* ---- the boards ---- */

/* A board a job can start on right away: a DFU device once the inventory
 * has read its layout (an RP2040 boot ROM its version), Klipper and Katapult once their tty is there (the
 * same conditions the job queue waits for). */
static bool entry_ready(const InventoryEntry *e)
{
        if (!e || !e->present || !e->visible)
                return false;
        switch (e->mode) {
        case DEVICE_MODE_DFU:
        case DEVICE_MODE_BOOTSEL:
                return e->probed && !e->probing;
        case DEVICE_MODE_APP:
        case DEVICE_MODE_KATAPULT:
                return e->tty != NULL;
        case DEVICE_MODE_SERIAL:
        case DEVICE_MODE_UNKNOWN:
        case _DEVICE_MODE_MAX:
        case _DEVICE_MODE_INVALID:
                break;
        }
        return false;
}

/* A job (manual or a rule's) that has not ended yet owns the port: the
 * board re-enumerating during that job must not trigger anything. A port
 * whose only job is superseded or expired is free. */
static bool port_busy(RuleService *s, const char *port)
{
        JobQueue *q = queue_of(s);

        return q && job_queue_port_busy(q, port);
}

static bool seen_mark(RuleService *s, const InventoryEntry *e)
{
        PortSeen *p;

        LIST_FOREACH (seen, p, s->seen)
                if (streq(p->port, e->port))
                        break;
        if (p && p->generation == e->generation)
                return false;
        if (!p) {
                p = calloc(1, sizeof(PortSeen));
                if (!p || !(p->port = strdup(e->port))) {
                        free(p);
                        return true;
                }
                LIST_PREPEND(seen, s->seen, p);
        }
        p->generation = e->generation;
        return true;
}

/* ---- firing ---- */

static void rule_on_job_end(RuleService *s, const Job *j, char *const *serials);

static bool error_is_retryable(JobError e)
{
        switch (e) {
        case JOB_ERROR_TTY_BUSY:
        case JOB_ERROR_REBOOT_FAILED:
        case JOB_ERROR_BOOTLOADER_TIMEOUT:
        case JOB_ERROR_DEVICE_GONE:
        case JOB_ERROR_FLASH_FAILED:
        case JOB_ERROR_VERIFY_FAILED:
        case JOB_ERROR_APP_TIMEOUT:
        case JOB_ERROR_STUCK_IN_BOOTLOADER:
        case JOB_ERROR_INTERRUPTED:
        case JOB_ERROR_UNIT_CONTROL:
        case JOB_ERROR_INTERNAL:
                return true;
        /* the same image on the same board would be refused again */
        case JOB_ERROR_NONE:
        case JOB_ERROR_TARGET_NOT_FOUND:
        case JOB_ERROR_TARGET_AMBIGUOUS:
        case JOB_ERROR_IMAGE_INVALID:
        case JOB_ERROR_IMAGE_TOO_LARGE:
        case JOB_ERROR_CHECK_FIT:
        case JOB_ERROR_CHECK_VECTOR_TABLE:
        case JOB_ERROR_CHECK_BOOTLOADER_REGION:
        case JOB_ERROR_CHECK_MCU:
        case JOB_ERROR_UNSUPPORTED_DEVICE:
        case JOB_ERROR_LAYOUT:
        case _JOB_ERROR_MAX:
        case _JOB_ERROR_INVALID:
                break;
        }
        return false;
}

static void rule_set_error(Rule *r, const char *port, uint64_t job, const char *format, ...) _printf_(4, 5);
static void rule_set_error(Rule *r, const char *port, uint64_t job, const char *format, ...)
{
        _cleanup_free_ char *text = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&text, format, ap) < 0)
                text = NULL;
        va_end(ap);
        (void)rule_event_set(&r->last_error, now_usec(CLOCK_REALTIME), port, job, text);
        log_warning("rule %s: %s", r->id, strna(text));
}

/*
 * Submit the rule's job for the board on `port` through the job queue's
 * own submission path (same resolution, same safety checks as job.flash).
 * `f` is the firing to go on with (a retry), or NULL for a first attempt.
 */
static void rule_fire(RuleService *s, Rule *r, const InventoryEntry *e, RuleFiring *f)
{
        JobQueue *q = queue_of(s);
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *message = NULL;
        char who[64];
        size_t size = 0;
        JobError err = JOB_ERROR_NONE;
        Job *job = NULL;
        unsigned attempt = f ? f->attempt + 1 : 1;
        int k;

        if (!q)
                return;
        k = image_store_get(job_queue_get_image_store(q), r->action.sha256, &data, &size);
        if (k < 0) {
                rule_set_error(r, e->port, 0,
                               "cannot read the rule's image %.12s from the image store (%s); remove the "
                               "rule and add it again with the image",
                               r->action.sha256, strerror(-k));
                r->n_failed++;
                if (f)
                        firing_drop(s, f);
                goto out;
        }

        snprintf(who, sizeof(who), "flashd %s", r->id);
        JobRequest req = {
                .target = e->port,
                .board = r->match.board,
                .data = data,
                .size = size,
                .format = r->action.format,
                .address = r->action.address,
                .has_address = r->action.has_address,
                .verify = r->action.verify,
                .mass_erase = r->action.mass_erase,
                .force = r->action.force,
                .source = r->id,
                .requested_by = { .uid = r->created_uid, .pid = getpid(), .name = who },
                .image_name = r->action.image_name,
        };
        k = job_queue_submit(q, &req, &job, &err, &message);
        if (k < 0) {
                /* its notification comes at the end of the loop turn; the
                 * refusal is handled here, where its reason is known */
                JobTrack *t = job ? track_get(s, job->id) : NULL;
                if (t)
                        t->refused = true;
                if (job)
                        r->n_fired++;
                r->n_failed++;
                if (err == JOB_ERROR_NONE)
                        rule_set_error(r, e->port, 0, "could not submit a job for the board on %s: %s",
                                       e->port, strerror(-k));
                else
                        rule_set_error(r, e->port, job ? job->id : 0,
                                       "job for the board on %s refused (%s): %s", e->port,
                                       job_error_to_string(err), strna(message));
                if (f)
                        firing_drop(s, f);
                goto out;
        }

        if (!f)
                f = firing_new(s, r->id, e->port);
        if (f) {
                f->attempt = attempt;
                f->job = job->id;
                f->waiting_for_board = false;
                f->retry_at = 0;
                f->timer = sd_event_source_disable_unref(f->timer);
        }
        r->n_fired++;
        (void)rule_event_set(&r->last_fired, now_usec(CLOCK_REALTIME), e->port, job->id, NULL);
        log_info("rule %s: board on %s (%s mode) matches; job %" PRIu64 " flashes image %.12s (attempt %u)",
                 r->id, e->port, device_mode_to_string(e->mode), job->id, r->action.sha256, attempt);
        broadcast(s, "notify_rule_fired",
                  json_pack("{s:s, s:s, s:I, s:i, s:s?, s:s, s:s}", "rule", r->id, "port", e->port, "job",
                            (json_int_t)job->id, "attempt", (int)attempt, "board", job->board, "mode",
                            device_mode_to_string(e->mode), "sha256", r->action.sha256));
out:
        rule_service_save(s);
        notify_changed(s, r);
}

static void rule_skip(RuleService *s, Rule *r, const InventoryEntry *e, uint64_t job, const char *text)
{
        r->n_skipped++;
        (void)rule_event_set(&r->last_skipped, now_usec(CLOCK_REALTIME), e->port, job, text);
        log_info("rule %s: board on %s skipped: %s", r->id, e->port, text);
        broadcast(s, "notify_rule_skipped",
                  json_pack("{s:s, s:s, s:s, s:o}", "rule", r->id, "port", e->port, "reason", text, "job",
                            job ? json_integer((json_int_t)job) : json_null()));
        rule_service_save(s);
        notify_changed(s, r);
}

static bool rule_matches_entry(const Rule *r, const InventoryEntry *e)
{
        _cleanup_free_ RuleCandidate *cands = calloc(e->n_candidates + 1, sizeof(RuleCandidate));
        RuleDevice d;

        if (!cands)
                return false;
        rule_device_from_entry(e, cands, &d);
        return rule_match_device(&r->match, &d);
}

/* USB cannot tell some boards apart (an Octopus Pro F446 and a FYSETC S6
 * in ROM DFU). A rule that names a board takes the board for that one, as
 * `flashctl flash octopus-pro` does; say so loudly when a candidate has
 * another application offset. */
static void warn_if_ambiguous(const Rule *r, const InventoryEntry *e)
{
        const BoardVariant *mine = NULL;

        if (e->board || !r->match.board)
                return;
        for (size_t i = 0; i < e->n_candidates; i++)
                if (e->candidates[i].board && streq(e->candidates[i].board->name, r->match.board))
                        mine = e->candidates[i].variant;
        for (size_t i = 0; mine && i < e->n_candidates; i++) {
                const InventoryCandidate *c = &e->candidates[i];
                if (c->variant && c->board && c->variant->app_offset != mine->app_offset)
                        log_warning(
                                "rule %s: the board on %s could also be %s (application offset 0x%x, not "
                                "0x%x); flashing it as %s because the rule names that board",
                                r->id, e->port, c->board->name, c->variant->app_offset, mine->app_offset,
                                r->match.board);
        }
}

/* The oldest enabled rule that matches decides what happens to a board;
 * `only`, when given, acts only if it is that rule (a rule just added or
 * enabled looks at the boards already there). */
static void evaluate_entry(RuleService *s, const InventoryEntry *e, const Rule *only)
{
        Rule *r = NULL;

        for (size_t i = 0; i < s->set->n_rules; i++)
                if (s->set->rules[i]->enabled && rule_matches_entry(s->set->rules[i], e)) {
                        r = s->set->rules[i];
                        break;
                }
        if (!r || (only && r != only)) {
                log_info("rules: no%s enabled rule matches the board on %s", only ? " new" : "", e->port);
                return;
        }
        if (r->action.repeat == RULE_REPEAT_ONCE && firing_find(s, r->id, NULL)) {
                log_debug("rule %s: once, already busy with a board; not firing for %s", r->id, e->port);
                return;
        }
        const BoardImage *b = rule_set_board_image(s->set, e->port, e->serial);
        if (b && streq(b->sha256, r->action.sha256)) {
                char text[256];
                if (b->job)
                        snprintf(text, sizeof(text),
                                 "the board already holds image %.12s (flashed by job %" PRIu64 ")",
                                 b->sha256, b->job);
                else
                        snprintf(text, sizeof(text), "the board already holds image %.12s", b->sha256);
                rule_skip(s, r, e, b->job, text);
                return;
        }
        if (gave_up_on(s, r, e)) {
                rule_skip(s, r, e, 0,
                          "the rule gave up on this board after its last retry (see last_error); flash it "
                          "by hand, or disable and enable the rule to try again");
                return;
        }
        warn_if_ambiguous(r, e);
        rule_fire(s, r, e, NULL);
}

/* A retry that is due: go on once the board is usable and no other job
 * holds it. */
static void firing_try_retry(RuleService *s, RuleFiring *f, const InventoryEntry *e)
{
        Rule *r = rule_set_find(s->set, f->rule_id);

        if (!r || !r->enabled) {
                firing_drop(s, f);
                return;
        }
        if (!entry_ready(e) || port_busy(s, f->port) ||
            (f->has_stale && e->generation == f->stale_generation)) {
                f->waiting_for_board = true;
                log_info("rule %s: retry %u for the board on %s waits for the board", r->id, f->attempt,
                         f->port);
                return;
        }
        rule_fire(s, r, e, f);
}

static int firing_on_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        RuleFiring *f = userdata;
        RuleService *s = f->service;

        f->timer = sd_event_source_disable_unref(f->timer);
        f->retry_at = 0;
        firing_try_retry(s, f, inventory_get(s->manager->inventory, f->port));
        return 0;
}

static void rule_service_on_inventory(Inventory *inv, InventoryEvent event, const InventoryEntry *e,
                                      void *userdata)
{
        RuleService *s = userdata;
        RuleFiring *f;

        if (event == INVENTORY_EVENT_REMOVED)
                return;
        if (!entry_ready(e)) {
                log_debug("rules: board on %s not usable yet (%s mode%s)", e->port,
                          device_mode_to_string(e->mode),
                          e->mode == DEVICE_MODE_DFU ? ", layout not read" : ", no tty");
                return;
        }
        /* each appearance of a board once */
        if (!seen_mark(s, e))
                return;
        if (port_busy(s, e->port)) {
                log_info("rules: board on %s is busy with a job; no rule looks at it", e->port);
                return;
        }
        f = firing_find_port(s, e->port);
        if (f) {
                if (f->waiting_for_board)
                        firing_try_retry(s, f, e);
                /* else: a retry is scheduled; its timer decides */
                return;
        }
        evaluate_entry(s, e, NULL);
}

/* ---- jobs ---- */

static void collect_serials(RuleService *s, const Job *j)
{
        const InventoryEntry *e = j->port ? inventory_get(s->manager->inventory, j->port) : NULL;

        track_add_serial(s, j->id, e ? e->serial : NULL);
}

static void rule_on_job_end(RuleService *s, const Job *j, char *const *serials)
{
        Rule *r = rule_set_find(s->set, j->source);
        RuleFiring *f;

        if (!r)
                return; /* a manual job, or the rule is gone */
        f = firing_find(s, r->id, j->port);
        if (f && f->job != j->id)
                return; /* not the job this firing waits for */
        if (!f) {
                /* flashd restarted while the rule's job ran */
                f = firing_new(s, r->id, j->port);
                if (!f) {
                        log_oom();
                        return;
                }
                f->attempt = 1;
                f->job = j->id;
        }

        switch (j->state) {
        case JOB_STATE_DONE:
                r->n_flashed++;
                log_info("rule %s: job %" PRIu64 " flashed the board on %s", r->id, j->id, strna(j->port));
                firing_drop(s, f);
                if (r->action.repeat == RULE_REPEAT_ONCE && r->enabled) {
                        char text[128];
                        snprintf(text, sizeof(text), "once: flashed the board on %s (job %" PRIu64 ")",
                                 strna(j->port), j->id);
                        r->enabled = false;
                        free(r->disabled_reason);
                        r->disabled_reason = strdup(text);
                        firings_drop_rule(s, r->id);
                        log_info("rule %s disabled itself: %s", r->id, text);
                }
                break;
        case JOB_STATE_CANCELLED:
                r->n_failed++;
                rule_set_error(r, j->port, j->id, "job %" PRIu64 " was cancelled; not retried", j->id);
                firing_drop(s, f);
                break;
        case JOB_STATE_FAILED:
                if (error_is_retryable(j->error) && r->enabled && f->attempt <= r->action.max_retries) {
                        usec_t delay = rule_retry_delay(r, f->attempt);
                        const InventoryEntry *now = inventory_get(s->manager->inventory, j->port);
                        f->job = 0;
                        f->has_stale = j->error == JOB_ERROR_DEVICE_GONE && now;
                        f->stale_generation = now ? now->generation : 0;
                        f->retry_at = now_usec(CLOCK_REALTIME) + delay;
                        rule_set_error(r, j->port, j->id,
                                       "attempt %u (job %" PRIu64 ") failed (%s): %s; retry in %.3g s",
                                       f->attempt, j->id, job_error_to_string(j->error),
                                       strna(j->error_message), usec_to_sec(delay));
                        if (sd_event_add_time_relative(s->manager->event, &f->timer, CLOCK_MONOTONIC, delay,
                                                       0, firing_on_timer, f) < 0) {
                                log_oom();
                                firing_drop(s, f);
                        }
                        break;
                }
                r->n_failed++;
                rule_set_error(r, j->port, j->id,
                               "gave up on the board on %s after %u attempt%s: job %" PRIu64
                               " failed (%s): %s",
                               strna(j->port), f->attempt, f->attempt == 1 ? "" : "s", j->id,
                               job_error_to_string(j->error), strna(j->error_message));
                {
                        const InventoryEntry *now = inventory_get(s->manager->inventory, j->port);
                        gave_up_add(s, r->id, j->port, serials, now ? now->serial : NULL);
                }
                firing_drop(s, f);
                break;
        case JOB_STATE_SUPERSEDED:
                /* a newer job for the board took over: nothing failed, nothing to retry */
                log_info("rule %s: job %" PRIu64 " on %s was superseded by job %" PRIu64, r->id, j->id,
                         strna(j->port), j->superseded_by);
                firing_drop(s, f);
                break;
        case JOB_STATE_QUEUED:
        case JOB_STATE_WAITING_FOR_DEVICE:
        case JOB_STATE_REBOOTING:
        case JOB_STATE_FLASHING:
        case JOB_STATE_WAITING_FOR_APP:
        case JOB_STATE_INTERRUPTED:
        case _JOB_STATE_MAX:
        case _JOB_STATE_INVALID:
                return;
        }
        rule_service_save(s);
        notify_changed(s, r);
}

/* The job service's observer: every change of every job. */
static void rule_service_on_job(const Job *j, void *userdata)
{
        RuleService *s = userdata;
        JobTrack *t;

        collect_serials(s, j);
        if (!job_state_is_final(j->state))
                return;

        /* What the board holds now: the new image, or (a flash that failed
         * after erasing) something nobody knows. */
        t = track_find(s, j->id);
        if (j->state == JOB_STATE_DONE && j->port) {
                if (rule_set_remember(s->set, j->port, t ? t->serials : NULL, j->image.sha256,
                                      now_usec(CLOCK_REALTIME), j->id, j->source) < 0)
                        log_oom();
                rule_service_save(s);
        } else if (j->was_flashing && j->port && rule_set_forget(s->set, j->port, t ? t->serials : NULL))
                rule_service_save(s);
        if (!(t && t->refused))
                rule_on_job_end(s, j, t ? t->serials : NULL);
        track_drop(s, j->id);
}

/* ---- public ---- */

int rule_service_new(RuleService **ret, Manager *m)
{
        RuleService *s = calloc(1, sizeof(RuleService));

        if (!s)
                return -ENOMEM;
        s->manager = m;
        if (asprintf(&s->state_file, "%s/rules.json", m->config->state_dir) < 0) {
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

RuleService *rule_service_free(RuleService *s)
{
        if (!s)
                return NULL;
        if (s->started) {
                inventory_remove_listener(s->manager->inventory, rule_service_on_inventory, s);
                if (s->manager->jobs)
                        job_service_set_observer(s->manager->jobs, NULL, NULL);
        }
        while (s->firings)
                firing_drop(s, s->firings);
        while (s->gave_up) {
                GaveUp *g = LIST_POP(gave_up, s->gave_up);
                gave_up_free(g);
        }
        while (s->seen) {
                PortSeen *p = LIST_POP(seen, s->seen);
                free(p->port);
                free(p);
        }
        while (s->tracks)
                track_drop(s, s->tracks->job);
        rule_set_free(s->set);
        free(s->state_file);
        free(s);
        return NULL;
}

RuleSet *rule_service_get_set(RuleService *s)
{
        return s->set;
}

static void evaluate_present(const InventoryEntry *e, void *userdata)
{
        void **args = userdata;
        RuleService *s = args[0];
        const Rule *only = args[1];

        if (!entry_ready(e) || port_busy(s, e->port) || firing_find_port(s, e->port))
                return;
        (void)seen_mark(s, e);
        evaluate_entry(s, e, only);
}

static void rule_service_look_at_present(RuleService *s, const Rule *only)
{
        void *args[2] = { s, (void *)only };

        inventory_foreach(s->manager->inventory, evaluate_present, args);
}

int rule_service_start(RuleService *s)
{
        _cleanup_free_ char *error = NULL;
        JobQueue *q = queue_of(s);
        size_t skipped = 0;
        int r;

        if (!q)
                return log_error_errno(-ENXIO, "rules need the job queue");
        r = rule_set_load(&s->set, s->state_file, &skipped, &error);
        if (r == -EBADMSG) {
                /* keep the daemon up; the broken file is kept for a person */
                _cleanup_free_ char *aside = NULL;
                if (asprintf(&aside, "%s.broken", s->state_file) >= 0)
                        (void)rename(s->state_file, aside);
                log_warning("ignoring unreadable %s (kept as %s): %s", s->state_file, strna(aside),
                            strna(error));
                r = rule_set_new(&s->set);
        }
        if (r < 0)
                return log_error_errno(r, "failed to load %s: %m", s->state_file);
        if (skipped > 0)
                log_warning("skipped %zu malformed entries in %s", skipped, s->state_file);
        log_info("%zu rules, %zu boards remembered", s->set->n_rules, s->set->n_boards);

        for (size_t i = 0; i < s->set->n_rules; i++) {
                r = image_store_pin(job_queue_get_image_store(q), s->set->rules[i]->action.sha256);
                if (r < 0)
                        return log_error_errno(r, "failed to pin the image of %s: %m", s->set->rules[i]->id);
                if (!image_store_has(job_queue_get_image_store(q), s->set->rules[i]->action.sha256))
                        log_warning("rule %s: its image %.12s is missing from the image store",
                                    s->set->rules[i]->id, s->set->rules[i]->action.sha256);
        }

        r = inventory_add_listener(s->manager->inventory, rule_service_on_inventory, s);
        if (r < 0)
                return log_error_errno(r, "failed to follow the inventory: %m");
        job_service_set_observer(s->manager->jobs, rule_service_on_job, s);
        s->started = true;
        rule_service_look_at_present(s, NULL);
        return 0;
}

json_t *rule_service_rule_json(RuleService *s, const Rule *r)
{
        json_t *o = rule_to_json(r), *pending = json_array();

        RuleFiring *f;

        LIST_FOREACH (firings, f, s->firings) {
                if (!o || !pending)
                        break;
                if (!streq(f->rule_id, r->id))
                        continue;
                json_array_append_new(
                        pending,
                        json_pack("{s:s, s:i, s:o, s:s, s:o}", "port", f->port, "attempt", (int)f->attempt,
                                  "job", f->job ? json_integer((json_int_t)f->job) : json_null(), "state",
                                  f->job                 ? "flashing"
                                  : f->waiting_for_board ? "waiting-for-board"
                                                         : "retry-wait",
                                  "retry_at",
                                  f->retry_at > 0 ? json_real(usec_to_sec(f->retry_at)) : json_null()));
        }
        if (o && pending)
                json_object_set_new(o, "pending", pending);
        else
                json_decref(pending);
        return o;
}

int rule_service_add(RuleService *s, Rule *r)
{
        int k;

        k = image_store_pin(store_of(s), r->action.sha256);
        if (k < 0)
                return k;
        k = rule_set_add(s->set, r);
        if (k < 0) {
                image_store_unpin(store_of(s), r->action.sha256);
                return k;
        }
        log_info("rule %s added by %s (uid %u): %s boards in %s mode, image %.12s, %s", r->id,
                 strna(r->created_by), (unsigned)r->created_uid, r->match.board ? r->match.board : "any",
                 rule_mode_to_string(r->match.mode), r->action.sha256,
                 rule_repeat_to_string(r->action.repeat));
        rule_service_save(s);
        notify_changed(s, r);
        if (r->enabled)
                rule_service_look_at_present(s, r);
        return 0;
}

int rule_service_remove(RuleService *s, const char *id)
{
        _cleanup_(rule_freep) Rule *r = rule_set_take(s->set, id);

        if (!r)
                return -ENOENT;
        firings_drop_rule(s, r->id);
        gave_up_clear_rule(s, r->id);
        /* the image file goes too when no other rule and no job names it */
        image_store_unpin(store_of(s), r->action.sha256);
        if (!image_store_pinned(store_of(s), r->action.sha256) && !image_named_by_job(s, r->action.sha256))
                (void)image_store_remove(store_of(s), r->action.sha256);
        log_info("rule %s removed", r->id);
        rule_service_save(s);
        broadcast(s, "notify_rule_removed", rule_to_json(r));
        return 0;
}

int rule_service_set_enabled(RuleService *s, Rule *r, bool enabled)
{
        if (r->enabled == enabled)
                return 0;
        r->enabled = enabled;
        gave_up_clear_rule(s, r->id);
        free(r->disabled_reason);
        r->disabled_reason = NULL;
        if (!enabled)
                firings_drop_rule(s, r->id);
        log_info("rule %s %s", r->id, enabled ? "enabled" : "disabled");
        rule_service_save(s);
        notify_changed(s, r);
        if (enabled)
                rule_service_look_at_present(s, r);
        return 0;
}

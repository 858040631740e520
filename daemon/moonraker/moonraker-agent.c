/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "jobs/job.h"
#include "util/log.h"
#include "util/macros.h"
#include "manager.h"
#include "moonraker/moonraker-agent.h"
#include "moonraker/moonraker-files.h"
#include "rpc-frame.h"
#include "server/path-load.h"
#include "server/rpc.h"
#include "update/update-status.h"
#include "util/time-util.h"

#define AGENT_URL "https://github.com/flashd/flashd"

/* Coalescing state of one job's events (see moonraker-agent.h). */
typedef struct JobSlot {
        MoonrakerAgent *agent;
        uint64_t job;
        char *state, *phase; /* last sent */
        uint64_t last_usec;  /* when the last event for this job went out */
        json_t *pending;     /* newest unsent progress, or NULL */
        sd_event_source *timer;
        struct JobSlot *next;
} JobSlot;

struct MoonrakerAgent {
        Manager *manager;
        const MoonrakerConfig *config;
        MoonrakerState state;
        int fd;
        sd_event_source *io, *timer;
        RpcFrameReader *reader;
        char *out;
        size_t out_len, out_start, out_alloc;
        uint64_t generation; /* per connection; replies to an older one are dropped */
        uint64_t backoff_usec;
        unsigned failures; /* connection attempts since the last READY (log throttling) */
        json_int_t identify_id;
        PeerCred *moonraker_cred; /* who listens on Moonraker's socket (SO_PEERCRED) */
        PeerCred *file_user_cred; /* file_user from the config, or NULL */
        char **roots;             /* file roots in effect for this connection */
        RpcPeer peer;
        JobSlot *slots;
        bool refusal_logged; /* per connection: Moonraker answered an event with an error */
        /* Our own requests to Moonraker (the MCU versions Klipper reports):
         * ids of the outstanding printer.objects.list / .query, or 0. */
        json_int_t next_request_id, mcu_list_id, mcu_query_id;
        json_t *printer_config;            /* configfile.config from the last answer, or NULL */
        struct PendingPath *pending_paths; /* image.path opens in flight */
};

/* The fields of Klipper's mcu objects that say what a board runs. */
static const char *const mcu_fields[] = { "mcu_version", "mcu_build_versions", "mcu_constants" };

static const char *const state_names[_MOONRAKER_STATE_MAX] = {
        [MOONRAKER_STATE_WAITING] = "waiting",
        [MOONRAKER_STATE_CONNECTING] = "connecting",
        [MOONRAKER_STATE_IDENTIFYING] = "identifying",
        [MOONRAKER_STATE_READY] = "ready",
};

const char *moonraker_state_to_string(MoonrakerState s)
{
        return s >= 0 && s < _MOONRAKER_STATE_MAX ? state_names[s] : NULL;
}

static void agent_enter_state(MoonrakerAgent *a, MoonrakerState s)
{
        if (a->state == s)
                return;
        log_debug("moonraker agent: %s -> %s", moonraker_state_to_string(a->state),
                  moonraker_state_to_string(s));
        a->state = s;
}

static uint64_t agent_client_id(const MoonrakerAgent *a)
{
        return MOONRAKER_CLIENT_ID_BASE | a->generation;
}

static JobSlot *job_slot_free(JobSlot *s)
{
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->timer);
        json_decref(s->pending);
        free(s->state);
        free(s->phase);
        free(s);
        return NULL;
}

static void agent_close(MoonrakerAgent *a)
{
        a->io = sd_event_source_disable_unref(a->io);
        a->fd = safe_close(a->fd);
        a->reader = rpc_frame_reader_free(a->reader);
        free(a->out);
        a->out = NULL;
        a->out_len = a->out_start = a->out_alloc = 0;
        a->moonraker_cred = peer_cred_free(a->moonraker_cred);
        moonraker_file_roots_free(a->roots);
        a->roots = NULL;
        a->mcu_list_id = a->mcu_query_id = 0;
        json_decref(TAKE_PTR(a->printer_config));
        /* above any identify id (generation & 0x7fffffff) */
        a->next_request_id = (json_int_t)1 << 32;
}

static int agent_connect(MoonrakerAgent *a);
static void agent_disconnect(MoonrakerAgent *a, int error, const char *why);

static int agent_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        MoonrakerAgent *a = userdata;

        a->timer = sd_event_source_disable_unref(a->timer);
        if (a->state == MOONRAKER_STATE_WAITING)
                (void)agent_connect(a);
        else if (a->state != MOONRAKER_STATE_READY) {
                log_warning("Moonraker at %s did not accept flashd as an agent within %llu s; retrying",
                            a->config->socket_path,
                            (unsigned long long)(MOONRAKER_IDENTIFY_TIMEOUT_USEC / 1000000u));
                agent_disconnect(a, -ETIMEDOUT, "no answer to server.connection.identify");
        }
        return 0;
}

static int agent_arm_timer(MoonrakerAgent *a, uint64_t usec)
{
        a->timer = sd_event_source_disable_unref(a->timer);
        int r = sd_event_add_time_relative(manager_get_event(a->manager), &a->timer, CLOCK_MONOTONIC, usec,
                                           0, agent_on_timer, a);
        if (r < 0)
                return log_error_errno(r, "moonraker agent: cannot arm a timer: %m");
        return 0;
}

/* Drop the connection and try again after the backoff delay. */
static void agent_disconnect(MoonrakerAgent *a, int error, const char *why)
{
        bool was_ready = a->state == MOONRAKER_STATE_READY;

        agent_close(a);
        agent_enter_state(a, MOONRAKER_STATE_WAITING);
        /* A refused or missing socket is the normal state while Moonraker
         * is not running: say so once, then quietly retry. */
        if (was_ready)
                log_info_errno(error, "Moonraker connection lost (%s); reconnecting", why);
        else if (a->failures++ == 0)
                log_info_errno(error, "Moonraker at %s not available (%s); retrying in the background",
                               a->config->socket_path, why);
        else
                log_debug_errno(error, "Moonraker at %s: %s; next try in %.1f s", a->config->socket_path,
                                why, (double)a->backoff_usec / 1e6);
        if (was_ready)
                a->backoff_usec = MOONRAKER_BACKOFF_MIN_USEC;
        (void)agent_arm_timer(a, a->backoff_usec);
        a->backoff_usec = MIN(a->backoff_usec * 2, MOONRAKER_BACKOFF_MAX_USEC);
}

static int agent_flush(MoonrakerAgent *a)
{
        while (a->out_start < a->out_len) {
                ssize_t n = send(a->fd, a->out + a->out_start, a->out_len - a->out_start,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        return -errno;
                }
                a->out_start += (size_t)n;
        }
        if (a->out_start == a->out_len)
                a->out_start = a->out_len = 0;
        if (a->state == MOONRAKER_STATE_CONNECTING)
                return 0;
        return sd_event_source_set_io_events(a->io, EPOLLIN | (a->out_len ? EPOLLOUT : 0));
}

/* Queue one message (ETX-framed). Returns 0, or < 0 when the connection
 * was dropped. */
static int agent_send(MoonrakerAgent *a, json_t *message)
{
        if (a->fd < 0)
                return -ENOTCONN;
        _cleanup_free_ char *text = json_dumps(message, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        size_t n = strlen(text);
        if (a->out_len - a->out_start + n + 1 > MOONRAKER_OUTPUT_MAX) {
                agent_disconnect(a, -ENOBUFS, "Moonraker does not read what flashd sends");
                return -ENOBUFS;
        }
        if (a->out_len + n + 1 > a->out_alloc) {
                if (a->out_start > 0) {
                        memmove(a->out, a->out + a->out_start, a->out_len - a->out_start);
                        a->out_len -= a->out_start;
                        a->out_start = 0;
                }
                size_t want = MAX(a->out_alloc * 2, a->out_len + n + 1);
                char *p = realloc(a->out, want);
                if (!p)
                        return -ENOMEM;
                a->out = p;
                a->out_alloc = want;
        }
        memcpy(a->out + a->out_len, text, n);
        a->out[a->out_len + n] = RPC_FRAME_ETX;
        a->out_len += n + 1;
        int r = agent_flush(a);
        if (r < 0) {
                agent_disconnect(a, r, "write failed");
                return r;
        }
        return 0;
}

/* rpc_dispatch()'s callback: a reply to a request Moonraker relayed. */
static void agent_on_response(uint64_t client_id, json_t *response, void *userdata)
{
        MoonrakerAgent *a = userdata;

        if (a->state != MOONRAKER_STATE_READY || client_id != agent_client_id(a)) {
                /* Moonraker failed that request itself when the connection
                 * dropped ("Client Socket Disconnected"). */
                log_debug("moonraker agent: dropping a reply for an earlier connection");
                return;
        }
        (void)agent_send(a, response);
}

static void agent_reply_error(MoonrakerAgent *a, json_t *id, RpcError e, json_t *data, const char *message)
{
        json_auto_t *response = rpc_error_response(id, e, message, data);
        if (response)
                agent_on_response(agent_client_id(a), response, a);
}

static int agent_send_event(MoonrakerAgent *a, const char *event, json_t *data)
{
        if (a->state != MOONRAKER_STATE_READY)
                return 0;
        /* Without "id": Moonraker sends no reply (extensions.md). */
        json_auto_t *m = json_pack("{s:s,s:s,s:{s:s,s:O}}", "jsonrpc", "2.0", "method",
                                   "connection.send_event", "params", "event", event, "data", data);
        if (!m)
                return -ENOMEM;
        return agent_send(a, m);
}

/* --- job progress coalescing --------------------------------------------- */

static void job_slot_flush(JobSlot *s)
{
        s->timer = sd_event_source_disable_unref(s->timer);
        if (!s->pending)
                return;
        json_t *data = TAKE_PTR(s->pending);
        s->last_usec = now_usec(CLOCK_MONOTONIC);
        (void)agent_send_event(s->agent, "job_update", data);
        json_decref(data);
}

static int job_slot_on_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        JobSlot *s = userdata;

        job_slot_flush(s);
        /* The next one counts from when this one was due, not from when the
         * loop got to it: late wakeups must not stretch the interval, or a
         * long phase would show fewer than MOONRAKER_PROGRESS_HZ updates. */
        s->last_usec = usec;
        return 0;
}

static void job_slot_remove(MoonrakerAgent *a, JobSlot *s)
{
        for (JobSlot **p = &a->slots; *p; p = &(*p)->next)
                if (*p == s) {
                        *p = s->next;
                        break;
                }
        job_slot_free(s);
}

static void agent_forward_job(MoonrakerAgent *a, json_t *job)
{
        json_int_t id = json_integer_value(json_object_get(job, "id"));
        const char *state = json_string_value(json_object_get(job, "state"));
        const char *phase = json_string_value(json_object_get(job, "phase"));
        uint64_t interval = 1000000u / MOONRAKER_PROGRESS_HZ, now = now_usec(CLOCK_MONOTONIC);
        JobSlot *s;

        for (s = a->slots; s && s->job != (uint64_t)id; s = s->next)
                ;
        if (!s) {
                s = calloc(1, sizeof(*s));
                if (!s) {
                        log_oom();
                        return;
                }
                *s = (JobSlot){ .agent = a, .job = (uint64_t)id, .next = a->slots };
                a->slots = s;
        }
        bool final = state && job_state_is_final(job_state_from_string(state));
        bool changed = !streq_ptr(state, s->state) || !streq_ptr(phase, s->phase);

        if (changed || final || now - s->last_usec >= interval) {
                /* This event supersedes any pending progress. */
                json_decref(TAKE_PTR(s->pending));
                s->pending = json_incref(job);
                job_slot_flush(s);
                if (final) {
                        job_slot_remove(a, s);
                        return;
                }
                free(s->state);
                free(s->phase);
                s->state = state ? strdup(state) : NULL;
                s->phase = phase ? strdup(phase) : NULL;
                return;
        }
        /* Too soon: keep the newest, send it when the interval is over. */
        json_decref(s->pending);
        s->pending = json_incref(job);
        if (!s->timer &&
            sd_event_add_time_relative(manager_get_event(a->manager), &s->timer, CLOCK_MONOTONIC,
                                       s->last_usec + interval - now, 0, job_slot_on_timer, s) < 0)
                job_slot_flush(s); /* no timer: better one event early than a lost one */
}

void moonraker_agent_on_broadcast(const char *method, json_t *params, void *userdata)
{
        MoonrakerAgent *a = userdata;

        /* Event names drop Moonraker's notify_ prefix: frontends see
         * notify_agent_event {agent, event: "job_update", data}. */
        const char *event = strncmp(method, "notify_", 7) == 0 ? method + 7 : method;
        json_t *data =
                json_is_array(params) && json_array_size(params) == 1 ? json_array_get(params, 0) : params;

        if (streq(method, "notify_job_update") && json_is_object(data) &&
            json_is_integer(json_object_get(data, "id"))) {
                agent_forward_job(a, data);
                return;
        }
        (void)agent_send_event(a, event, data ? data : json_null());
}

/* --- requests from Moonraker --------------------------------------------- */

static PeerCred *agent_file_cred(MoonrakerAgent *a)
{
        return a->file_user_cred ? a->file_user_cred : a->moonraker_cred;
}

/* What the loader thread needs to open an image.path: copies, since the
 * connection may be gone (and its roots freed) before the thread ends. */
typedef struct PathOpenInput {
        char **roots;
        PeerCred *as;
        char *path;
} PathOpenInput;

static void path_open_input_free(void *p)
{
        PathOpenInput *in = p;

        if (!in)
                return;
        moonraker_file_roots_free(in->roots);
        peer_cred_free(in->as);
        free(in->path);
        free(in);
}

static int path_open_input_run(void *p, int *ret_fd, char **ret_resolved, char **ret_message)
{
        PathOpenInput *in = p;
        return moonraker_file_open(in->roots, in->as, in->path, ret_fd, ret_resolved, ret_message);
}

static PathOpenInput *path_open_input_new(char *const *roots, const PeerCred *as, const char *path)
{
        PathOpenInput *in = calloc(1, sizeof(*in));
        size_t n = 0;

        if (!in)
                return NULL;
        while (roots && roots[n])
                n++;
        in->roots = calloc(n + 1, sizeof(char *));
        in->path = strdup(path);
        bool ok = in->roots && in->path &&
                  peer_cred_new(&in->as, as->pid, as->uid, as->gid, as->groups, as->n_groups) >= 0;
        for (size_t i = 0; ok && i < n; i++)
                ok = (in->roots[i] = strdup(roots[i])) != NULL;
        if (!ok) {
                path_open_input_free(in);
                return NULL;
        }
        return in;
}

/* The request waiting for its image.path to open. */
typedef struct PendingPath {
        MoonrakerAgent *agent; /* NULL once the agent is freed */
        uint64_t client_id;    /* the connection the request came on */
        json_t *msg, *id;
        char *path;
        struct PendingPath *next;
} PendingPath;

static PendingPath *pending_path_free(PendingPath *p)
{
        if (p) {
                json_decref(p->msg);
                json_decref(p->id);
                free(p->path);
                free(p);
        }
        return NULL;
}

static void agent_forget_pending_path(MoonrakerAgent *a, PendingPath *p)
{
        for (PendingPath **pp = &a->pending_paths; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        return;
                }
}

/* The file is open (or refused): hand it to the method as image.fd, the
 * way flashctl passes a file. */
static void agent_on_path_opened(int r, int fd_in, char *resolved_in, char *why_in, void *userdata)
{
        _cleanup_close_ int fd = fd_in;
        _cleanup_free_ char *resolved = resolved_in, *why = why_in, *text = NULL;
        PendingPath *p = userdata;
        MoonrakerAgent *a = p->agent;

        if (!a) {
                pending_path_free(p);
                return;
        }
        agent_forget_pending_path(a, p);
        if (p->client_id != agent_client_id(a) || a->state != MOONRAKER_STATE_READY) {
                log_debug("moonraker agent: image.path %s opened after its connection closed", p->path);
                pending_path_free(p);
                return;
        }
        if (r < 0) {
                log_notice("moonraker agent: image.path %s refused: %s", p->path, why ? why : strerror(-r));
                agent_reply_error(a, p->id,
                                  r == -EACCES || r == -EPERM || r == -EXDEV ? RPC_ERROR_PERMISSION_DENIED
                                  : r == -ETIMEDOUT                          ? RPC_ERROR_TIMEOUT
                                                                             : RPC_ERROR_INVALID_PARAMS,
                                  json_pack("{s:s}", "path", p->path), why ? why : strerror(-r));
                pending_path_free(p);
                return;
        }
        json_auto_t *copy = json_deep_copy(p->msg);
        json_t *img = copy ? json_object_get(json_object_get(copy, "params"), "image") : NULL;
        if (img) {
                json_object_del(img, "path");
                json_object_set_new(img, "fd", json_true());
                if (!json_object_get(img, "name")) {
                        const char *base = strrchr(resolved, '/');
                        json_object_set_new(img, "name", json_string(base ? base + 1 : resolved));
                }
                text = json_dumps(copy, JSON_COMPACT);
        }
        if (!text) {
                agent_reply_error(a, p->id, RPC_ERROR_INTERNAL, NULL, "out of memory");
                pending_path_free(p);
                return;
        }
        log_info("moonraker agent: %s with %s", json_string_value(json_object_get(p->msg, "method")),
                 resolved);
        pending_path_free(p);
        (void)rpc_dispatch_text_with_fd(a->manager, &a->peer, agent_client_id(a), text, strlen(text),
                                        TAKE_FD(fd), agent_on_response, a);
}

/* job.flash or rule.add with image.path: open the file here (inside
 * Moonraker's file roots, with the file user's permissions), on a thread:
 * resolving the path and switching credentials may hang on a slow file
 * system or a stopped child, and the main loop must not. */
static void agent_call_with_path(MoonrakerAgent *a, json_t *msg, json_t *id, const char *path)
{
        PeerCred *as = agent_file_cred(a);
        PathOpenInput *in;
        PendingPath *p;
        int r;

        if (!as) {
                agent_reply_error(a, id, RPC_ERROR_PERMISSION_DENIED, NULL,
                                  "image.path is not available: flashd does not know Moonraker's user (set "
                                  "file_user in [moonraker] of flashd.conf); send base64 data instead");
                return;
        }
        p = calloc(1, sizeof(*p));
        in = path_open_input_new(a->roots, as, path);
        if (!p || !in || !(p->path = strdup(path))) {
                path_open_input_free(in);
                pending_path_free(p);
                agent_reply_error(a, id, RPC_ERROR_INTERNAL, NULL, "out of memory");
                return;
        }
        *p = (PendingPath){ .agent = a,
                            .client_id = agent_client_id(a),
                            .msg = json_incref(msg),
                            .id = json_incref(id),
                            .path = p->path,
                            .next = a->pending_paths };
        r = path_open_start(manager_get_event(a->manager), path, path_open_input_run, in,
                            path_open_input_free, PATH_LOAD_TIMEOUT_USEC, agent_on_path_opened, p);
        if (r < 0) {
                pending_path_free(p);
                agent_reply_error(a, id, r == -EBUSY ? RPC_ERROR_BUSY : RPC_ERROR_INTERNAL,
                                  json_pack("{s:s}", "path", path),
                                  r == -EBUSY ? "too many files are being opened at once; try again"
                                              : strerror(-r));
                return;
        }
        a->pending_paths = p;
}

/* --- what Klipper says its MCUs run ---------------------------------------- */

/* Moonraker serves its API to agents as to any other connection: a request
 * with our own id gets a response with that id. */
static json_int_t agent_request(MoonrakerAgent *a, const char *method, json_t *params)
{
        json_int_t id = ++a->next_request_id;
        json_auto_t *m = json_pack("{s:s,s:s,s:O,s:I}", "jsonrpc", "2.0", "method", method, "params", params,
                                   "id", id);
        if (!m || agent_send(a, m) < 0)
                return 0;
        return id;
}

int moonraker_agent_query_mcus(MoonrakerAgent *a)
{
        if (!a || a->state != MOONRAKER_STATE_READY)
                return -ENOTCONN;
        if (a->mcu_list_id || a->mcu_query_id)
                return 0; /* one at a time; its answer is fresh enough */
        json_auto_t *params = json_object();
        if (!params)
                return -ENOMEM;
        a->mcu_list_id = agent_request(a, "printer.objects.list", params);
        return a->mcu_list_id ? 0 : -EIO;
}

static bool is_mcu_object(const char *name)
{
        return streq(name, "mcu") || strncmp(name, "mcu ", 4) == 0;
}

static void agent_on_mcu_list(MoonrakerAgent *a, json_t *msg)
{
        json_t *objects = json_object_get(json_object_get(msg, "result"), "objects"), *v;
        json_auto_t *query = json_object(), *fields = json_array();
        size_t i;

        a->mcu_list_id = 0;
        if (!json_is_array(objects)) {
                /* e.g. 503 "Klippy Host not connected" */
                log_debug(
                        "moonraker agent: no printer objects from Moonraker: %s",
                        strna(json_string_value(json_object_get(json_object_get(msg, "error"), "message"))));
                return;
        }
        if (!query || !fields)
                return (void)log_oom();
        for (i = 0; i < ELEMENTSOF(mcu_fields); i++)
                json_array_append_new(fields, json_string(mcu_fields[i]));
        json_array_foreach (objects, i, v)
                if (json_is_string(v) && is_mcu_object(json_string_value(v)))
                        json_object_set(query, json_string_value(v), fields);
        if (json_object_size(query) == 0)
                return;
        /* the MCUs' serial: paths tie the mcu objects to boards, when
         * flashd.conf names no printer.cfg */
        json_object_set_new(query, "configfile", json_pack("[s]", "config"));
        json_auto_t *params = json_pack("{s:O}", "objects", query);
        if (!params)
                return (void)log_oom();
        a->mcu_query_id = agent_request(a, "printer.objects.query", params);
}

static void agent_on_mcu_query(MoonrakerAgent *a, json_t *msg)
{
        json_t *status = json_object_get(json_object_get(msg, "result"), "status");

        a->mcu_query_id = 0;
        if (!json_is_object(status)) {
                log_debug(
                        "moonraker agent: no MCU status from Moonraker: %s",
                        strna(json_string_value(json_object_get(json_object_get(msg, "error"), "message"))));
                return;
        }
        json_t *config = json_object_get(json_object_get(status, "configfile"), "config");
        if (json_is_object(config)) {
                json_decref(a->printer_config);
                a->printer_config = json_incref(config);
        }
        int r = update_status_apply_moonraker(a->manager, status);
        if (r < 0)
                log_warning_errno(r, "moonraker agent: cannot record what Klipper's MCUs run: %m");
}

static void agent_on_request(MoonrakerAgent *a, json_t *msg, json_t *id, const char *method)
{
        const RpcMethod *entry = rpc_method_find(method);
        json_t *params = json_object_get(msg, "params");

        if (entry && (entry->flags & RPC_METHOD_MUTATING) && !a->config->enable_flashing) {
                char buf[512];
                snprintf(
                        buf, sizeof(buf),
                        "flashing through Moonraker is disabled: %s changes state; to allow it, set "
                        "enable_flashing = yes in the [moonraker] section of flashd.conf and restart flashd",
                        method);
                log_notice("moonraker agent: refused %s (enable_flashing = no)", method);
                agent_reply_error(a, id, RPC_ERROR_PERMISSION_DENIED,
                                  json_pack("{s:s,s:s}", "method", method, "setting", "enable_flashing"),
                                  buf);
                return;
        }
        json_t *image = streq(method, "job.flash") || streq(method, "rule.add")
                                ? json_object_get(params, "image")
                                : NULL;
        json_t *path = json_object_get(image, "path");
        if (json_is_string(path)) {
                agent_call_with_path(a, msg, id, json_string_value(path));
                return;
        }
        log_debug("moonraker agent: %s", method);
        if (rpc_dispatch(a->manager, &a->peer, agent_client_id(a), msg, agent_on_response, a) < 0)
                log_oom();
}

static void agent_on_identified(MoonrakerAgent *a, json_t *msg)
{
        json_t *error = json_object_get(msg, "error");

        a->timer = sd_event_source_disable_unref(a->timer);
        if (error) {
                const char *text = json_string_value(json_object_get(error, "message"));
                log_warning("Moonraker refused flashd as agent \"%s\": %s", a->config->agent_name,
                            strna(text));
                agent_disconnect(a, -EPERM, "identify refused");
                return;
        }
        agent_enter_state(a, MOONRAKER_STATE_READY);
        a->failures = 0;
        a->backoff_usec = MOONRAKER_BACKOFF_MIN_USEC;
        log_info("registered with Moonraker at %s as agent \"%s\" (connection %" JSON_INTEGER_FORMAT
                 "); flashing through Moonraker is %s",
                 a->config->socket_path, a->config->agent_name,
                 json_integer_value(json_object_get(json_object_get(msg, "result"), "connection_id")),
                 a->config->enable_flashing ? "enabled" : "disabled (enable_flashing = no)");
        (void)moonraker_agent_query_mcus(a);
}

static void agent_on_message(MoonrakerAgent *a, const char *text, size_t len)
{
        json_error_t error;
        json_auto_t *msg = json_loadb(text, len, 0, &error);

        if (!json_is_object(msg)) {
                log_debug("moonraker agent: ignoring a message that is not a JSON object");
                return;
        }
        json_t *id = json_object_get(msg, "id");
        json_t *method = json_object_get(msg, "method");
        if (json_is_string(method)) {
                /* Moonraker sends every connection its notifications
                 * (notify_proc_stat_update, ...): not for us. */
                if (!id || a->state != MOONRAKER_STATE_READY)
                        return;
                agent_on_request(a, msg, id, json_string_value(method));
                return;
        }
        if (a->state == MOONRAKER_STATE_IDENTIFYING && json_is_integer(id) &&
            json_integer_value(id) == a->identify_id) {
                agent_on_identified(a, msg);
                return;
        }
        if (a->state == MOONRAKER_STATE_READY && json_is_integer(id) && json_integer_value(id) != 0) {
                if (json_integer_value(id) == a->mcu_list_id) {
                        agent_on_mcu_list(a, msg);
                        return;
                }
                if (json_integer_value(id) == a->mcu_query_id) {
                        agent_on_mcu_query(a, msg);
                        return;
                }
        }
        /* Events carry no id; Moonraker answers one it refuses with an
         * error whose id is null. Frontends then miss what it said: worth
         * a warning (once per connection, it would repeat for every event). */
        json_t *err = json_object_get(msg, "error");
        if (json_is_object(err) && (!id || json_is_null(id)) && !a->refusal_logged) {
                a->refusal_logged = true;
                log_warning("moonraker agent: Moonraker refused an event: %s (code %" JSON_INTEGER_FORMAT
                            ")",
                            strna(json_string_value(json_object_get(err, "message"))),
                            json_integer_value(json_object_get(err, "code")));
                return;
        }
        log_debug("moonraker agent: ignoring an unexpected response");
}

static void agent_read(MoonrakerAgent *a)
{
        char buf[65536];
        uint64_t generation = a->generation;

        for (int i = 0; i < 16 && a->fd >= 0 && a->generation == generation; i++) {
                ssize_t n = recv(a->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return;
                        agent_disconnect(a, -errno, "read failed");
                        return;
                }
                if (n == 0) {
                        agent_disconnect(a, -ECONNRESET, "Moonraker closed the connection");
                        return;
                }
                if (rpc_frame_reader_feed(a->reader, buf, (size_t)n) == -ENOMEM) {
                        agent_disconnect(a, -ENOMEM, "out of memory");
                        return;
                }
                while (a->fd >= 0 && a->generation == generation) {
                        _cleanup_free_ char *frame = NULL;
                        size_t len;
                        int r = rpc_frame_reader_next(a->reader, &frame, &len);
                        if (r == 0)
                                break;
                        if (r == -EMSGSIZE) {
                                log_warning("moonraker agent: skipped a message above %u bytes",
                                            RPC_FRAME_MAX_DEFAULT);
                                continue;
                        }
                        if (r < 0) {
                                agent_disconnect(a, r, "out of memory");
                                return;
                        }
                        if (len > 0 && strspn(frame, " \t\r\n") != len)
                                agent_on_message(a, frame, len);
                }
        }
}

static void agent_identify(MoonrakerAgent *a)
{
        char buf[PEER_CRED_STRING_MAX];
        int r;

        r = peer_cred_new_from_socket(&a->moonraker_cred, a->fd);
        if (r < 0)
                log_debug_errno(r, "moonraker agent: no peer credentials for Moonraker's socket: %m");
        else
                log_debug("moonraker agent: Moonraker runs as %s", peer_cred_format(a->moonraker_cred, buf));
        PeerCred *fc = agent_file_cred(a);
        a->roots = moonraker_file_roots(a->config, fc ? fc->uid : (uid_t)-1);
        a->peer = (RpcPeer){
                .origin = "moonraker",
                .may_mutate = a->config->enable_flashing,
                /* No full credentials: image.path is handled here, never
                 * by job.flash's own path rules. */
                .has_credentials = false,
                .pid = a->moonraker_cred ? a->moonraker_cred->pid : 0,
                .uid = a->moonraker_cred ? a->moonraker_cred->uid : (uid_t)-1,
                .gid = a->moonraker_cred ? a->moonraker_cred->gid : (gid_t)-1,
        };

        agent_enter_state(a, MOONRAKER_STATE_IDENTIFYING);
        a->identify_id = (json_int_t)(a->generation & 0x7fffffff);
        json_auto_t *m = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s},s:I}", "jsonrpc", "2.0", "method",
                                   "server.connection.identify", "params", "client_name",
                                   a->config->agent_name, "version", FLASHD_VERSION, "type", "agent", "url",
                                   AGENT_URL, "id", a->identify_id);
        if (!m) {
                agent_disconnect(a, -ENOMEM, "out of memory");
                return;
        }
        (void)agent_send(a, m);
}

static int agent_on_io(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        MoonrakerAgent *a = userdata;
        int r;

        if (a->state == MOONRAKER_STATE_CONNECTING) {
                int error = 0;
                socklen_t len = sizeof(error);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                        error = errno;
                if (error != 0) {
                        agent_disconnect(a, -error, "connect failed");
                        return 0;
                }
                r = sd_event_source_set_io_events(a->io, EPOLLIN);
                if (r < 0) {
                        agent_disconnect(a, r, "cannot watch the socket");
                        return 0;
                }
                agent_identify(a);
                return 0;
        }
        if (revents & EPOLLOUT) {
                r = agent_flush(a);
                if (r < 0) {
                        agent_disconnect(a, r, "write failed");
                        return 0;
                }
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                agent_read(a);
        return 0;
}

static int agent_connect(MoonrakerAgent *a)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *path = a->config->socket_path;
        int r;

        agent_close(a);
        a->generation++;
        a->refusal_logged = false;
        if (strlen(path) >= sizeof(sa.sun_path)) {
                log_error("Moonraker socket path too long: %s", path);
                return -ENAMETOOLONG; /* a config error: no retries */
        }
        memcpy(sa.sun_path, path, strlen(path));

        a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (a->fd < 0) {
                agent_disconnect(a, -errno, "socket() failed");
                return 0;
        }
        r = rpc_frame_reader_new(&a->reader, RPC_FRAME_MAX_DEFAULT);
        if (r < 0) {
                agent_disconnect(a, r, "out of memory");
                return 0;
        }
        /* Non-blocking: a Unix socket connects at once or fails at once
         * (EAGAIN: backlog full, retried like any failure); EINPROGRESS is
         * handled anyway by waiting for EPOLLOUT. */
        bool pending = false;
        if (connect(a->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                if (errno != EINPROGRESS) {
                        agent_disconnect(a, -errno, errno == ENOENT ? "no socket yet" : "connect failed");
                        return 0;
                }
                pending = true;
        }
        r = sd_event_add_io(manager_get_event(a->manager), &a->io, a->fd, pending ? EPOLLOUT : EPOLLIN,
                            agent_on_io, a);
        if (r < 0) {
                agent_disconnect(a, r, "cannot watch the socket");
                return 0;
        }
        /* connect + identify within a bound, else start over */
        (void)agent_arm_timer(a, MOONRAKER_IDENTIFY_TIMEOUT_USEC);
        if (pending) {
                agent_enter_state(a, MOONRAKER_STATE_CONNECTING);
                return 0;
        }
        agent_identify(a);
        return 0;
}

int moonraker_agent_new(MoonrakerAgent **ret, Manager *m, const MoonrakerConfig *config)
{
        MoonrakerAgent *a;
        int r;

        if (!config->socket_path)
                return -EINVAL;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        *a = (MoonrakerAgent){
                .manager = m,
                .config = config,
                .fd = -EBADF,
                .backoff_usec = MOONRAKER_BACKOFF_MIN_USEC,
        };
        if (config->file_user) {
                r = moonraker_file_user_cred(config->file_user, &a->file_user_cred);
                if (r < 0)
                        log_warning_errno(r,
                                          "file_user %s in [moonraker]: no such user (%m); image.path "
                                          "uses Moonraker's own user",
                                          config->file_user);
        }
        *ret = a;
        return 0;
}

MoonrakerAgent *moonraker_agent_free(MoonrakerAgent *a)
{
        if (!a)
                return NULL;
        agent_close(a);
        a->timer = sd_event_source_disable_unref(a->timer);
        while (a->slots) {
                JobSlot *s = a->slots;
                a->slots = s->next;
                job_slot_free(s);
        }
        /* opens still in flight finish into nothing */
        for (struct PendingPath *p = a->pending_paths; p; p = p->next)
                p->agent = NULL;
        peer_cred_free(a->file_user_cred);
        free(a);
        return NULL;
}

int moonraker_agent_start(MoonrakerAgent *a)
{
        log_info("Moonraker agent \"%s\": connecting to %s (flashing through Moonraker %s)",
                 a->config->agent_name, a->config->socket_path,
                 a->config->enable_flashing ? "enabled" : "disabled");
        return agent_connect(a);
}

MoonrakerState moonraker_agent_get_state(const MoonrakerAgent *a)
{
        return a->state;
}

json_t *moonraker_agent_get_printer_config(const MoonrakerAgent *a)
{
        return a ? a->printer_config : NULL;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* job.* methods (proto/API.md, "Jobs"). */
#include <fcntl.h>
#include <inttypes.h>
#include <nettle/base64.h>
#include <stdio.h>
#include <sys/stat.h>

#include "jobs/job-flow-bridge.h"
#include "jobs/job-flow-can.h"
#include "jobs/job-methods.h"
#include "codec/codec-util.h"
#include "jobs/job-service.h"
#include "manager.h"
#include "server/path-load.h"
#include "server/peer-auth.h"
#include "server/rpc.h"
#include "util/log.h"
#include "util/utf8.h"

static JobQueue *queue_of(RpcCall *call)
{
        Manager *m = rpc_call_get_manager(call);

        return m->jobs ? job_service_get_queue(m->jobs) : NULL;
}

static int reply_no_jobs(RpcCall *call)
{
        return rpc_call_reply_error(call, RPC_ERROR_UNSUPPORTED, NULL, "the job queue is not running");
}

/* base64 (RFC 4648, no line breaks), strict: the length is a multiple of 4
 * and padding only at the end (nettle's decoder checks both). */
static int decode_base64(const char *s, uint8_t **ret, size_t *ret_size)
{
        size_t len = strlen(s), n = 0;
        struct base64_decode_ctx ctx;
        _cleanup_free_ uint8_t *buf = NULL;

        if (len % 4 != 0)
                return -EINVAL;
        buf = malloc(BASE64_DECODE_LENGTH(len) + 1);
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++)
                /* nettle skips white space; RFC 4648 data here has none */
                if (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f' ||
                    s[i] == '\v')
                        return -EINVAL;
        base64_decode_init(&ctx);
        n = BASE64_DECODE_LENGTH(len) + 1;
        if (!base64_decode_update(&ctx, &n, buf, len, s) || !base64_decode_final(&ctx))
                return -EINVAL;
        *ret_size = n;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* A regular file only: reading a pipe could block the main loop. */
static int read_image_fd(int fd, uint8_t **ret, size_t *ret_size)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        return image_read_fd(fd, IMAGE_STORE_MAX_SIZE, ret, ret_size);
}

void job_peer_name(pid_t pid, char *buf, size_t size)
{
        char path[64];
        _cleanup_fclose_ FILE *f = NULL;

        snprintf(buf, size, "pid %d", (int)pid);
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        f = fopen(path, "re");
        if (f && fgets(buf, (int)size, f))
                buf[strcspn(buf, "\n")] = '\0';
        /* Any process may name itself any bytes (PR_SET_NAME). */
        utf8_make_valid_in_place(buf, size);
}

static RpcError rpc_error_for(JobError e)
{
        switch (e) {
        case JOB_ERROR_TARGET_NOT_FOUND:
                return RPC_ERROR_DEVICE_NOT_FOUND;
        case JOB_ERROR_TARGET_AMBIGUOUS:
                return RPC_ERROR_DEVICE_AMBIGUOUS;
        case JOB_ERROR_IMAGE_INVALID:
        case JOB_ERROR_IMAGE_TOO_LARGE:
                return RPC_ERROR_INVALID_PARAMS;
        case JOB_ERROR_CHECK_FIT:
        case JOB_ERROR_CHECK_VECTOR_TABLE:
        case JOB_ERROR_CHECK_BOOTLOADER_REGION:
        case JOB_ERROR_CHECK_MCU:
                return RPC_ERROR_REFUSED;
        case JOB_ERROR_NONE:
        case JOB_ERROR_TTY_BUSY:
        case JOB_ERROR_REBOOT_FAILED:
        case JOB_ERROR_BOOTLOADER_TIMEOUT:
        case JOB_ERROR_DEVICE_GONE:
        case JOB_ERROR_FLASH_FAILED:
        case JOB_ERROR_VERIFY_FAILED:
        case JOB_ERROR_APP_TIMEOUT:
        case JOB_ERROR_STUCK_IN_BOOTLOADER:
        case JOB_ERROR_INTERRUPTED:
        case JOB_ERROR_UNSUPPORTED_DEVICE:
        case JOB_ERROR_LAYOUT:
        case JOB_ERROR_UNIT_CONTROL:
        case JOB_ERROR_INTERNAL:
        case _JOB_ERROR_MAX:
        case _JOB_ERROR_INVALID:
                break;
        }
        return RPC_ERROR_INTERNAL;
}

static json_t *candidates_of(Manager *m, const char *target)
{
        _cleanup_free_ const InventoryEntry **matches = NULL;
        const InventoryEntry *e = NULL;
        json_t *arr = json_array();

        if (inventory_find(m->inventory, target, &e, &matches) == -ENOTUNIQ)
                for (size_t i = 0; matches && matches[i]; i++)
                        json_array_append_new(arr, json_string(matches[i]->port));
        return arr;
}

/* What the loader thread brought back for an image.path (see
 * job_method_read_image()). */
typedef struct PathImage {
        int r;
        uint8_t *data;
        size_t size;
        char *message;
} PathImage;

static void path_image_free(void *p)
{
        PathImage *img = p;

        if (!img)
                return;
        free(img->data);
        free(img->message);
        free(img);
}

static void on_path_image_loaded(int r, uint8_t *data, size_t size, char *message, void *userdata)
{
        static PathImage out_of_memory = { .r = -ENOMEM };
        RpcCall *call = userdata;
        PathImage *img = calloc(1, sizeof(*img));

        if (!img) {
                free(data);
                free(message);
                rpc_call_set_data(call, &out_of_memory, NULL);
        } else {
                *img = (PathImage){ .r = r, .data = data, .size = size, .message = message };
                rpc_call_set_data(call, img, path_image_free);
        }
        rpc_call_resume(call); /* the handler runs again and finds the image */
}

/* The image of a request, into memory (also used by rule.add). Answers
 * the call on failure. An image.path is opened and read off the main loop:
 * then this suspends the call (returns -EINPROGRESS, for the handler to
 * return at once) and the handler runs again when the file is read. */
int job_method_read_image(RpcCall *call, json_t *image, uint8_t **ret_data, size_t *ret_size)
{
        const RpcPeer *peer = rpc_call_get_peer(call);
        const char *data = NULL, *path = NULL, *name = NULL;
        int use_fd = 0;
        _cleanup_free_ uint8_t *bytes = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t size = 0;
        int r;

        r = rpc_call_unpack_params(call, image, "{s?b, s?s, s?s, s?s !}", "fd", &use_fd, "data", &data,
                                   "path", &path, "name", &name);
        if (r < 0)
                return r;
        if (!!use_fd + !!data + !!path != 1)
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "image needs exactly one of fd: true, data (base64) or path");
        if (use_fd) {
                fd = rpc_call_take_fd(call);
                if (fd < 0)
                        return rpc_call_reply_error(
                                call, RPC_ERROR_INVALID_PARAMS, NULL,
                                "image.fd is true but no file descriptor came with the request "
                                "(send it with SCM_RIGHTS on the request's first bytes)");
        } else if (path) {
                _cleanup_(peer_cred_freep) PeerCred *pc = NULL;
                PathImage *loaded = rpc_call_get_data(call);

                if (!peer->has_credentials)
                        return rpc_call_reply_error(
                                call, RPC_ERROR_PERMISSION_DENIED, NULL,
                                "image.path needs a local caller with credentials; send data "
                                "instead");
                /* The full credentials (with supplementary groups) when the
                 * transport has them: a file readable through a group must open. */
                r = peer->cred ? peer_cred_new(&pc, peer->cred->pid, peer->cred->uid, peer->cred->gid,
                                               peer->cred->groups, peer->cred->n_groups)
                               : peer_cred_new(&pc, peer->pid, peer->uid, peer->gid, NULL, 0);
                if (r < 0)
                        return r;
                if (!loaded) {
                        r = path_load_start(manager_get_event(rpc_call_get_manager(call)), pc, path,
                                            O_RDONLY, read_image_fd, PATH_LOAD_TIMEOUT_USEC,
                                            on_path_image_loaded, call);
                        if (r == -EBUSY)
                                return rpc_call_reply_error(
                                        call, RPC_ERROR_BUSY, json_pack("{s:s}", "path", path),
                                        "too many files are being opened for clients at once; try again, "
                                        "or pass the file itself");
                        if (r < 0)
                                return r;
                        return rpc_call_suspend(call);
                }
                r = loaded->r;
                if (r >= 0) {
                        bytes = TAKE_PTR(loaded->data);
                        size = loaded->size;
                } else if (loaded->message || r == -ETIMEDOUT)
                        return rpc_call_reply_error(call,
                                                    r == -EACCES || r == -EPERM ? RPC_ERROR_PERMISSION_DENIED
                                                    : r == -ETIMEDOUT           ? RPC_ERROR_TIMEOUT
                                                                                : RPC_ERROR_INVALID_PARAMS,
                                                    json_pack("{s:s}", "path", path), "%s",
                                                    loaded->message ? loaded->message : strerror(-r));
        }
        if (fd >= 0 || (path && !bytes)) {
                if (fd >= 0)
                        r = read_image_fd(fd, &bytes, &size);
                if (r == -EBADFD)
                        return rpc_call_reply_error(
                                call, RPC_ERROR_INVALID_PARAMS, NULL,
                                "the image must be a regular file (not a pipe or device)");
                if (r == -EFBIG)
                        return rpc_call_reply_error(
                                call, RPC_ERROR_INVALID_PARAMS,
                                json_pack("{s:I}", "limit", (json_int_t)IMAGE_STORE_MAX_SIZE),
                                "the image is larger than %s, the most flashd accepts",
                                codec_format_size((char[CODEC_SIZE_MAX]){}, IMAGE_STORE_MAX_SIZE));
                if (r < 0)
                        return rpc_call_reply_error(call, RPC_ERROR_IO, NULL, "could not read the image: %s",
                                                    strerror(-r));
        } else if (data) {
                r = decode_base64(data, &bytes, &size);
                if (r < 0)
                        return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                                    "image.data is not valid base64");
        }
        *ret_data = TAKE_PTR(bytes);
        *ret_size = size;
        return 0;
}

static int method_flash(RpcCall *call, json_t *params)
{
        Manager *m = rpc_call_get_manager(call);
        JobQueue *q = queue_of(call);
        const RpcPeer *peer = rpc_call_get_peer(call);
        const char *target = NULL, *format = NULL, *board = NULL;
        json_t *image = NULL, *force = NULL;
        json_int_t address = -1;
        int verify = 1, mass_erase = 0, wait = 0;
        _cleanup_free_ uint8_t *bytes = NULL;
        _cleanup_free_ char *message = NULL;
        char who[64];
        size_t size = 0;
        JobRequest req = {};
        JobError err = JOB_ERROR_NONE;
        Job *job = NULL;
        int r;

        if (!q)
                return reply_no_jobs(call);
        r = rpc_call_unpack_params(call, params, "{s:s, s:o, s?s, s?I, s?b, s?o, s?b, s?b, s?s !}", "target",
                                   &target, "image", &image, "format", &format, "address", &address,
                                   "verify", &verify, "force", &force, "mass_erase", &mass_erase, "wait",
                                   &wait, "board", &board);
        if (r < 0)
                return r;
        /* a device the inventory cannot identify (a USB-serial bridge in
         * front of an AVR) is flashed as the board the caller names */
        if (board && !board_db_find(m->boards, board))
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "unknown board \"%s\": `flashctl boards` lists the known ones",
                                            board);
        if (address > UINT32_MAX)
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "address %" PRIi64 " is not a 32-bit address", (int64_t)address);
        if (force && !json_is_array(force))
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "force is a list of check names");
        if (force) {
                size_t i;
                json_t *v;
                json_array_foreach (force, i, v) {
                        ImageCheck c = image_check_from_string(json_string_value(v));
                        if (c < 0)
                                return rpc_call_reply_error(
                                        call, RPC_ERROR_INVALID_PARAMS, NULL,
                                        "unknown check \"%s\" in force: the checks are fit, "
                                        "vector-table, bootloader-region and mcu",
                                        strna(json_string_value(v)));
                        req.force |= 1u << c;
                }
        }

        r = job_method_read_image(call, image, &bytes, &size);
        if (r < 0)
                return r;

        job_peer_name(peer->pid, who, sizeof(who));
        req.target = target;
        req.board = board;
        req.data = bytes;
        req.size = size;
        req.format = format;
        req.address = address >= 0 ? (uint32_t)address : 0;
        req.has_address = address >= 0;
        req.verify = verify;
        req.mass_erase = mass_erase;
        req.requested_by.uid = peer->uid;
        req.requested_by.pid = peer->pid;
        req.requested_by.name = who;
        /* what a person recognises the image by: the file's name, not its hash */
        {
                const char *name = json_string_value(json_object_get(image, "name"));
                if (!name)
                        name = json_string_value(json_object_get(image, "path"));
                if (name && strrchr(name, '/'))
                        name = strrchr(name, '/') + 1;
                req.image_name = name && name[0] ? name : NULL;
                req.opened_by_path = json_is_string(json_object_get(image, "path"));
        }

        /* a CAN node the user named stays listed while klippy keeps it assigned
         * (silent); printer.cfg's MCU names stand for their IFACE:UUID */
        char can_target[48];
        {
                char iface[16];
                CanUuid uuid;
                const char *bridge;
                const InventoryEntry *away;
                if (job_can_target_parse(target, iface, &uuid) >= 0 &&
                    (bridge = job_bridge_port_for_uuid(m->inventory, &uuid)))
                        /* the bridge board itself: flashed on its USB port */
                        req.target = bridge;
                else if (job_can_target_parse(target, iface, &uuid) >= 0 &&
                         (away = job_bridge_away_for_iface(m->inventory, iface)))
                        return rpc_call_reply_error(
                                call, rpc_error_for(JOB_ERROR_TARGET_NOT_FOUND),
                                json_pack("{s:{s:i,s:s,s:s},s:s}", "error", "code",
                                          (int)JOB_ERROR_TARGET_NOT_FOUND, "name",
                                          job_error_to_string(JOB_ERROR_TARGET_NOT_FOUND), "advice",
                                          job_error_advice(JOB_ERROR_TARGET_NOT_FOUND), "device", target),
                                "%s is behind the USB-to-CAN bridge on %s, which is away (%s): "
                                "%s exists only while the bridge runs (Klipper, on a bridge board); "
                                "flash or reset the bridge first, or flash the nodes behind it before "
                                "the bridge",
                                target, away->port,
                                away->present ? device_mode_to_string(away->mode) : "unplugged", iface);
                else if (m->can && job_can_target_parse(target, iface, &uuid) >= 0)
                        (void)can_inventory_remember(m->can, iface, &uuid);
                else if (m->can &&
                         can_inventory_resolve(m->can, target, can_target, sizeof(can_target)) >= 0)
                        req.target = can_target;
        }
        r = job_queue_submit(q, &req, &job, &err, &message);
        if (r < 0 && err == JOB_ERROR_NONE)
                return rpc_call_reply_error(call, RPC_ERROR_INTERNAL, NULL, "could not queue the job: %s",
                                            strerror(-r));
        if (r < 0) {
                json_t *d = json_pack("{s:{s:i, s:s, s:s}}", "error", "code", (int)err, "name",
                                      job_error_to_string(err), "advice", job_error_advice(err));
                if (job)
                        json_object_set_new(d, "job", json_integer((json_int_t)job->id));
                if (err == JOB_ERROR_TARGET_AMBIGUOUS)
                        json_object_set_new(d, "candidates", candidates_of(m, target));
                if (err == JOB_ERROR_TARGET_NOT_FOUND)
                        json_object_set_new(d, "device", json_string(target));
                return rpc_call_reply_error(call, rpc_error_for(err), d, "%s", strna(message));
        }
        if (wait && !job_state_is_final(job->state))
                return job_service_wait(m->jobs, call, job->id);
        return rpc_call_reply(call, json_pack("{s:o}", "job", job_to_json(job, true)));
}

static int parse_job_id(RpcCall *call, json_t *params, Job **ret)
{
        JobQueue *q = queue_of(call);
        json_int_t id = 0;
        Job *j;
        int r;

        r = rpc_call_unpack_params(call, params, "{s:I !}", "job", &id);
        if (r < 0)
                return r;
        j = id > 0 ? job_queue_find(q, (uint64_t)id) : NULL;
        if (!j)
                return rpc_call_reply_error(
                        call, RPC_ERROR_NOT_FOUND, json_pack("{s:I}", "job", id),
                        "no job %" PRIi64 ": not queued, not running, not in the history", (int64_t)id);
        *ret = j;
        return 0;
}

static int method_get(RpcCall *call, json_t *params)
{
        Job *j = NULL;
        int r;

        if (!queue_of(call))
                return reply_no_jobs(call);
        r = parse_job_id(call, params, &j);
        if (r < 0 || !j)
                return r;
        return rpc_call_reply(call, json_pack("{s:o}", "job", job_to_json(j, true)));
}

static int method_list(RpcCall *call, json_t *params)
{
        JobQueue *q = queue_of(call);
        int all = 0, r;

        if (!q)
                return reply_no_jobs(call);
        r = rpc_call_unpack_params(call, params, "{s?b !}", "all", &all);
        if (r < 0)
                return r;
        return rpc_call_reply(call, json_pack("{s:o}", "jobs", job_queue_list_json(q, all)));
}

static int method_cancel(RpcCall *call, json_t *params)
{
        Job *j = NULL;
        int r;

        if (!queue_of(call))
                return reply_no_jobs(call);
        r = parse_job_id(call, params, &j);
        if (r < 0 || !j)
                return r;
        r = job_queue_cancel(queue_of(call), j->id);
        if (r == -EALREADY)
                return rpc_call_reply_error(call, RPC_ERROR_BUSY,
                                            json_pack("{s:I, s:s}", "job", (json_int_t)j->id, "state",
                                                      job_state_to_string(j->state)),
                                            "job %" PRIu64 " already ended (%s)", j->id,
                                            job_state_to_string(j->state));
        if (r < 0)
                return r;
        return rpc_call_reply(call, json_pack("{s:o}", "job", job_to_json(j, false)));
}

const RpcMethod job_methods[] = {
        { "job.flash", method_flash, RPC_METHOD_MUTATING },
        { "job.list", method_list, RPC_METHOD_READ },
        { "job.get", method_get, RPC_METHOD_READ },
        { "job.cancel", method_cancel, RPC_METHOD_MUTATING },
        {},
};

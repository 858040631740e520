/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "can/can-transport.h"
#include "codec/dfuse-layout.h"
#include "jobs/job-check.h"
#include "jobs/job-flow-can.h"
#include "jobs/job-flow-katapult.h"
#include "jobs/job-flow-outcome.h"
#include "serial/katapult-session.h"
#include "util/time-util.h"

/* The node id flashd gives Katapult (the first one, as flashtool.py). */
#define CAN_FLASH_NODE_ID CAN_NODEID_FIRST
/* How long one admin query listens for answers. */
#define CAN_QUERY_WINDOW_USEC (250u * 1000u)
#define CAN_MAX_ANSWERS       32
#define CAN_RETRY_DELAY_USEC  (100u * 1000u)
#define CAN_QUIET_USEC        (50u * 1000u)

int job_can_target_parse(const char *target, char iface[static 16], CanUuid *ret_uuid)
{
        const char *colon;
        size_t n;

        if (!target)
                return -EINVAL;
        colon = strrchr(target, ':');
        if (!colon)
                return -EINVAL;
        n = (size_t)(colon - target);
        if (n == 0 || n >= 16 || memchr(target, '/', n))
                return -EINVAL;
        if (can_uuid_parse(colon + 1, ret_uuid) < 0)
                return -EINVAL;
        memcpy(iface, target, n);
        iface[n] = 0;
        return 0;
}

typedef struct CanFlow {
        JobWorker *w;
        JobFlowSpec *spec;
        CanTransport *t;
        char target[40];
        char uuid[13];
        FlowOutcome out;
} CanFlow;

/* A bus error on a write, as a person can act on it. */
static int can_bus_error(CanFlow *f, int r, const char *what)
{
        const char *iface = f->spec->can_iface;
        switch (r) {
        case -ENETDOWN:
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_FLASH_FAILED,
                        "CAN interface %s is down (%s): bring it up (ip link set %s up type can bitrate "
                        "1000000) and retry",
                        iface, what, iface);
        case -ENOBUFS:
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_FLASH_FAILED,
                        "CAN interface %s cannot send (%s): its queue stays full, the controller is "
                        "probably bus-off (no other node acknowledging: check wiring, termination and "
                        "bitrate); `ip -details link show %s` shows the state",
                        iface, what, iface);
        case -ENODEV:
        case -ENXIO:
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_DEVICE_GONE,
                        "CAN interface %s went away (%s): the USB-CAN adapter was unplugged or reset", iface,
                        what);
        default:
                return flow_outcome_fail(&f->out, JOB_ERROR_FLASH_FAILED, "CAN %s failed on %s: %s", what,
                                         iface, strerror(-r));
        }
}

/* Query until the node answers as `app`; returns 1 found, 0 timed out, or
 * the negative errno of the bus. *ret_seen: what it answered as, if at all. */
static int can_wait_node(CanFlow *f, CanApp app, uint64_t timeout, CanApp *ret_seen)
{
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout;
        CanNodeAnswer a[CAN_MAX_ANSWERS];

        if (ret_seen)
                *ret_seen = _CAN_APP_INVALID;
        for (;;) {
                int n = can_transport_query(f->t, CAN_QUERY_WINDOW_USEC, a, CAN_MAX_ANSWERS);
                if (n < 0)
                        return n;
                for (int i = 0; i < n; i++)
                        if (can_uuid_equal(&a[i].uuid, &f->spec->can_uuid)) {
                                if (ret_seen)
                                        *ret_seen = a[i].app;
                                if (a[i].app == app)
                                        return 1;
                        }
                if (job_worker_cancelled(f->w))
                        return -ECANCELED;
                if (now_usec(CLOCK_MONOTONIC) >= deadline)
                        return 0;
        }
}

static void on_check_note(void *userdata, const char *line)
{
        job_worker_log(((CanFlow *)userdata)->w, "%s", line);
}

static int can_flash(CanFlow *f, const uint8_t *data, size_t size)
{
        _cleanup_(katapult_session_freep) KatapultSession *s = NULL;
        _cleanup_(job_payload_freep) JobPayload *payload = NULL;
        _cleanup_free_ char *message = NULL;
        JobFlowSpec *spec = f->spec;
        FlashCallbacks cb = job_flow_callbacks(f->w);
        KatapultConnectInfo info;
        uint8_t got[CAN_UUID_SIZE];
        JobError e = JOB_ERROR_INTERNAL;
        uint64_t tx, rx;
        char u[13];
        int r;

        r = katapult_session_new(&s, can_transport_get_transport(f->t));
        if (r < 0)
                return flow_outcome_fail(&f->out, JOB_ERROR_INTERNAL,
                                         "could not start a Katapult session: %s", strerror(-r));
        /* A lost or damaged frame on CAN costs one resend, not a USB
         * re-enumeration: resend sooner (flashtool.py waits 0.2 s on CAN). */
        KatapultTimeouts to = katapult_timeouts_default;
        to.retry_delay_usec = CAN_RETRY_DELAY_USEC;
        to.quiet_usec = MIN(to.quiet_usec, (uint64_t)CAN_QUIET_USEC);
        katapult_session_set_timeouts(s, &to);
        r = katapult_session_connect(s, &cb, &info, &message);
        if (r == -ENETDOWN || r == -ENOBUFS || r == -ENODEV)
                return can_bus_error(f, r, "CONNECT");
        if (r < 0)
                return flow_outcome_fail(&f->out, JOB_ERROR_FLASH_FAILED, "%s (node %s)", strna(message),
                                         f->target);
        /* the node id reached the node meant (flashtool.py does the same) */
        free(message);
        message = NULL;
        r = katapult_session_get_canbus_id(s, got, &cb, &message);
        if (r < 0)
                return flow_outcome_fail(&f->out, JOB_ERROR_FLASH_FAILED, "%s (node %s)", strna(message),
                                         f->target);
        if (memcmp(got, spec->can_uuid.b, CAN_UUID_SIZE) != 0) {
                CanUuid g;
                memcpy(g.b, got, sizeof(got));
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_UNSUPPORTED_DEVICE,
                        "node id %u on %s answers with UUID %s, not %s: another node took the id; "
                        "nothing was written",
                        CAN_FLASH_NODE_ID, spec->can_iface, can_uuid_format(&g, u), f->uuid);
        }

        /* The image against what Katapult reports (its application start
         * for a raw image unless the board or --address says otherwise). */
        JobCheckInput in = {
                .data = data,
                .size = size,
                .format = spec->format,
                .address = spec->has_address ? spec->address : info.start_address,
                .has_address = spec->has_address || !spec->has_board,
                .force = spec->force,
                .board = spec->has_board ? &spec->board : NULL,
                .device_mcu = info.mcu,
        };
        free(message);
        message = NULL;
        r = job_check_image(&in, on_check_note, f, &payload, &e, &message);
        if (r < 0)
                return flow_outcome_fail(&f->out, e, "%s", strna(message));

        job_worker_send_state(f->w, JOB_STATE_FLASHING);
        free(message);
        message = NULL;
        r = job_flow_katapult_flash(f->w, s, spec, payload, &message);
        can_transport_get_counts(f->t, &tx, &rx);
        job_worker_log(f->w, "CAN: %" PRIu64 " frames sent, %" PRIu64 " received", tx, rx);
        job_flow_katapult_report(f->w, s, r, spec->verify);
        if (r >= 0)
                return 0;
        /* on CAN, the bus itself fails and a node that stops answering
         * mid-flash is gone, not a refusing bootloader */
        if (r == -ENETDOWN || r == -ENOBUFS || r == FLASH_ERR_GONE)
                return can_bus_error(f, r, "during the flash");
        if (r == -ETIMEDOUT)
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_DEVICE_GONE,
                        "node %s stopped answering during the flash (%s); it stays in Katapult: check "
                        "its power and the CAN wiring, then flash it again",
                        f->target, strna(message));
        return flow_outcome_flash_failed(&f->out, r, message,
                                         "during the flash; the node stays in Katapult");
}

static int can_run(CanFlow *f)
{
        _cleanup_free_ uint8_t *data = NULL;
        JobFlowSpec *spec = f->spec;
        uint8_t d[CAN_DATA_MAX];
        size_t size = 0;
        CanApp seen;
        int r;

        r = image_store_get(spec->store, spec->sha256, &data, &size);
        if (r < 0)
                return flow_outcome_fail(&f->out, JOB_ERROR_INTERNAL,
                                         "the stored image %s cannot be read: %s", spec->sha256,
                                         strerror(-r));

        r = can_interface_is_up(spec->can_iface);
        if (r == -ENODEV)
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_TARGET_NOT_FOUND,
                        "there is no CAN interface %s: plug in the USB-CAN adapter (or the bridge board) "
                        "and configure it (ip link set %s up type can bitrate 1000000)",
                        spec->can_iface, spec->can_iface);
        if (r == 0)
                return can_bus_error(f, -ENETDOWN, "before the flash");
        r = can_transport_open(&f->t, spec->can_iface);
        if (r == -EAFNOSUPPORT)
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_UNSUPPORTED_DEVICE,
                        "SocketCAN is not available here (socket(AF_CAN) refused): load the can and "
                        "can_raw kernel modules, and allow AF_CAN in the unit's RestrictAddressFamilies=");
        if (r < 0)
                return can_bus_error(f, r, "opening a CAN socket");

        /* Already in Katapult (an interrupted flash, a double reset)? */
        r = can_wait_node(f, CAN_APP_KATAPULT, 0, &seen);
        if (r < 0 && r != -ECANCELED)
                return can_bus_error(f, r, "the admin query");
        if (r == -ECANCELED)
                return flow_outcome_cancelled(&f->out, "before flashing");
        if (r == 0) {
                /* Klipper answers the query only while unassigned; an
                 * assigned one (klippy running) takes the reboot all the same. */
                job_worker_send_state(f->w, JOB_STATE_REBOOTING);
                r = can_transport_admin(f->t, d, can_admin_encode_reboot(d, &spec->can_uuid),
                                        CAN_QUERY_WINDOW_USEC);
                if (r < 0)
                        return can_bus_error(f, r, "the reboot request");
                job_worker_log(
                        f->w, "asked Klipper on %s to reboot into Katapult (CAN admin REBOOT)%s", f->target,
                        seen == CAN_APP_KLIPPER ? ""
                                                : " (it did not answer the query: assigned, or absent)");
                r = can_wait_node(f, CAN_APP_KATAPULT, spec->device_timeout_usec, &seen);
                if (r == -ECANCELED)
                        return flow_outcome_cancelled(&f->out, "while waiting for Katapult");
                if (r < 0)
                        return can_bus_error(f, r, "the admin query");
                if (r == 0)
                        return flow_outcome_fail(
                                &f->out, JOB_ERROR_BOOTLOADER_TIMEOUT,
                                "node %s did not answer as Katapult within %" PRIu64
                                " s after the reboot request: check the UUID (flashctl list shows "
                                "unassigned "
                                "nodes; canbus_uuid in printer.cfg), that the node is powered and "
                                "wired, and that "
                                "its Katapult is built for CAN",
                                f->target, spec->device_timeout_usec / 1000000);
        } else
                job_worker_log(f->w, "node %s is already in Katapult", f->target);

        r = can_transport_admin(
                f->t, d,
                can_admin_encode_set_nodeid(d, CAN_APP_KATAPULT, &spec->can_uuid, CAN_FLASH_NODE_ID),
                CAN_QUERY_WINDOW_USEC);
        if (r < 0)
                return can_bus_error(f, r, "setting the node id");
        r = can_transport_select_node(f->t, CAN_FLASH_NODE_ID);
        if (r < 0)
                return can_bus_error(f, r, "setting the socket's filters");
        job_worker_send_device(f->w, f->target);

        r = can_flash(f, data, size);
        if (r < 0)
                return r;

        job_worker_send_state(f->w, JOB_STATE_WAITING_FOR_APP);
        r = can_wait_node(f, CAN_APP_KLIPPER, spec->app_timeout_usec, &seen);
        if (r == -ECANCELED)
                return flow_outcome_cancelled(&f->out, "while waiting for Klipper");
        if (r < 0)
                return can_bus_error(f, r, "the admin query");
        if (r == 0 && seen == CAN_APP_KATAPULT)
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_STUCK_IN_BOOTLOADER,
                        "the image was written, but node %s came back in Katapult instead of running it",
                        f->target);
        if (r == 0)
                return flow_outcome_fail(
                        &f->out, JOB_ERROR_APP_TIMEOUT,
                        "the image was written, but node %s did not answer as Klipper within %" PRIu64 " s",
                        f->target, spec->app_timeout_usec / 1000000);
        flow_outcome_done(&f->out, "flashed; node %s is back in Klipper", f->target);
        return 0;
}

void job_flow_run_can(JobWorker *w, JobFlowSpec *spec)
{
        CanFlow f = { .w = w, .spec = spec };

        can_uuid_format(&spec->can_uuid, f.uuid);
        snprintf(f.target, sizeof(f.target), "%s:%s", spec->can_iface, f.uuid);
        (void)can_run(&f);
        can_transport_free(f.t);
        flow_outcome_send(&f.out, w);
}

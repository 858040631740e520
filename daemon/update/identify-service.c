/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "can/can-identify.h"
#include "util/log.h"
#include "util/macros.h"
#include "jobs/job-queue.h"
#include "serial/bootloader-request.h"
#include "serial/klipper-identify.h"
#include "update/identify-service.h"
#include "util/tty-claim.h"

/* What a CAN node runs, as far as flashd knows: from its own identify
 * (while unassigned) or from Moonraker (while klippy holds it). */
typedef struct CanFirmware {
        char port[40]; /* "can0:0123456789ab" */
        char iface[16];
        CanUuid uuid;
        char *version, *mcu;
        const char *source; /* static: "identify", "moonraker" */
        int error;          /* of the last attempt (0: none yet, or it answered) */
        bool asking;
} CanFirmware;

#define CAN_FIRMWARE_MAX 64

typedef struct IdentifyWork {
        IdentifyService *service;
        pthread_t thread;
        bool joined;
        char *port;
        char *tty;
        CanFirmware *can; /* a CAN node instead of a tty */
        uint8_t node_id;
        uint64_t generation;
        /* results, written by the thread before it reports */
        int error;
        KlipperDictInfo info;
        TtyUse use;
        struct IdentifyWork *next;
} IdentifyWork;

struct IdentifyService {
        Inventory *inventory;
        JobQueue *queue; /* NULL: no jobs (tests) */
        sd_event_source *source;
        int pipe[2];
        atomic_bool cancel;
        IdentifyWork *works; /* running or finished, not yet collected */
        CanFirmware can[CAN_FIRMWARE_MAX];
        size_t n_can;
};

static void work_free(IdentifyWork *w)
{
        if (!w)
                return;
        if (!w->joined)
                pthread_join(w->thread, NULL);
        klipper_dict_info_clear(&w->info);
        free(w->port);
        free(w->tty);
        free(w);
}

static void *identify_thread(void *userdata)
{
        IdentifyWork *w = userdata;
        TtyHolder holder;
        int r;

        if (w->can) {
                w->error = can_identify_node(w->can->iface, &w->can->uuid, w->node_id,
                                             KLIPPER_IDENTIFY_TIMEOUT_USEC, &w->service->cancel, &w->info);
                if (write(w->service->pipe[1], &w, sizeof(w)) != sizeof(w))
                        w->error = -EIO;
                return NULL;
        }
        r = tty_check_use("/proc", w->tty, getpid(), &w->use, &holder, NULL);
        if (r >= 0 && w->use == TTY_USE_FREE)
                r = klipper_identify_tty(w->tty, 0, KLIPPER_IDENTIFY_TIMEOUT_USEC, &w->service->cancel,
                                         &w->info);
        else if (r >= 0)
                r = -EBUSY;
        w->error = r;
        tty_release(w->tty);
        /* the pointer itself is the message; a short pipe write is atomic */
        if (write(w->service->pipe[1], &w, sizeof(w)) != sizeof(w))
                w->error = -EIO;
        return NULL;
}

static void can_set(CanFirmware *c, const char *version, const char *mcu, const char *source)
{
        free(c->version);
        free(c->mcu);
        c->version = version ? strdup(version) : NULL;
        c->mcu = mcu ? strdup(mcu) : NULL;
        c->source = c->version ? source : NULL;
}

static void can_result(IdentifyWork *w)
{
        CanFirmware *c = w->can;

        c->asking = false;
        c->error = w->error;
        if (w->error >= 0) {
                log_info("CAN node %s: Klipper %s on %s", c->port, strna(w->info.version),
                         strna(w->info.mcu));
                can_set(c, w->info.version, w->info.mcu, "identify");
        } else if (w->error == -EBUSY)
                log_debug("CAN node %s: not unassigned (klippy holds it, or it is off the bus): not asked",
                          c->port);
        else if (w->error == -EPROTO) {
                log_info("CAN node %s: in Katapult, not running Klipper", c->port);
                can_set(c, NULL, NULL, NULL);
        } else
                log_info_errno(w->error, "CAN node %s: no answer to Klipper's identify: %m", c->port);
}

static int on_result(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        IdentifyService *s = userdata;
        IdentifyWork *w;

        while (read(fd, &w, sizeof(w)) == sizeof(w)) {
                for (IdentifyWork **p = &s->works; *p; p = &(*p)->next)
                        if (*p == w) {
                                *p = w->next;
                                break;
                        }
                pthread_join(w->thread, NULL);
                w->joined = true;
                if (w->can) {
                        can_result(w);
                        work_free(w);
                        continue;
                }
                if (w->error >= 0) {
                        log_info("device %s: Klipper %s on %s (%s)", w->port, strna(w->info.version),
                                 strna(w->info.mcu), w->tty);
                        int r = inventory_set_firmware(s->inventory, w->port, w->generation, w->info.version,
                                                       w->info.mcu, "identify");
                        if (r < 0)
                                log_warning_errno(r, "device %s: cannot record its firmware: %m", w->port);
                } else if (w->error == -EBUSY)
                        log_debug("device %s: %s is %s, not asking it what it runs", w->port, w->tty,
                                  tty_use_to_string(w->use));
                else
                        log_info_errno(w->error, "device %s: no answer to Klipper's identify on %s: %m",
                                       w->port, w->tty);
                work_free(w);
        }
        return 0;
}

static int start(IdentifyService *s, const InventoryEntry *e)
{
        IdentifyWork *w;
        int r;

        for (w = s->works; w; w = w->next)
                if (!w->can && streq(w->port, e->port) && w->generation == e->generation)
                        return 0; /* being asked already */
        /* A job is about to reboot the board, or is busy with it: the tty
         * is the job's (a 1200-baud request under an open identify is
         * lost). Once the job only waits for the application, the board
         * that comes back is asked what it now runs. */
        const Job *holder = s->queue ? job_queue_port_holder(s->queue, e->port) : NULL;
        if (holder && holder->state != JOB_STATE_WAITING_FOR_APP)
                return 0;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->service = s;
        w->generation = e->generation;
        w->port = strdup(e->port);
        w->tty = strdup(e->tty);
        if (!w->port || !w->tty) {
                w->joined = true;
                work_free(w);
                return -ENOMEM;
        }
        /* a job starting now waits until the port is released */
        r = tty_claim(w->tty);
        if (r < 0) {
                w->joined = true;
                work_free(w);
                return r;
        }
        r = -pthread_create(&w->thread, NULL, identify_thread, w);
        if (r < 0) {
                tty_release(w->tty);
                w->joined = true;
                work_free(w);
                return r;
        }
        w->next = s->works;
        s->works = w;
        return 0;
}

static void on_inventory(Inventory *inv, InventoryEvent event, const InventoryEntry *e, void *userdata)
{
        IdentifyService *s = userdata;

        if (event == INVENTORY_EVENT_REMOVED || e->mode != DEVICE_MODE_APP || !e->present || !e->tty)
                return;
        if (e->firmware_generation == e->generation && e->firmware_source)
                return; /* known for this device */
        int r = start(s, e);
        if (r < 0)
                log_warning_errno(r, "device %s: cannot start Klipper's identify: %m", e->port);
}

int identify_service_refresh(IdentifyService *s, const char *port)
{
        const InventoryEntry *e = inventory_get(s->inventory, port);

        if (!e || e->mode != DEVICE_MODE_APP || !e->tty)
                return -ENODEV;
        return start(s, e);
}

static CanFirmware *can_get(IdentifyService *s, const char *iface, const char *uuid, bool create)
{
        char port[40];
        CanUuid u;

        if (!iface || !uuid || can_uuid_parse(uuid, &u) < 0 || strlen(iface) >= sizeof(s->can[0].iface))
                return NULL;
        snprintf(port, sizeof(port), "%s:%s", iface, can_uuid_format(&u, (char[13]){}));
        for (size_t i = 0; i < s->n_can; i++)
                if (streq(s->can[i].port, port))
                        return &s->can[i];
        if (!create || s->n_can >= CAN_FIRMWARE_MAX)
                return NULL;
        CanFirmware *c = &s->can[s->n_can++];
        *c = (CanFirmware){ .uuid = u };
        snprintf(c->port, sizeof(c->port), "%s", port);
        snprintf(c->iface, sizeof(c->iface), "%s", iface);
        return c;
}

int identify_service_refresh_can(IdentifyService *s, const char *iface, const char *uuid,
                                 const char *job_port)
{
        CanFirmware *c = can_get(s, iface, uuid, true);
        IdentifyWork *w;
        int r;

        if (!c)
                return -EINVAL;
        if (c->asking)
                return 0;
        /* a job flashing the node (or its bridge) owns the bus traffic to it */
        if (s->queue && (job_queue_port_holder(s->queue, c->port) ||
                         (job_port && job_queue_port_holder(s->queue, job_port))))
                return 0;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->service = s;
        w->can = c;
        /* one id per node, from the top: see can-identify.h */
        w->node_id = (uint8_t)(CAN_IDENTIFY_NODEID_TOP - (size_t)(c - s->can));
        r = -pthread_create(&w->thread, NULL, identify_thread, w);
        if (r < 0) {
                w->joined = true;
                work_free(w);
                return r;
        }
        c->asking = true;
        w->next = s->works;
        s->works = w;
        return 0;
}

int identify_service_get_can(IdentifyService *s, const char *iface, const char *uuid,
                             const char **ret_version, const char **ret_mcu, const char **ret_source,
                             bool *ret_asking)
{
        CanFirmware *c = can_get(s, iface, uuid, false);

        if (!c)
                return -ENOENT;
        *ret_version = c->version;
        *ret_mcu = c->mcu;
        *ret_source = c->source;
        *ret_asking = c->asking;
        return c->error;
}

int identify_service_set_can(IdentifyService *s, const char *iface, const char *uuid, const char *version,
                             const char *mcu, const char *source)
{
        CanFirmware *c = can_get(s, iface, uuid, true);

        if (!c)
                return -EINVAL;
        can_set(c, version, mcu, source);
        if (version && !c->version)
                return -ENOMEM;
        return 0;
}

void identify_service_forget_can(IdentifyService *s, const char *iface, const char *uuid)
{
        CanFirmware *c = can_get(s, iface, uuid, false);

        if (c) {
                can_set(c, NULL, NULL, NULL);
                c->error = 0;
        }
}

int identify_service_new(IdentifyService **ret, sd_event *event, Inventory *inv, JobQueue *queue)
{
        IdentifyService *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->inventory = inv;
        s->queue = queue;
        s->pipe[0] = s->pipe[1] = -EBADF;
        if (pipe2(s->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
                r = -errno;
                identify_service_free(s);
                return r;
        }
        r = sd_event_add_io(event, &s->source, s->pipe[0], EPOLLIN, on_result, s);
        if (r >= 0)
                r = inventory_add_listener(inv, on_inventory, s);
        if (r < 0) {
                identify_service_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

IdentifyService *identify_service_free(IdentifyService *s)
{
        if (!s)
                return NULL;
        atomic_store(&s->cancel, true);
        inventory_remove_listener(s->inventory, on_inventory, s);
        while (s->works) {
                IdentifyWork *w = s->works;
                s->works = w->next;
                work_free(w); /* joins */
        }
        for (size_t i = 0; i < s->n_can; i++)
                can_set(&s->can[i], NULL, NULL, NULL);
        sd_event_source_disable_unref(s->source);
        if (s->pipe[0] >= 0)
                close(s->pipe[0]);
        if (s->pipe[1] >= 0)
                close(s->pipe[1]);
        free(s);
        return NULL;
}

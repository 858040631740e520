/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "jobs/job-device.h"

JobDevice *job_device_free(JobDevice *d)
{
        if (!d)
                return NULL;
        free(d->id);
        free(d->port);
        free(d->devnode);
        free(d->tty);
        dfuse_layout_free(d->layout);
        free(d->mcu);
        free(d->board);
        free(d->variant);
        free(d->can_iface);
        free(d);
        return NULL;
}

static int dup_or_null(const char *s, char **ret)
{
        *ret = NULL;
        if (!s)
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int job_device_copy(const JobDevice *d, JobDevice **ret)
{
        _cleanup_(job_device_freep) JobDevice *c = calloc(1, sizeof(JobDevice));

        if (!c)
                return -ENOMEM;
        *c = *d;
        c->id = c->port = c->devnode = c->tty = c->mcu = c->board = c->variant = c->can_iface = NULL;
        c->layout = NULL;
        if (dup_or_null(d->id, &c->id) < 0 || dup_or_null(d->port, &c->port) < 0 ||
            dup_or_null(d->devnode, &c->devnode) < 0 || dup_or_null(d->tty, &c->tty) < 0 ||
            (d->layout && dfuse_layout_copy(d->layout, &c->layout) < 0) ||
            dup_or_null(d->mcu, &c->mcu) < 0 || dup_or_null(d->board, &c->board) < 0 ||
            dup_or_null(d->variant, &c->variant) < 0 || dup_or_null(d->can_iface, &c->can_iface) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

/* The alt setting that holds the flash: the first DfuSe layout named like
 * "Internal Flash", else the first one with any layout. */
static const InventoryAlt *flash_alt(const InventoryEntry *e)
{
        const InventoryAlt *first = NULL;

        for (size_t i = 0; i < e->n_alts; i++) {
                const InventoryAlt *a = &e->alts[i];
                if (!a->layout)
                        continue;
                if (!first)
                        first = a;
                if (a->layout->name && strcasestr(a->layout->name, "flash"))
                        return a;
        }
        return first;
}

int job_device_from_entry(const InventoryEntry *e, JobDevice **ret)
{
        _cleanup_(job_device_freep) JobDevice *d = calloc(1, sizeof(JobDevice));
        const InventoryAlt *alt;

        if (!d)
                return -ENOMEM;
        d->mode = e->mode;
        d->busnum = (uint8_t)e->busnum;
        d->devnum = (uint8_t)e->devnum;
        d->vid = e->vid;
        d->pid = e->pid;
        d->transfer_size = e->transfer_size;
        if (dup_or_null(e->port, &d->id) < 0 || dup_or_null(e->port, &d->port) < 0 ||
            dup_or_null(e->usb_devnode, &d->devnode) < 0 || dup_or_null(e->tty, &d->tty) < 0 ||
            dup_or_null(e->mcu ? e->mcu : e->last_mcu, &d->mcu) < 0 ||
            dup_or_null(e->board ? e->board->name : NULL, &d->board) < 0 ||
            dup_or_null(e->variant ? e->variant->id : NULL, &d->variant) < 0 ||
            dup_or_null(e->can_iface, &d->can_iface) < 0)
                return -ENOMEM;
        d->bridge = inventory_entry_bridge_uuid(e, &d->bridge_uuid);
        alt = flash_alt(e);
        if (alt) {
                if (dfuse_layout_copy(alt->layout, &d->layout) < 0)
                        return -ENOMEM;
                d->interface = alt->interface;
                d->alt = alt->alt;
        }
        *ret = TAKE_PTR(d);
        return 0;
}

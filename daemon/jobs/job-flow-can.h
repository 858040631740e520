/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A flash job for a node on a CAN bus (target IFACE:UUID), run on the
 * job's worker thread: Klipper's admin REBOOT to the UUID, wait until the
 * node answers the admin query as Katapult, give it a node id, CONNECT,
 * check the UUID (GET_CANBUS_ID), check the image against what Katapult
 * reports, write, read back, COMPLETE, and wait until the node answers as
 * Klipper again. The node is not in the USB inventory: every wait is an
 * admin query on the bus.
 */

#include "jobs/job-flow-spec.h"

/* "can0:0123456789ab" -> iface (buf of IF_NAMESIZE) and UUID: 0 or -EINVAL. */
int job_can_target_parse(const char *target, char iface[static 16], CanUuid *ret_uuid);

void job_flow_run_can(JobWorker *w, JobFlowSpec *spec);

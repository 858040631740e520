#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""An interrupted job never writes an old image over a newer one. Under

    vboard --board octopus-pro-f429 --mode dfu      (1-1.1)
           --board octopus-pro-f429 --mode dfu      (1-1.2)

- superseded: flashd is SIGKILLed while job J2 writes v2 to 1-1.1; the
  user then puts v1 on the board by hand (dfu-util ... :leave), so the board
  runs Klipper when flashd comes back and J2 stays interrupted. J3 (v3) is
  accepted for the same board: J2 ends `superseded` naming J3 at once, J3
  flashes v3, and when the board later shows up in its bootloader again
  (BOOT0 + reset) nothing is written: the virtual flash holds v3, J2 is
  never started again, and flashctl says it was superseded;
- expired: a job interrupted on 1-1.2 while the board is unplugged fails as
  expired after interrupted_expire_sec; when the board is plugged back (in
  its bootloader) the old job is not retried, and a rule for the port is
  not held off by it: the rule's job flashes the board.
"""
import signal
import time

import harness
from jobs_helpers import (APP, FAST_CONFIG, Boards, app_image, check, check_job_done, flash_rpc, flashctl,
                          wait_job)
from rules_helpers import add_rule, wait_job_end
from vboard import dfu_util_download

A = "1-1.1"
B = "1-1.2"
SCALE = float(__import__("os").environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))
MCU = "stm32f429xx"


def listed(c, port, mode):
    def ok():
        d = harness.devices_by_port(c).get(port)
        return d and d["mode"] == mode and (mode != "dfu" or d.get("probed"))
    harness.wait_for(ok, timeout=20 * SCALE, what=f"{port} listed in {mode} mode")


def kill_mid_write(d, c, port, image):
    """Submit `image` for `port`, SIGKILL flashd once bytes are being written;
    returns the job id."""
    jid = flash_rpc(c, port, image, address=APP)["id"]
    c.wait_notification("notify_job_update", lambda p: p[0]["id"] == jid and p[0]["state"] == "flashing" and
                        p[0]["phase"] == "write" and p[0]["bytes_done"] > 0, timeout=30 * SCALE)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    d.stop(check=False)
    return jid


def restarted(d, config=FAST_CONFIG):
    d2 = harness.Flashd(config=config)
    d2.state_dir = d.state_dir
    return d2


def test_newer_job_supersedes_interrupted():
    boards = Boards()
    v1, v2, v3 = (app_image(400 * 1024, APP, seed=s, mcu=MCU) for s in (51, 52, 53))
    d = harness.Flashd(config=FAST_CONFIG)
    d.start()
    try:
        c = d.client()
        listed(c, A, "dfu")
        j2 = kill_mid_write(d, c, A, v2)
        check(boards.read(A, APP, len(v2)) != v2, "J2 really was interrupted")

        # flashed by hand meanwhile: the board runs v1 (after a reset: the
        # killed flashd may have left the bootloader in the middle of a
        # request, which dfu-util does not clear)
        boards.vb.reset(A)
        boards.vb.wait(A, "dfu", int(10000 * SCALE))
        rc, out = dfu_util_download(v1, "-p", A, "-a", "0", "-s", f"0x{APP:08x}:leave", timeout=120 * SCALE)
        boards.vb.wait(A, "app", int(10000 * SCALE))
        check(boards.read(A, APP, len(v1)) == v1, "v1 written by hand", out)

        d2 = restarted(d)
        with d2:
            c2 = d2.client()
            listed(c2, A, "app")
            job = c2.call("job.get", {"job": j2})["job"]
            check(job["state"] == "interrupted", "J2 is interrupted after the restart", job["state"])

            j3 = flash_rpc(c2, A, v3)["id"]
            job = c2.call("job.get", {"job": j2})["job"]
            check(job["state"] == "superseded" and job["superseded_by"] == j3,
                  "J2 superseded by J3 as soon as J3 is accepted", (job["state"], job.get("superseded_by")))
            check(str(j3) in (job["message"] or ""), "J2's message names J3", job["message"])
            check_job_done(wait_job(c2, j3, timeout=60 * SCALE))
            check(boards.read(A, APP, len(v3)) == v3, "J3 wrote v3")
            erases = boards.erases(A)

            # J2's board shows up in its bootloader again
            boards.vb.boot0_reset(A)
            listed(c2, A, "dfu")
            time.sleep(2 * SCALE)
            jobs = {j["id"]: j for j in c2.call("job.list", {"all": True})["jobs"]}
            check(jobs[j2]["state"] == "superseded" and jobs[j2]["attempts"] == 1, "J2 is not retried",
                  jobs[j2])
            check(not [j for j in jobs.values() if j["state"] not in ("done", "failed", "cancelled",
                                                                     "superseded")],
                  "no job runs", [(j["id"], j["state"]) for j in jobs.values()])
            check(boards.erases(A) == erases, "nothing erased when the board came back")
            check(boards.read(A, APP, len(v3)) == v3, "the board still holds v3 (the newer image)")

            out = flashctl(d2, "job", str(j2))
            check(out.returncode == 0 and "superseded" in out.stdout and str(j3) in out.stdout,
                  "flashctl job shows the superseding job", out.stdout + out.stderr)
            out = flashctl(d2, "jobs", "--all")
            check("superseded" in out.stdout, "flashctl jobs shows the state", out.stdout + out.stderr)
    finally:
        d.cleanup()


def test_interrupted_job_expires():
    boards = Boards()
    old, new = app_image(400 * 1024, APP, seed=61), app_image(64 * 1024, APP, seed=62)
    d = harness.Flashd(config=FAST_CONFIG)
    d.start()
    try:
        c = d.client()
        listed(c, B, "dfu")
        jid = kill_mid_write(d, c, B, old)
        boards.vb.unplug(B)

        d2 = restarted(d, FAST_CONFIG + "interrupted_expire_sec = 2\n")
        with d2:
            c2 = d2.client()
            job = c2.call("job.get", {"job": jid})["job"]
            check(job["state"] == "interrupted", "interrupted after the restart", job["state"])
            job = wait_job(c2, jid, states=("failed",), timeout=20 * SCALE)
            check(job["error"]["name"] == "interrupted" and "expired" in job["error"]["message"],
                  "failed as expired", job["error"])

            rule = add_rule(c2, new, {"port": B, "mode": "bootloader"}, address=APP)
            boards.vb.plug(B)
            jobs = wait_job_end(c2, rule["id"], B, timeout=60 * SCALE)
            check(len(jobs) == 1, "the rule flashed the board once", jobs)
            check(boards.read(B, APP, len(new)) == new, "the board holds the rule's image")
            job = c2.call("job.get", {"job": jid})["job"]
            check(job["state"] == "failed" and job["attempts"] == 1, "the expired job never ran again", job)
    finally:
        d.cleanup()


if __name__ == "__main__":
    harness.main([test_newer_job_supersedes_interrupted, test_interrupted_job_expires])

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Jobs survive a restart of flashd. Under

    vboard --board octopus-pro-f429 --mode dfu                          (1-1.1)
           --board octopus-pro-f429 --mode app --quirk no-1200-reboot   (1-1.2)

- flashd is killed (SIGKILL) while it writes 1-1.1, with two jobs for 1-1.2
  in the queue (one waiting for the board, one behind it); the images were
  sent as base64 and exist only in flashd's image store;
- a new flashd on the same state dir marks the first job interrupted and,
  the board being in its bootloader, retries it from the start: the virtual
  flash holds the image; the two queued jobs run one after the other when
  the test sets BOOT0 and resets the board;
- with retry_interrupted = no the interrupted job is failed with a message
  that says what happened and what to do.
"""
import os
import signal

import harness
from jobs_helpers import (APP, FAST_CONFIG, Boards, app_image, check, check_job_done, flash_rpc, wait_job)

A = "1-1.1"
B = "1-1.2"


def ready(c):
    def ok():
        devs = harness.devices_by_port(c)
        return {A, B} <= set(devs) and (devs[A]["mode"] != "dfu" or devs[A].get("probed"))
    harness.wait_for(ok, what="boards listed")


def kill_mid_write(boards, config, image, sig=signal.SIGKILL):
    """Start flashd, queue the job, kill it with `sig` during the write;
    returns (the stopped Flashd, job id, its exit status)."""
    d = harness.Flashd(config=config)
    d.start()
    c = d.client()
    ready(c)
    ja = flash_rpc(c, A, image, address=APP)["id"]
    c.wait_notification("notify_job_update", lambda p: p[0]["id"] == ja and p[0]["state"] == "flashing" and
                        p[0]["phase"] == "write" and p[0]["bytes_done"] > 0, timeout=20)
    d.proc.send_signal(sig)
    status = d.proc.wait(10)
    check(boards.read(A, APP, len(image)) != image, "the first flash really was interrupted")
    return d, ja, status


def test_restart_retries_interrupted_and_keeps_queue():
    boards = Boards()
    image_a = app_image(400 * 1024, APP, seed=41)
    image_b1 = app_image(24 * 1024, APP, seed=42, mcu="stm32f429xx")
    image_b2 = app_image(24 * 1024, APP, seed=43, mcu="stm32f429xx")
    d = harness.Flashd(config=FAST_CONFIG)
    d.start()
    try:
        c = d.client()
        ready(c)
        jb1 = flash_rpc(c, B, image_b1)["id"]
        jb2 = flash_rpc(c, B, image_b2)["id"]
        c.wait_notification("notify_job_update", lambda p: p[0]["id"] == jb1 and
                            p[0]["state"] == "waiting-for-device", timeout=10)
        ja = flash_rpc(c, A, image_a, address=APP)["id"]
        c.wait_notification("notify_job_update", lambda p: p[0]["id"] == ja and p[0]["state"] == "flashing" and
                            p[0]["phase"] == "write" and p[0]["bytes_done"] > 0, timeout=20)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        d.stop(check=False)
        check(boards.read(A, APP, len(image_a)) != image_a, "the first flash really was interrupted")

        d2 = harness.Flashd(config=FAST_CONFIG)
        d2.state_dir = d.state_dir
        with d2:
            c2 = d2.client()
            job = wait_job(c2, ja, timeout=30)
            check_job_done(job)
            check(any("interrupted" in line for line in job["log"]), "the log says it was interrupted",
                  job["log"])
            check(job["attempts"] == 2, "retried once", job["attempts"])
            check(boards.read(A, APP, len(image_a)) == image_a, "1-1.1 holds the image after the retry")

            # the two queued jobs of 1-1.2, one after the other
            jobs = {j["id"]: j for j in c2.call("job.list")["jobs"]}
            check(jb1 in jobs and jb2 in jobs, "the queued jobs are still there", jobs)
            for jid, image in ((jb1, image_b1), (jb2, image_b2)):
                c2.wait_notification("notify_job_update", lambda p: p[0]["id"] == jid and
                                     p[0]["state"] == "waiting-for-device", timeout=10)
                boards.vb.boot0_reset(B)
                check_job_done(wait_job(c2, jid, timeout=20))
                check(boards.read(B, APP, len(image)) == image, f"job {jid}: image in flash")
                boards.vb.wait(B, "app", 5000)
    finally:
        d.cleanup()


def test_restart_without_retry_fails_clearly():
    boards = Boards()
    image = app_image(400 * 1024, APP, seed=44)
    d, ja, _ = kill_mid_write(boards, FAST_CONFIG, image)
    try:
        d.stop(check=False)
        d2 = harness.Flashd(config=FAST_CONFIG + "retry_interrupted = no\n")
        d2.state_dir = d.state_dir
        with d2:
            c2 = d2.client()
            job = c2.call("job.get", {"job": ja})["job"]
            check(job["state"] == "failed" and job["error"]["name"] == "interrupted", "failed as interrupted", job)
            check("bootloader" in job["error"]["message"], "says where the board is", job["error"])
            check(job["error"]["advice"], "says what to do", job["error"])
            # the board is usable: a new job flashes it
            check_job_done(flash_rpc(c2, A, image, address=APP, wait=True, timeout=30))
            check(boards.read(A, APP, len(image)) == image, "flashed by a new job")
    finally:
        d.cleanup()


def test_sigterm_during_write():
    """systemctl stop during a flash: flashd stops at once and cleanly (the
    worker is cancelled and joined), and the job is retried after the start."""
    boards = Boards()
    image = app_image(400 * 1024, APP, seed=45)
    d = harness.Flashd(config=FAST_CONFIG)
    d.start()
    try:
        c = d.client()
        ready(c)
        ja = flash_rpc(c, A, image, address=APP)["id"]
        c.wait_notification("notify_job_update", lambda p: p[0]["id"] == ja and p[0]["state"] == "flashing" and
                            p[0]["phase"] == "write" and p[0]["bytes_done"] > 0, timeout=20)
        check(d.stop(signal.SIGTERM, timeout=5) == 0, "flashd exits 0 on SIGTERM during a flash")
        d2 = harness.Flashd(config=FAST_CONFIG)
        d2.state_dir = d.state_dir
        with d2:
            job = wait_job(d2.client(), ja, timeout=30)
            check_job_done(job)
            check(job["attempts"] == 2, "retried after the restart", job["attempts"])
            check(boards.read(A, APP, len(image)) == image, "image in flash")
    finally:
        d.cleanup()


def test_abort_during_write_is_logged():
    """flashd killed by SIGABRT during a flash (what systemd's watchdog sends
    when the main loop is stuck): it dies of the signal (systemd sees a
    failure and restarts it), its last log line says why and who sent it,
    and the job is retried after the restart."""
    boards = Boards()
    image = app_image(400 * 1024, APP, seed=46)
    d, ja, status = kill_mid_write(boards, FAST_CONFIG, image, signal.SIGABRT)
    try:
        check(status == -signal.SIGABRT, "flashd died of the signal (a failure for systemd)", status)
        lines = [line for line in d.log_text().splitlines() if "fatal signal SIGABRT" in line]
        check(len(lines) == 1 and lines[0].startswith("flashd[crit]") and f"pid {os.getpid()}" in lines[0],
              "one critical log line names the signal and its sender", d.log_text()[-2000:])
        d.stop(check=False)
        d2 = harness.Flashd(config=FAST_CONFIG)
        d2.state_dir = d.state_dir
        with d2:
            job = wait_job(d2.client(), ja, timeout=30)
            check_job_done(job)
            check(job["attempts"] == 2, "retried after the restart", job["attempts"])
            check(boards.read(A, APP, len(image)) == image, "image in flash")
    finally:
        d.cleanup()


def test_failed_exit_is_logged():
    """An exit with a failure status leaves a line that says so, also when
    the code that called exit() logged nothing."""
    d = harness.Flashd(config="no_such_key = 1\n", wait_ready=False)
    try:
        d.start()
        status = d.proc.wait(10)
        check(status == 1, "an invalid configuration is a start-up failure", status)
        check("exiting with status 1" in d.log_text(), "the exit is logged", d.log_text())
    finally:
        d.stop(check=False)
        d.cleanup()


if __name__ == "__main__":
    harness.main([test_restart_retries_interrupted_and_keeps_queue, test_restart_without_retry_fails_clearly,
                  test_sigterm_during_write, test_abort_during_write_is_logged, test_failed_exit_is_logged])

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Waiting for boards, cancelling, timeouts, unplugging. Under

    vboard --board octopus-pro-f429 --mode app --quirk no-1200-reboot   (1-1.1)
           --board octopus-pro-f429 --mode dfu                          (1-1.2)

- no-1200-reboot: the job waits in waiting-for-device and, after
  reboot_wait_sec, shows the board's hint (BOOT0); the test sets BOOT0 and
  resets the board; the job completes and `flashctl flash` exits 0;
- Ctrl-C on `flashctl flash` cancels the waiting job (exit 7, nothing erased);
- a board that never shows up: bootloader-timeout (exit 8);
- `flashctl cancel` during the write stops it; the board stays in DFU mode;
- unplugged mid-write: the job fails with device-gone (exit 6) and says
  what to do; the board back in DFU mode is flashed by a retry.
"""
import json
import os
import signal
import subprocess

import harness
from jobs_helpers import (APP, EXIT_CANCELLED, EXIT_FAILED, EXIT_TIMEOUT, FAST_CONFIG, Boards, app_image, check,
                          flashctl, tmpdir, wait_job, write_image)

SLOW = "1-1.1"
DFU = "1-1.2"


def start_flashctl(d, *args):
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.Popen([harness.flashctl_binary(), "--socket", d.socket_path, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_state(c, state, predicate=lambda j: True, timeout=10):
    return c.wait_notification("notify_job_update", lambda p: p[0]["state"] == state and predicate(p[0]),
                               timeout=timeout)[0]


def ready(c):
    harness.wait_for(lambda: {SLOW, DFU} <= set(harness.devices_by_port(c)), what="boards listed")


def test_no_1200_reboot_then_boot0():
    boards = Boards()
    image = app_image(40 * 1024, APP, seed=31, mcu="stm32f429xx")
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        ready(c)
        p = start_flashctl(d, "flash", SLOW, write_image(tmpdir(), image))
        job = wait_state(c, "waiting-for-device", lambda j: "BOOT0" in (j.get("message") or ""))
        check("keeps waiting" in job["message"], "the hint says the job keeps waiting", job["message"])
        check(boards.board(SLOW)["mode"] == "app", "the board ignored the 1200-baud request")
        boards.vb.boot0_reset(SLOW)
        out, err = p.communicate(timeout=30)
        check(p.returncode == 0, f"flashctl flash exit {p.returncode}", out + err)
        check("BOOT0" in err, "flashctl showed the hint", err)
        check(boards.read(SLOW, APP, len(image)) == image, "image in flash")
        boards.vb.wait(SLOW, "app", 5000)


def test_interrupt_cancels_waiting_job():
    boards = Boards()
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        ready(c)
        before = boards.counters(SLOW)
        p = start_flashctl(d, "flash", SLOW, write_image(tmpdir(), app_image(8192, APP, mcu="stm32f429xx")))
        job = wait_state(c, "waiting-for-device")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        check(p.returncode == EXIT_CANCELLED, f"Ctrl-C: exit {p.returncode}", out + err)
        check(wait_job(c, job["id"])["state"] == "cancelled", "the job is cancelled")
        check(boards.counters(SLOW)["sector_erases"] == before["sector_erases"], "nothing erased")
        # and `flashctl cancel` on a queued-and-waiting job
        j = json.loads(flashctl(d, "--json", "flash", "--no-wait", SLOW,
                                write_image(tmpdir(), app_image(8192, APP, mcu="stm32f429xx"))).stdout)
        wait_state(c, "waiting-for-device", lambda x: x["id"] == j["id"])
        r = flashctl(d, "cancel", str(j["id"]))
        check(r.returncode == 0, "flashctl cancel", r.stdout + r.stderr)
        check(wait_job(c, j["id"])["state"] == "cancelled", "cancelled by flashctl cancel")
        r = flashctl(d, "cancel", str(j["id"]))
        check(r.returncode == 1 and "already ended" in r.stderr, "cancelling an ended job is an error", r.stderr)


def test_bootloader_timeout():
    with harness.Flashd(config="reboot_wait_sec = 0.3\nbootloader_timeout_sec = 1.5\napp_timeout_sec = 5\n") as d:
        c = d.client()
        ready(c)
        p = flashctl(d, "flash", SLOW, write_image(tmpdir(), app_image(8192, APP, mcu="stm32f429xx")))
        check(p.returncode == EXIT_TIMEOUT, f"timeout: exit {p.returncode}", p.stdout + p.stderr)
        check("bootloader-timeout" in p.stderr and "BOOT0" in p.stderr, "says why and what to do", p.stderr)


def test_unplug_mid_write_then_retry():
    boards = Boards()
    image = app_image(200 * 1024, APP, seed=33, mcu="stm32f429xx")
    path = write_image(tmpdir(), image)
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        ready(c)
        # the USB cable is pulled after 30 blocks and put back 300 ms later; the
        # board, powered by its own supply, stays in its ROM bootloader
        boards.vb.quirk(DFU, "unplug=30,300")
        p = flashctl(d, "flash", "--address", hex(APP), DFU, path)
        check(p.returncode == EXIT_FAILED, f"unplugged: exit {p.returncode}", p.stdout + p.stderr)
        check("device-gone" in p.stderr, "the failure names the vanished board", p.stderr)
        boards.vb.unquirk(DFU, "unplug")
        # Back on the bus, the board boots whatever has a plausible vector
        # table; the session writes the vector table last, so there is none
        # and the board is in its bootloader again, as the job's message says:
        # no BOOT0, no reset, just a retry.
        b = harness.wait_for(lambda: boards.board(DFU)["mode"] in ("app", "dfu") and boards.board(DFU),
                             what="board back on the bus")
        check(b["mode"] == "dfu", "the board came back in DFU mode", b)
        harness.wait_for(lambda: harness.devices_by_port(c).get(DFU, {}).get("mode") == "dfu",
                         what="flashd sees the board in DFU mode")
        p = flashctl(d, "flash", "--address", hex(APP), DFU, path)
        check(p.returncode == 0, f"retry: exit {p.returncode}", p.stdout + p.stderr)
        check(boards.read(DFU, APP, len(image)) == image, "image in flash after the retry")
        boards.vb.wait(DFU, "app", 5000)


def cancel_came_after_the_write(job):
    """On a loaded machine flashctl can start after the last chunk went out:
    the job log then has the write phase over before the cancel."""
    log = job.get("log") or []
    cancel = next((i for i, line in enumerate(log) if "cancel requested" in line), None)
    after = next((i for i, line in enumerate(log) if "phase verify" in line or "phase leave" in line), None)
    return cancel is not None and after is not None and after < cancel


def test_cancel_during_write():
    boards = Boards()
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        ready(c)
        # a fresh image each attempt, so a write that completed cannot pass as stopped
        for attempt in range(3):
            image = app_image(300 * 1024, APP, seed=35 + attempt)
            if boards.board(DFU)["mode"] != "dfu":
                boards.vb.boot0_reset(DFU)
                boards.vb.wait(DFU, "dfu", 5000)
                harness.wait_for(lambda: harness.devices_by_port(c).get(DFU, {}).get("mode") == "dfu",
                                 what="dfu")
            job = json.loads(flashctl(d, "--json", "flash", "--no-wait", "--address", hex(APP), DFU,
                                      write_image(tmpdir(), image)).stdout)
            wait_state(c, "flashing",
                       lambda j: j["id"] == job["id"] and j["phase"] == "write" and j["bytes_done"] > 0)
            r = flashctl(d, "cancel", str(job["id"]))
            check(r.returncode == 0, "flashctl cancel", r.stdout + r.stderr)
            j = wait_job(c, job["id"])
            check(j["state"] == "cancelled", "cancelled during the write", j["state"])
            check("bootloader" in (j["message"] or ""), "says the board stays in its bootloader", j["message"])
            check(boards.board(DFU)["mode"] == "dfu", "the board stays in DFU mode")
            if cancel_came_after_the_write(j):
                print(f"attempt {attempt + 1}: the cancel came after the write; again")
                continue
            check(boards.read(DFU, APP, len(image)) != image, "the write really stopped")
            return
        raise AssertionError("the cancel never came during the write in 3 attempts")


if __name__ == "__main__":
    harness.main([test_no_1200_reboot_then_boot0, test_interrupt_cancels_waiting_job, test_bootloader_timeout,
                  test_unplug_mid_write_then_retry, test_cancel_during_write])

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Faults in every phase of a flash job, checked in the virtual flash. Under

    vboard --board octopus-pro-f429 --mode app                          (1-1.1, ROM DFU)
           --board octopus-f446 --mode app --bootloader katapult        (1-1.2, Katapult)
           --timing real --scale S

for each board and each phase a job goes through (rebooting,
waiting-for-device, read-back, erase, write, verify, leave, waiting-for-app;
Katapult has no read-back or erase phase: it erases page by page as it
writes), the test starts a job that flashes a Klipper rebuild (the new image
differs from the one in flash only in its middle, so the first sector, which
holds the vector table, reads back unchanged), and when flashd reports the
phase it either pulls the board's cable (plugs it back 0.3 s later) or
SIGKILLs flashd (and starts a new one on the same state directory). Then:

(a) the bootloader region is byte for byte what it was;
(b) the flash, frozen right after the fault, holds the old complete image,
    the new complete image, or an erased vector table (the board stays in
    its bootloader), never half an image that would boot; and after the
    plug-in the board runs an application only if the flash holds a
    complete one;
(c) the job ends `done` with the new image in flash, or `failed` with an
    error name and a message;
(d) a second `flashctl flash` completes and the flash holds its image.

The matrix is printed (the table in tests/integration/README.md comes from
it). test_rebuild_killed_mid_write is the reproduction of the defect that
made this test: v1 (400 KiB), then v2 differing only at 200-300 KiB,
flashd killed mid-write, and the board booted the half image.
"""
import os
import random
import signal
import sys
import time

import harness
from jobs_helpers import (APP, FLASH_BASE, Boards, app_image, check, flashctl, flash_rpc, tmpdir,
                          wait_job, write_image)

SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))
DFU = "1-1.1"
KATAPULT = "1-1.2"
MCU = {DFU: "stm32f429xx", KATAPULT: "stm32f446xx"}
PHASES = ["rebooting", "waiting-for-device", "read-back", "erase", "write", "verify", "leave", "waiting-for-app"]
KATAPULT_PHASES = ["rebooting", "waiting-for-device", "write", "verify", "leave", "waiting-for-app"]
# Image size and the part a rebuild changes: on the F429 inside the 128 KiB
# sector at 0x08020000; Katapult rewrites every block (slow over the tty),
# so a smaller image that still spans three of the F446's pages.
SIZE = {DFU: 112 * 1024, KATAPULT: 36 * 1024}
MIDDLE = {DFU: (98 * 1024, 108 * 1024), KATAPULT: (20 * 1024, 28 * 1024)}
FINAL = ("done", "failed", "cancelled")
# A board unplugged while it reboots comes back running its application: the
# job then waits for the bootloader until this timeout; short, so the
# matrix stays quick.
CONFIG = (f"reboot_wait_sec = 1\nbootloader_timeout_sec = {int(max(3, 3 * SCALE))}\n"
          f"app_timeout_sec = {int(max(5, 5 * SCALE))}\n")


def rebuild(base, seed, lo, hi):
    """`base` with [lo, hi) replaced: a Klipper rebuild whose start and end are unchanged."""
    rnd = random.Random(seed)
    return base[:lo] + rnd.randbytes(hi - lo) + base[hi:]


def vector_table_erased(region):
    # What every bootloader here checks first: the initial SP word.
    return region[0:4] in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x00")


def flash_state(boards, port, old, new):
    """What the application region holds: 'old', 'new', 'erased vector table', or None (a partial image)."""
    region = boards.read(port, APP, len(new))
    if region == new:
        return "new"
    if region == old:
        return "old"
    if vector_table_erased(region):
        return "erased vector table"
    return None


def at_phase(job, phase):
    if phase in ("rebooting", "waiting-for-device", "waiting-for-app"):
        return job["state"] == phase
    # Progress notifications are rate-limited, so a short phase may send
    # none past its first: the fault lands when the phase has begun.
    return job["state"] == "flashing" and job.get("phase") == phase


class Daemon:
    """The current flashd; a SIGKILL replaces it with a new one on the same state directory."""

    def __init__(self):
        self.first = harness.Flashd(config=CONFIG)
        self.d = self.first.start()
        self.all = [self.first]
        self.c = self.d.client()

    def kill_and_restart(self):
        self.d.proc.send_signal(signal.SIGKILL)
        self.d.proc.wait(10)
        self.d.stop(check=False)
        return self.restart_after_check

    def restart_after_check(self):
        d = harness.Flashd(config=CONFIG)
        d.state_dir = self.first.state_dir
        self.all.append(d)
        self.d = d.start()
        self.c = self.d.client()

    def close(self):
        failed = False
        for d in self.all:
            if d.alive():
                rc = d.stop(check=False)
                if rc not in (0, None):
                    d.dump_log()
                failed = rc not in (0, None) or failed
        for d in self.all:
            d.cleanup()
        return failed


def ready(c, port, mode="app"):
    def ok():
        dev = harness.devices_by_port(c).get(port)
        return dev if dev and dev["mode"] == mode else None
    return harness.wait_for(ok, timeout=20 * SCALE, what=f"{port} listed in {mode} mode")


def second_flash(daemon, boards, port, image):
    """(d): an ordinary flashctl flash of the board, wherever it is now."""
    path = write_image(tmpdir(), image)
    t0 = time.monotonic()
    p = flashctl(daemon.d, "flash", "--address", hex(APP), port, path, timeout=90 * SCALE)
    print(f"   second flash of {port}: {time.monotonic() - t0:.1f} s", flush=True)
    check(p.returncode == 0, f"{port}: the second flashctl flash completes (exit {p.returncode})",
          p.stdout + p.stderr)
    check(boards.read(port, APP, len(image)) == image, f"{port}: the second flash's image is in flash")
    boards.vb.wait(port, "app", int(10000 * SCALE))


def run_case(daemon, boards, port, phase, fault, old, new, bootloader):
    """One cell of the matrix; returns the row."""
    c = daemon.c
    t0 = time.monotonic()
    ready(c, port)
    job = flash_rpc(c, port, new, address=APP)
    jid = job["id"]
    c.wait_notification("notify_job_update", lambda p: p[0]["id"] == jid and at_phase(p[0], phase),
                        timeout=30 * SCALE)
    if fault == "unplug":
        boards.vb.unplug(port)
        after_check = lambda: (time.sleep(0.3), boards.vb.plug(port))  # noqa: E731
    else:
        after_check = daemon.kill_and_restart()

    # (a) and (b), with the flash frozen: unplugged, or nobody writing
    check(boards.read(port, FLASH_BASE, APP - FLASH_BASE) == bootloader,
          f"{port} {phase} {fault}: bootloader region unchanged")
    frozen = flash_state(boards, port, old, new)
    check(frozen is not None, f"{port} {phase} {fault}: the flash holds a partial image with a valid vector "
          "table (the board would boot it)")
    after_check()

    # (c) the job ends clearly, or resumes and finishes
    c = daemon.c
    j = wait_job(c, jid, states=FINAL, timeout=60 * SCALE)
    if j["state"] == "done":
        check(boards.read(port, APP, len(new)) == new, f"{port} {phase} {fault}: done, and the new image is in flash")
        outcome = "done" + (" (retried)" if j.get("attempts", 1) > 1 else "")
    else:
        err = j.get("error") or {}
        check(j["state"] == "failed" and err.get("name") and err.get("message"),
              f"{port} {phase} {fault}: the job ends with a clear error", j)
        outcome = f"failed: {err['name']}"
        # the board runs an application only if the flash holds a complete one
        state = flash_state(boards, port, old, new)
        check(state is not None, f"{port} {phase} {fault}: partial image after the job ended")
        if boards.board(port)["mode"] == "app":
            check(state in ("old", "new"), f"{port} {phase} {fault}: the board runs {state}")
    print(f"   {port} {phase} {fault}: {frozen}, {outcome} ({time.monotonic() - t0:.1f} s)", flush=True)
    return [port, "ROM DFU" if port == DFU else "Katapult", phase, fault, frozen, outcome]


def test_rebuild_killed_mid_write():
    """v1 (400 KiB) in flash, v2 differing only at 200-300 KiB, flashd killed
    mid-write: the board must not boot a half image."""
    boards = Boards()
    v1 = app_image(400 * 1024, APP, seed=1201, mcu=MCU[DFU])
    v2 = rebuild(v1, 1202, 200 * 1024, 300 * 1024)
    bootloader = boards.read(DFU, FLASH_BASE, APP - FLASH_BASE)
    daemon = Daemon()
    try:
        ready(daemon.c, DFU)
        second_flash(daemon, boards, DFU, v1)
        row = run_case(daemon, boards, DFU, "write", "kill", v1, v2, bootloader)
        print("   rebuild killed mid-write:", row[4], "->", row[5])
        second_flash(daemon, boards, DFU, v1)
    finally:
        check(not daemon.close(), "flashd exited cleanly")


def test_fault_matrix():
    boards = Boards()
    rows = []
    base = {port: app_image(SIZE[port], APP, seed=1300 + i, mcu=MCU[port]) for i, port in enumerate((DFU, KATAPULT))}
    bootloader = {port: boards.read(port, FLASH_BASE, APP - FLASH_BASE) for port in (DFU, KATAPULT)}
    daemon = Daemon()
    start = time.monotonic()
    try:
        seed = 1400
        for port, phases in ((DFU, PHASES), (KATAPULT, KATAPULT_PHASES)):
            ready(daemon.c, port)
            current = base[port]
            second_flash(daemon, boards, port, current)
            for phase in phases:
                for fault in ("unplug", "kill"):
                    seed += 1
                    new = rebuild(base[port], seed, *MIDDLE[port])
                    rows.append(run_case(daemon, boards, port, phase, fault, current, new, bootloader[port]))
                    seed += 1
                    current = rebuild(base[port], seed, *MIDDLE[port])
                    second_flash(daemon, boards, port, current)
                    rows[-1].append("completes")
    finally:
        print_matrix(rows)
        print(f"   {len(rows)} cases in {time.monotonic() - start:.1f} s")
        check(not daemon.close(), "flashd exited cleanly")


def print_matrix(rows):
    head = ["bootloader", "phase", "fault", "flash right after the fault", "job", "second flash"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(str(x) for x in r[1:]) + (" |" if len(r) > 6 else " | - |"))
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    # `rebuild`: the reproduction alone (its own meson test, quick)
    which = sys.argv[1] if len(sys.argv) > 1 else "matrix"
    sys.argv[1:] = []
    harness.main([test_rebuild_killed_mid_write] if which == "rebuild" else [test_fault_matrix])

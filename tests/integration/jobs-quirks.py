#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Flash jobs against every DFU quirk, then four boards in parallel. Under

    vboard --board octopus-pro-f429 --mode dfu --quirk short-string      (1-1.1)
           --board octopus-pro-f429 --mode app --quirk garbage-tail      (1-1.2)
           --board octopus-pro-f446 --mode app --quirk error-at-start    (1-1.3)
           --board octopus-pro-f429 --mode app --quirk reset-on-leave    (1-1.4)

each board is flashed with the real flashctl (a 300 KB image on the
garbage-tail board: dfu-util 0.11 refuses it), the bytes are checked in the
virtual flash, and each board ends back in application mode. Then all four
are flashed at once and must overlap in time. `octopus-pro` alone is
ambiguous here: flashctl lists the candidates.
"""
import json
import time

import harness
from jobs_helpers import (APP, FAST_CONFIG, FLASH_BASE, Boards, app_image, check, check_job_done, flash_rpc,
                          flashctl, tmpdir, wait_job, write_image)

PORTS = ["1-1.1", "1-1.2", "1-1.3", "1-1.4"]
MCU = {"1-1.1": "stm32f429xx", "1-1.2": "stm32f429xx", "1-1.3": "stm32f446xx", "1-1.4": "stm32f429xx"}


def started(c):
    def ready():
        devs = harness.devices_by_port(c)
        return all(p in devs and (devs[p]["mode"] != "dfu" or devs[p].get("probed")) for p in PORTS)
    harness.wait_for(ready, what="four boards listed")


def flash_one(boards, d, port, size, seed, expect_in_log=None, args=()):
    image = app_image(size, APP, seed=seed, mcu=MCU[port])
    bootloader = boards.read(port, FLASH_BASE, APP - FLASH_BASE)
    p = flashctl(d, "flash", *args, port, write_image(tmpdir(), image))
    check(p.returncode == 0, f"flash {port}: exit {p.returncode}", p.stdout + p.stderr)
    check(boards.read(port, APP, len(image)) == image, f"{port}: image in flash")
    check(boards.read(port, FLASH_BASE, APP - FLASH_BASE) == bootloader, f"{port}: bootloader untouched")
    check(boards.vb.wait(port, "app", 5000)["mode"] == "app", f"{port}: back in app mode")
    job = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)[-1]
    log = json.loads(flashctl(d, "--json", "job", str(job["id"])).stdout)["log"]
    if expect_in_log:
        check(any(expect_in_log in line for line in log), f"{port}: log mentions {expect_in_log!r}", log)
    return job


def test_short_string_in_dfu_mode():
    boards = Boards()
    with harness.Flashd(config=FAST_CONFIG) as d:
        started(d.client())
        # A board that was never seen running Klipper could be any F42x/F407
        # board of the database with this ROM: an image linked for a board
        # without bootloader fits none of them and is refused.
        p = flashctl(d, "flash", "1-1.1", write_image(tmpdir(), app_image(4096, FLASH_BASE)))
        check(p.returncode == 5 and "built for" in p.stderr, "an image linked for another offset is refused",
              p.stderr)
        job = flash_one(boards, d, "1-1.1", 64 * 1024, 11, args=("--address", "0x08008000"))
        check(boards.counters("1-1.1")["baud_1200_requests"] == 0, "a board in DFU is flashed directly")
        check(job["state"] == "done", "done", job)


def test_garbage_tail_300k():
    boards = Boards()
    with harness.Flashd(config=FAST_CONFIG) as d:
        started(d.client())
        # 0x08008000 + 300 KB reaches the 128 KiB sectors that dfu-util 0.11 drops
        image = flash_one(boards, d, "1-1.2", 300 * 1024, 12)
        check(boards.counters("1-1.2")["bytes_written"] >= 300 * 1024, "the whole image was written")


def test_error_at_start():
    boards = Boards()
    with harness.Flashd(config=FAST_CONFIG) as d:
        started(d.client())
        # Octopus, Octopus Pro and Fysetc S6 share the F446 and its USB ids but
        # not the bootloader size: an image whose vector table fits both
        # offsets does not tell which, and is refused before the reboot.
        p = flashctl(d, "flash", "1-1.3", write_image(tmpdir(), app_image(64 * 1024, 0x0800FF00)))
        check(p.returncode == 5 and "fysetc-s6" in p.stderr, "ambiguous geometry: candidates named", p.stderr)
        check(boards.counters("1-1.3")["baud_1200_requests"] == 0, "refused before the reboot")
        flash_one(boards, d, "1-1.3", 48 * 1024, 13, expect_in_log="dfuERROR", args=("--address", "0x08008000"))


def test_reset_on_leave():
    boards = Boards()
    with harness.Flashd(config=FAST_CONFIG) as d:
        started(d.client())
        flash_one(boards, d, "1-1.4", 48 * 1024, 14, expect_in_log="reset during the leave request")


def test_board_name_ambiguous():
    with harness.Flashd(config=FAST_CONFIG) as d:
        started(d.client())
        p = flashctl(d, "flash", "octopus-pro", write_image(tmpdir(), app_image(4096, APP)))
        check(p.returncode == 1, f"ambiguous target: exit {p.returncode}", p.stderr)
        for port in PORTS:
            check(port in p.stderr, f"candidate {port} listed", p.stderr)


def test_four_boards_in_parallel():
    boards = Boards()
    images = {port: app_image(160 * 1024, APP, seed=20 + i, mcu=MCU[port]) for i, port in enumerate(PORTS)}
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        started(c)
        t0 = time.monotonic()
        ids = {port: flash_rpc(c, port, images[port], address=APP)["id"] for port in PORTS}
        flashing, most = set(), 0
        deadline = time.monotonic() + 60
        finished = set()
        while len(finished) < len(PORTS) and time.monotonic() < deadline:
            try:
                job = c.wait_notification("notify_job_update", timeout=1.0)[0]
            except TimeoutError:
                continue
            if job["state"] == "flashing":
                flashing.add(job["id"])
            else:
                flashing.discard(job["id"])
            most = max(most, len(flashing))
            if job["state"] in ("done", "failed", "cancelled"):
                finished.add(job["id"])
        elapsed = time.monotonic() - t0
        for port, job_id in ids.items():
            check_job_done(wait_job(c, job_id, timeout=5))
            check(boards.read(port, APP, len(images[port])) == images[port], f"{port}: image in flash")
            boards.vb.wait(port, "app", 5000)
        check(most >= 2, "jobs on different boards flash at the same time", most)
        print(f"# four boards, 160 KiB each, from app/dfu mode to app mode: {elapsed:.2f} s; "
              f"up to {most} flashing at once")


if __name__ == "__main__":
    harness.main([test_short_string_in_dfu_mode, test_garbage_tail_300k, test_error_at_start, test_reset_on_leave,
                  test_board_name_ambiguous, test_four_boards_in_parallel])

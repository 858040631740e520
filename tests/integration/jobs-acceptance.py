#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The acceptance test of flash jobs. Under

    vboard --board octopus-pro-f429 --mode app --quirk garbage-tail --quirk error-at-start

`flashctl flash octopus-pro IMAGE` (an image built for 0x08008000) exits 0,
the virtual flash holds the image at 0x08008000, the bootloader sectors are
untouched, and the board is back in application mode. Then: an identical
reflash erases nothing; --json gives an event stream; `flashctl jobs --all`
and `flashctl job ID` show the history with the log.
"""
import datetime
import json
import os

import harness
from jobs_helpers import (APP, FAST_CONFIG, FLASH_BASE, Boards, app_image, check, flashctl, tmpdir,
                          write_image)

BOARD = "octopus-pro-f429"


def test_flash_from_app_mode_and_back():
    boards = Boards()
    check(boards.board(BOARD)["mode"] == "app", "board starts in app mode", boards.board(BOARD))
    bootloader_before = boards.read(BOARD, FLASH_BASE, APP - FLASH_BASE)
    image = app_image(300 * 1024 + 123, APP, seed=4, mcu="stm32f429xx")
    path = write_image(tmpdir(), image)
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        harness.wait_for(lambda: harness.devices_by_port(c).get(boards.board(BOARD)["port"]), what="board listed")
        p = flashctl(d, "flash", "octopus-pro", path)
        check(p.returncode == 0, f"flashctl flash exit {p.returncode}", p.stdout + p.stderr)
        check("Done" in p.stdout and "running the new image" in p.stdout, "flashctl says done", p.stdout)

        # the virtual board's own flash, not the daemon's word
        check(boards.read(BOARD, APP, len(image)) == image, "image at 0x08008000")
        check(boards.read(BOARD, FLASH_BASE, APP - FLASH_BASE) == bootloader_before, "bootloader untouched")
        counters = boards.counters(BOARD)
        per = counters["erases_per_sector"]
        check(per["0x08000000"] == 0 and per["0x08004000"] == 0, "bootloader sectors never erased", per)
        check(counters["baud_1200_requests"] == 1, "one 1200-baud reboot request", counters)
        b = boards.vb.wait(BOARD, "app", 5000)
        check(b["mode"] == "app", "board back in app mode", b)

        jobs = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)
        check(len(jobs) == 1 and jobs[0]["state"] == "done", "history has the job", jobs)
        job = jobs[0]
        check(job["image"]["address"] == APP and job["image"]["size"] == len(image), "image recorded", job)
        check(job["device"] == b["tty"], "job reports the new device path", (job["device"], b))
        p = flashctl(d, "job", str(job["id"]))
        check(p.returncode == 0 and "rebooting -> waiting-for-device" in p.stdout and "-> done" in p.stdout,
              "flashctl job shows the log", p.stdout)
        check("dfuERROR" in p.stdout, "the cleared dfuERROR is a note in the log", p.stdout)

        # identical reflash, --json event stream: nothing erased, nothing written
        erases = counters["sector_erases"]
        written = counters["bytes_written"]
        p = flashctl(d, "--json", "flash", "octopus-pro", path)
        check(p.returncode == 0, f"second flash exit {p.returncode}", p.stdout + p.stderr)
        events = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        states = [e["job"]["state"] for e in events]
        for s in ("rebooting", "waiting-for-device", "flashing", "waiting-for-app", "done"):
            check(s in states, f"--json stream has state {s}", states)
        counters = boards.counters(BOARD)
        check(counters["sector_erases"] == erases, "identical reflash erases nothing",
              (erases, counters["sector_erases"]))
        check(counters["bytes_written"] == written, "identical reflash writes nothing",
              (written, counters["bytes_written"]))
        check(boards.read(BOARD, APP, len(image)) == image, "image still there")
        boards.vb.wait(BOARD, "app", 5000)

        # a changed image, --json: progress notifications are coalesced to a
        # few per second per job, and the stream ends with the board back
        image2 = app_image(300 * 1024, APP, seed=5, mcu="stm32f429xx")
        p = flashctl(d, "--json", "flash", "octopus-pro", write_image(tmpdir(), image2, "k2.bin"))
        check(p.returncode == 0, f"third flash exit {p.returncode}", p.stdout + p.stderr)
        events = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        check(events[-1]["job"]["state"] == "done", "the stream ends with done", events[-1])
        times = [datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp() for e in events
                 if e["job"]["state"] == "flashing"]
        burst = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
        check(burst <= 8, "at most a few job updates per second (phase changes included)", burst)
        check(boards.read(BOARD, APP, len(image2)) == image2, "changed image in flash")
        boards.vb.wait(BOARD, "app", 5000)


if __name__ == "__main__":
    harness.main([test_flash_from_app_mode_and_back])

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`flashctl flash smoothieboard klipper.bin` through the real flashd against
a virtual Smoothieboard running Klipper, whose bootloader is a plain DFU 1.1
device (Smoothieware's, 1d50:6015, no DfuSe): the 1200-baud request, the
plain DFU download to 0x4000, the device detaching itself after
manifestation, and the board back running the new image. Checked in the
virtual flash; then a reflash from the bootloader itself (the board left in
DFU mode by Play + Reset, flashed by port path)."""

import json
import os
import random

import harness
from jobs_helpers import FAST_CONFIG, Boards, check, flashctl, klipper_dictionary, tmpdir, write_image

BOARD = "smoothieboard-lpc1769"
APP = 0x4000
RAM_TOP = 0x10008000


def smoothie_image(size, seed):
    """A Klipper build for the LPC1769 with the 16 KiB Smoothieware
    bootloader: SP at the top of the 32 KiB SRAM, reset vector in the image,
    Klipper's dictionary naming the MCU."""
    body = bytearray(random.Random(seed).randbytes(size))
    body[0:4] = RAM_TOP.to_bytes(4, "little")
    body[4:8] = (APP + 0x201).to_bytes(4, "little")
    blob = klipper_dictionary("lpc1769")
    body[size - len(blob) - 64:size - 64] = blob
    return bytes(body)


def test_flash_smoothieboard_from_app_mode():
    boards = Boards()
    b = boards.board(BOARD)
    check(b["mode"] == "app" and b["bootloader"] == "dfu", "board starts in app mode, plain DFU bootloader", b)
    bootloader_before = boards.read(BOARD, 0, APP)
    image = smoothie_image(60 * 1024 + 77, 31)
    path = write_image(tmpdir(), image)
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        harness.wait_for(lambda: harness.devices_by_port(c).get(b["port"]), what="board listed")
        p = flashctl(d, "flash", "smoothieboard", path)
        check(p.returncode == 0, f"flashctl flash exit {p.returncode}", p.stdout + p.stderr)
        check(boards.read(BOARD, APP, len(image)) == image, "image at 0x4000")
        check(boards.read(BOARD, 0, APP) == bootloader_before, "bootloader untouched")
        counters = boards.counters(BOARD)
        check(counters["baud_1200_requests"] == 1, "one 1200-baud reboot request", counters)
        per = counters["erases_per_sector"]
        check(all(per[f"0x{a:08X}"] == 0 for a in range(0, APP, 0x1000)), "bootloader sectors erased", per)
        back = boards.vb.wait(BOARD, "app", 5000)
        check("manifest" in boards.vb.events(BOARD), "no manifestation", boards.vb.events(BOARD))

        jobs = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)
        check(len(jobs) == 1 and jobs[0]["state"] == "done", "history has the job", jobs)
        check(jobs[0]["board"] == "smoothieboard" and jobs[0]["image"]["address"] == APP, "job", jobs[0])
        check(jobs[0]["device"] == back["tty"], "job reports the new device path", (jobs[0]["device"], back))
        log = flashctl(d, "job", str(jobs[0]["id"])).stdout
        check("not verified" in log, "the log says the plain DFU device could not be read back", log)

        # From the bootloader itself (Play + Reset), a changed image, by board
        # name and without --address: a plain DFU device shows no memory
        # layout, but its bootloader's own USB id (1d50:6015) names the board.
        boards.vb.boot0_reset(BOARD)
        boards.vb.wait(BOARD, "dfu", 5000)
        harness.wait_for(lambda: (harness.devices_by_port(c).get(b["port"]) or {}).get("mode") == "dfu",
                         what="board listed in DFU mode")
        dev = harness.devices_by_port(c)[b["port"]]
        check(dev.get("board") == "smoothieboard", "the DFU-mode board is identified by its USB id", dev)
        image2 = smoothie_image(20 * 1024, 32)
        p = flashctl(d, "flash", "smoothieboard", write_image(tmpdir(), image2, "k2.bin"))
        check(p.returncode == 0, f"second flash exit {p.returncode}", p.stdout + p.stderr)
        check(boards.read(BOARD, APP, len(image2)) == image2, "second image at 0x4000")
        check(boards.read(BOARD, 0, APP) == bootloader_before, "bootloader untouched")
        boards.vb.wait(BOARD, "app", 5000)


if __name__ == "__main__":
    harness.main([test_flash_smoothieboard_from_app_mode])

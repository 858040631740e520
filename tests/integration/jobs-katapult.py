#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The flow picks the session by what the board comes back as. Under

    vboard --board octopus-f446 --bootloader katapult --mode app

`flashctl flash octopus IMAGE` reboots Klipper into Katapult (same port,
1d50:6177), flashes through the Katapult session, and waits for Klipper to
come back: exit 0, the image in the virtual flash, the board in app mode.
"""
import json

import harness
from jobs_helpers import APP, FAST_CONFIG, FLASH_BASE, Boards, app_image, check, flashctl, tmpdir, write_image


def test_klipper_katapult_klipper():
    boards = Boards()
    b = boards.board("0")
    check(b["bootloader"] == "katapult" and b["mode"] == "app", "a Katapult board running Klipper", b)
    image = app_image(40 * 1024, APP, seed=61, mcu="stm32f446xx")
    bootloader = boards.read("0", FLASH_BASE, APP - FLASH_BASE)
    with harness.Flashd(config=FAST_CONFIG) as d:
        harness.wait_for(lambda: "1-1.1" in harness.devices_by_port(d.client()), what="board")
        p = flashctl(d, "flash", "octopus", write_image(tmpdir(), image))
        check(p.returncode == 0, f"exit {p.returncode}", p.stdout + p.stderr)
        check(boards.read("0", APP, len(image)) == image, "image in flash")
        check(boards.read("0", FLASH_BASE, APP - FLASH_BASE) == bootloader, "Katapult itself untouched")
        check(boards.vb.wait("0", "app", 5000)["mode"] == "app", "Klipper is back")
        log = json.loads(flashctl(d, "--json", "job", "1").stdout)["log"]
        check(any("in katapult mode" in line for line in log), "the board came back in Katapult", log)
        check(any("Katapult:" in line and "verified" in line for line in log), "written and verified", log)


if __name__ == "__main__":
    harness.main([test_klipper_katapult_klipper])

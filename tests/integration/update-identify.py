#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What a board runs, from Klipper's identify on its tty. Under

    vboard --board octopus-pro-f446 --mode app

- after `flashctl flash` of an image whose dictionary says version A, the
  device object shows firmware_version A and firmware_mcu stm32f446xx,
  read from the board (vboard answers identify from its own flash);
  flashing version B shows B;
- while another process holds the tty (as klippy does), flashd does not
  talk to the board: no identify reaches it and the version is unknown.
"""
import fcntl
import os

import harness
from jobs_helpers import FAST_CONFIG, Boards, check, flashctl, tmpdir, write_image
from update_helpers import klipper_image

PORT = "1-1.1"
SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))


def device(d):
    return harness.devices_by_port(d.client()).get(PORT)


def wait_version(d, version):
    def ok():
        dev = device(d)
        return dev if dev and dev.get("mode") == "app" and dev.get("firmware_version") == version else None
    return harness.wait_for(ok, timeout=30 * SCALE, what=f"firmware_version {version}")


def identifies(boards):
    return sum(1 for e in boards.stats("0")["events"] if e["event"] == "klipper-identify")


def test_version_follows_flash():
    boards = Boards()
    with harness.Flashd(config=FAST_CONFIG) as d:
        harness.wait_for(lambda: device(d), what="board")
        for version in ("v0.12.0-10-gaaaaaaa", "v0.12.0-11-gbbbbbbb-dirty"):
            image = klipper_image(version, "stm32f446xx")
            p = flashctl(d, "flash", "octopus-pro", write_image(tmpdir(), image))
            check(p.returncode == 0, f"flash exit {p.returncode}", p.stdout + p.stderr)
            dev = wait_version(d, version)
            check(dev["firmware_mcu"] == "stm32f446xx", "MCU from the dictionary", dev)
            check(dev["firmware_source"] == "identify", "read from the board", dev)
        check(identifies(boards) >= 2, "the board was asked", boards.stats("0")["events"])


def test_held_tty_is_not_touched():
    boards = Boards()
    with harness.Flashd(config=FAST_CONFIG) as d:
        dev = harness.wait_for(lambda: device(d), what="board")
        tty = dev["tty"]
        before = identifies(boards)
        # klippy opens its port with an exclusive flock (pyserial exclusive=True)
        fd = os.open(tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            boards.vb.reset("0")
            boards.vb.wait("0", "app", 10000)
            harness.wait_for(lambda: (device(d) or {}).get("mode") == "app", what="board back")
            # a free board is identified within a second: give a held one more
            harness.wait_for(lambda: "held" in d.log_text() or "locked" in d.log_text(),
                             timeout=10 * SCALE, what="the holder noticed")
            check(identifies(boards) == before, "no identify reached a held board", boards.stats("0")["events"])
            check(device(d).get("firmware_version") is None, "version unknown while held", device(d))
        finally:
            os.close(fd)


if __name__ == "__main__":
    harness.main([test_version_follows_flash, test_held_tty_is_not_touched])

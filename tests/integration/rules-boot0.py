#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boards whose 1200-baud reboot does not work (Octopus Pro F429,
no-1200-reboot), running Klipper:

    vboard --board octopus-pro-f429 --mode app --quirk no-1200-reboot   (1-1.1)
           --board octopus-pro-f429 --mode app --quirk no-1200-reboot   (1-1.2)

- A bootloader rule leaves a running board alone; the moment the test sets
  BOOT0 and resets it, the board shows up in its ROM bootloader and is
  flashed, and comes back running the image.
- An application rule (explicitly `--mode application`) fires for the
  running board at once; the job asks for the reboot, which the board
  ignores, and waits with the board's hint; BOOT0 + reset, and the job goes
  on. The bootloader rule, which matches the board in DFU mode too, does not
  fire for it while that job owns the board.
"""
import harness
from rules_helpers import (APP, FAST_CONFIG, Boards, add_rule, app_image, check, flashctl, holds, jobs, leaves,
                           quiet, rule, tmpdir, wait_job_end, wait_listed, write_image)

B1, B2 = "1-1.1", "1-1.2"


def test_boot0_reset():
    boards = Boards()
    image = app_image(24 * 1024, APP, seed=81, mcu="stm32f429xx")
    image_app = app_image(16 * 1024, APP, seed=82, mcu="stm32f429xx")
    with harness.Flashd(config=FAST_CONFIG, log_level="info") as d:
        c = d.client()
        wait_listed(c, B1, "app")
        wait_listed(c, B2, "app")
        p = flashctl(d, "rule", "add", "--board", "octopus-pro", "--mode", "bootloader", "--image",
                     write_image(tmpdir(), image))
        check(p.returncode == 0, f"rule add: exit {p.returncode}", p.stdout + p.stderr)

        # running Klipper: the bootloader rule does nothing
        quiet(1.0)
        check(jobs(c) == [], "nothing happens to running boards", jobs(c))

        # BOOT0 + reset: flashed at once
        boards.boot0_reset(B1)
        c.wait_notification("notify_rule_fired", lambda p: p[0]["port"] == B1 and p[0]["rule"] == "rule-1",
                            timeout=10)
        wait_job_end(c, "rule-1", B1)
        check(holds(boards, B1, image), "flashed after BOOT0 + reset")
        check(boards.vb.wait(B1, "app", 5000)["mode"] == "app", "back running the image")

        # an application rule for the other board: fires at once, waits for BOOT0
        p = flashctl(d, "rule", "add", "--port", B2, "--mode", "application", "--image",
                     write_image(tmpdir(), image_app, "app.bin"))
        check(p.returncode == 0, f"rule add --mode application: exit {p.returncode}", p.stdout + p.stderr)
        job = c.wait_notification("notify_job_update",
                                  lambda p: p[0]["port"] == B2 and p[0]["state"] == "waiting-for-device"
                                  and "BOOT0" in (p[0].get("message") or ""), timeout=10)[0]
        check(job["source"] == "rule-2", "the waiting job is rule-2's", job)
        check(boards.board(B2)["mode"] == "app", "the board ignored the 1200-baud request")
        boards.boot0_reset(B2)
        wait_job_end(c, "rule-2", B2)
        check(holds(boards, B2, image_app), "flashed once BOOT0 + reset brought up the bootloader")
        boards.vb.wait(B2, "app", 5000)
        quiet(0.5)
        check(jobs(c, "rule-1", B2) == [], "the bootloader rule did not fire during rule-2's job")
        check(leaves(boards, B2) == 1 and leaves(boards, B1) == 1, "each board flashed once")
        check(rule(c, "rule-1")["flashed"] == 1 and rule(c, "rule-2")["flashed"] == 1, "both rules counted")


if __name__ == "__main__":
    harness.main([test_boot0_reset])

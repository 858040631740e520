#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boards that do not answer the first time they are asked:

    vboard --board octopus-pro-f429 --mode app --quirk no-1200-reboot --quirk string-eio=2   (1-1.1)
           --board octopus-pro-f446 --mode dfu --quirk string-eio=1000                       (1-1.2)

- 1-1.1 runs Klipper; a bootloader rule waits for it. BOOT0 + reset: in
  its ROM bootloader the first two string descriptor reads fail with EIO
  (the LANGID list and alt 0's layout string). flashd reads the
  descriptors again, the board ends identified with its layout and no
  probe error, and the rule flashes it.
- 1-1.2 never answers a string descriptor read: after the last try the
  board is listed as probed with `probe_error` saying why, the daemon log
  has a warning with that diagnostic, and flashctl list and info show it.
"""
import os
import time

import harness
from rules_helpers import (APP, FAST_CONFIG, Boards, add_rule, app_image, check, flashctl, holds, wait_job_end,
                           wait_listed)

B1, B2 = "1-1.1", "1-1.2"
SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))


def eio_events(boards, b):
    return [e for e in boards.vb.stats(b)["events"] if e["event"] == "string-eio"]


def test_probe_retried_and_rule_fires():
    boards = Boards()
    image = app_image(24 * 1024, APP, seed=91, mcu="stm32f429xx")
    with harness.Flashd(config=FAST_CONFIG, log_level="debug") as d:
        c = d.client()
        wait_listed(c, B1, "app")
        rule = add_rule(c, image, {"board": "octopus-pro", "mcu": "stm32f429xx", "mode": "bootloader"})
        before = len(eio_events(boards, B1))

        boards.boot0_reset(B1)
        c.wait_notification("notify_rule_fired", lambda p: p[0]["port"] == B1 and p[0]["rule"] == rule["id"],
                            timeout=20 * SCALE)
        check(len(eio_events(boards, B1)) - before == 2, "the first two string reads failed",
              eio_events(boards, B1))
        # what the rule saw: the board as the successful read left it
        fired = [n["params"][0] for n in c.notifications if n["method"] == "notify_device_changed" and
                 n["params"][0]["port"] == B1 and n["params"][0]["mode"] == "dfu" and n["params"][0]["probed"]]
        check(fired, "the probed DFU board was reported", fired)
        dev = fired[-1]
        check(dev["probe_error"] is None, "no probe error after the retry", dev.get("probe_error"))
        check(dev["layout"] and dev["alt_settings"][0]["name"].startswith("@Internal Flash"),
              "the layout was read", dev.get("alt_settings"))
        check(dev["mcu"] == "stm32f429xx", "identified", dev)
        wait_job_end(c, rule["id"], B1, timeout=40 * SCALE)
        check(holds(boards, B1, image), "the rule flashed the board")
        check("descriptors read on attempt 2" in d.log_text(), "the retry is logged")


def test_probe_gives_up_with_a_warning():
    boards = Boards()
    with harness.Flashd(config=FAST_CONFIG, log_level="info") as d:
        c = d.client()
        start = time.monotonic()
        dev = harness.wait_for(lambda: (harness.devices_by_port(c).get(B2) or {}).get("probe_error"),
                               timeout=20 * SCALE, what="the probe of 1-1.2 to give up")
        elapsed = time.monotonic() - start
        dev = harness.devices_by_port(c)[B2]
        check(dev["probed"] and dev["probe_error"], "probed, with the reason", dev)
        check("Input/output error" in dev["probe_error"] and "4 attempts" in dev["probe_error"],
              "the reason names the error and the tries", dev["probe_error"])
        check(2.5 <= elapsed <= 15 * SCALE, "the tries are spread over about 3 s", elapsed)
        check(len(eio_events(boards, B2)) >= 4, "it was asked four times", len(eio_events(boards, B2)))
        warnings = [line for line in d.log_text().splitlines()
                    if line.startswith("flashd[warning]") and B2 in line and "Input/output error" in line]
        check(len(warnings) == 1, "one warning with the diagnostic", d.log_text()[-3000:])

        out = flashctl(d, "list")
        row = [line for line in out.stdout.splitlines() if line.startswith(B2)]
        check(row and "probe failed" in row[0], "flashctl list shows the failed probe", out.stdout)
        out = flashctl(d, "info", B2)
        check("Probe error" in out.stdout and "Input/output error" in out.stdout,
              "flashctl info shows the probe error", out.stdout + out.stderr)


if __name__ == "__main__":
    harness.main([test_probe_retried_and_rule_fires, test_probe_gives_up_with_a_warning])

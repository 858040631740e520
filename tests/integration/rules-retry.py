#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Failed automatic flashes are retried, boundedly. Under

    vboard --board octopus-pro-f446 --mode dfu --quirk unplug=12,200   (1-1.1)
           --board octopus-pro-f446 --mode dfu --quirk unplug=1,200    (1-1.2)

both in their ROM bootloader, application erased, unplugged at the start.
The quirk pulls the USB cable after N data blocks of each power-up and puts
it back 200 ms later.

- 1-1.1 (a flaky cable): every attempt gets a little further (the job skips
  the sectors that already hold the image); the rule retries until the board
  holds the whole image and runs it; the failed attempts are in the job
  history with the rule as their source and error device-gone.
- 1-1.2 (a cable that breaks after the first block): the rule gives up after
  max_retries retries, says so (failed, last_error), and submits nothing more,
  also when the board shows up again (skipped: the rule gave up on it).
"""
import harness
from rules_helpers import (APP, FAST_CONFIG, Boards, add_rule, app_image, check, holds, jobs, quiet, rule,
                           unplug_all, wait_job_end)

FLAKY = "1-1.1"
BROKEN = "1-1.2"


def test_retries():
    boards = Boards()
    image = app_image(40 * 1024, APP, seed=61, mcu="stm32f446xx")
    unplug_all(boards)
    with harness.Flashd(config=FAST_CONFIG, log_level="info") as d:
        c = d.client()
        add_rule(c, image, {"board": "octopus-pro", "mode": "bootloader"}, max_retries=2, retry_delay_sec=0.1)
        boards.plug(FLAKY)
        boards.plug(BROKEN)

        # the flaky board ends flashed
        js = wait_job_end(c, "rule-1", FLAKY, "done", timeout=40, count=2)
        check(holds(boards, FLAKY, image), "the flaky board holds the whole image")
        check(all(j["state"] == "failed" and j["error"]["name"] == "device-gone" for j in js[:-1]),
              "the failed attempts are in the history, device-gone", [(j["state"], j["error"]) for j in js])
        boards.vb.wait(FLAKY, "app", 5000)

        # the broken one: 1 + max_retries attempts, then the rule gives up
        js = wait_job_end(c, "rule-1", BROKEN, "failed", timeout=40, count=3)
        harness.wait_for(lambda: rule(c, "rule-1")["failed"] == 1, what="the rule gave up on the broken board")
        r = rule(c, "rule-1")
        check(r["last_error"]["port"] == BROKEN and "gave up" in r["last_error"]["message"],
              "last_error says the rule gave up", r["last_error"])
        check(r["flashed"] == 1 and r["pending"] == [], "one board flashed, nothing pending", r)
        # the board that plugs itself back (or is reset) is not started over
        boards.boot0_reset(BROKEN)
        c.wait_notification("notify_rule_skipped", lambda p: p[0]["port"] == BROKEN and "gave up" in p[0]["reason"],
                            timeout=10)
        quiet(1.0)
        check(len(jobs(c, "rule-1", BROKEN)) == 3, "no further attempts", [j["id"] for j in jobs(c, "rule-1", BROKEN)])
        check(all(j["source"] == "rule-1" for j in jobs(c)), "every job names the rule")


if __name__ == "__main__":
    harness.main([test_retries])

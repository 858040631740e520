#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Disabling, removing and restarting. Under three Octopus Pro F429 boards
in their ROM bootloader with their application erased (1-1.1 ... 1-1.3;
an F429 in DFU mode could be an Octopus or an Octopus Pro: the rule's board
name picks), unplugged at the start.

- A disabled rule flashes nothing (the board is plugged in and stays
  erased); enabling it flashes the board that is already there.
- A removed rule flashes nothing more; `flashctl rule list` no longer shows it.
- A `once` rule flashes one board and disables itself.
- After a restart of flashd the rules are still there; boards that already
  hold the image are skipped when they show up in their bootloader again
  (BOOT0 + reset): nothing erased, `rule list` says why; a new board is
  flashed.
"""
import harness
from rules_helpers import (APP, ERASED, FAST_CONFIG, Boards, add_rule, app_image, check, dump_log, flashctl, holds,
                           jobs, leaves, quiet, rule, unplug_all, wait_job_end, wait_listed)

B1, B2, B3 = "1-1.1", "1-1.2", "1-1.3"


def test_disable_remove_restart():
    boards = Boards()
    image = app_image(24 * 1024, APP, seed=71, mcu="stm32f429xx")
    other = app_image(16 * 1024, APP, seed=72, mcu="stm32f429xx")
    unplug_all(boards)
    d = harness.Flashd(config=FAST_CONFIG, log_level="info")
    d.start()
    try:
        c = d.client()
        r = add_rule(c, image, {"board": "octopus-pro"}, enabled=False)
        check(r["id"] == "rule-1" and r["enabled"] is False, "added disabled", r)

        # disabled: nothing happens to a board that shows up
        boards.plug(B1)
        wait_listed(c, B1, "dfu")
        quiet(1.0)
        check(jobs(c) == [], "a disabled rule submits nothing", jobs(c))
        check(holds(boards, B1, ERASED), "the board is untouched")

        # enabled: the board already there is flashed
        p = flashctl(d, "rule", "enable", "rule-1")
        check(p.returncode == 0 and "enabled" in p.stdout, "rule enable", p.stdout + p.stderr)
        js = wait_job_end(c, "rule-1", B1)
        check(js[0]["board"] == "octopus-pro", "the job is for the rule's board", js[0])
        check(holds(boards, B1, image), "flashed after enable")
        boards.vb.wait(B1, "app", 5000)

        # disabled again, then removed: nothing more
        p = flashctl(d, "rule", "disable", "rule-1")
        check(p.returncode == 0 and "disabled" in p.stdout, "rule disable", p.stdout + p.stderr)
        boards.plug(B2)
        wait_listed(c, B2, "dfu")
        quiet(1.0)
        check(jobs(c, port=B2) == [], "a disabled rule stops flashing")
        p = flashctl(d, "rule", "remove", "rule-1")
        check(p.returncode == 0 and "removed" in p.stdout, "rule remove", p.stdout + p.stderr)
        boards.boot0_reset(B2)
        boards.vb.wait(B2, "dfu", 5000)
        quiet(1.0)
        check(jobs(c, port=B2) == [] and holds(boards, B2, ERASED), "a removed rule flashes nothing")
        p = flashctl(d, "rule", "list")
        check("rule-1" not in p.stdout, "rule list no longer shows it", p.stdout)
        p = flashctl(d, "rule", "remove", "rule-1")
        check(p.returncode == 1 and "no rule" in p.stderr, "removing it again is an error", p.stderr)

        # once: flashes the board that is there, then disables itself
        r = add_rule(c, image, {"board": "octopus-pro", "port": "1-1.*"}, repeat="once")
        check(r["id"] == "rule-2", "ids are not reused", r)
        wait_job_end(c, "rule-2", B2)
        check(holds(boards, B2, image), "the once rule flashed the board")
        harness.wait_for(lambda: not rule(c, "rule-2")["enabled"], what="the once rule disabled itself")
        check("once" in rule(c, "rule-2")["disabled_reason"], "it says why", rule(c, "rule-2"))
        boards.vb.wait(B2, "app", 5000)

        # the rule that stays, and a rule with another image that is added disabled
        add_rule(c, image, {"board": "octopus-pro", "mode": "bootloader"})
        add_rule(c, other, {"port": B3}, enabled=False)
        d.stop()

        # restart: rules and board records are kept
        d2 = harness.Flashd(config=FAST_CONFIG, log_level="info")
        d2.state_dir = d.state_dir
        d2.start()
        try:
            c = d2.client()
            rules = {r["id"]: r for r in c.call("rule.list")["rules"]}
            check(set(rules) == {"rule-2", "rule-3", "rule-4"}, "the rules survived the restart", rules)
            check(rules["rule-3"]["enabled"] and not rules["rule-2"]["enabled"] and not rules["rule-4"]["enabled"],
                  "with their state", rules)
            check(rules["rule-2"]["flashed"] == 1, "and their counters", rules["rule-2"])
            before = {b: (leaves(boards, b), boards.erases(b)) for b in (B1, B2)}

            # both boards hold the image: BOOT0 + reset shows them in DFU mode, the rule skips them
            for b in (B1, B2):
                boards.boot0_reset(b)
            for b in (B1, B2):
                c.wait_notification("notify_rule_skipped", lambda p, b=b: p[0]["port"] == b, timeout=10)
            quiet(0.5)
            check(jobs(c, "rule-3") == [], "no job for boards that hold the image", jobs(c, "rule-3"))
            for b in (B1, B2):
                check((leaves(boards, b), boards.erases(b)) == before[b], f"{b} untouched", boards.events(b))
            r = rule(c, "rule-3")
            check(r["skipped"] == 2 and "already holds" in r["last_skipped"]["message"], "rule list says why", r)
            p = flashctl(d2, "rule", "list")
            check("skipped" in p.stdout and "already holds" in p.stdout, "flashctl rule list shows the skip",
                  p.stdout)

            # a new board is flashed (rule-3 is older than rule-4 and decides)
            boards.plug(B3)
            wait_job_end(c, "rule-3", B3)
            check(holds(boards, B3, image), "a new board is flashed after the restart")
            boards.vb.wait(B3, "app", 5000)

            # the image of a removed rule leaves the store unless a job names it
            c.call("rule.remove", {"rule": "rule-4"})
            img_dir = d.state_dir + "/images"
            import hashlib
            import os
            check(hashlib.sha256(other).hexdigest() not in os.listdir(img_dir), "the unused image is gone")
            check(hashlib.sha256(image).hexdigest() in os.listdir(img_dir), "the used one stays")
        except BaseException:
            d2.stop(check=False)
            dump_log(d2)
            raise
        finally:
            d2.stop(check=False)
            d2.cleanup()
    except BaseException:
        d.stop(check=False)
        dump_log(d)
        raise
    finally:
        if d.alive():
            d.stop(check=False)
        d.cleanup()


if __name__ == "__main__":
    harness.main([test_disable_remove_restart])

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A flashing bench: five Octopus Pro F446 boards (1-1.1 ... 1-1.5), their
application region erased, as boards come from the factory in ROM DFU.

- `flashctl rule add --board octopus-pro --mode bootloader --image
  klipper.bin`, the file deleted right after; the boards are plugged in one
  after another: each is flashed exactly once (vboard counts the leave
  requests), holds the image in its virtual flash, and comes back running it;
  `flashctl watch` showed the rule firing and the jobs' progress; the job
  history names the rule as each job's source.
- Then a new image and an application-mode rule, and all five boards
  plugged at once (they boot Klipper): each is rebooted and flashed exactly
  once more, in parallel.
"""
import os
import signal
import subprocess

import harness
from rules_helpers import (APP, ERASED, FAST_CONFIG, Boards, app_image, check, flashctl, holds, jobs, leaves,
                           rule, tmpdir, unplug_all, wait_job_end, write_image)

PORTS = [f"1-1.{i}" for i in range(1, 6)]


def start_watch(d):
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.Popen([harness.flashctl_binary(), "--socket", d.socket_path, "watch"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_bench():
    boards = Boards()
    image_a = app_image(24 * 1024, APP, seed=51, mcu="stm32f446xx")
    image_b = app_image(20 * 1024, APP, seed=52, mcu="stm32f446xx")
    unplug_all(boards)
    with harness.Flashd(config=FAST_CONFIG, log_level="info") as d:
        c = d.client()
        watch = start_watch(d)
        path = write_image(tmpdir(), image_a)
        p = flashctl(d, "rule", "add", "--board", "octopus-pro", "--mode", "bootloader", "--image", path)
        check(p.returncode == 0, f"rule add: exit {p.returncode}", p.stdout + p.stderr)
        check("rule-1" in p.stdout, "rule add names the rule", p.stdout)
        os.unlink(path)  # the daemon keeps its own copy

        # one after another
        for i, port in enumerate(PORTS):
            check(holds(boards, port, ERASED, APP), f"board {port} starts erased")
            boards.plug(port)
            js = wait_job_end(c, "rule-1", port)
            check(holds(boards, port, image_a), f"board {port} holds the image")
            boards.vb.wait(port, "app", 5000)
            # the boards plugged before were left alone
            for other in PORTS[:i + 1]:
                check(leaves(boards, other) == 1, f"board {other} flashed once", boards.events(other))
            check(js[0]["requested_by"]["name"] == "flashd rule-1", "the job says who made it", js[0])
        r = rule(c, "rule-1")
        check((r["fired"], r["flashed"], r["failed"]) == (5, 5, 0), "rule-1 fired and flashed five times", r)
        check(len(jobs(c, "rule-1")) == 5, "five jobs from rule-1 in the history")

        p = flashctl(d, "rule", "list")
        check(p.returncode == 0 and "rule-1" in p.stdout and "octopus-pro" in p.stdout, "rule list", p.stdout)
        p = flashctl(d, "jobs", "--all")
        check(p.stdout.count("rule-1") == 5, "flashctl jobs --all shows the rule as source", p.stdout)

        # all at once, running Klipper: only an application rule touches them
        path = write_image(tmpdir(), image_b, "klipper-new.bin")
        p = flashctl(d, "rule", "remove", "rule-1")
        check(p.returncode == 0, "rule remove", p.stdout + p.stderr)
        unplug_all(boards)
        harness.wait_for(lambda: not harness.devices_by_port(c), what="boards unplugged")
        p = flashctl(d, "rule", "add", "--board", "octopus-pro", "--mode", "application", "--image", path,
                     "--retry-delay", "0.2")
        check(p.returncode == 0, f"rule add (application): exit {p.returncode}", p.stdout + p.stderr)
        for port in PORTS:
            boards.plug(port)
        for port in PORTS:
            wait_job_end(c, "rule-2", port)
        for port in PORTS:
            check(holds(boards, port, image_b), f"board {port} holds the new image")
            check(leaves(boards, port) == 2, f"board {port} flashed once more", boards.events(port))
            check(len(jobs(c, "rule-2", port)) == 1, f"one job of rule-2 on {port}")
            boards.vb.wait(port, "app", 5000)
        harness.wait_for(lambda: rule(c, "rule-2")["flashed"] == 5, what="rule-2 counted five boards")
        check(len(jobs(c, "rule-2")) == 5, "five jobs from rule-2")

        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=10)
        check(out.count("fired") >= 10, "watch showed every firing", out)
        check("rule rule-1" in out and "rule rule-2" in out, "watch names the rules", out)
        check("done" in out and "flashing/write" in out, "watch showed the jobs' progress", out)


if __name__ == "__main__":
    harness.main([test_bench])

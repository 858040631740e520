#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""update.status with a slow git: flashd runs `git describe` off its main
loop, so other clients are answered meanwhile, and keeps the answer while
the tree's HEAD and refs are unchanged. Under

    vboard --board octopus-pro-f446 --mode app

a `git` first on flashd's PATH sleeps SLOW seconds before `describe`, then
runs the real git.
- while one client's update.status waits for git, device.list answers
  another client at once;
- the status then has the tree's version; the next status answers at once
  (no git run: the cache holds);
- after a commit the status waits for git again and shows the new version;
- a tree that changes under every git run still gets an answer.
"""
import os
import shutil
import stat
import threading
import time

import harness
from jobs_helpers import FAST_CONFIG, check, tmpdir
from update_status_helpers import describe, fake_tree, git, give_to_nobody

SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))
SLOW = 4.0


def fake_git(base, real, on_describe=f"sleep {SLOW}"):
    d = os.path.join(base, "bin")
    os.makedirs(d)
    path = os.path.join(d, "git")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = describe ] && {on_describe}; done\nexec {real} "$@"\n')
    os.chmod(d, 0o755)
    os.chmod(path, 0o755 | stat.S_IXOTH)
    return d


def test_slow_git():
    real = shutil.which("git")
    if real is None:
        raise harness.Skip("git is not installed")
    base = tmpdir()
    tree = fake_tree(base)
    give_to_nobody(base, tree)
    host = describe(tree)
    bindir = fake_git(base, real)
    cfg = os.path.join(base, "printer.cfg")
    with open(cfg, "w") as f:
        f.write("[mcu]\nserial: /dev/serial/by-id/usb-Klipper_stm32f446xx_none-if00\n")
    config = FAST_CONFIG + f"\n[klipper]\npath = {tree}\nprinter_config = {cfg}\n"
    env = {"PATH": bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin")}
    with harness.Flashd(config=config, env=env) as d:
        harness.wait_for(lambda: d.client().call("device.list"), what="the daemon answering")
        result = {}

        def status():
            t0 = time.monotonic()
            with d.client() as c:
                result["status"] = c.call("update.status", timeout=60 * SCALE)
            result["seconds"] = time.monotonic() - t0

        t = threading.Thread(target=status)
        t.start()
        time.sleep(0.5)  # the status call first
        lags, pending = [], []
        with d.client() as c:
            while t.is_alive() and len(lags) < 5:
                t0 = time.monotonic()
                c.call("device.list")
                lags.append(time.monotonic() - t0)
                pending.append(t.is_alive())
                time.sleep(0.2)
        t.join(60 * SCALE)
        check(any(pending), "device.list was answered while update.status still waited for git",
              (lags, pending, result))
        check(max(lags) < SLOW / 2, "device.list answered at once while git ran", lags)
        check(result["seconds"] >= SLOW * 0.9, "update.status waited for the slow git", result)
        check(result["status"]["host_version"] == host, "the tree's version", result["status"])

        # the cache: no git this time
        t0 = time.monotonic()
        s = d.client().call("update.status")
        took = time.monotonic() - t0
        check(took < SLOW * 0.5 and s["host_version"] == host, f"cached answer in {took:.2f} s", s)

        # a commit changes HEAD's branch: git again, and the new version
        with open(os.path.join(tree, "README"), "a") as f:
            f.write("more\n")
        git(tree, "commit", "-qam", "two")
        give_to_nobody(base, tree)
        new = describe(tree)
        check(new != host, "the commit changed describe", new)
        t0 = time.monotonic()
        with d.client() as c:
            s = c.call("update.status", timeout=60 * SCALE)
        took = time.monotonic() - t0
        check(s["host_version"] == new and took >= SLOW * 0.9, f"new version after git ran again ({took:.2f} s)", s)


def test_tree_moving_under_git():
    """A tree whose refs change while every git describe runs (git itself
    rewriting files, a busy checkout): a caller that waited gets the answer
    of the run it waited for instead of waiting for the next one forever."""
    real = shutil.which("git")
    if real is None:
        raise harness.Skip("git is not installed")
    base = tmpdir()
    tree = fake_tree(base)
    give_to_nobody(base, tree)
    host = describe(tree)
    refs = os.path.join(tree, ".git", "refs", "tags")
    bindir = fake_git(base, real, on_describe=f"sleep 0.2; touch {refs}")
    cfg = os.path.join(base, "printer.cfg")
    with open(cfg, "w") as f:
        f.write("[mcu]\nserial: /dev/serial/by-id/usb-Klipper_stm32f446xx_none-if00\n")
    config = FAST_CONFIG + f"\n[klipper]\npath = {tree}\nprinter_config = {cfg}\n"
    env = {"PATH": bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin")}
    with harness.Flashd(config=config, env=env) as d:
        for _ in range(2):
            with d.client() as c:
                s = c.call("update.status", timeout=20 * SCALE)
            check(s["host_version"] == host, "answered with the tree's version", s)


def test_git_talking_on_stderr():
    """What git (or the loader, or a hook) writes to stderr is not the
    version: the version is stdout's first line; when git fails, its last
    complaint is the reason given."""
    real = shutil.which("git")
    if real is None:
        raise harness.Skip("git is not installed")
    base = tmpdir()
    tree = fake_tree(base)
    give_to_nobody(base, tree)
    host = describe(tree)
    cfg = os.path.join(base, "printer.cfg")
    with open(cfg, "w") as f:
        f.write("[mcu]\nserial: /dev/serial/by-id/usb-Klipper_stm32f446xx_none-if00\n")
    config = FAST_CONFIG + f"\n[klipper]\npath = {tree}\nprinter_config = {cfg}\n"
    noise = "echo 'ERROR: ld.so: object libx.so from LD_PRELOAD cannot be preloaded: ignored.' >&2"
    for on_describe, want_version, want_error in (
            (noise, host, None),
            (noise + "; echo 'fatal: no names found' >&2; exit 128", None, "fatal: no names found")):
        sub = tmpdir()
        os.chmod(sub, 0o755)  # git runs as the tree's owner, who must reach it
        bindir = fake_git(sub, real, on_describe=on_describe)
        env = {"PATH": bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin")}
        with harness.Flashd(config=config, env=env) as d:
            with d.client() as c:
                s = c.call("update.status", timeout=20 * SCALE)
            check(s.get("host_version") == want_version, "the version is git's stdout alone", s)
            if want_error:
                check(want_error in (s.get("host_error") or "") and "ld.so" not in s["host_error"],
                      "git's own complaint is the reason", s)


if __name__ == "__main__":
    harness.main([test_slow_git, test_tree_moving_under_git, test_git_talking_on_stderr])

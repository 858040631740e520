#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`flashctl status`: current, stale and unknown boards. Under

    vboard --board octopus-pro-f446 --mode app --board octopus-pro-f446 --mode app

with a fake Klipper tree (a git repository owned by `nobody`: flashd runs
git describe as the tree's owner) and a printer.cfg with three MCUs (one in
an included file): board 1 flashed with the tree's version (current),
board 2 with an older one (stale), and a third whose serial: path has no
board (unknown, and says so). Then the tree gets a new commit: both boards
are stale.
"""
import json
import os
import shutil

import harness
from jobs_helpers import FAST_CONFIG, check, flashctl, tmpdir, write_image
from update_helpers import klipper_image, mcu_status
from update_status_helpers import describe, fake_tree, git, give_to_nobody

SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))



def flash(d, port, image):
    p = flashctl(d, "flash", port, "--address", "0x08008000", write_image(tmpdir(), image))
    check(p.returncode == 0, f"flash {port}: exit {p.returncode}", p.stdout + p.stderr)


def test_current_stale_unknown():
    if shutil.which("git") is None:
        raise harness.Skip("git is not installed")
    base = tmpdir()
    tree = fake_tree(base)
    give_to_nobody(base, tree)
    host = describe(tree)
    cfg = os.path.join(base, "printer.cfg")
    with harness.Flashd(config=FAST_CONFIG) as d0:
        devs = harness.wait_for(lambda: (lambda x: x if len(x) == 2 else None)(harness.devices_by_port(d0.client())),
                                what="two boards")
    by_id = {port: dev["by_id"] for port, dev in devs.items()}
    os.makedirs(os.path.join(base, "cfg.d"))
    with open(cfg, "w") as f:
        f.write(f"[include cfg.d/*.cfg]\n\n[mcu]\nserial: {by_id['1-1.1']}  # the main board\nrestart_method: command\n"
                f"\n[printer]\nkinematics: corexy\n\n[mcu gone]\nserial: /dev/serial/by-id/usb-Klipper_nothing-if00\n")
    with open(os.path.join(base, "cfg.d", "toolboard.cfg"), "w") as f:
        f.write(f"[mcu second]\nserial = {by_id['1-1.2']}\n")
    config = FAST_CONFIG + f"\n[klipper]\npath = {tree}\nprinter_config = {cfg}\n"
    with harness.Flashd(config=config) as d:
        harness.wait_for(lambda: len(harness.devices_by_port(d.client())) == 2, what="boards")
        kconfig = os.path.join(base, "octopus.config")
        with open(kconfig, "w") as f:
            f.write('CONFIG_MACH_STM32=y\nCONFIG_MCU="stm32f446xx"\nCONFIG_CLOCK_FREQ=180000000\n')
        p = flashctl(d, "profile", "add", "octopus", "--board", "octopus-pro", "--kconfig", kconfig)
        check(p.returncode == 0, "profile add", p.stdout + p.stderr)
        os.unlink(kconfig)  # the daemon keeps its own copy
        p = flashctl(d, "--json", "profile", "show", "octopus")
        shown = json.loads(p.stdout)
        check(shown["mcu"] == "stm32f446xx" and shown["mcu_name"] == "mcu" and "CONFIG_MCU" in shown["kconfig_text"],
              "profile show", shown)
        p = flashctl(d, "profile", "add", "octopus", "--board", "octopus-pro", "--kconfig", "/dev/null")
        check(p.returncode != 0, "a .config without CONFIG_MCU, or a taken name, is refused", p.stdout)
        flash(d, "1-1.1", klipper_image(host, "stm32f446xx", seed=1))
        flash(d, "1-1.2", klipper_image("v0.11.0-5-gdeadbee", "stm32f446xx", seed=2))

        def settled():
            s = mcu_status(d)
            return s if s["mcu"]["state"] == "current" and s["second"]["state"] == "stale" else None
        s = harness.wait_for(settled, timeout=30 * SCALE, what="current and stale")
        check(list(s) == ["mcu", "gone", "second"] or set(s) == {"mcu", "gone", "second"}, "three MCUs", s)
        m = s["mcu"]
        check(m["running_version"] == host and m["host_version"] == host, "versions", m)
        check(m["port"] == "1-1.1" and m["transport"] == "usb" and m["board"] == "octopus-pro", "main board", m)
        check(m["profile"] == "octopus" and s["second"]["profile"] is None, "profiles", s)
        check(s["second"]["running_version"] == "v0.11.0-5-gdeadbee" and s["second"]["port"] == "1-1.2",
              "toolboard from the included file", s["second"])
        check(s["gone"]["state"] == "unknown" and "no board at" in s["gone"]["reason"], "missing board", s["gone"])

        # a person's view
        p = flashctl(d, "status")
        check(p.returncode == 0 and "stale" in p.stdout and "current" in p.stdout and host in p.stdout,
              "flashctl status table", p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        check(lines[0].split()[:8] == ["MCU", "BOARD", "PORT", "VIA", "RUNNING", "HOST", "STATE", "PROFILE"],
              "the MCU table leads", p.stdout)
        rows = {line.split()[0]: line.split() for line in lines[1:]
                if line[:1] != " " and line.split() and line.split()[0] in ("mcu", "second", "gone")}
        check(rows.get("mcu", [])[:8] == ["mcu", "octopus-pro", "1-1.1", "usb", host, host, "current", "octopus"],
              "one line per MCU: name, board, port, transport, running, host, state, profile", p.stdout)
        check(rows.get("second", [])[2:7] == ["1-1.2", "usb", "v0.11.0-5-gdeadbee", host, "stale"],
              "the stale board's line", p.stdout)
        version = d.client().call("server.info")["version"]
        check(f"Host Klipper: {host}" in p.stdout and f"Version: {version}" in p.stdout and
              p.stdout.index(f"Version: {version}") > p.stdout.index("Host Klipper:"),
              "the host version and the daemon's fields after the table", p.stdout)

        # the tree moves on: both boards are stale now
        with open(os.path.join(tree, "README"), "a") as f:
            f.write("two\n")
        git(tree, "commit", "-qam", "two")
        give_to_nobody(base, tree)
        new = describe(tree)
        check(new != host, "the tree has a new version")
        s = mcu_status(d)
        check(s["mcu"]["state"] == "stale" and s["mcu"]["host_version"] == new, "main board now stale", s["mcu"])
        check(s["second"]["state"] == "stale", "toolboard stale", s["second"])


def test_tree_owned_by_root_is_refused():
    base = tmpdir()
    tree = fake_tree(base)  # owned by root
    cfg = os.path.join(base, "printer.cfg")
    with open(cfg, "w") as f:
        f.write("[mcu]\nserial: /dev/serial/by-id/usb-Klipper_x-if00\n")
    if os.geteuid() != 0:
        raise harness.Skip("needs root to own a tree as root")
    with harness.Flashd(config=FAST_CONFIG + f"\n[klipper]\npath = {tree}\nprinter_config = {cfg}\n") as d:
        p = flashctl(d, "status", "--json")
        r = json.loads(p.stdout)
        check(r["host_version"] is None and "root" in r["host_error"], "never as root", r)
        check(r["mcus"][0]["state"] == "unknown", "unknown without a host version", r)


if __name__ == "__main__":
    harness.main([test_current_stale_unknown, test_tree_owned_by_root_is_refused])

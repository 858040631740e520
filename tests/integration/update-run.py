#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`flashctl update` with a fake Klipper tree (update_helpers.py: a
Makefile honouring the build contract and a script that embeds git
describe and CONFIG_MCU in the image) under

    vboard --board octopus-pro-f446 --mode app --board octopus-pro-f446 --mode app

printer.cfg: [mcu] on 1-1.1 (profile main), [mcu tool] on 1-1.2 (profile
tool); both run an old Klipper.
- --dry-run prints the plan and touches nothing;
- a build failure (the tool profile's .config breaks the build) touches no
  board: no job, both flashes unchanged, exit 6 with the compiler's line;
- a flash failure (board 2 ignores the 1200-baud request and its
  bootloader never comes): board 1 is flashed and runs the host version,
  board 2 is reported failed, exit 6, status: current and stale;
- updating the failed board alone then brings everything in step: exit 0.
"""
import json
import os
import shutil

import harness
from jobs_helpers import APP, Boards, check, flashctl, job_history, tmpdir, write_image
from update_helpers import KCONFIG, describe, fake_klipper_tree, klipper_image, mcu_status

SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))
CONFIG = "reboot_wait_sec = 1\nbootloader_timeout_sec = 4\napp_timeout_sec = 10\n"
OLD = "v0.11.0-1-g0000001"




def add_profile(d, base, name, mcu_name, extra=""):
    path = os.path.join(base, name + ".config")
    with open(path, "w") as f:
        f.write(KCONFIG.format(mcu="stm32f446xx") + extra)
    p = flashctl(d, "profile", "add", name, "--board", "octopus-pro", "--mcu-name", mcu_name, "--kconfig", path,
                 "--replace")
    check(p.returncode == 0, f"profile add {name}", p.stdout + p.stderr)


def test_update():
    if shutil.which("git") is None or shutil.which("make") is None:
        raise harness.Skip("needs git and make")
    boards = Boards()
    base = tmpdir()
    tree = fake_klipper_tree(base)
    host = describe(tree)
    cfg = os.path.join(base, "printer.cfg")
    config = CONFIG + f"\n[klipper]\npath = {tree}\nprinter_config = {cfg}\n"
    with harness.Flashd(config=config) as d:
        devs = harness.wait_for(lambda: (lambda x: x if len(x) == 2 else None)(harness.devices_by_port(d.client())),
                                what="two boards")
        with open(cfg, "w") as f:
            f.write(f"[mcu]\nserial: {devs['1-1.1']['by_id']}\n\n[mcu tool]\nserial: {devs['1-1.2']['by_id']}\n")
        for port, seed in (("1-1.1", 1), ("1-1.2", 2)):
            p = flashctl(d, "flash", port, "--address", hex(APP), write_image(tmpdir(), klipper_image(OLD, "stm32f446xx", seed=seed)))
            check(p.returncode == 0, f"old Klipper onto {port}", p.stdout + p.stderr)
        add_profile(d, base, "main", "mcu")
        # menuconfig edits a copy with the tree's make and stores it back
        p = flashctl(d, "profile", "menuconfig", "main")
        check(p.returncode == 0, f"menuconfig exit {p.returncode}", p.stdout + p.stderr)
        shown = json.loads(flashctl(d, "--json", "profile", "show", "main").stdout)
        check("CONFIG_FAKE_MENU=y" in shown["kconfig_text"] and 'CONFIG_MCU="stm32f446xx"' in shown["kconfig_text"],
              "menuconfig's change stored", shown)
        add_profile(d, base, "tool", "tool", "CONFIG_FAKE_FAIL=y\n")
        harness.wait_for(lambda: all(m["state"] == "stale" for m in mcu_status(d).values()), timeout=20 * SCALE,
                         what="both stale")

        def flashes():
            return [boards.read(b, APP, 16 * 1024) for b in ("0", "1")]
        before, n_jobs = flashes(), len(job_history(d))

        # --dry-run: the plan, nothing else
        p = flashctl(d, "update", "--all", "--dry-run")
        check(p.returncode == 0, f"dry-run exit {p.returncode}", p.stdout + p.stderr)
        check("1. mcu" in p.stdout and "2. tool" in p.stdout and host in p.stdout, "the plan in order", p.stdout)
        p = flashctl(d, "--json", "update", "--all", "--dry-run")
        plan = json.loads(p.stdout)
        check(plan["order"] == ["mcu", "tool"] and plan["host_version"] == host, "plan JSON", plan)
        check(flashes() == before and len(job_history(d)) == n_jobs, "dry-run touched nothing")

        # a build failure: no board is touched
        p = flashctl(d, "update", "--all", timeout=120)
        check(p.returncode == 6, f"build failure exit {p.returncode}", p.stdout + p.stderr)
        check("build-failed" in p.stdout and "'oops' undeclared" in p.stdout and "not-touched" in p.stdout,
              "the report names the failed build and its log tail", p.stdout)
        check(flashes() == before and len(job_history(d)) == n_jobs, "a build failure touched no board")

        # a flash failure: the other board finishes
        add_profile(d, base, "tool", "tool")
        boards.vb.quirk("1", "no-1200-reboot")
        p = flashctl(d, "--json", "update", "--all", timeout=180)
        check(p.returncode == 6, f"flash failure exit {p.returncode}", p.stdout + p.stderr)
        report = {s["name"]: s for s in json.loads(p.stdout)["steps"]}
        check(report["mcu"]["result"] == "flashed" and report["mcu"]["new_version"] == host
              and report["mcu"]["current"], "main board flashed and runs the host version", report)
        check(report["tool"]["result"] == "flash-failed" and not report["tool"]["current"]
              and report["tool"]["message"], "tool board failed, with why", report)
        s = mcu_status(d)
        check(s["mcu"]["state"] == "current" and s["tool"]["state"] == "stale", "status after", s)
        check(boards.read("1", APP, 16 * 1024) == before[1], "the failed board still has its old image")

        # the failed one alone
        boards.vb.unquirk("1", "no-1200-reboot")
        p = flashctl(d, "update", "tool", timeout=180)
        check(p.returncode == 0, f"second try exit {p.returncode}", p.stdout + p.stderr)
        s = mcu_status(d)
        check(all(m["state"] == "current" for m in s.values()), "all current", s)
        p = flashctl(d, "update", "nosuch")
        check(p.returncode == 1 and "no MCU of printer.cfg" in p.stderr, "an unknown MCU name", p.stdout + p.stderr)
        log = d.log_text()
        check("update: build -> flash" in log, "builds finished before any flash", log[-2000:])


if __name__ == "__main__":
    harness.main([test_update])

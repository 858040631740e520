#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`flashctl update` stops klipper once around all its flashes. Under

    vboard --board octopus-pro-f446 --mode app --board octopus-pro-f446 --mode app

with stop_units = klipper.service and a stand-in for systemd on a private
bus (fake-systemd1, as jobs-units.py): two single flashes stop and start
the unit once each (the existing per-job logic); then an update of both
boards stops it once before the first flash and starts it once after the
last, and its jobs find it stopped (no stop/start of their own).
"""
import json
import os
import shutil
import subprocess

import harness
from jobs_helpers import APP, check, flashctl, tmpdir, write_image
from update_helpers import KCONFIG, describe, fake_klipper_tree, klipper_image

SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))
CONFIG = "reboot_wait_sec = 1\nbootloader_timeout_sec = 10\napp_timeout_sec = 10\nstop_units = klipper.service\n"


def test_units_once_around_update():
    if not shutil.which("dbus-daemon") or not shutil.which("git"):
        raise harness.Skip("needs dbus-daemon and git")
    base = tmpdir()
    tree = fake_klipper_tree(base)
    host = describe(tree)
    cfg = os.path.join(base, "printer.cfg")
    bus = f"unix:path={base}/system_bus_socket"
    procs = []
    try:
        dbus = subprocess.Popen(["dbus-daemon", "--session", f"--address={bus}", "--nofork", "--print-address=1"],
                                stdout=subprocess.PIPE, text=True)
        procs.append(dbus)
        check(dbus.stdout.readline().strip(), "dbus-daemon is up")
        fake = subprocess.Popen([os.path.join(harness.build_root(), "tests", "integration", "fake-systemd1"), bus,
                                 "klipper.service"], stdout=subprocess.PIPE, text=True)
        procs.append(fake)
        check(fake.stdout.readline().strip() == "ready", "fake systemd is up")
        config = CONFIG + f"\n[klipper]\npath = {tree}\nprinter_config = {cfg}\n"
        with harness.Flashd(config=config, env={"DBUS_SYSTEM_BUS_ADDRESS": bus}) as d:
            devs = harness.wait_for(
                lambda: (lambda x: x if len(x) == 2 else None)(harness.devices_by_port(d.client())), what="boards")
            with open(cfg, "w") as f:
                f.write(f"[mcu]\nserial: {devs['1-1.1']['by_id']}\n[mcu tool]\nserial: {devs['1-1.2']['by_id']}\n")
            for port, seed in (("1-1.1", 1), ("1-1.2", 2)):
                p = flashctl(d, "flash", port, "--address", hex(APP),
                             write_image(tmpdir(), klipper_image("v0.1.0-0-gold", "stm32f446xx", seed=seed)))
                check(p.returncode == 0, f"old Klipper onto {port}", p.stdout + p.stderr)
            for name, mcu_name in (("main", "mcu"), ("tool", "tool")):
                path = os.path.join(base, name + ".config")
                with open(path, "w") as f:
                    f.write(KCONFIG.format(mcu="stm32f446xx"))
                p = flashctl(d, "profile", "add", name, "--board", "octopus-pro", "--mcu-name", mcu_name,
                             "--kconfig", path)
                check(p.returncode == 0, "profile add", p.stdout + p.stderr)
            # both boards have said what they run (identify) before the plan is made
            harness.wait_for(lambda: all(m["state"] == "stale" for m in json.loads(
                flashctl(d, "--json", "status").stdout)["mcus"]), timeout=20 * SCALE, what="both stale")
            p = flashctl(d, "update", "--all", timeout=180)
            check(p.returncode == 0, f"update exit {p.returncode}", p.stdout + p.stderr)
            check("Stopped while flashing: klipper.service" in p.stdout, "the plan names the unit", p.stdout)
            report = json.loads(flashctl(d, "--json", "status").stdout)
            check(all(m["state"] == "current" and m["running_version"] == host for m in report["mcus"]),
                  "both current", report)
            for job in (3, 4):
                log = flashctl(d, "job", str(job)).stdout
                check("stopped klipper.service" not in log, f"job {job} found the unit stopped already", log)
        fake.terminate()
        calls = [line.split()[0] for line in fake.stdout if line.startswith(("stop", "start"))]
        # two single flashes: a pair each; the update: one pair for both boards
        check(calls == ["stop", "start"] * 3, "systemd saw one stop/start for the whole update", calls)
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    harness.main([test_units_once_around_update])

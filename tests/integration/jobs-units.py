#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""stop_units: flashd pauses systemd units around a flash over D-Bus. Under

    vboard --board octopus-pro-f429 --mode app

a "klippy" holds the board's tty; a private D-Bus daemon carries a stand-in
for systemd (fake-systemd1) whose klipper.service stop kills that klippy.
With `stop_units = klipper.service`, `flashctl flash` stops the unit before
the reboot (so the tty is free), flashes, and starts it again: the fake saw
stop then start, the flash holds the image.
"""
import os
import shutil
import subprocess
import sys

import harness
from jobs_helpers import APP, FAST_CONFIG, Boards, app_image, check, flashctl, tmpdir, write_image


def fake_systemd1():
    return os.path.join(harness.build_root(), "tests", "integration", "fake-systemd1")


def test_stop_units_around_flash():
    if not shutil.which("dbus-daemon"):
        raise harness.Skip("dbus-daemon not installed")
    boards = Boards()
    tmp = tmpdir()
    tty = boards.board("0")["tty"]
    script = os.path.join(tmp, "klippy.py")
    with open(script, "w") as f:
        f.write(f"import os, sys\nfd = os.open({tty!r}, os.O_RDWR | os.O_NOCTTY)\nprint('open', flush=True)\n"
                "sys.stdin.read()\n")
    procs = []
    try:
        holder = subprocess.Popen([sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(holder)
        check(holder.stdout.readline().strip() == "open", "klippy holds the tty")
        bus = f"unix:path={tmp}/system_bus_socket"
        dbus = subprocess.Popen(["dbus-daemon", "--session", f"--address={bus}", "--nofork", "--print-address=1"],
                                stdout=subprocess.PIPE, text=True)
        procs.append(dbus)
        check(dbus.stdout.readline().strip(), "dbus-daemon is up")
        fake = subprocess.Popen([fake_systemd1(), bus, "klipper.service", str(holder.pid)], stdout=subprocess.PIPE,
                                text=True)
        procs.append(fake)
        check(fake.stdout.readline().strip() == "ready", "fake systemd is up")

        image = app_image(24 * 1024, APP, seed=51, mcu="stm32f429xx")
        with harness.Flashd(config=FAST_CONFIG + "stop_units = klipper.service\n",
                            env={"DBUS_SYSTEM_BUS_ADDRESS": bus}) as d:
            harness.wait_for(lambda: "1-1.1" in harness.devices_by_port(d.client()), what="board")
            p = flashctl(d, "flash", "octopus-pro", write_image(tmp, image))
            check(p.returncode == 0, f"flash with stop_units: exit {p.returncode}", p.stdout + p.stderr)
            check(boards.read("0", APP, len(image)) == image, "image in flash")
            check(holder.poll() is not None, "stopping klipper.service ended klippy")
            p = flashctl(d, "job", "1")
            check("stopped klipper.service" in p.stdout and "started klipper.service again" in p.stdout,
                  "the job log says so", p.stdout)
        fake.terminate()
        calls = [line.strip() for line in fake.stdout if line.startswith(("stop", "start"))]
        check(calls == ["stop klipper.service", "start klipper.service"], "systemd saw stop, then start", calls)
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    harness.main([test_stop_units_around_flash])

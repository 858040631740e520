#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""stop_units for an AVR board: its USB-serial bridge is in mode `serial`
while Klipper runs, and klippy holds that tty with pyserial's exclusive
lock (flock). Without stop_units the job is refused with tty-busy before
any reset; with stop_units = klipper.service flashd stops the unit (the
fake systemd on a private bus kills the holder), flashes through the real
Mega bootloader in simavr, and starts the unit again."""

import importlib.util
import os
import shutil
import subprocess
import sys

import harness
from jobs_helpers import FAST_CONFIG, Boards, check, flashctl, tmpdir, write_image

BOARD = "mega2560-atmega2560"
SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))

_spec = importlib.util.spec_from_file_location("avr_job", os.path.join(os.path.dirname(__file__), "avr-job.py"))
avr_job = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(avr_job)


def fake_systemd1():
    return os.path.join(harness.build_root(), "tests", "integration", "fake-systemd1")


def test_klippy_holds_the_tty():
    if not shutil.which("dbus-daemon"):
        raise harness.Skip("dbus-daemon not installed")
    boards = Boards()
    b = boards.board(BOARD)
    tmp = tmpdir()
    script = os.path.join(tmp, "klippy.py")
    with open(script, "w") as f:
        f.write(f"import fcntl, os, sys\nfd = os.open({b['tty']!r}, os.O_RDWR | os.O_NOCTTY)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nprint('locked', flush=True)\nsys.stdin.read()\n")
    image = avr_job.avr_image(4 * 256, 21)
    hexfile = write_image(tmp, avr_job.ihex(image), "klipper.elf.hex")
    procs = []
    try:
        holder = subprocess.Popen([sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(holder)
        check(holder.stdout.readline().strip() == "locked", "klippy holds the tty")

        # without stop_units: refused, the board is not even reset
        with harness.Flashd(config=FAST_CONFIG) as d:
            avr_job.wait_listed(d.client(), b["port"])
            resets = boards.counters(BOARD)["avr_resets"]
            p = flashctl(d, "flash", "mega2560", hexfile, timeout=120 * SCALE)
            check(p.returncode != 0 and "locked" in p.stdout + p.stderr, "a locked tty refused",
                  p.stdout + p.stderr)
            check(boards.counters(BOARD)["avr_resets"] == resets, "the board was reset under klippy")

        bus = f"unix:path={tmp}/system_bus_socket"
        dbus = subprocess.Popen(["dbus-daemon", "--session", f"--address={bus}", "--nofork", "--print-address=1"],
                                stdout=subprocess.PIPE, text=True)
        procs.append(dbus)
        check(dbus.stdout.readline().strip(), "dbus-daemon is up")
        fake = subprocess.Popen([fake_systemd1(), bus, "klipper.service", str(holder.pid)], stdout=subprocess.PIPE,
                                text=True)
        procs.append(fake)
        check(fake.stdout.readline().strip() == "ready", "fake systemd is up")
        with harness.Flashd(config=FAST_CONFIG + "stop_units = klipper.service\n",
                            env={"DBUS_SYSTEM_BUS_ADDRESS": bus}) as d:
            avr_job.wait_listed(d.client(), b["port"])
            p = flashctl(d, "flash", "mega2560", hexfile, timeout=120 * SCALE)
            check(p.returncode == 0, f"flash with stop_units: exit {p.returncode}", p.stdout + p.stderr)
            check(boards.read(BOARD, 0, len(image)) == image, "image in flash")
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
    harness.main([test_klippy_holds_the_tty])

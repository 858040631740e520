#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs Katapult's scripts/flashtool.py (a copy the bench makes at run time
from a Katapult checkout; never part of this tree) the way a user does,
`flashtool.py -d DEVICE -f IMAGE`, with one change the emulation needs:
vboard keeps its end of the emulated tty open, and the tool's check that
no other program holds the device would take vboard for one. The check is
done here the same way (every /proc/PID/fd entry stat()ed and compared),
skipping only the emulator's pid, so the tool still pays for it.

    flashtool-run.py FLASHTOOL DEVICE IMAGE EMULATOR_PID
"""
import argparse
import asyncio
import os
import pathlib
import runpy
import sys


def main():
    tool, device, image, emulator = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ns = runpy.run_path(tool, run_name="flashtool")

    async def validate_device(self, path):
        want = os.stat(path)
        for fd_dir in pathlib.Path("/proc").glob("*/fd"):
            pid = fd_dir.parent.name
            if not pid.isdigit() or int(pid) == emulator:
                continue
            try:
                entries = list(fd_dir.iterdir())
            except OSError:
                continue
            for entry in entries:
                try:
                    st = entry.stat()
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                    raise ns["FlashError"](f"Serial device {path} in use by process {pid}")

    ns["SerialSocket"].validate_device = validate_device
    # the tool's own defaults for everything but the device and the image
    args = argparse.Namespace(device=device, baud=250000, interface="can0", firmware=image, uuid=None,
                              query=False, verbose=False, request_bootloader=False, status=False)
    return asyncio.run(ns["main"](args))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run as: vboard --board octopus-pro-f429 --mode dfu --board octopus-pro-h723 --mode dfu -- python3 fidelity-list.py
# `dfu-util -l` (Debian's 0.11) lists the virtual boards as it lists the real ROM bootloaders.
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vboard"))
from vboard import VBoard, run  # noqa: E402

vb = VBoard()
boards = vb.list()
assert [b["mode"] for b in boards] == ["dfu", "dfu"], boards
rc, out = run("dfu-util", "-l")
print(out)
assert rc == 0, rc

found = re.findall(r'Found DFU: \[0483:df11\] ver=2200, devnum=(\d+), cfg=1, intf=0, path="([0-9.-]+)", '
                   r'alt=(\d), name="([^"]*)", serial="([0-9A-F]+)"', out)
assert len(found) == 4, found
expect = {
    (boards[0]["port"], "0"): "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg",
    (boards[0]["port"], "1"): "@Option Bytes  /0x1FFFC000/01*016 e",
    (boards[1]["port"], "0"): "@Internal Flash  /0x08000000/08*128Kg",
}
for devnum, path, alt, name, serial in found:
    b = boards[0] if path == boards[0]["port"] else boards[1]
    assert int(devnum) == b["devnum"], (devnum, b)
    assert serial == b["dfu_serial"], (serial, b)
    if (path, alt) in expect:
        assert name == expect[(path, alt)], (path, alt, name)
assert {f[1] for f in found} == {"1-1.1", "1-1.2"}, found

# the same board is found by port path, as Klipper's flash_usb.py asks for it
rc, out = run("dfu-util", "-p", "1-1.2", "-l")
assert rc == 0 and out.count("Found DFU") == 2 and "1-1.1" not in out, out
print("ok")

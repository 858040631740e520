#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run as: vboard --board octopus-pro-f429 --mode dfu --quirk unplug=5,300 -- python3 fidelity-unplug.py
# The cable is pulled right after the 5th data block: dfu-util fails, the
# board is gone, and it is back (in DFU: no plausible application) 300 ms later
# on the same port with a new device number and 5 blocks in its flash.
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vboard"))
from vboard import VBoard, dfu_util_download  # noqa: E402

vb = VBoard()
before = vb.board(0)
image = random.Random(5).randbytes(40000)
rc, out = dfu_util_download(image, "-a", "0", "-s", "0x08008000")
assert rc != 0, rc
assert vb.board(0)["mode"] == "off"
back = vb.wait(0, "dfu", 3000)
assert back["port"] == before["port"] and back["devnum"] != before["devnum"], back
assert vb.read(0, 0x08008000, 5 * 2048) == image[:5 * 2048]
assert vb.read(0, 0x08008000 + 5 * 2048, 16) == b"\xff" * 16
c = vb.stats(0)["counters"]
assert c["dnloads"] == 5 and c["reenumerations"] == 1, c
events = vb.events(0)
assert events.index("dfu-removed") < events.index("dfu-added", 1), events
print("ok")

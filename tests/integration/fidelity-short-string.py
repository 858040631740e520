#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run as: vboard --board octopus-pro-f429 --mode dfu --quirk short-string -- python3 fidelity-short-string.py
# The F42x ROM's alt-0 string descriptor claims bLength 166 but delivers 112
# bytes; dfu-util >= 0.10 patches the length and flashes.
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vboard"))
from vboard import VBoard, dfu_util_download  # noqa: E402

vb = VBoard()
image = random.Random(3).randbytes(40000)
rc, out = dfu_util_download(image, "-a", "0", "-s", "0x08008000")
assert "Patching string descriptor 4 length (was 166, received 112)" in out, out
assert rc == 0, rc
assert vb.read(0, 0x08008000, len(image)) == image
print("ok")

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run as: vboard --board octopus-pro-f446 --mode dfu --quirk error-at-start -- python3 fidelity-error-at-start.py
# The ROM reports dfuERROR/errFIRMWARE at power-up; dfu-util clears it and flashes.
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vboard"))
from vboard import VBoard, dfu_util_download, run  # noqa: E402

vb = VBoard()
image = random.Random(7).randbytes(5000)
rc, out = dfu_util_download(image, "-a", "0", "-s", "0x08008000")
assert "DFU state(10) = dfuERROR, status(10)" in out, out
assert "Clearing status" in out, out
assert rc == 0, rc
assert vb.read(0, 0x08008000, len(image)) == image
with tempfile.TemporaryDirectory() as tmp:
    # every power-up shows it again
    before = vb.board(0)["devnum"]
    vb.reset(0)
    assert vb.board(0)["mode"] == "off"
    assert vb.wait(0, "dfu", 5000)["devnum"] != before
    rc, out = run("dfu-util", "-a", "0", "-s", "0x08008000:16", "-U", os.path.join(tmp, "up.bin"))
    assert "dfuERROR" in out and rc == 0, out
print("ok")

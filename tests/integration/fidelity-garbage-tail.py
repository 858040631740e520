#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run as: vboard --board octopus-pro-f429 --mode dfu --quirk garbage-tail -- python3 fidelity-garbage-tail.py
# UTF-16 garbage after the last layout segment: dfu-util 0.11 drops the
# 128 KiB segment, small images still flash, a 300 KB image is refused with
# "Last page at ... is not writeable" (EX_USAGE, 64) before anything is erased.
import os
import random
import re
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vboard"))
from vboard import VBoard, run  # noqa: E402

vb = VBoard()
rc, out = run("dfu-util", "-l")
assert rc == 0 and re.search(r'name="@Internal Flash  /0x08000000/04\*016Kg,01\*064Kg,07\*128Kg\?{7}"', out), out

rng = random.Random(300)
with tempfile.TemporaryDirectory() as tmp:
    big = os.path.join(tmp, "big.bin")
    with open(big, "wb") as f:
        f.write(rng.randbytes(300000))
    rc, out = run("dfu-util", "-a", "0", "-s", "0x08008000:leave", "-D", big)
    print(out)
    assert "Parsing type identifier 'g???????' failed for segment 3" in out, out
    assert "Last page at 0x%08x is not writeable" % (0x08008000 + 300000 - 1) in out, out
    assert rc == 64, rc
    assert vb.stats(0)["counters"]["sector_erases"] == 0
    assert vb.board(0)["mode"] == "dfu"

    small = os.path.join(tmp, "small.bin")
    image = rng.randbytes(60000)
    with open(small, "wb") as f:
        f.write(image)
    rc, out = run("dfu-util", "-a", "0", "-s", "0x08008000", "-D", small)
    print(out)
    assert rc == 0, rc
assert vb.read(0, 0x08008000, len(image)) == image
print("ok")

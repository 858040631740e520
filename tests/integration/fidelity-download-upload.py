#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run as: vboard --board octopus-pro-f429 --mode dfu -- python3 fidelity-download-upload.py
# dfu-util downloads an image and uploads it back identical; the flash model
# saw exactly the erases and writes it should, and the bootloader is untouched.
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vboard"))
from vboard import BOOTLOADER_PATTERN, VBoard, run  # noqa: E402

vb = VBoard()
size = 70000
image = random.Random(42).randbytes(size)
with tempfile.TemporaryDirectory() as tmp:
    img = os.path.join(tmp, "image.bin")
    back = os.path.join(tmp, "back.bin")
    with open(img, "wb") as f:
        f.write(image)
    rc, out = run("dfu-util", "-a", "0", "-s", "0x08008000", "-D", img)
    print(out)
    assert rc == 0, rc
    assert "Download done." in out, out
    rc, out = run("dfu-util", "-a", "0", "-s", "0x08008000:%d" % size, "-U", back)
    print(out)
    assert rc == 0, rc
    with open(back, "rb") as f:
        assert f.read() == image, "uploaded image differs"
    # the model agrees, and the bootloader region below 0x08008000 is intact
    assert vb.read(0, 0x08008000, 64) == image[:64]
    assert vb.read(0, 0x08000000, 16) == BOOTLOADER_PATTERN
    dump = os.path.join(tmp, "dump.bin")
    vb.dump(0, dump)
    with open(dump, "rb") as f:
        flash = f.read()
    assert len(flash) == 1024 * 1024
    assert flash[:0x8000] == BOOTLOADER_PATTERN * (0x8000 // 16)
    assert flash[0x8000:0x8000 + size] == image
    # sectors 2 (16 KiB), 3 (16 KiB) and 4 (64 KiB) were erased once each
    c = vb.stats(0)["counters"]
    erased = {a: n for a, n in c["erases_per_sector"].items() if n}
    assert erased == {"0x08008000": 1, "0x0800C000": 1, "0x08010000": 1}, erased
    assert flash[0x8000 + size:0x20000] == b"\xff" * (0x20000 - 0x8000 - size)
    assert c["bytes_written"] == size, c
    assert c["bytes_uploaded"] == size, c
    assert c["reenumerations"] == 0, c
print("ok")

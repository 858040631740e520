#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Layout strings as broken ROMs deliver them (read by the session from the
device): a truncated descriptor (short-string) and UTF-16 garbage after the
last segment (garbage-tail) with a 300 KB image that reaches into the last
segment, which dfu-util 0.11 refuses."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import usb_helpers as u  # noqa: E402

u.reexec_under_vboard(__file__, quirks=["short-string", "garbage-tail"])

OLD = u.image(300 * 1024, 6)
IMG = u.image(300 * 1024, 5)  # 0x08008000..0x08053000: into the 128K sectors
TOUCHED = ["0x08008000", "0x0800C000", "0x08010000", "0x08020000", "0x08040000"]


def test_300k_image_with_broken_layout(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    boot = ctl.read(u.FLASH_BASE, 0x8000)
    # onto blank flash: written without erasing
    out = tool.flash(OLD)
    u.check(out["exit"] == 0 and out["status"] == "done", "flash failed", out)
    u.check(out["stats"]["sectors_touched"] == 5, "wrong sectors", out["stats"])
    u.check(ctl.read(u.APP, len(OLD)) == OLD, "image not in the virtual flash")
    # over another image: exactly the five touched sectors are erased, once
    out = tool.flash(IMG)
    u.check(out["exit"] == 0 and out["status"] == "done", "second flash failed", out)
    u.check(ctl.read(u.APP, len(IMG)) == IMG, "second image not in the virtual flash")
    u.check(ctl.read(u.FLASH_BASE, 0x8000) == boot, "bootloader changed")
    per = ctl.counters()["erases_per_sector"]
    u.check(all(per[k] == 1 for k in TOUCHED), "touched sectors not erased exactly once", per)
    u.check(sum(per.values()) == 5, "a sector outside the image was erased", per)


u.main([test_300k_image_with_broken_layout])

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

IMG = u.image(300 * 1024, 5)  # 0x08008000..0x08053000: into the 128K sectors


def test_300k_image_with_broken_layout(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    boot = ctl.read(u.FLASH_BASE, 0x8000)
    out = tool.flash(IMG)
    u.check(out["exit"] == 0 and out["status"] == "done", "flash failed", out)
    u.check(ctl.read(u.APP, len(IMG)) == IMG, "image not in the virtual flash")
    u.check(ctl.read(u.FLASH_BASE, 0x8000) == boot, "bootloader changed")
    per = ctl.counters()["erases_per_sector"]
    u.check(per["0x08040000"] == 1, "last touched sector not erased once", per)
    u.check(per.get("0x08060000", 0) == 0, "a sector beyond the image was erased", per)


u.main([test_300k_image_with_broken_layout])

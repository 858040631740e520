#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Device-reported errors become a message with the address and the DFU
status, the device is left usable (CLRSTATUS), and nothing is erased when
the device refuses an address. The errors are provoked with a layout that
lies about the hardware (given to the session instead of the device's)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import usb_helpers as u  # noqa: E402

u.reexec_under_vboard(__file__)

A = u.image(40 * 1024, 7)
B = u.image(40 * 1024, 8)
# claims one 64 KiB sector at 0x08008000; the chip has 16 KiB ones there, so
# erasing it leaves 0x0800C000.. programmed and writing there fails (errPROG)
BIG_SECTOR = "@Internal Flash  /0x08000000/02*016Kg,01*064Kg"
# claims flash beyond the chip's 1 MiB
TOO_BIG = "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,08*128Kg"


def test_prog_error_names_address_and_status(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    out = tool.flash(A)
    u.check(out["exit"] == 0, "first flash failed", out)
    out = tool.flash(B, u.APP, "--layout", BIG_SECTOR)
    u.check(out["exit"] == 1 and out["status"] == "EIO", "not -EIO", out)
    u.check("0x0800c000" in out["message"] and "errPROG" in out["message"],
            "message lacks the address or the status", out["message"])
    # the device was cleared and accepts the next flash
    out = tool.flash(B)
    u.check(out["exit"] == 0 and out["status"] == "done", "flash after the error failed", out)
    u.check(ctl.read(u.APP, len(B)) == B, "image not in the virtual flash")


def test_refused_address_erases_nothing(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    before = ctl.counters()
    out = tool.flash(u.image(4096, 9, 0x08100000), 0x08100000, "--layout", TOO_BIG)
    after = ctl.counters()
    u.check(out["exit"] == 1 and out["status"] == "EIO", "not -EIO", out)
    u.check("0x08100000" in out["message"] and "errTARGET" in out["message"], "message", out["message"])
    u.check(after["sector_erases"] == before["sector_erases"] and after["bytes_written"] == before["bytes_written"],
            "something was erased or written", (before, after))
    out = tool.flash(B)
    u.check(out["exit"] == 0 and out["stats"]["sectors_unchanged"] == 3, "device not usable afterwards", out)


def test_image_outside_layout_is_refused_before_erasing(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    before = ctl.counters()
    out = tool.flash(u.image(8192, 10), 0x080ff000)  # runs past the 1 MiB end
    after = ctl.counters()
    u.check(out["exit"] == 1 and out["status"] == "ERANGE", "not -ERANGE", out)
    u.check("nothing was erased" in out["message"], "message", out["message"])
    u.check(after["sector_erases"] == before["sector_erases"], "erased", (before, after))


u.main([test_prog_error_names_address_and_status, test_refused_address_erases_nothing,
        test_image_outside_layout_is_refused_before_erasing])

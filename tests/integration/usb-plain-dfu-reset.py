#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A plain DFU 1.1 device without bitWillDetach, not manifestation tolerant:
after the zero-length block it waits in dfuMANIFEST-WAIT-RESET for the host's
USB reset (DFU 1.1 A.2.8) and vanishes during it to come back as the
application: success pending re-enumeration. And with reset-on-leave, a
device that is gone before answering the GETSTATUS after the last block;
with dfu-silent-manifest, one that stalls GETSTATUS while manifesting and
still needs the reset."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plain_dfu_helpers as p  # noqa: E402
import usb_helpers as u  # noqa: E402

p.reexec(__file__, quirks=["dfu-no-detach"])


def test_waits_for_reset(ctx):
    # No leave asked: the download ends, and the device stays on the bus,
    # manifested, until someone resets it.
    ctl, tool = ctx["ctl"], ctx["tool"]
    img = p.image(9000, 21)
    out = tool.flash(img, p.APP, "--no-verify")
    u.check(out["exit"] == 0 and out["status"] == "done", "flash without leave", out)
    u.check(ctl.vb.board(u.BOARD)["mode"] == "dfu", "the device left without a reset")
    u.check(ctl.read(p.APP, len(img)) == img, "image not in the virtual flash")
    ctl.vb.reset(u.BOARD)
    ctl.wait("app", 5000)


def test_vanishes_on_reset(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    p.back_to_bootloader(ctl)
    img = p.image(12345, 22)
    before = ctl.counters()["erases_per_sector"]
    out = tool.flash(img, p.APP, "--leave")
    u.check(out["exit"] == 0, "reported as a failure", out)
    u.check(out["phases"] == ["write", "leave"], "phases", out["phases"])
    u.check(out["status"] == "left-device-gone", "not success pending re-enumeration", out)
    ctl.wait("app", 5000)
    p.check_flashed(ctl, img, before)


def flash_gone_with_quirk(ctx, quirk, img):
    """From the bootloader, with `quirk` on for this flash only: success
    pending re-enumeration, and the board back running the image."""
    ctl, tool = ctx["ctl"], ctx["tool"]
    p.back_to_bootloader(ctl)
    ctl.quirk(quirk)
    try:
        out = tool.flash(img, p.APP, "--leave")
        u.check(out["exit"] == 0, "reported as a failure", out)
        u.check(out["status"] == "left-device-gone", "not success pending re-enumeration", out)
        u.check("re-enumerat" in out["message"], "message does not say it re-enumerates", out["message"])
        ctl.wait("app", 3000)
        u.check(ctl.read(p.APP, len(img)) == img, "image not in the virtual flash")
    finally:
        ctl.quirk(quirk, False)


def test_reset_on_leave(ctx):
    flash_gone_with_quirk(ctx, "reset-on-leave", p.image(7000, 23))


def test_silent_manifestation_gets_reset(ctx):
    # DFU 1.1 A.2.7: a device may not answer GETSTATUS while manifesting.
    # A stalled GETSTATUS is a device still on the bus, waiting for its USB
    # reset, not one that is gone: the session must still reset it, or the
    # board stays in its bootloader for good.
    flash_gone_with_quirk(ctx, "dfu-silent-manifest", p.image(5000, 24))


u.main([test_waits_for_reset, test_vanishes_on_reset, test_reset_on_leave, test_silent_manifestation_gets_reset])

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A ROM that resets before answering the final GETSTATUS of leave: success
pending re-enumeration (DFU_FLASH_LEFT_DEVICE_GONE), and the board comes
back running the application."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import usb_helpers as u  # noqa: E402

u.reexec_under_vboard(__file__, quirks=["reset-on-leave"])

IMG = u.image(20000, 3)


def test_reset_on_leave_is_success(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    out = tool.flash(IMG, u.APP, "--leave")
    u.check(out["exit"] == 0, "reported as a failure", out)
    u.check(out["status"] == "left-device-gone", "not reported as gone-after-leave", out)
    u.check("re-enumerat" in out["message"], "message does not say it re-enumerates", out["message"])
    ctl.wait("app", 5000)
    u.check(ctl.read(u.APP, len(IMG)) == IMG, "image not in the virtual flash")


u.main([test_reset_on_leave_is_success])

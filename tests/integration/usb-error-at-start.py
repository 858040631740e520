#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The STM32 ROM starts in dfuERROR/errFIRMWARE: cleared silently (a note,
not an error), and the flash goes on."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import usb_helpers as u  # noqa: E402

u.reexec_under_vboard(__file__, quirks=["error-at-start"])

IMG = u.image(5000, 2)


def test_error_at_start_is_cleared(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    out = tool.flash(IMG)
    u.check(out["exit"] == 0 and out["status"] == "done", "flash failed", out)
    u.check(out["stats"]["cleared_error_at_start"], "dfuERROR at start not seen", out)
    u.check(any("dfuERROR" in n and "errFIRMWARE" in n for n in out["notes"]), "no note about it", out["notes"])
    u.check("fail" not in out["message"].lower(), "the summary sounds like a failure", out["message"])
    u.check(ctl.read(u.APP, len(IMG)) == IMG, "image not in the virtual flash")


u.main([test_error_at_start_is_cleared])

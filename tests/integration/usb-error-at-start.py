#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The state a session finds the device in:
- the STM32 ROM starts in dfuERROR/errFIRMWARE: cleared silently (a note,
  not an error), and the flash goes on;
- a session that ended mid-write (flashd killed after a DNLOAD, before the
  GETSTATUS) leaves dfuDNLOAD-SYNC, then dfuDNBUSY: the next session waits
  for the device at its bwPollTimeout instead of giving up."""

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


def test_busy_from_an_earlier_session(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    out = tool.run("interrupt", hex(u.APP))
    u.check(out["exit"] == 0, "could not leave the device mid-download", out)
    img = u.image(5000, 3)
    out = tool.flash(img)
    u.check(out["exit"] == 0 and out["status"] == "done", "flash after an interrupted session failed", out)
    u.check(any("busy" in n and "earlier session" in n for n in out["notes"]), "no note about the wait",
            out["notes"])
    u.check(ctl.read(u.APP, len(img)) == img, "image not in the virtual flash")


u.main([test_error_at_start_is_cleared, test_busy_from_an_earlier_session])

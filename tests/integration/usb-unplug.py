#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The cable is pulled after the 5th data block: -ENODEV with a message that
names the address and says a retry works; after the board is back, a retry
succeeds."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import usb_helpers as u  # noqa: E402

# replugged 300 ms later, back in its bootloader
u.reexec_under_vboard(__file__, quirks=["unplug=5,300"])

IMG = u.image(40 * 1024, 4)


def test_unplug_mid_write_then_retry(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    out = tool.flash(IMG)
    u.check(out["exit"] == 1 and out["status"] == "ENODEV", "not -ENODEV", out)
    m = re.search(r"0x0800[0-9a-f]{4}", out["message"])
    u.check(m and "writing" in out["message"], "message does not name the address being written", out["message"])
    u.check("retry" in out["message"] and "DFU mode" in out["message"], "message does not say what to do",
            out["message"])
    u.check(ctl.counters()["unplugs"] >= 1, "vboard did not unplug")
    ctl.wait("dfu", 5000)
    ctl.call(f"quirk {u.BOARD} -unplug")
    out = tool.flash(IMG)
    u.check(out["exit"] == 0 and out["status"] == "done", "retry failed", out)
    u.check(ctl.read(u.APP, len(IMG)) == IMG, "image not in the virtual flash after the retry")


u.main([test_unplug_mid_write_then_retry])

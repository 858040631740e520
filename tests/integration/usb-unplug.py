#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The cable is pulled after the 5th data block: -ENODEV with a message that
names the address and says a retry works. Plugged in again, the board boots
as its bootloader decides: the vector table is written last, so the flash
holds no plausible application and the board is back in DFU mode, where a
retry succeeds."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import usb_helpers as u  # noqa: E402

# stays unplugged until the test plugs it in again
u.reexec_under_vboard(__file__, quirks=["unplug=5"])

IMG = u.image(40 * 1024, 4)


def test_unplug_mid_write_then_retry(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    out = tool.flash(IMG)
    u.check(out["exit"] == 1 and out["status"] == "ENODEV", "not -ENODEV", out)
    m = re.search(r"0x0800[0-9a-f]{4}", out["message"])
    u.check(m and "writing" in out["message"], "message does not name the address being written", out["message"])
    u.check("retry" in out["message"] and "DFU mode" in out["message"], "message does not say what to do",
            out["message"])
    u.check("dfu-removed" in ctl.events(), "vboard did not unplug", ctl.events())
    ctl.quirk("unplug", False)
    u.check(ctl.read(u.APP, 8) == b"\xff" * 8, "the vector table was written before the rest",
            ctl.read(u.APP, 8).hex())
    # just the cable back in, no BOOT0: the board must come back in its bootloader
    ctl.vb.plug(u.BOARD)
    deadline = time.monotonic() + 5
    while ctl.vb.board(u.BOARD)["mode"] == "off" and time.monotonic() < deadline:
        time.sleep(0.02)
    u.check(ctl.vb.board(u.BOARD)["mode"] == "dfu", "the board did not come back in DFU mode",
            ctl.vb.board(u.BOARD))
    ctl.wait("dfu", 5000)
    before = ctl.counters()
    out = tool.flash(IMG)
    u.check(out["exit"] == 0 and out["status"] == "done", "retry failed", out)
    # the half-written first sector is erased and rewritten, the rest is blank
    u.check(ctl.counters()["sector_erases"] - before["sector_erases"] == 1, "retry did not erase the partial sector")
    u.check(ctl.read(u.APP, len(IMG)) == IMG, "image not in the virtual flash after the retry")


u.main([test_unplug_mid_write_then_retry])

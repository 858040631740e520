#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A manifestation-tolerant plain DFU 1.1 device (bitManifestationTolerant):
after the zero-length block it manifests and returns to dfuIDLE, so the
session verifies the download by UPLOAD from the start of the firmware, then
leaves with a USB reset; the device re-enumerates as the application (the
reset fails with "no device", which is success pending re-enumeration)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plain_dfu_helpers as p  # noqa: E402
import usb_helpers as u  # noqa: E402

p.reexec(__file__, quirks=["dfu-tolerant"])


def test_download_verify_leave(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    img = p.image(30000, 11)
    before = ctl.counters()
    out = tool.flash(img, p.APP, "--leave")
    u.check(out["exit"] == 0, "plain DFU flash failed", out)
    u.check(out["phases"] == ["write", "verify", "leave"], "phases", out["phases"])
    u.check(out["stats"]["bytes_verified"] == len(img), "not verified", out["stats"])
    u.check(out["status"] == "left-device-gone", "the USB reset should lose the device", out)
    u.check("re-enumerat" in out["message"], "message does not say it re-enumerates", out["message"])
    u.check("verified" in out["message"] and "sector" not in out["message"],
            "the summary should speak of bytes, not DfuSe sectors", out["message"])
    ctl.wait("app", 5000)
    c = p.check_flashed(ctl, img, before["erases_per_sector"])
    # the verify read exactly the image back (60 frames of 512, the last short)
    u.check(c["bytes_uploaded"] - before["bytes_uploaded"] == len(img), "verify read", c)


def test_download_stays_in_dfu(ctx):
    # Without --leave a tolerant device is back in dfuIDLE and stays on the bus.
    ctl, tool = ctx["ctl"], ctx["tool"]
    p.back_to_bootloader(ctl)
    img = p.image(2048, 12)
    out = tool.flash(img, p.APP)
    u.check(out["exit"] == 0 and out["status"] == "done", "flash without leave", out)
    u.check(out["stats"]["bytes_verified"] == len(img), "not verified", out["stats"])
    board = ctl.vb.board(u.BOARD)
    u.check(board["mode"] == "dfu", "the device left DFU mode on its own", board)
    u.check(ctl.read(p.APP, len(img)) == img, "image not in the virtual flash")
    # and it still answers: read it back through the session
    out = tool.run("read", "0", str(len(img)), os.path.join(ctx["tmp"], "back.bin"))
    with open(os.path.join(ctx["tmp"], "back.bin"), "rb") as f:
        u.check(out["exit"] == 0 and f.read() == img, "read back after the download", out)


u.main([test_download_verify_leave, test_download_stays_in_dfu])

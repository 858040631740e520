#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The DFU session against a plain DFU 1.1 bootloader (the virtual
Smoothieboard, as shipped: bitWillDetach, not manifestation tolerant):
sequential blocks from wBlockNum 0 to the application start, a zero-length
block to end, the device detaching itself after manifestation; reading the
firmware back by UPLOAD before any download."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plain_dfu_helpers as p  # noqa: E402
import usb_helpers as u  # noqa: E402

p.reexec(__file__)


def test_read_before_flash(ctx):
    # plain DFU UPLOAD: the firmware region from its start (erased at first)
    out = ctx["tool"].run("read", "0", "3000", os.path.join(ctx["tmp"], "read.bin"))
    u.check(out["exit"] == 0 and out["dfuse"] is False, "read failed or device seen as DfuSe", out)
    u.check(out["transfer_size"] == 512, "wTransferSize not taken from the descriptor", out)
    with open(os.path.join(ctx["tmp"], "read.bin"), "rb") as f:
        got = f.read()
    u.check(got == ctx["ctl"].read(p.APP, 3000), "UPLOAD did not return the firmware region")


def test_download_leave(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    img = p.image(40000, 1)  # 78 full blocks of 512 and a short one
    before = ctl.counters()["erases_per_sector"]
    out = tool.flash(img, p.APP, "--leave")
    u.check(out["exit"] == 0, "plain DFU flash failed", out)
    u.check(out["status"] in ("left", "left-device-gone"), "not reported as left", out)
    u.check(out["phases"][0] == "write" and "erase" not in out["phases"], "unexpected phases", out["phases"])
    u.check(out["stats"]["bytes_written"] == len(img), "bytes_written", out["stats"])
    # not manifestation tolerant: nothing can be read back after the end
    u.check(any("not verified" in n for n in out["notes"]), "no note that verify was impossible", out["notes"])
    board = ctl.wait("app", 5000)
    u.check(board["mode"] == "app", "board not back in application mode", board)
    p.check_flashed(ctl, img, before)
    ev = ctl.events()
    u.check("manifest" in ev, "no manifestation seen", ev)


def test_reflash_shorter_image(ctx):
    # From the bootloader again: the download starts over at block 0 and
    # erases only what it reaches.
    ctl, tool = ctx["ctl"], ctx["tool"]
    p.back_to_bootloader(ctl)
    img = p.image(5000, 2)
    before = ctl.counters()["erases_per_sector"]
    out = tool.flash(img, p.APP, "--leave")
    u.check(out["exit"] == 0, "second flash failed", out)
    ctl.wait("app", 5000)
    p.check_flashed(ctl, img, before)


u.main([test_read_before_flash, test_download_leave, test_reflash_shorter_image])

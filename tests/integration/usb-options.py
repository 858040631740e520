#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Request options: cancel between blocks (-ECANCELED, the next session
cleans up the leftover state), mass erase only on request, no verify,
no skip (every touched sector rewritten)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import usb_helpers as u  # noqa: E402
from vboard import BOOTLOADER_PATTERN  # noqa: E402

u.reexec_under_vboard(__file__)

A = u.image(40 * 1024, 40)
B = u.image(40 * 1024, 41)


def test_cancel_mid_write(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    out = tool.flash(A, u.APP, "--cancel-after", 8192)
    u.check(out["exit"] == 1 and out["status"] == "ECANCELED", "not -ECANCELED", out)
    # the vector table's sector (0x08008000) comes last: 8 KiB into the next one
    u.check("0x0800e000" in out["message"] and "DFU mode" in out["message"], "message", out["message"])
    u.check(out["stats"]["bytes_written"] == 8192, "did not stop between blocks", out["stats"])
    # the next session finds the device in dfuDNLOAD-IDLE, aborts it and flashes
    out = tool.flash(A)
    u.check(out["exit"] == 0, "flash after cancel failed", out)
    u.check(any("dfuDNLOAD-IDLE" in n for n in out["notes"]), "leftover state not noted", out["notes"])
    u.check(ctl.read(u.APP, len(A)) == A, "image not in flash")


def test_no_skip_rewrites_everything(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    before = ctl.counters()
    out = tool.flash(A, u.APP, "--no-skip", "--no-verify")
    after = ctl.counters()
    u.check(out["exit"] == 0 and "read-back" not in out["phases"] and "verify" not in out["phases"], "phases", out)
    u.check(after["sector_erases"] - before["sector_erases"] == 3, "not all touched sectors erased", (before, after))
    u.check(after["bytes_uploaded"] == before["bytes_uploaded"], "read although told not to", (before, after))
    u.check(ctl.read(u.APP, len(A)) == A, "image not in flash")


def test_mass_erase_only_on_request(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    u.check(ctl.counters()["mass_erases"] == 0, "mass erase without being asked")
    u.check(ctl.read(u.FLASH_BASE, 16) == BOOTLOADER_PATTERN, "bootloader missing before the test")
    out = tool.flash(B, u.APP, "--mass-erase")
    u.check(out["exit"] == 0 and out["stats"]["mass_erased"], "mass erase flash failed", out)
    u.check(ctl.counters()["mass_erases"] == 1, "no mass erase")
    u.check(ctl.read(u.APP, len(B)) == B, "image not in flash")
    # a mass erase takes the bootloader with it: that is why it is opt-in
    u.check(ctl.read(u.FLASH_BASE, 16) == b"\xff" * 16, "mass erase left the bootloader")


u.main([test_cancel_mid_write, test_no_skip_rewrites_everything, test_mass_erase_only_on_request])

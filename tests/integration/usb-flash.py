#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""DfuSe flashing on a virtual Octopus Pro F429 in DFU mode: flash + verify,
bootloader untouched, read helper, identical reflash erases and writes
nothing, a change near the end erases one sector, leave."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import usb_helpers as u  # noqa: E402

u.reexec_under_vboard(__file__)

SIZE = 40 * 1024  # sectors 0x08008000 (16K), 0x0800C000 (16K), 0x08010000 (64K)
IMG = u.image(SIZE, 1)
state = {}


def test_flash_and_verify(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    state["boot"] = ctl.read(u.FLASH_BASE, 0x8000)
    before = ctl.counters()
    out = tool.flash(IMG)
    u.check(out["exit"] == 0 and out["status"] == "done", "flash failed", out)
    u.check(out["dfuse"] and out["transfer_size"] == 2048, "not seen as DfuSe/2048", out)
    u.check("write" in out["phases"] and "verify" in out["phases"], "phases", out["phases"])
    u.check(out["stats"]["bytes_verified"] >= SIZE, "not verified", out["stats"])
    # the virtual flash, not the tool's word
    u.check(ctl.read(u.APP, SIZE) == IMG, "image not in the virtual flash")
    # the rest of the last touched sector is erased (what erase + write leaves)
    tail = ctl.read(u.APP + SIZE, 0x08020000 - (u.APP + SIZE))
    u.check(tail == b"\xff" * len(tail), "rest of the last sector not 0xFF")
    after = ctl.counters()
    u.check(after["program_errors"] == before["program_errors"], "programmed over non-erased bytes", after)


def test_bootloader_untouched(ctx):
    ctl = ctx["ctl"]
    u.check(ctl.read(u.FLASH_BASE, 0x8000) == state["boot"], "bootloader bytes changed")
    per = ctl.counters()["erases_per_sector"]
    u.check(per["0x08000000"] == 0 and per["0x08004000"] == 0, "bootloader sectors erased", per)


def test_read_helper(ctx):
    path = os.path.join(ctx["tmp"], "read.bin")
    out = ctx["tool"].run("read", hex(u.APP), SIZE, path)
    u.check(out["exit"] == 0 and out["result"] == SIZE, "read failed", out)
    with open(path, "rb") as f:
        u.check(f.read() == IMG, "read helper returned other bytes than the flash holds")
    # the whole 1 MiB flash, as benchmarks use it
    size = ctx["ctl"].vb.board(u.BOARD)["flash_size"]
    out = ctx["tool"].run("read", hex(u.FLASH_BASE), size, path)
    u.check(out["exit"] == 0 and out["result"] == size, "whole-flash read failed", out)
    with open(path, "rb") as f:
        u.check(f.read() == ctx["ctl"].read(u.FLASH_BASE, size), "whole-flash read differs from the flash")


def test_identical_reflash(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    before = ctl.counters()
    out = tool.flash(IMG)
    after = ctl.counters()
    u.check(out["exit"] == 0, "reflash failed", out)
    u.check(after["sector_erases"] == before["sector_erases"], "identical reflash erased", (before, after))
    u.check(after["bytes_written"] == before["bytes_written"], "identical reflash wrote", (before, after))
    u.check(out["stats"]["sectors_unchanged"] == 3, "sectors not seen as unchanged", out["stats"])
    u.check(ctl.read(u.APP, SIZE) == IMG, "flash changed")


def test_change_near_end(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    img2 = bytearray(IMG)
    img2[-16:] = bytes((b ^ 0xA5) for b in img2[-16:])
    img2 = bytes(img2)
    before = ctl.counters()
    out = tool.flash(img2)
    after = ctl.counters()
    u.check(out["exit"] == 0, "flash failed", out)
    # the changed sector, and the unchanged one holding the vector table:
    # erased first and written last, so an interrupted flash cannot boot
    u.check(after["sector_erases"] - before["sector_erases"] == 2, "not exactly two sectors erased", (before, after))
    per_b, per_a = before["erases_per_sector"], after["erases_per_sector"]
    u.check(per_a["0x08010000"] - per_b["0x08010000"] == 1, "the changed sector was not erased", per_a)
    u.check(per_a["0x08008000"] - per_b["0x08008000"] == 1, "the vector table's sector was not erased", per_a)
    u.check(after["bytes_written"] - before["bytes_written"] <= 8192 + 16384,
            "more than the last sector's data and the vector table's sector written",
            after["bytes_written"] - before["bytes_written"])
    u.check(ctl.read(u.APP, SIZE) == img2, "changed image not in flash")


def test_leave(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    out = tool.flash(IMG, u.APP, "--leave")
    # a ROM that answers the leave GETSTATUS (dfuMANIFEST) before it resets
    u.check(out["exit"] == 0 and out["status"] == "left", "leave failed", out)
    ctl.wait("app", 5000)
    u.check(ctl.read(u.APP, SIZE) == IMG, "image not in flash after leave")


u.main([test_flash_and_verify, test_bootloader_untouched, test_read_helper, test_identical_reflash,
        test_change_near_end, test_leave])

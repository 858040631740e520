#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Other flash geometries, each from the device's own layout and transfer
size: an STM32G0B1 (2 KiB pages, 8 KiB bootloader) and an STM32H723
(128 KiB sectors, 128 KiB bootloader), two boards on one hub flashed one
after the other."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import usb_helpers as u  # noqa: E402
from vboard import BOOTLOADER_PATTERN  # noqa: E402

u.reexec_under_vboard(__file__, boards=["manta-m8p-g0b1", "octopus-max-ez-h723"])


def flash_board(ctx, index):
    ctl = u.Control(str(index))
    entry = ctl.vb.board(index)
    tool = u.Tool(ctx["tmp"], entry["port"])
    app, base = entry["app_address"], entry["flash_base"]
    img = u.image(20 * 1024 + 100, 30 + index, app)  # not a multiple of any sector

    boot = ctl.read(base, app - base)
    u.check(boot.startswith(BOOTLOADER_PATTERN), "no bootloader pattern to protect", boot[:16])
    out = tool.flash(img, app)
    u.check(out["exit"] == 0 and out["status"] == "done", "flash failed", out)
    u.check(ctl.read(app, len(img)) == img, "image not in the virtual flash")
    u.check(ctl.read(base, app - base) == boot, "bootloader changed")

    before = ctl.counters()
    out = tool.flash(img, app)
    after = ctl.counters()
    u.check(out["exit"] == 0 and after["sector_erases"] == before["sector_erases"]
            and after["bytes_written"] == before["bytes_written"], "identical reflash did work", out)
    return out


def test_g0b1_pages(ctx):
    out = flash_board(ctx, 0)
    # 20 KiB + 100 bytes over 2 KiB pages
    u.check(out["stats"]["sectors_touched"] == 11, "page count", out["stats"])


def test_h723_sectors(ctx):
    out = flash_board(ctx, 1)
    u.check(out["stats"]["sectors_touched"] == 1, "sector count", out["stats"])


u.main([test_g0b1_pages, test_h723_sectors])

# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared by the usb-plain-dfu*.py tests: the virtual Smoothieboard, whose
bootloader is a plain DFU 1.1 device (Smoothieware's, 1d50:6015; no DfuSe),
and images it boots. Built on usb_helpers (vboard, usb-flash-tool)."""

import random

import usb_helpers as u

BOARD = "smoothieboard"
APP = 0x4000            # 16 KiB Smoothieware bootloader below the application
FLASH_SIZE = 512 * 1024
RAM_TOP = 0x10008000    # LPC1769 local SRAM 0x10000000, 32 KiB
SECTORS = [(i * 0x1000, 0x1000) for i in range(16)] + [(0x10000 + i * 0x8000, 0x8000) for i in range(14)]


def reexec(script, quirks=()):
    u.reexec_under_vboard(script, quirks=quirks, board=BOARD, mode="dfu")


def image(size, seed):
    """An application the bootloader would start: SP at the top of RAM, a
    Thumb reset vector inside the application."""
    body = random.Random(seed).randbytes(size - 8)
    return RAM_TOP.to_bytes(4, "little") + (APP + 0x201).to_bytes(4, "little") + body


def touched_sectors(address, length):
    return [a for a, n in SECTORS if a < address + length and address < a + n]


def check_flashed(ctl, img, erases_before=None):
    """The image at the application start, the bootloader untouched, and
    (when given the counters from before) exactly the covered sectors erased
    once each."""
    u.check(ctl.read(APP, len(img)) == img, "image not in the virtual flash")
    u.check(ctl.read(0, 16) == b"VBOARD-BOOTLOADR", "bootloader region changed")
    c = ctl.counters()
    per = c["erases_per_sector"]
    u.check(all(per[f"0x{a:08X}"] == 0 for a, _ in SECTORS if a < APP), "a bootloader sector was erased", per)
    if erases_before is not None:
        for a, _ in SECTORS:
            key = f"0x{a:08X}"
            want = erases_before[key] + (1 if a in touched_sectors(APP, len(img)) else 0)
            u.check(per[key] == want, f"sector {key} erased {per[key] - erases_before[key]} times", per)
    return c


def back_to_bootloader(ctl):
    """Play + Reset: the board starts its DFU bootloader again."""
    ctl.vb.boot0_reset(u.BOARD)
    return ctl.wait("dfu", 5000)

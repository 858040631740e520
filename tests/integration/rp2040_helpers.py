# SPDX-License-Identifier: LGPL-2.1-or-later
"""RP2040 images for the integration tests (stdlib only): a Klipper-like
image with a valid boot2 (CRC-32/MPEG-2 of bytes 0..251 at 252, RP2040
datasheet 2.8.1.3.1), the vector table at 0x10000100 and, optionally,
Klipper's zlib-compressed data dictionary naming the MCU; UF2 encoding."""

import json
import random
import struct
import zlib

FLASH_BASE = 0x10000000
SRAM_TOP = 0x20042000
UF2_FAMILY_RP2040 = 0xE48BFF56
UF2_FAMILY_RP2350_ARM_S = 0xE48BFF59


def crc32_mpeg2(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def image(size, seed, mcu="rp2040", bad_boot2=False):
    """`size` bytes for 0x10000000: boot2, vector table, random body, and
    a data dictionary naming `mcu` (None: no dictionary)."""
    rnd = random.Random(seed)
    boot2 = bytearray(rnd.randbytes(252))
    crc = crc32_mpeg2(boot2)
    if bad_boot2:
        crc ^= 1
    boot2 += struct.pack("<I", crc)
    vt = struct.pack("<II", SRAM_TOP, FLASH_BASE + 0x1C1) + rnd.randbytes(0xC0 - 8)
    out = bytes(boot2) + vt
    if mcu is not None:
        d = json.dumps({"app": "Klipper", "version": "v0.12.0-vboard", "config": {"MCU": mcu}}).encode()
        out += zlib.compress(d, 9)
    out += rnd.randbytes(size - len(out))
    return out


def uf2(data, address=FLASH_BASE, family=UF2_FAMILY_RP2040):
    """UF2 with 256-byte payloads (the last padded with 0xff)."""
    pages = [data[i:i + 256].ljust(256, b"\xff") for i in range(0, len(data), 256)]
    out = b""
    for n, p in enumerate(pages):
        out += struct.pack("<8I", 0x0A324655, 0x9E5D5157, 0x2000, address + 256 * n, 256, n, len(pages), family)
        out += p.ljust(476, b"\0") + struct.pack("<I", 0x0AB16F30)
    return out

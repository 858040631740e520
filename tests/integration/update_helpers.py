# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for the update-*.py tests: Klipper images whose embedded data
dictionary carries a chosen version and MCU (stdlib only)."""

import json
import random
import zlib

from jobs_helpers import APP, RAM_TOP


def dictionary(version, mcu, clock=180000000):
    d = {"app": "Klipper", "version": version, "build_versions": "gcc: test binutils: test",
         "config": {"MCU": mcu, "CLOCK_FREQ": clock}, "commands": {}, "responses": {}, "enumerations": {}}
    return zlib.compress(json.dumps(d).encode())


def klipper_image(version, mcu, size=16 * 1024, address=APP, ram_top=RAM_TOP, seed=7):
    """A plausible application for `address` (initial SP in RAM, Thumb reset
    vector inside) with the dictionary near the end."""
    rnd = random.Random(seed)
    body = bytearray(rnd.randbytes(size))
    body[0:4] = ram_top.to_bytes(4, "little")
    body[4:8] = (address + 0x201).to_bytes(4, "little")
    blob = dictionary(version, mcu)
    off = size - len(blob) - 64
    assert off > 64, "image too small for a dictionary"
    body[off:off + len(blob)] = blob
    return bytes(body)

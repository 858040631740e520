#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What flashctl tells a person, against the real flashd and virtual boards.
Run under vboard (meson does this):

    vboard --board skr-mini-e3-v3 --mode dfu --board octopus-pro-f446 --mode app \\
           -- python3 flashctl-output.py

- `info` on a G0 board in its ROM bootloader (256 pages of 2 KiB) prints a
  few ranges, the bootloader's pages marked, the flash size and the
  application start; on a board running Klipper the flash size and layout
  from the board database, and every candidate with its MCU and
  application start when the candidates differ.
"""
import os
import re
import subprocess

import harness

G0, F446 = "1-1.1", "1-1.2"


def flashctl(d, *args, check_rc=0):
    p = subprocess.run([harness.flashctl_binary(), "--socket", d.socket_path, *args],
                       env=dict(os.environ, NO_COLOR="1"), capture_output=True, text=True,
                       timeout=30 * float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1")))
    if check_rc is not None:
        assert p.returncode == check_rc, (args, p.returncode, p.stdout, p.stderr)
    return p


def wait_ready(c, port):
    def ready():
        d = harness.devices_by_port(c).get(port)
        return d if d and (d.get("probed") or d.get("tty")) else None
    return harness.wait_for(ready, what=f"device {port} ready")


def sector_rows(out):
    return [line.split() for line in out.splitlines()
            if re.fullmatch(r"\s*\d+(-\d+)?\s+0x[0-9a-f]{8}-0x[0-9a-f]{8}\s+.*", line)]


def test_info_g0_pages_in_ranges():
    with harness.Flashd() as d:
        c = d.client()
        dev = wait_ready(c, G0)
        out = flashctl(d, "info", G0).stdout
        assert sector_rows(out) == [
            ["0-3", "0x08000000-0x08001fff", "4", "x", "2", "KiB", "rew", "bootloader"],
            ["4-255", "0x08002000-0x0807ffff", "252", "x", "2", "KiB", "rew", "application"],
        ], out
        assert "Flash: 512 KiB at 0x08000000" in out, out
        assert "Application at: 0x08002000 (after a 8 KiB bootloader)" in out, out
        assert dev["flash_size"] == 512 * 1024 and dev["app_offset"] == 0x2000, dev
        assert "unknown" not in out and "n/a" not in out, out


def test_info_app_mode_flash_and_candidates():
    with harness.Flashd() as d:
        c = d.client()
        dev = wait_ready(c, F446)
        out = flashctl(d, "info", F446).stdout
        assert "Mode: app" in out and "Flash: 512 KiB at 0x08000000" in out, out
        assert "Layout: 4x16K 1x64K 3x128K (board database)" in out, out
        assert [r[0] for r in sector_rows(out)] == ["0-3", "4", "5-7"], out
        # an F446 running Klipper could be boards with different bootloaders:
        # each candidate with its MCU and application start
        cands = {(x["name"], x["variant"]): x for x in dev["board_candidates"]}
        assert len({x["app_address"] for x in cands.values()}) > 1, cands
        assert dev["app_offset"] is None, dev
        for (name, variant), x in cands.items():
            assert f"{name}/{variant} (stm32f446xx, application at 0x{x['app_address']:08x})" in out, out
        assert "unknown" not in out and "n/a" not in out, out


if __name__ == "__main__":
    harness.main([test_info_g0_pages_in_ranges, test_info_app_mode_flash_and_candidates])

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
- `rule add` says what it does at once to boards already present (flashing
  one, skipping one that holds the image, none matching); `rule list` shows
  the rule's name; `rule remove 1` takes the number `rule list` shows as
  rule-1.
"""
import os
import re
import subprocess

import harness
from jobs_helpers import FAST_CONFIG, app_image, tmpdir, wait_job, write_image

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


G0_APP = 0x08002000


def test_rule_add_tells_about_present_boards():
    image = write_image(tmpdir(), app_image(12 * 1024, G0_APP, seed=31, mcu="stm32g0b1xx"), "bench.bin")
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        wait_ready(c, G0)
        out = flashctl(d, "rule", "add", "--board", "skr-mini-e3-v3", "--image", image,
                       "--name", "bench").stdout
        assert "Rule rule-1 (bench) added: flash bench.bin" in out, out
        m = re.search(r"Board already present: 1-1.1 matches; flashing it now as job (\d+) "
                      r"\(flashctl job \d+ --follow\)\.", out)
        assert m, out
        job = wait_job(c, int(m.group(1)), timeout=60 * harness.DEFAULT_TIMEOUT / 10)
        assert job["state"] == "done", job
        rows = [line.split() for line in flashctl(d, "rule", "list").stdout.splitlines()]
        assert rows[0][:3] == ["ID", "NAME", "ENABLED"] and rows[1][:3] == ["rule-1", "bench", "yes"], rows
        out = flashctl(d, "rule", "remove", "1").stdout
        assert out.strip() == "Rule rule-1 (bench) removed.", out

        # the board runs the image now: a second rule for it in that mode
        # skips it, and says so
        harness.wait_for(lambda: (harness.devices_by_port(c).get(G0) or {}).get("tty"), what="G0 back in app")
        harness.wait_for(lambda: not c.call("job.list")["jobs"], what="no job busy with the board")
        out = flashctl(d, "rule", "add", "--board", "skr-mini-e3-v3", "--mode", "app", "--image", image).stdout
        assert "Rule rule-2 added" in out, out
        assert "Board already present: 1-1.1 matches; skipped: the board already holds image" in out, out
        # nothing present matches a rule for another board; a disabled rule says how it starts
        out = flashctl(d, "rule", "add", "--board", "octopus-pro", "--image", image).stdout
        assert "No board present now is flashed by it" in out, out
        out = flashctl(d, "rule", "add", "--port", "1-1.1", "--image", image, "--disabled").stdout
        assert "It is disabled: nothing is flashed until `flashctl rule enable rule-4`" in out, out
        assert flashctl(d, "rule", "remove", "rule-4").stdout.strip() == "Rule rule-4 removed."
        assert flashctl(d, "rule", "remove", "9", check_rc=None).returncode != 0


if __name__ == "__main__":
    harness.main([test_info_g0_pages_in_ranges, test_info_app_mode_flash_and_candidates,
                  test_rule_add_tells_about_present_boards])

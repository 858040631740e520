#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The PICOBOOT session against a virtual SKR Pico in BOOTSEL: .bin and UF2
land in the virtual flash and the board reboots into Klipper; an unchanged
reflash erases and writes nothing; the first sector is erased first and
written last; a stalled command is recovered by the interface reset; the
cable pulled mid-write leaves a board that comes back in BOOTSEL, where a
retry succeeds; an image beyond the flash is refused before any erase."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rp2040_helpers as rp  # noqa: E402
import usb_helpers as u  # noqa: E402

u.reexec_under_vboard(__file__, board="skr-pico", mode="bootsel")

BASE = rp.FLASH_BASE
scale = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))


def tool_exe():
    return os.path.join(u.build_root(), "tests", "integration", "picoboot-flash-tool")


class Tool(u.Tool):
    def run(self, *args):
        import json
        import subprocess
        p = subprocess.run([tool_exe(), "--port", self.port] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=120 * scale)
        try:
            out = json.loads(p.stdout)
        except ValueError:
            raise AssertionError(f"tool printed no JSON (exit {p.returncode}): {p.stdout!r} {p.stderr!r}")
        out["exit"] = p.returncode
        return out

    def flash_file(self, data, *opts):
        return self.run("flash", self.write(data), *opts)


def back_in(ctl, mode):
    return ctl.wait(mode, int(10000 * scale))


def to_bootsel(ctl):
    if ctl.vb.board(u.BOARD)["mode"] != "bootsel":
        ctl.vb.request("boot0-reset", u.BOARD)
        back_in(ctl, "bootsel")


def erase_events(ctl):
    return [e["detail"].split()[0] for e in ctl.vb.stats(u.BOARD)["events"] if e["event"] == "erase"]


def test_rom_version(ctx):
    out = ctx["tool"].run("rom-version")
    u.check(out["exit"] == 0 and out["rom_version"] == "B2", "ROM version", out)


def test_bin_then_klipper(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    img = rp.image(40 * 1024, 1)
    out = tool.flash_file(img)
    u.check(out["exit"] == 0 and out["status"] == "rebooted", "flash failed", out)
    u.check(out["phases"] == ["read-back", "erase", "write", "verify", "leave"], "phases", out["phases"])
    back_in(ctl, "app")
    u.check(ctl.read(BASE, len(img)) == img, "image not in the virtual flash")
    # the first sector out first and in last: its erase comes before the others
    ev = erase_events(ctl)
    u.check(ev[0] == "0x10000000" and len(ev) == 10, "erase order", ev)


def test_unchanged_writes_nothing(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    to_bootsel(ctl)
    img = ctl.read(BASE, 40 * 1024)
    before = ctl.counters()
    out = tool.flash_file(img)
    u.check(out["exit"] == 0 and out["stats"]["sectors_unchanged"] == 10, "reflash", out)
    after = ctl.counters()
    u.check(after["sector_erases"] == before["sector_erases"] and after["bytes_written"] == before["bytes_written"],
            "an unchanged reflash erased or wrote", (before, after))
    back_in(ctl, "app")


def test_one_sector_changed(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    to_bootsel(ctl)
    img = bytearray(ctl.read(BASE, 40 * 1024))
    img[5 * 4096 + 17] ^= 0xFF
    before = ctl.counters()
    n_ev = len(erase_events(ctl))
    out = tool.flash_file(bytes(img))
    u.check(out["exit"] == 0, "flash", out)
    ev = erase_events(ctl)[n_ev:]
    # the changed sector, and the first sector around it
    u.check(ev == ["0x10000000", "0x10005000"], "erases", ev)
    u.check(ctl.counters()["bytes_written"] - before["bytes_written"] == 8192, "bytes written")
    back_in(ctl, "app")
    u.check(ctl.read(BASE, len(img)) == bytes(img), "image not in the virtual flash")


def test_uf2(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    to_bootsel(ctl)
    img = rp.image(20 * 1024 + 100, 2)
    out = tool.flash_file(rp.uf2(img))
    u.check(out["exit"] == 0 and out["status"] == "rebooted", "UF2 flash failed", out)
    back_in(ctl, "app")
    u.check(ctl.read(BASE, len(img)) == img, "UF2 image not in the virtual flash")


def test_stall_recovered(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    to_bootsel(ctl)
    ctl.quirk("picoboot-stall=2")
    img = rp.image(24 * 1024, 3)
    before = ctl.counters()
    out = tool.flash_file(img)
    ctl.quirk("picoboot-stall", False)
    u.check(out["exit"] == 0 and out["stats"]["stalls_recovered"] == 1, "stall not recovered", out)
    after = ctl.counters()
    u.check(after["picoboot_resets"] - before["picoboot_resets"] >= 2, "no interface reset", after)
    u.check(after["picoboot_status_requests"] > before["picoboot_status_requests"], "status not asked", after)
    back_in(ctl, "app")
    u.check(ctl.read(BASE, len(img)) == img, "image not in the virtual flash after the stall")


def test_unplug_then_retry(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    to_bootsel(ctl)
    ctl.quirk("unplug=3")
    img = rp.image(32 * 1024, 4)
    out = tool.flash_file(img)
    u.check(out["exit"] == 1 and out["status"] == "ENODEV", "not -ENODEV", out)
    u.check("BOOTSEL" in out["message"] and "retry" in out["message"], "message", out["message"])
    ctl.quirk("unplug", False)
    u.check(ctl.read(BASE, 256) == b"\xff" * 256, "boot2 was written before the rest")
    ctl.vb.plug(u.BOARD)
    deadline = time.monotonic() + 5 * scale
    while ctl.vb.board(u.BOARD)["mode"] == "off" and time.monotonic() < deadline:
        time.sleep(0.02)
    u.check(ctl.vb.board(u.BOARD)["mode"] == "bootsel", "the board did not come back in BOOTSEL",
            ctl.vb.board(u.BOARD))
    back_in(ctl, "bootsel")
    out = tool.flash_file(img)
    u.check(out["exit"] == 0, "retry failed", out)
    back_in(ctl, "app")
    u.check(ctl.read(BASE, len(img)) == img, "image not in the virtual flash after the retry")


def test_too_big_refused(ctx):
    ctl, tool = ctx["ctl"], ctx["tool"]
    to_bootsel(ctl)
    before = ctl.counters()
    out = tool.flash_file(b"\x00" * 8192, hex(BASE + 2 * 1024 * 1024 - 4096))
    u.check(out["exit"] == 1 and out["status"] == "ERANGE", "not refused", out)
    u.check(ctl.counters()["sector_erases"] == before["sector_erases"], "erased before refusing")


def main(tests):
    import tempfile
    import traceback
    failed = 0
    with tempfile.TemporaryDirectory(prefix="flashd-rp2040-") as tmp:
        ctx = {"ctl": u.Control(), "tool": Tool(tmp), "tmp": tmp}
        for t in tests:
            try:
                t(ctx)
                print(f"ok - {t.__name__}")
            except Exception:
                failed += 1
                print(f"FAIL - {t.__name__}")
                traceback.print_exc()
    sys.exit(1 if failed else 0)


main([test_rom_version, test_bin_then_klipper, test_unchanged_writes_nothing, test_one_sector_changed, test_uf2,
      test_stall_recovered, test_unplug_then_retry, test_too_big_refused])

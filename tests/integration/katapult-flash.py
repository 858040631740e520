# SPDX-License-Identifier: LGPL-2.1-or-later
"""Katapult over the virtual boards, driven by katapult-flash-tool.

A virtual Octopus Pro F446 with Katapult runs Klipper. The tool reboots it
with the 1200-baud request (or the UART request block), flashes through
the Katapult tty, and the board comes back as Klipper on the same port
path. The flashed bytes are read back through vboard's control socket, not
taken from the tool's word.
"""

import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "vboard"))
from vboard import VBoard  # noqa: E402  (tests/vboard/vboard.py)

BOARD_NAME = "octopus-pro-f446"
MCU = "stm32f446xx"
APP = 0x08008000
BOOT = 0x08000000
RAM_TOP = 0x20020000  # F446: 128 KiB at 0x20000000


SKIP = 77


def build_root():
    return os.environ.get("FLASHD_BUILD_ROOT") or os.path.join(os.path.dirname(os.path.dirname(HERE)), "build")


def tool_exe():
    return os.path.join(build_root(), "tests", "integration", "katapult-flash-tool")


def vboard_exe():
    return os.environ.get("VBOARD") or os.path.join(build_root(), "tests", "vboard", "vboard")


def check(cond, what, detail=None):
    if not cond:
        raise AssertionError(what + (f": {detail}" if detail is not None else ""))


def app_image(size, seed):
    """A plausible Klipper-like image: vector table for APP, then noise."""
    body = random.Random(seed).randbytes(size - 8)
    return struct.pack("<II", RAM_TOP, APP + 0x1c1) + body


class Control:
    """vboard's control socket for board 0."""

    def __init__(self):
        self.vb = VBoard()

    def call(self, *words):
        return self.vb.request(*words)

    def read(self, address, length):
        out = b""
        while len(out) < length:  # at most 64 KiB per request
            n = min(64 * 1024, length - len(out))
            out += self.vb.read(0, address + len(out), n)
        return out

    def wait(self, mode, timeout_ms=5000):
        return self.vb.wait(0, mode, timeout_ms)

    def board(self):
        return self.vb.board(0)

    def events(self):
        return self.vb.events(0)


class KTool:
    def __init__(self, tmpdir):
        self.tmpdir = tmpdir
        self.n = 0

    def run(self, *args):
        p = subprocess.run([tool_exe()] + [str(a) for a in args], capture_output=True, text=True, timeout=60)
        try:
            out = json.loads(p.stdout)
        except ValueError:
            raise AssertionError(f"tool printed no JSON (exit {p.returncode}): {p.stdout!r} {p.stderr!r}")
        out["exit"] = p.returncode
        return out

    def flash(self, tty, data, *opts):
        self.n += 1
        path = os.path.join(self.tmpdir, f"klipper-{self.n}.bin")
        with open(path, "wb") as f:
            f.write(data)
        return self.run("flash", tty, path, *opts)


def board(ctl):
    return ctl.board()


def enter_katapult(ctx, how="usb"):
    ctl, tool = ctx["ctl"], ctx["ktool"]
    b = board(ctl)
    if b["mode"] == "app":
        out = tool.run("request-usb" if how == "usb" else "request-uart", b["tty"])
        check(out["exit"] == 0, f"request-{how}", out)
    b = ctl.wait("katapult", 5000)
    check(b["port"] == ctx["port"], "same port path in Katapult", b)
    check("usb-katapult_" + MCU in b["by_id"], "Katapult's by-id link names katapult and the MCU", b)
    return b


def flash_and_return(ctx, data, *opts):
    ctl, tool = ctx["ctl"], ctx["ktool"]
    b = enter_katapult(ctx)
    out = tool.flash(b["tty"], data, "--mcu", MCU, "--address", hex(APP), *opts)
    check(out["exit"] == 0 and out["result"] in (1, 2), "flash succeeded", out)
    check(out["phases"] == ["write", "verify", "leave"], "phases", out["phases"])
    check(out["stats"]["blocks_verified"] == out["stats"]["blocks_written"], "every block verified", out)
    back = ctl.wait("app", 5000)
    check(back["port"] == ctx["port"], "Klipper back on the same port path", back)
    check("usb-Klipper_" + MCU in back["by_id"], "Klipper's by-id link is back", back)
    got = ctl.read(APP, len(data))
    check(got == data, "the virtual flash holds the image")
    check(ctl.read(BOOT, APP - BOOT) == ctx["bootloader"], "the bootloader region is untouched")
    return out


def test_klipper_katapult_klipper(ctx):
    out = flash_and_return(ctx, app_image(24 * 1024 + 13, 1))
    check(out["info"]["start_address"] == APP and out["info"]["mcu"] == MCU, "CONNECT info", out["info"])
    check(out["stats"]["resends"] == 0, "no resends on a clean line", out["stats"])
    # The padding of the last block is 0xFF, nothing beyond it changed.
    tail = ctx["ctl"].read(APP + 24 * 1024 + 13, 64 - 13)
    check(tail == b"\xff" * (64 - 13), "last block padded with 0xFF", tail.hex())


def test_quirks_recovered(ctx):
    ctl = ctx["ctl"]
    for i, quirk in enumerate(["katapult-corrupt", "katapult-nack", "katapult-busy", "katapult-slow"]):
        check(board(ctl)["mode"] == "app", "starts from Klipper")
        ctl.call("quirk", 0, quirk)
        try:
            t0 = time.monotonic()
            out = flash_and_return(ctx, app_image(2 * 1024 + 100 * i, 10 + i), "--quick-retries")
            if quirk != "katapult-slow":
                check(out["stats"]["resends"] > 0, f"{quirk}: frames were sent again", out["stats"])
            else:
                check(time.monotonic() - t0 > 0.02 * 2 * 32, "slow device was slow", time.monotonic() - t0)
            if quirk == "katapult-busy":
                check(out["stats"]["busies"] > 0, "BUSY seen", out["stats"])
        finally:
            ctl.call("unquirk", 0, quirk)


def test_refused_before_any_write(ctx):
    ctl, tool = ctx["ctl"], ctx["ktool"]
    before = ctl.read(APP, 16 * 1024)
    b = enter_katapult(ctx)
    img = app_image(16 * 1024, 99)
    out = tool.flash(b["tty"], img, "--mcu", "stm32f429xx", "--address", hex(APP))
    check(out["exit"] == 1 and out["error"] == "EMEDIUMTYPE", "wrong MCU refused", out)
    check("stm32f429xx" in out["message"] and MCU in out["message"], "message names both MCUs", out["message"])
    check(out["stats"]["blocks_written"] == 0, "no block written", out["stats"])
    out = tool.flash(b["tty"], img, "--mcu", MCU, "--address", "0x08000000")
    check(out["exit"] == 1 and out["error"] == "EADDRNOTAVAIL", "wrong address refused", out)
    check("0x08008000" in out["message"], "message names the right address", out["message"])
    check(ctl.read(APP, len(before)) == before, "flash unchanged after the refusals")
    check(board(ctl)["mode"] == "katapult", "still in Katapult")


def test_unplug_mid_transfer_then_retry(ctx):
    ctl, tool = ctx["ctl"], ctx["ktool"]
    b = enter_katapult(ctx)
    img = app_image(8 * 1024, 7)
    ctl.call("quirk", 0, "unplug=40")  # off the bus after the 40th block, stays off
    try:
        out = tool.flash(b["tty"], img, "--mcu", MCU, "--address", hex(APP), "--quick-retries")
    finally:
        ctl.call("unquirk", 0, "unplug")
    check(out["exit"] == 1 and out["error"] == "ENODEV", "unplug fails clearly", out)
    check("disappeared" in out["message"] and "block at 0x" in out["message"], "message says what happened",
          out["message"])
    check(out["stats"]["blocks_written"] == 39, "the 40th block went unanswered", out["stats"])
    # Plug it back in: it boots the half-written application or Katapult; retry.
    ctl.vb.plug(0)
    deadline = time.monotonic() + 5
    while board(ctl)["mode"] == "off" and time.monotonic() < deadline:
        time.sleep(0.05)
    check(board(ctl)["mode"] in ("app", "katapult"), "board back after the replug", board(ctl))
    flash_and_return(ctx, img)


def test_uart_request_block(ctx):
    ctl = ctx["ctl"]
    check(board(ctl)["mode"] == "app", "starts from Klipper")
    enter_katapult(ctx, how="uart")
    flash_and_return(ctx, app_image(4096, 5))


def test_tty_holder(ctx):
    ctl, tool = ctx["ctl"], ctx["ktool"]
    tty = board(ctl)["tty"]
    out = tool.run("holder", tty)
    check(out["exit"] == 0 and out["result"] == 0, "nobody holds the tty", out)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys,time; f=open(sys.argv[1],'rb',buffering=0); print('open', flush=True); "
                               "time.sleep(30)", tty], stdout=subprocess.PIPE, text=True)
    try:
        check(holder.stdout.readline().strip() == "open", "holder opened the tty")
        out = tool.run("holder", tty)
        check(out["result"] == 1 and out["pid"] == holder.pid, "the holder is found", out)
        check(f"pid {holder.pid}" in out["message"], "message names the pid", out["message"])
    finally:
        holder.kill()
        holder.wait()


def reexec_under_vboard():
    """Run this script under vboard with one Katapult board running Klipper."""
    if os.environ.get("VBOARD_CONTROL"):
        return
    exe = vboard_exe()
    if not os.access(exe, os.X_OK) or not os.access(tool_exe(), os.X_OK):
        print(f"SKIP: {exe} or {tool_exe()} not built", file=sys.stderr)
        sys.exit(SKIP)
    cmd = [exe, "--board", BOARD_NAME, "--mode", "app", "--bootloader", "katapult", "--timing", "fast",
           "--", sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
    sys.exit(subprocess.run(cmd, timeout=120).returncode)


def main():
    reexec_under_vboard()
    tests = [test_klipper_katapult_klipper, test_quirks_recovered, test_uart_request_block, test_tty_holder,
             test_refused_before_any_write, test_unplug_mid_transfer_then_retry]
    only = sys.argv[1:]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="flashd-katapult-") as tmp:
        ctl = Control()
        b = ctl.board()
        check(b["mode"] == "app" and b["bootloader"] == "katapult", "a Katapult board running Klipper", b)
        ctx = {"ctl": ctl, "ktool": KTool(tmp), "tmp": tmp, "port": b["port"],
               "bootloader": ctl.read(BOOT, APP - BOOT)}
        for t in tests:
            if only and t.__name__ not in only:
                continue
            t0 = time.monotonic()
            try:
                t(ctx)
                print(f"ok - {t.__name__} ({time.monotonic() - t0:.2f} s)")
            except Exception:
                failed += 1
                print(f"FAIL - {t.__name__}")
                traceback.print_exc()
                print("vboard events:", ctl.events()[-30:])
        # Power the board down so its mode's state is released before vboard
        # exits (vboard leaks a tty mode's state left attached at exit).
        ctl.vb.unplug(0)
        ctl.wait("off", 5000)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for the usb-*.py integration tests (stdlib only).

Each test script re-executes itself under the virtual boards:

    vboard --board octopus-pro-f429 --mode dfu --timing fast [--quirk Q] -- python3 usb-x.py

and then drives build/tests/integration/usb-flash-tool against the board at
port 1-1.1. Flash content and counters are read through vboard's control
socket (VBOARD_CONTROL), never taken from the tool's word.
"""

import json
import os
import random
import subprocess
import sys
import tempfile
import traceback

PORT = "1-1.1"
BOARD = "0"  # first board; vboard accepts an index, a port or a name
FLASH_BASE = 0x08000000
APP = 0x08008000  # Octopus Pro: 32 KiB bootloader
SKIP = 77

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vboard"))


def build_root():
    return os.environ.get("FLASHD_BUILD_ROOT") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build")


def vboard_exe():
    return os.environ.get("VBOARD") or os.path.join(build_root(), "tests", "vboard", "vboard")


def tool_exe():
    return os.path.join(build_root(), "tests", "integration", "usb-flash-tool")


def reexec_under_vboard(script, quirks=(), board="octopus-pro-f429", mode="dfu", timing="fast", boards=None):
    """Run `script` under vboard unless already there; returns only inside.
    `boards` (a list of names, all in `mode`) replaces `board` for several."""
    if os.environ.get("VBOARD_CONTROL"):
        return
    exe = vboard_exe()
    if not os.access(exe, os.X_OK):
        print(f"SKIP: {exe} not built", file=sys.stderr)
        sys.exit(SKIP)
    cmd = [exe]
    for b in boards or [board]:
        cmd += ["--board", b, "--mode", mode]
        for q in quirks:
            cmd += ["--quirk", q]
    cmd += ["--timing", timing]
    cmd += ["--", sys.executable, os.path.abspath(script)] + sys.argv[1:]
    sys.exit(subprocess.run(cmd, timeout=120).returncode)


class Control:
    """vboard's control socket (tests/vboard/vboard.py) bound to our board."""

    def __init__(self, board=BOARD):
        from vboard import VBoard
        self.vb = VBoard()
        self.board = board

    def read(self, address, length):
        out = b""
        while len(out) < length:  # vboard answers at most 64 KiB per read
            n = min(64 * 1024, length - len(out))
            out += self.vb.read(self.board, address + len(out), n)
        return out

    def counters(self):
        return self.vb.stats(self.board)["counters"]

    def events(self):
        return self.vb.events(self.board)

    def wait(self, mode, timeout_ms=5000):
        return self.vb.wait(self.board, mode, timeout_ms)

    def quirk(self, q, on=True):
        (self.vb.quirk if on else self.vb.unquirk)(self.board, q)


def image(size, seed, address=APP):
    """A pseudo-random image a bootloader would start (initial SP in RAM,
    reset vector inside it), so the board boots it after leave."""
    body = random.Random(seed).randbytes(size - 8)
    return (0x20020000).to_bytes(4, "little") + (address + 0x201).to_bytes(4, "little") + body


class Tool:
    def __init__(self, tmpdir, port=PORT):
        self.tmpdir = tmpdir
        self.port = port
        self.n = 0

    def write(self, data):
        self.n += 1
        path = os.path.join(self.tmpdir, f"image-{self.port}-{self.n}.bin")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def run(self, *args):
        p = subprocess.run([tool_exe(), "--port", self.port] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=60)
        try:
            out = json.loads(p.stdout)
        except ValueError:
            raise AssertionError(f"tool printed no JSON (exit {p.returncode}): {p.stdout!r} {p.stderr!r}")
        out["exit"] = p.returncode
        return out

    def flash(self, data, address=APP, *opts):
        return self.run("flash", self.write(data), hex(address), *opts)


def check(cond, what, detail=None):
    if not cond:
        raise AssertionError(what + (f": {detail}" if detail is not None else ""))


def main(tests):
    failed = 0
    with tempfile.TemporaryDirectory(prefix="flashd-usb-") as tmp:
        ctx = {"ctl": Control(), "tool": Tool(tmp), "tmp": tmp}
        for t in tests:
            try:
                t(ctx)
                print(f"ok - {t.__name__}")
            except Exception:
                failed += 1
                print(f"FAIL - {t.__name__}")
                traceback.print_exc()
    sys.exit(1 if failed else 0)

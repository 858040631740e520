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
import socket
import subprocess
import sys
import tempfile
import traceback

PORT = "1-1.1"
BOARD = "0"  # first board; vboard accepts an index, a port or a name
FLASH_BASE = 0x08000000
APP = 0x08008000  # Octopus Pro: 32 KiB bootloader
SKIP = 77


def build_root():
    return os.environ.get("FLASHD_BUILD_ROOT") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build")


def vboard_exe():
    return os.environ.get("VBOARD") or os.path.join(build_root(), "tests", "vboard", "vboard")


def tool_exe():
    return os.path.join(build_root(), "tests", "integration", "usb-flash-tool")


def reexec_under_vboard(script, quirks=(), board="octopus-pro-f429", mode="dfu", timing="fast"):
    """Run `script` under vboard unless already there; returns only inside."""
    if os.environ.get("VBOARD_CONTROL"):
        return
    exe = vboard_exe()
    if not os.access(exe, os.X_OK):
        print(f"SKIP: {exe} not built", file=sys.stderr)
        sys.exit(SKIP)
    cmd = [exe, "--board", board, "--mode", mode, "--timing", timing]
    for q in quirks:
        cmd += ["--quirk", q]
    cmd += ["--", sys.executable, os.path.abspath(script)] + sys.argv[1:]
    sys.exit(subprocess.run(cmd, timeout=120).returncode)


class Control:
    """vboard's line protocol on VBOARD_CONTROL: one request line, one JSON line."""

    def __init__(self, path=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(20)
        self.sock.connect(path or os.environ["VBOARD_CONTROL"])
        self.buf = b""

    def call(self, line):
        self.sock.sendall(line.encode() + b"\n")
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"vboard closed the control socket after {line!r}")
            self.buf += chunk
        reply, self.buf = self.buf.split(b"\n", 1)
        obj = json.loads(reply)
        if not obj.get("ok"):
            raise RuntimeError(f"vboard: {line!r} -> {obj}")
        return obj

    def read(self, address, length):
        out = b""
        while len(out) < length:  # keep each reply a reasonable size
            n = min(64 * 1024, length - len(out))
            out += bytes.fromhex(self.call(f"read {BOARD} {address + len(out):#x} {n}")["hex"])
        return out

    def counters(self):
        return self.call(f"stats {BOARD}")["counters"]

    def wait(self, mode, timeout_ms=5000):
        return self.call(f"wait {BOARD} {mode} {timeout_ms}")


def image(size, seed):
    rnd = random.Random(seed)
    return rnd.randbytes(size)


class Tool:
    def __init__(self, tmpdir):
        self.tmpdir = tmpdir
        self.n = 0

    def write(self, data):
        self.n += 1
        path = os.path.join(self.tmpdir, f"image-{self.n}.bin")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def run(self, *args):
        p = subprocess.run([tool_exe(), "--port", PORT] + [str(a) for a in args],
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

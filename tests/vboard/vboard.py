# SPDX-License-Identifier: LGPL-2.1-or-later
"""Client for vboard's control socket (stdlib only).

Inside `vboard ... -- python3 test.py` the socket path is in $VBOARD_CONTROL:

    from vboard import VBoard
    vb = VBoard()
    board = vb.list()[0]
    vb.boot0_reset(0)
    vb.wait(0, "dfu", 5000)
    assert vb.read(0, 0x08000000, 16) == b"VBOARD-BOOTLOADR"

BOARD arguments are an index, a port path ("1-1.1") or a unique board name.
A request the vboard refuses raises VBoardError.
"""

import json
import os
import socket

__all__ = ["VBoard", "VBoardError", "BOOTLOADER_PATTERN"]

# What vboard fills the bootloader region below the application offset with.
BOOTLOADER_PATTERN = b"VBOARD-BOOTLOADR"


class VBoardError(Exception):
    pass


class VBoard:
    def __init__(self, path=None, timeout=30.0):
        self.path = path or os.environ["VBOARD_CONTROL"]
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(self.path)
        self.file = self.sock.makefile("r", encoding="utf-8")

    def close(self):
        self.file.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, *words):
        """Send one request line, return the decoded JSON answer."""
        line = " ".join(_quote(str(w)) for w in words) + "\n"
        self.sock.sendall(line.encode())
        answer = self.file.readline()
        if not answer:
            raise VBoardError("vboard closed the control connection")
        reply = json.loads(answer)
        if not reply.get("ok"):
            raise VBoardError(reply.get("error", "request failed"))
        return reply

    def list(self):
        return self.request("list")["boards"]

    def board(self, b):
        """The `list` entry of one board."""
        for entry in self.list():
            if str(b) in (str(entry["index"]), entry["port"], entry["name"]):
                return entry
        raise VBoardError("no such board: %s" % b)

    def unplug(self, b):
        self.request("unplug", b)

    def plug(self, b):
        self.request("plug", b)

    def boot0_reset(self, b):
        self.request("boot0-reset", b)

    def reset(self, b):
        self.request("reset", b)

    def power_cycle(self, b):
        self.request("power-cycle", b)

    def quirk(self, b, q):
        self.request("quirk", b, q)

    def unquirk(self, b, q):
        self.request("unquirk", b, q)

    def read(self, b, addr, n):
        return bytes.fromhex(self.request("read", b, hex(addr), n)["hex"])

    def dump(self, b, file, addr=None, n=None):
        if addr is None:
            self.request("dump", b, file)
        else:
            self.request("dump", b, file, hex(addr), n)

    def stats(self, b):
        reply = self.request("stats", b)
        return {"counters": reply["counters"], "events": reply["events"]}

    def events(self, b):
        return [e["event"] for e in self.stats(b)["events"]]

    def wait(self, b, mode, timeout_ms=5000):
        """Block until the board is in `mode` (app, dfu, katapult, off);
        returns its `list` entry, raises VBoardError on timeout."""
        return self.request("wait", b, mode, int(timeout_ms))["board"]


def _quote(word):
    if word and all(c.isalnum() or c in "-_.,=/:@+" for c in word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def klipper_reboot_request(tty):
    """Klipper's documented USB reboot request (scripts/flash_usb.py):
    open the tty, set DTR, set 1200 baud, clear DTR, close."""
    import fcntl
    import struct
    import termios

    with open(tty, "rb") as f:
        fd = f.fileno()
        fcntl.ioctl(fd, termios.TIOCMBIS, struct.pack("I", termios.TIOCM_DTR))
        t = termios.tcgetattr(fd)
        t[4] = t[5] = termios.B1200
        termios.tcsetattr(fd, termios.TCSANOW, t)
        fcntl.ioctl(fd, termios.TIOCMBIC, struct.pack("I", termios.TIOCM_DTR))


def plausible_app(size, ram_top=0x20020000, app=0x08008000, seed=1):
    """An image a bootloader would start: initial SP at the top of RAM, an
    odd reset vector inside the application, then pseudo-random bytes."""
    import random

    rng = random.Random(seed)
    body = bytes(rng.getrandbits(8) for _ in range(size - 8))
    return ram_top.to_bytes(4, "little") + (app + 0x201).to_bytes(4, "little") + body


def run(*cmd, timeout=30):
    """Run a command (dfu-util ...) in the world; returns (exit status,
    stdout+stderr as text)."""
    import subprocess

    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace")


def dfu_util_download(image, *args, timeout=60):
    """Write `image` to a temporary file and run `dfu-util ARGS... -D file`;
    prints and returns (exit status, output)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "image.bin")
        with open(path, "wb") as f:
            f.write(image)
        rc, out = run("dfu-util", *args, "-D", path, timeout=timeout)
    print(out)
    return rc, out

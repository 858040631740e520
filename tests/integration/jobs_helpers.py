# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for the jobs-*.py integration tests (stdlib only).

Each test runs under the virtual boards (meson starts `vboard ... -- python3
jobs-x.py`), starts the real flashd with short job timeouts, drives it with
the real flashctl (or raw RPC), and checks the result in the virtual flash
through vboard's control socket, never by the daemon's word.
"""

import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import zlib

import harness

sys.path.insert(0, os.path.join(harness.source_root(), "tests", "vboard"))
from vboard import BOOTLOADER_PATTERN, VBoard, VBoardError  # noqa: E402,F401

APP = 0x08008000  # Octopus Pro: 32 KiB bootloader
FLASH_BASE = 0x08000000
RAM_TOP = 0x20020000

# Short waits so every test takes seconds: the board's hint after 1 s, and
# nobody waits minutes for a board that never comes.
FAST_CONFIG = "reboot_wait_sec = 1\nbootloader_timeout_sec = 20\napp_timeout_sec = 10\n"

# flashctl flash exit status (flashctl.1)
EXIT_OK, EXIT_DAEMON, EXIT_REFUSED, EXIT_FAILED, EXIT_CANCELLED, EXIT_TIMEOUT = 0, 1, 5, 6, 7, 8


def require_vboard():
    if not os.environ.get("VBOARD_CONTROL"):
        raise harness.Skip("not running under vboard (VBOARD_CONTROL unset)")


def klipper_dictionary(mcu):
    """Klipper's data dictionary as build/buildcommands.py embeds it: zlib-compressed JSON."""
    d = {"app": "Klipper", "version": "v0.12.0-test", "config": {"MCU": mcu, "CLOCK_FREQ": 180000000},
         "commands": {}, "responses": {}, "enumerations": {}}
    return zlib.compress(json.dumps(d).encode())


def app_image(size, address=APP, seed=1, mcu=None):
    """A plausible application for `address`: initial SP in RAM, a Thumb reset
    vector inside the image, pseudo-random bytes, and (with mcu) Klipper's
    dictionary near the end."""
    rnd = random.Random(seed)
    body = bytearray(rnd.randbytes(size))
    body[0:4] = RAM_TOP.to_bytes(4, "little")
    body[4:8] = (address + 0x201).to_bytes(4, "little")
    if mcu:
        blob = klipper_dictionary(mcu)
        off = size - len(blob) - 64
        assert off > 64, "image too small for a dictionary"
        body[off:off + len(blob)] = blob
    return bytes(body)


class Boards:
    """vboard's control socket with chunked reads."""

    def __init__(self):
        require_vboard()
        self.vb = VBoard()

    def list(self):
        return self.vb.list()

    def board(self, b):
        return self.vb.board(b)

    def read(self, b, address, length):
        out = b""
        while len(out) < length:
            n = min(60000, length - len(out))
            out += self.vb.read(b, address + len(out), n)
        return out

    def counters(self, b):
        return self.vb.stats(b)["counters"]

    def erases(self, b):
        return self.counters(b)["sector_erases"]

    def __getattr__(self, name):
        return getattr(self.vb, name)


def write_image(tmpdir, data, name="klipper.bin"):
    path = os.path.join(tmpdir, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def flashctl(d, *args, timeout=60):
    env = dict(os.environ, NO_COLOR="1", FLASHD_SOCKET=d.socket_path)
    return subprocess.run([harness.flashctl_binary(), "--socket", d.socket_path, *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def flash_rpc(c, target, data, wait=False, timeout=60, **params):
    """job.flash with the image as base64 `data`; returns the job object."""
    p = {"target": target, "image": {"data": base64.b64encode(data).decode()}, "wait": wait}
    p.update(params)
    return c.call("job.flash", p, timeout=timeout)["job"]


def wait_job(c, job_id, states=("done", "failed", "cancelled"), timeout=30):
    """Follow notify_job_update until job `job_id` is in one of `states`;
    returns the job object from job.get (with its log)."""
    deadline = time.monotonic() + timeout
    while True:
        j = c.call("job.get", {"job": job_id})["job"]
        if j["state"] in states:
            return j
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"job {job_id} still {j['state']} after {timeout}s: {j.get('message')}")
        try:
            c.wait_notification("notify_job_update", lambda p: p[0]["id"] == job_id and p[0]["state"] in states,
                                timeout=min(left, 1.0))
        except TimeoutError:
            pass


def check(cond, what, detail=None):
    if not cond:
        raise AssertionError(what + (f": {detail}" if detail is not None else ""))


def check_job_done(job):
    check(job["state"] == "done", f"job {job['id']} ended {job['state']}",
          json.dumps({"error": job.get("error"), "log": job.get("log")}, indent=1))


def tmpdir():
    return tempfile.mkdtemp(prefix="flashd-jobs-")


def job_history(d):
    """Every job flashd knows, oldest first (flashctl --json jobs --all)."""
    return json.loads(flashctl(d, "--json", "jobs", "--all").stdout)

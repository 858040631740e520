#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""flashctl's error paths and exit codes, against a tiny fake server.

The fake server speaks just enough ETX-framed JSON-RPC to make flashctl hit
each error path (daemon error, ambiguous device, no answer, connection
closed, garbage) and to check that notifications interleaved with replies
reach `watch`. The acceptance tests against the real flashd are
flashctl-vboard.py; this file never stands in for them.

usage: flashctl-errors.py PATH-TO-FLASHCTL
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

FLASHCTL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get("FLASHD_BUILD_ROOT", "build"), "client", "flashctl")

F429 = {
    "id": "1-1.3",
    "mode": "dfu",
    "usb_id": "0483:df11",
    "manufacturer": "STMicroelectronics",
    "product": "STM32  BOOTLOADER",
    "serial": "356A37653131",
    "mcu": "stm32f429",
    "board": "octopus-pro",
    "board_variant": "f429",
    "board_candidates": ["octopus-pro"],
    "usb_devnode": "/dev/bus/usb/001/007",
    "busnum": 1,
    "devnum": 7,
    "layout": [{
        "name": "Internal Flash",
        "address": 0x08000000,
        "sectors": [
            {"count": 4, "size": 16384, "flags": 7},
            {"count": 1, "size": 65536, "flags": 7},
            {"count": 7, "size": 131072, "flags": 7},
        ],
    }],
    "alt_settings": [{"alt": 0, "name": "Internal Flash", "truncated": True,
                      "diagnostic": "dropped 7 characters after the last segment"}],
    "transfer_size": 2048,
    "diagnostics": ["layout string repaired: trailing garbage dropped"],
    "hints": ["the F429 may ignore the 1200-baud reboot: set BOOT0 and press reset"],
    "future_field": "shown too",
}

failures = 0



def watchdog(proc, seconds):
    """Kill proc after `seconds` unless it is gone by then (a hung watch
    must fail the test, not hang it)."""
    t = threading.Timer(seconds, proc.kill)
    t.daemon = True
    t.start()
    return t

def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}", file=sys.stderr)


class FakeServer:
    """Accepts connections; `handler(method, params)` returns one of
    ("result", value), ("error", code, message, data), ("silent",),
    ("close",), ("raw", bytes), each optionally preceded by notifications
    in self.before_reply."""

    def __init__(self, path, handler):
        self.path = path
        self.handler = handler
        self.before_reply = []  # raw notifications sent before the next reply
        self.after_identify = []  # notifications sent after identify's reply
        self.methods = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.conns = []
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    @staticmethod
    def frame(obj):
        return json.dumps(obj).encode() + b"\x03"

    def serve(self, c):
        buf = b""
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                while b"\x03" in buf:
                    msg, buf = buf.split(b"\x03", 1)
                    req = json.loads(msg)
                    self.methods.append(req["method"])
                    for n in self.before_reply:
                        c.sendall(self.frame(n))
                    reply = self.handler(req["method"], req.get("params"))
                    kind = reply[0]
                    if kind == "result":
                        c.sendall(self.frame({"jsonrpc": "2.0", "id": req["id"], "result": reply[1]}))
                    elif kind == "error":
                        err = {"code": reply[1], "message": reply[2]}
                        if len(reply) > 3:
                            err["data"] = reply[3]
                        c.sendall(self.frame({"jsonrpc": "2.0", "id": req["id"], "error": err}))
                    elif kind == "close":
                        c.close()
                        return
                    elif kind == "raw":
                        c.sendall(reply[1])
                    elif kind == "silent":
                        pass
                    if req["method"] == "server.connection.identify":
                        for n in self.after_identify:
                            c.sendall(self.frame(n))
        except OSError:
            return

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                # shutdown, not just close: a thread blocked in recv() keeps
                # a closed socket open
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass


def run(args, env=None, timeout=10):
    e = dict(os.environ)
    e.pop("FLASHD_SOCKET", None)
    e["NO_COLOR"] = "1"
    e.update(env or {})
    start = time.monotonic()
    p = subprocess.run([FLASHCTL] + args, capture_output=True, text=True, env=e, timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - start


def base_handler(extra=None):
    def h(method, params):
        if method == "server.connection.identify":
            check(params.get("client_name") == "flashctl" and params.get("type") == "other",
                  f"identify params {params}")
            return ("result", {"connection_id": 1})
        if extra:
            r = extra(method, params)
            if r:
                return r
        if method == "device.list":
            return ("result", [F429])
        if method == "device.info":
            if params.get("device") == "1-1.3":
                return ("result", F429)
            return ("error", -32004, f"no device '{params.get('device')}'", {"name": "device_not_found"})
        if method == "board.info":
            return ("error", -32006, f"no board '{params.get('board')}'", {"name": "board_not_found"})
        return ("error", -32601, "method not found")
    return h


def main():
    tmp = tempfile.mkdtemp(prefix="flashctl-errors-")
    sock = os.path.join(tmp, "flashd.sock")

    # --- usage errors: exit 2, before any connection
    for args in (["frob"], ["info"], ["info", "a", "b"], ["--timeout", "x", "list"], ["list", "--bogus"],
                 ["list", "extra"], []):
        rc, out, err, _ = run(["--socket", sock] + args)
        check(rc == 2, f"usage {args}: rc {rc}, stderr {err!r}")
    rc, out, _, _ = run(["--help"])
    check(rc == 0 and "list" in out and "watch" in out, "flashctl --help")
    for args in (["help", "list"], ["list", "--help"], ["info", "-h"]):
        rc, out, _, _ = run(args)
        check(rc == 0 and f"flashctl [OPTIONS...] {args[0] if args[0] != 'help' else args[1]}" in out,
              f"help {args}: {out!r}")
    rc, out, _, _ = run(["--version"])
    check(rc == 0 and out.startswith("flashctl "), "--version")

    # --- no daemon: exit 3 with the message, for every command
    for args in (["list"], ["info", "1-1.3"], ["watch"], ["status"]):
        rc, out, err, _ = run(["--socket", sock] + args)
        check(rc == 3, f"no daemon {args}: rc {rc}")
        check(f"cannot connect to {sock}: No such file or directory" in err and "is flashd running?" in err
              and "systemctl start flashd.socket" in err, f"no daemon message: {err!r}")
    # the environment variable names the socket too
    rc, _, err, _ = run(["list"], env={"FLASHD_SOCKET": sock})
    check(rc == 3 and sock in err, f"FLASHD_SOCKET: {err!r}")
    # a stale socket file with nobody listening
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale_path = os.path.join(tmp, "stale.sock")
    stale.bind(stale_path)
    stale.close()
    rc, _, err, _ = run(["--socket", stale_path, "list"])
    check(rc == 3 and "Connection refused" in err, f"stale socket: rc {rc} {err!r}")

    # --- a fake daemon
    srv = FakeServer(sock, base_handler())
    rc, out, err, _ = run(["--socket", sock, "--json", "list"])
    check(rc == 0, f"list --json rc {rc} {err!r}")
    check(json.loads(out) == [F429], "list --json prints the daemon's objects unchanged")
    rc, out, err, _ = run(["list", "--json"], env={"FLASHD_SOCKET": sock})
    check(rc == 0 and json.loads(out) == [F429], "global option after the command")
    rc, out, err, _ = run(["--socket", sock, "list"])
    lines = out.splitlines()
    check(rc == 0 and lines[0].split() == ["PORT", "MODE", "BOARD", "MCU", "DEVICE", "JOB", "LAYOUT"],
          f"list header: {out!r}")
    check(any(l.split()[:5] == ["1-1.3", "dfu", "octopus-pro", "stm32f429", "/dev/bus/usb/001/007"]
              and l.endswith("4x16K 1x64K 7x128K") for l in lines), f"list row: {out!r}")
    check("1 device listed." in out, "list footer")
    rc, out, _, _ = run(["--socket", sock, "--no-legend", "list", "--mode", "app"])
    check(rc == 0 and out.strip() == "", f"list --mode app is empty: {out!r}")
    rc, out, _, _ = run(["--socket", sock, "--json", "list", "--mode", "dfu"])
    check(rc == 0 and json.loads(out) == [F429], "list --mode dfu")

    rc, out, err, _ = run(["--socket", sock, "info", "1-1.3"])
    check(rc == 0, f"info rc {rc} {err!r}")
    for want in ("Port: 1-1.3", "USB id: 0483:df11", "Board: octopus-pro", "Layout: 4x16K 1x64K 7x128K",
                 "0x08000000-0x0800ffff", "0x08010000-0x0801ffff", "0x08020000-0x080fffff", "Total: 1 MiB",
                 "Transfer size: 2 KiB", "(repaired)", "trailing garbage dropped", "set BOOT0",
                 "Future field: shown too", "Bus/device: 001/007"):
        check(want in out, f"info shows {want!r}")
    sector_lines = [l for l in out.splitlines() if l.strip().endswith("rew") and "0x080" in l]
    # equal neighbours share a row: 4x16K, 1x64K, 7x128K
    check(len(sector_lines) == 3, f"info lists 3 sector ranges, got {len(sector_lines)}")
    rc, out, _, _ = run(["--socket", sock, "--json", "info", "1-1.3"])
    check(rc == 0 and json.loads(out) == F429, "info --json")
    # neither a device nor a board: exit 1 and the daemon's words
    rc, out, err, _ = run(["--socket", sock, "info", "nope"])
    check(rc == 1 and "no device 'nope'" in err and "no board 'nope'" in err, f"info nope: rc {rc} {err!r}")
    check(srv.methods[-2:] == ["device.info", "board.info"], f"info asks device, then board: {srv.methods}")
    srv.close()

    # --- ambiguous: the candidates are printed
    os.unlink(sock)
    srv = FakeServer(sock, base_handler(lambda m, p: ("error", -32005, "2 devices match 'octopus'",
                                                      {"name": "device_ambiguous",
                                                       "candidates": ["1-1.3", "1-1.4"]})
                                        if m == "device.info" else None))
    rc, out, err, _ = run(["--socket", sock, "info", "octopus"])
    check(rc == 1 and "2 devices match" in err and "1-1.3" in err and "1-1.4" in err,
          f"ambiguous: rc {rc} {err!r}")
    srv.close()

    # --- a daemon that never answers: exit 4 within the timeout
    os.unlink(sock)
    srv = FakeServer(sock, base_handler(lambda m, p: ("silent",) if m == "device.list" else None))
    rc, out, err, took = run(["--socket", sock, "--timeout", "0.3", "list"])
    check(rc == 4 and "did not answer within" in err, f"timeout: rc {rc} {err!r}")
    check(took < 3, f"timeout took {took:.1f} s")
    srv.close()

    # --- a daemon that hangs up, one that sends garbage, one with a bad reply
    for reply, words in ((("close",), "closed the connection"),
                         (("raw", b"this is not json\x03"), "not valid JSON-RPC"),
                         (("raw", b'{"jsonrpc":"2.0","id":2}\x03'), "not valid JSON-RPC")):
        os.unlink(sock)
        srv = FakeServer(sock, base_handler(lambda m, p, r=reply: r if m == "device.list" else None))
        rc, out, err, _ = run(["--socket", sock, "list"])
        check(rc == 4 and words in err, f"{reply}: rc {rc} {err!r}")
        srv.close()

    # --- a daemon error on any method: exit 1, message passed through
    os.unlink(sock)
    srv = FakeServer(sock, base_handler(lambda m, p: ("error", -32002, "permission denied: not in group flashd",
                                                      {"name": "permission_denied", "hint": "add yourself"})
                                        if m == "server.info" else None))
    rc, out, err, _ = run(["--socket", sock, "status"])
    check(rc == 1 and "permission denied: not in group flashd" in err and "Hint: add yourself" in err,
          f"status error: {err!r}")
    srv.close()

    # --- watch: notifications before a reply are queued, after it streamed;
    # SIGINT ends it with 0
    os.unlink(sock)
    srv = FakeServer(sock, base_handler())
    early = {"jsonrpc": "2.0", "method": "notify_device_added", "params": [F429]}
    srv.before_reply = [early]
    gone = {"jsonrpc": "2.0", "method": "notify_device_removed", "params": [{"id": "1-1.3", "mode": "dfu"}]}
    srv.after_identify = [gone]
    env = dict(os.environ, NO_COLOR="1")
    p = subprocess.Popen([FLASHCTL, "--socket", sock, "--json", "watch"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    # a watch that never prints must not hang the test: kill it after 10 s
    # (readline then sees EOF and the checks fail)
    watchdog(p, 10)
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        got.append(json.loads(line))
    check([g["method"] for g in got] == ["notify_device_added", "notify_device_removed"],
          f"watch --json events: {got}")
    check(all("time" in g and g["time"].endswith("Z") for g in got), "watch --json has times")
    check(got and got[0]["params"] == [F429], "watch --json passes params unchanged")
    p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = -1
    check(rc == 0, f"watch exits 0 on SIGINT, got {rc}")

    # human-readable watch, and the daemon going away ends it with 4
    p = subprocess.Popen([FLASHCTL, "--socket", sock, "watch"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    watchdog(p, 10)
    line1 = p.stdout.readline()
    line2 = p.stdout.readline()
    check(line1.split()[1:5] == ["added", "1-1.3", "dfu", "octopus-pro"], f"watch line {line1!r}")
    check(line2.split()[1:4] == ["removed", "1-1.3", "dfu"], f"watch line {line2!r}")
    srv.close()
    try:
        rc = p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = -1
    check(rc == 4, f"watch ends with 4 when the daemon goes away, got {rc}")

    if failures:
        print(f"{failures} check(s) failed", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""flashd under hostile clients: peak RSS, the longest main-loop stall,
whether the watchdog would have fired, and the latency other clients see
for device.list, while one client sends a huge batch or eight clients hold
huge unfinished messages. Not part of `meson test` (the attacks are heavy
on the old code); run from the source tree after `ninja -C build`:

    python3 tests/bench/hostile.py                       # build/daemon/flashd
    python3 tests/bench/hostile.py --flashd OLD --flashd build/daemon/flashd \\
        --skip 'OLD:batch 8 MB'

Prints one markdown table row per (binary, attack).
"""
import argparse
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

MIB = 1024 * 1024
WATCHDOG_USEC = 2_000_000  # the daemon pings every 1 s; a 2 s gap is a miss


class TimedFlashd(harness.Flashd):
    """Flashd that keeps the arrival time of every WATCHDOG=1 ping."""

    def __init__(self, binary, **kw):
        super().__init__(env={"WATCHDOG_USEC": str(WATCHDOG_USEC)}, log_level="info", **kw)
        self.binary = binary
        self.pings = []

    def command(self):
        cmd = super().command()
        cmd[cmd.index(harness.flashd_binary())] = self.binary
        return cmd

    def _notify_reader(self):
        sock = self.notify_sock
        sock.settimeout(0.05)
        while True:
            try:
                data = sock.recv(4096)
            except socket.timeout:
                if self.notify_stop:
                    return
                continue
            except OSError:
                return
            text = data.decode(errors="replace")
            if "WATCHDOG=1" in text.split("\n"):
                self.pings.append(time.monotonic())
            with self.notify_cond:
                self.notify_messages.append(text)
                self.notify_cond.notify_all()


class Prober:
    def __init__(self, path):
        self.client = harness.RpcClient(path, timeout=600)
        self.lat = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            t = time.monotonic()
            try:
                self.client.call("device.list")
            except Exception:  # noqa: BLE001 - the daemon died: stop probing
                return
            self.lat.append(time.monotonic() - t)
            time.sleep(0.002)

    def finish(self):
        self.stop = True
        self.thread.join(600)
        self.client.close()
        lat = sorted(self.lat)
        if not lat:
            return float("nan"), float("nan"), 0
        return lat[min(len(lat) - 1, int(len(lat) * 0.99))], lat[-1], len(lat)


def hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def attack_batch(d, size):
    s = d.raw_socket()
    s.settimeout(600)
    n = size // 2
    s.sendall(b"[" + b"1," * (n - 1) + b"1]" + harness.ETX)
    # the first bytes of the answer: the daemon has dealt with it
    try:
        s.recv(1)
    except OSError:
        pass
    time.sleep(1.0)
    s.close()


def attack_unfinished(d, clients=8, size=40 * MIB):
    head = b'{"jsonrpc":"2.0","id":1,"method":"job.flash","params":{"target":"x","image":{"data":"'
    socks = []
    for _ in range(clients):
        s = d.raw_socket()
        s.settimeout(600)
        s.sendall(head)
        socks.append(s)
    chunk = b"A" * MIB
    for _ in range(size // MIB):
        for s in socks:
            s.sendall(chunk)
    time.sleep(3.0)
    for s in socks:
        s.close()


ATTACKS = {
    "batch 2 MB": lambda d: attack_batch(d, 2 * MIB),
    "batch 8 MB": lambda d: attack_batch(d, 8 * MIB),
    "8 clients x 40 MiB unfinished": attack_unfinished,
}


def run(binary, name):
    with TimedFlashd(binary) as d:
        time.sleep(2.5)  # a few watchdog pings before
        probe = Prober(d.socket_path)
        time.sleep(0.5)
        t0 = time.monotonic()
        ATTACKS[name](d)
        took = time.monotonic() - t0
        time.sleep(2.5)  # and after
        p99, worst, n = probe.finish()
        hwm = hwm_kib(d.proc.pid)
        alive = d.alive()
        pings = d.pings
    gap = max((b - a for a, b in zip(pings, pings[1:])), default=float("nan"))
    return {"rss_mib": hwm / 1024, "stall_s": worst, "p99_ms": p99 * 1000, "probes": n,
            "watchdog_gap_s": gap, "missed": gap * 1e6 > WATCHDOG_USEC, "attack_s": took, "alive": alive}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flashd", action="append", help="flashd binary (repeatable); default build/daemon/flashd")
    ap.add_argument("--skip", action="append", default=[], help="BINARY:ATTACK to leave out")
    ap.add_argument("--only", help="comma-separated attack names")
    args = ap.parse_args()
    binaries = args.flashd or [harness.flashd_binary()]
    names = args.only.split(",") if args.only else list(ATTACKS)
    print("| flashd | attack | peak RSS | longest device.list (main-loop stall) | device.list p99 | "
          "longest watchdog gap (limit 2 s) | attack took |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for b in binaries:
        for name in names:
            if f"{b}:{name}" in args.skip:
                continue
            r = run(b, name)
            print(f"| {b} | {name} | {r['rss_mib']:.0f} MiB | {r['stall_s'] * 1000:.0f} ms | "
                  f"{r['p99_ms']:.1f} ms | {r['watchdog_gap_s']:.2f} s{' **missed**' if r['missed'] else ''} | "
                  f"{r['attack_s']:.1f} s{'' if r['alive'] else ' (flashd died)'} |", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark (meson test --benchmark usb-bench): the DFU session against
dfu-util 0.11 on a virtual Octopus Pro F429 with datasheet timing
(--timing real). Each round flashes a fresh image over the previous one
with dfu-util (erase + write, no verify) and with the session (read-back,
erase, write, verify; and variants), interleaved, and prints medians and
the ratio to dfu-util. Fails only when a flash fails or the flash content
is wrong; timing on a shared machine is too noisy for a hard limit.

    SIZE=307200 ROUNDS=3 meson test -C build --benchmark usb-bench -v
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import usb_helpers as u  # noqa: E402

u.reexec_under_vboard(__file__, timing="real")

SIZE = int(os.environ.get("SIZE", 40 * 1024))
ROUNDS = int(os.environ.get("ROUNDS", 3))


def main():
    ctl = u.Control()
    tool = u.Tool(tempfile.mkdtemp(prefix="flashd-usb-bench-"))

    def dfu_util(path):
        p = subprocess.run(["dfu-util", "-p", u.PORT, "-a", "0", "-s", hex(u.APP), "-D", path],
                           capture_output=True, text=True, timeout=120)
        u.check(p.returncode == 0, "dfu-util failed", p.stdout + p.stderr)

    def session(*opts):
        def run(path):
            out = tool.run("flash", path, hex(u.APP), *opts)
            u.check(out["exit"] == 0, "flash failed", out)
        return run

    variants = {
        "dfu-util -D (erase+write)": dfu_util,
        "session default (read-back, verify)": session(),
        "session --no-verify": session("--no-verify"),
        "session --set-address-per-chunk": session("--set-address-per-chunk"),
    }
    times = {k: [] for k in variants}
    seed = 1000
    last = None
    for _ in range(ROUNDS):
        for name, run in variants.items():
            seed += 1
            img = u.image(SIZE, seed)
            path = tool.write(img)
            t = time.monotonic()
            run(path)
            times[name].append(time.monotonic() - t)
            u.check(ctl.read(u.APP, SIZE) == img, f"{name}: image not in the virtual flash")
            last = path
    same = []
    for _ in range(ROUNDS):
        t = time.monotonic()
        session()(last)
        same.append(time.monotonic() - t)
    times["session identical reflash"] = same

    base = statistics.median(times["dfu-util -D (erase+write)"])
    for name, v in times.items():
        m = statistics.median(v)
        print(f"{SIZE // 1024:5d} KiB  {name:38s} median {m:6.2f} s  ratio {m / base:4.2f}  "
              f"({', '.join(f'{x:.2f}' for x in v)})")


main()

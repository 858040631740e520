#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""flashd benchmarks: flashd against dfu-util and Klipper's make-flash steps
on virtual boards in real timing, the modelled floor, and the daemon's own
cost. Started by tests/bench/run (which builds what it needs); the
method and the latest results are in tests/bench/PERFORMANCE.md.

Every comparison runs both tools alternately (A B A B ...), each run in a
fresh vboard world started before the clock runs, so every run begins from
the same flash content; the flash is checked after every run. The result
is a markdown table on stdout and tests/bench/results/latest.json.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from jobs_helpers import app_image  # noqa: E402

KIB = 1024
FLASH_BASE = 0x08000000
APP = 0x08008000
BOARDS = {
    # name: (mcu, sectors from the board database's layout)
    "octopus-pro-f446": ("stm32f446xx", [16 * KIB] * 4 + [64 * KIB] + [128 * KIB] * 3),
    "octopus-pro-f429": ("stm32f429xx", [16 * KIB] * 4 + [64 * KIB] + [128 * KIB] * 7),
}
XFER = 2048  # wTransferSize of the F4 ROMs (vboard, notes/protocols.md)
SIZES = {"30K": 30 * KIB, "120K": 120 * KIB, "400K": 400 * KIB}
# Long cases run on faster-than-datasheet timing to fit the time budget.
SCALE = {"30K": 1.0, "120K": 0.5, "400K": 0.25}


# ---- the model's constants (read from tests/vboard/timing.c) ----------------

class Model:
    """vboard's real-timing model, parsed from timing.c so the floor follows
    any change there."""

    def __init__(self, path=os.path.join(ROOT, "tests", "vboard", "timing.c")):
        src = open(path).read()

        def body(fn):
            m = re.search(r"uint64_t %s\(.*?\n}\n" % fn, src, re.S)
            if not m:
                raise RuntimeError(f"{fn} not found in {path}")
            return m.group(0)

        self.erase_points = [(int(a), float(b)) for a, b in
                             re.findall(r"\{\s*(\d+),\s*(\d+)\s*\}", body("timing_sector_erase_us"))]
        self.us_per_word = float(re.search(r"scaled\(t, ([\d.]+) \* DIV_ROUND_UP\(bytes, 4\)\)",
                                           body("timing_program_us")).group(1))
        self.control_us = float(re.search(r"scaled\(t, (\d+)\)", body("timing_control_transfer_us")).group(1))
        self.reenum_us = float(re.search(r"scaled\(t, (\d+)\)", body("timing_reenumerate_us")).group(1))
        self.manifest_us = float(re.search(r"scaled\(t, (\d+)\)", body("timing_manifest_us")).group(1))

    def erase(self, size):
        pts = self.erase_points
        if size <= pts[0][0]:
            return pts[0][1]
        for (s0, u0), (s1, u1) in zip(pts, pts[1:]):
            if size <= s1:
                return u0 + (size - s0) / (s1 - s0) * (u1 - u0)
        return 1e6 * size / 131072

    def program(self, nbytes):
        return self.us_per_word * ((nbytes + 3) // 4)


def sectors_touched(board, address, size):
    """[(sector address, sector size, bytes of the image in it)]"""
    out = []
    a = FLASH_BASE
    for s in BOARDS[board][1]:
        lo, hi = max(a, address), min(a + s, address + size)
        if lo < hi:
            out.append((a, s, hi - lo))
        a += s
    return out


def floor_seconds(model, board, size, kind, verify, scale, end_to_end=False, old_size=0):
    """The modelled time no tool can avoid, in seconds.

    T = one control transfer (USB full-speed frame). A DfuSe command or data
    block costs DNLOAD (T) + the GETSTATUS that starts it (T, the work runs
    meanwhile) + the GETSTATUS that sees it finished (T): 2T + max(work, T).
      fresh:     GETSTATUS at start (T), SET_ADDRESS (3T), every touched
                 sector erased (2T + erase), every block written
                 (2T + program), leave = SET_ADDRESS (3T) + zero-length
                 DNLOAD (T) + GETSTATUS (T)
      verify:    + SET_ADDRESS (3T) + ABORT (T) + one UPLOAD (T) per block
                 written (reading back what was written)
      unchanged: reading the whole image is the only way to know
                 (SET_ADDRESS 3T + ABORT T + one UPLOAD per block), nothing
                 erased or written, leave
      near-end:  the whole image read (as unchanged), the last sector erased
                 and its blocks written (+ read back with verify), leave
      over:      a bigger image over a smaller build of `old_size` bytes: the
                 sectors the old build touched are erased; one it never
                 touched reads blank, which costs reading the whole sector
                 (SET_ADDRESS 3T + ABORT T + T per block: skipping the erase
                 must leave the same flash as erasing, gap included) or
                 erasing it, whichever is less; every block written
      end to end: + re-enumeration into the bootloader, the manifest delay
                 and re-enumeration back into the application
    """
    T = model.control_us
    secs = sectors_touched(board, APP, size)
    blocks = lambda n: (n + XFER - 1) // XFER  # noqa: E731
    us = T  # GETSTATUS at the start
    if kind == "fresh":
        changed = secs
    elif kind == "unchanged":
        changed = []
    elif kind == "near-end":
        changed = secs[-1:]
    elif kind == "over":
        changed = secs
    else:
        raise ValueError(kind)
    if kind in ("unchanged", "near-end"):
        us += 3 * T + T + blocks(size) * T  # read the whole image
    written_blocks = 0
    read_run = False
    for start, ssize, covered in changed:
        erase = 2 * T + max(model.erase(ssize), T)
        if kind == "over" and start >= APP + old_size and blocks(ssize) * T < erase:
            us += blocks(ssize) * T  # reads blank: no erase
            read_run = True
        else:
            us += erase
        written_blocks += blocks(covered)
    if read_run:
        us += 3 * T + T
    if written_blocks:
        us += 3 * T  # SET_ADDRESS of the write run
        for _, _, covered in changed:
            n = covered
            while n > 0:
                chunk = min(XFER, n)
                us += 2 * T + max(model.program(chunk), T)
                n -= chunk
        if verify:
            us += 3 * T + T + written_blocks * T
    us += 5 * T  # leave
    if end_to_end:
        us += model.reenum_us + model.manifest_us + model.reenum_us
    return us * scale / 1e6


def ceil_ms(us):
    """bwPollTimeout as vboard reports it: whole ms, at least 1 (timing.c)."""
    return max(1000.0, -(-us // 1000) * 1000)


def protocol_seconds(model, board, size, kind, tool, verify, scale, end_to_end=False):
    """What one tool's sequence of requests takes on the model with no host
    overhead at all: each transfer T, each GETSTATUS answer's bwPollTimeout
    slept in full after the answer (both tools honour it), the poll timeout
    in whole milliseconds (not scaled: 1 ms is the floor of the field).
      dfu-util: SET_ADDRESS before every block (dfu-util 0.11 dfuse_dnload_chunk)
      flashd:   read-back of each touched sector's first block (fresh) or of
                whole sectors (reflash), one SET_ADDRESS per contiguous run,
                verify by UPLOAD.
    Compared with the measurement it shows the emulation's own cost per
    request; compared between tools, what the request pattern itself costs."""
    T = model.control_us * scale
    secs = sectors_touched(board, APP, size)

    def command(work_us):  # DNLOAD, GETSTATUS (starts the work), sleep, GETSTATUS
        return 3 * T + ceil_ms(work_us * scale)

    blocks = lambda n: (n + XFER - 1) // XFER  # noqa: E731
    us = 2 * T  # GETSTATUS + (flashd) the state check
    if tool == "dfu-util":
        for _, ssize, covered in secs:
            us += command(model.erase(ssize))
        for _, _, covered in secs:
            n = covered
            while n > 0:
                chunk = min(XFER, n)
                us += command(0) + command(model.program(chunk))
                n -= chunk
    else:
        if kind == "fresh":
            changed = secs
            us += command(0) + T + len(secs) * T  # SET_ADDRESS, ABORT, one UPLOAD per sector
        else:
            changed = [] if kind == "unchanged" else secs[-1:]
            # whole sectors are read (their gaps must be 0xFF too); a changed
            # sector stops at its first differing block: here the last
            # one(s), so read whole as well
            us += command(0) + T + sum(blocks(ss) for _, ss, _ in secs) * T
        if changed:
            us += T  # ABORT before the first erase
        for _, ssize, covered in changed:
            us += command(model.erase(ssize))
        written = 0
        if changed:
            us += command(0)
            for _, _, covered in changed:
                n = covered
                while n > 0:
                    chunk = min(XFER, n)
                    us += command(model.program(chunk))
                    n -= chunk
                written += blocks(covered)
            if verify:
                us += command(0) + T + written * T
    us += command(0) + 2 * T  # leave: SET_ADDRESS, zero-length DNLOAD, GETSTATUS
    if end_to_end:
        us += (model.reenum_us + model.manifest_us + model.reenum_us) * scale
    return us / 1e6


# ---- running one measurement -------------------------------------------------

class Runner:
    def __init__(self, build, workdir, verbose=False):
        self.build = build
        self.vboard = os.path.join(build, "tests", "vboard", "vboard")
        self.workdir = workdir
        self.verbose = verbose
        self.n = 0

    def run(self, boards, spec, scale, flash=None, timeout=600):
        """One world: `boards` [(name, mode)], `flash` FILE preloaded at APP on
        every board; returns world.py's result dict."""
        self.n += 1
        spec_path = os.path.join(self.workdir, f"spec-{self.n}.json")
        out_path = os.path.join(self.workdir, f"out-{self.n}.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        cmd = [self.vboard]
        for name, mode, *extra in boards:
            cmd += ["--board", name, "--mode", mode]
            if extra:
                cmd += extra[0]
            if flash:
                cmd += ["--flash", f"{flash}@0x{APP:08x}"]
        cmd += ["--timing", "real", "--scale", str(scale), "--", sys.executable,
                os.path.join(HERE, "world.py"), spec_path, out_path]
        env = dict(os.environ, FLASHD_BUILD_ROOT=self.build, FLASHD_SOURCE_ROOT=ROOT)
        rpc_load = os.path.join(self.build, "rpc-load")
        if os.access(rpc_load, os.X_OK):
            env["FLASHD_BENCH_RPC_LOAD"] = rpc_load
        log_path = os.path.join(self.workdir, f"log-{self.n}.txt")
        with open(log_path, "wb") as log:
            p = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout)
        try:
            with open(out_path) as f:
                out = json.load(f)
        except (OSError, ValueError):
            out = {"ok": False, "error": f"vboard exit {p.returncode}, no result (log {log_path})"}
        if not out.get("ok"):
            out.setdefault("error", "failed")
            out["log"] = log_path
            sys.stderr.write(f"  run {self.n} FAILED: {out['error']} (log {log_path})\n")
        elif self.verbose:
            sys.stderr.write(f"  run {self.n} {spec['tool']}: {out.get('seconds', 0):.3f} s\n")
        return out


def ratio_stats(pairs):
    """pairs: [(a_seconds, b_seconds)] -> median/min/max of b/a."""
    r = [b / a for a, b in pairs]
    return {"median": statistics.median(r), "min": min(r), "max": max(r)}


def phase_medians(results):
    """Median time (s since the request) at which each job state / phase began."""
    keys = set()
    for o in results:
        keys |= set(o.get("states", {}))
    return {k: statistics.median(o["states"][k] for o in results if k in o.get("states", {})) for k in sorted(keys)}


def summarize(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


# ---- the cases -----------------------------------------------------------------

def make_images(workdir, board, size):
    mcu = BOARDS[board][0]
    new = app_image(size, APP, seed=1, mcu=mcu)
    old = app_image(size, APP, seed=2, mcu=mcu)
    near_end = bytearray(new)
    # a small change near the end: 16 bytes in the image's last 2 KiB
    for i in range(len(new) - 200, len(new) - 184):
        near_end[i] ^= 0x5A
    paths = {}
    for name, data in (("new", new), ("old", old), ("near-end", bytes(near_end))):
        p = os.path.join(workdir, f"{board}-{size}-{name}.bin")
        with open(p, "wb") as f:
            f.write(data)
        paths[name] = p
    return paths


def alternate(runner, rounds, variants, what):
    """variants: [(label, boards, spec, scale, preload)]; runs them in turn,
    `rounds` times. Returns {label: [result]} with only complete rounds'
    results kept in order (a failed run fails its round)."""
    results = {v[0]: [] for v in variants}
    failures = []
    for i in range(rounds):
        sys.stderr.write(f"{what}: round {i + 1}/{rounds}\n")
        got = []
        for label, boards, spec, scale, preload in variants:
            got.append((label, runner.run(boards, spec, scale, preload)))
        if all(o.get("ok") for _, o in got):
            for label, o in got:
                results[label].append(o)
        else:
            failures += [f"{label}: {o.get('error')}" for label, o in got if not o.get("ok")]
    return results, failures


def tool_spec(tool, board, image, start_mode, verify=True, **extra):
    s = {"tool": tool, "image": image, "address": APP, "flash_base": FLASH_BASE, "start_mode": start_mode,
         "verify": verify, "target": "octopus-pro"}
    if start_mode == "dfu":
        # flash phase: the clock stops when the tool has left DFU mode; the
        # flash is checked then, without waiting for the board to come back
        s.update({"until": "waiting-for-app", "wait_app": False})
    s.update(extra)
    return s


def case_flash_phase(runner, model, board, size_name, rounds, workdir):
    size = SIZES[size_name]
    scale = SCALE[size_name]
    img = make_images(workdir, board, size)
    boards = [(board, "dfu")]
    variants = [
        ("dfu-util", boards, tool_spec("dfu-util", board, img["new"], "dfu"), scale, img["old"]),
        ("flashd", boards, tool_spec("flashd", board, img["new"], "dfu", verify=True), scale, img["old"]),
        ("flashd-noverify", boards, tool_spec("flashd", board, img["new"], "dfu", verify=False), scale, img["old"]),
    ]
    res, failures = alternate(runner, rounds, variants, f"flash {board} {size_name}")
    rows = []
    base = [o["seconds"] for o in res["dfu-util"]]
    for label, verify, target, floor_target in (("flashd-noverify", False, 0.85, None), ("flashd", True, 0.85, 1.10)):
        mine = [o["seconds"] for o in res[label]]
        if not mine:
            continue
        fl = floor_seconds(model, board, size, "fresh", verify, scale)
        rows.append({
            "case": "flash phase, fresh image", "board": board, "size": size_name, "scale": scale,
            "flashd": "verify" if verify else "--no-verify", "baseline": "dfu-util",
            "flashd_s": summarize(mine), "baseline_s": summarize(base),
            "ratio": ratio_stats(list(zip(base, mine))), "target": target, "floor_target": floor_target,
            "floor_s": fl, "floor_ratio": statistics.median(mine) / fl, "pairs": len(mine),
            "baseline_floor_ratio": statistics.median(base) / floor_seconds(model, board, size, "fresh", False, scale),
            "counters": res[label][0]["counters"], "baseline_counters": res["dfu-util"][0]["counters"],
            "phases": phase_medians(res[label]),
            "cpu": cpu_stats(res[label], size), "baseline_cpu": cpu_stats(res["dfu-util"], size),
            "timeline": timeline(res[label]),
        })
    return rows, failures


def case_reflash(runner, model, board, size_name, kind, rounds, workdir):
    size = SIZES[size_name]
    scale = SCALE[size_name]
    img = make_images(workdir, board, size)
    boards = [(board, "dfu")]
    start = img["new"]
    new = img["new"] if kind == "unchanged" else img["near-end"]
    variants = [
        ("dfu-util", boards, tool_spec("dfu-util", board, new, "dfu"), scale, start),
        ("flashd", boards, tool_spec("flashd", board, new, "dfu", verify=True), scale, start),
    ]
    res, failures = alternate(runner, rounds, variants, f"reflash {kind} {board} {size_name}")
    base = [o["seconds"] for o in res["dfu-util"]]
    mine = [o["seconds"] for o in res["flashd"]]
    if not mine:
        return [], failures
    fl = floor_seconds(model, board, size, kind, True, scale)
    return [{
        "case": "reflash, unchanged image" if kind == "unchanged" else "reflash, small change near the end",
        "board": board, "size": size_name, "scale": scale, "flashd": "verify", "baseline": "dfu-util",
        "flashd_s": summarize(mine), "baseline_s": summarize(base), "ratio": ratio_stats(list(zip(base, mine))),
        "target": 0.2 if kind == "unchanged" else 0.5, "floor_s": fl,
        "floor_ratio": statistics.median(mine) / fl, "pairs": len(mine),
        "baseline_floor_ratio": statistics.median(base) / floor_seconds(model, board, size, "fresh", False, scale),
        "counters": res["flashd"][0]["counters"], "baseline_counters": res["dfu-util"][0]["counters"],
        "phases": phase_medians(res["flashd"]),
    }], failures


def case_end_to_end(runner, model, board, size_name, rounds, workdir, scale=1.0, over=None, kind="fresh"):
    """Klipper -> Klipper. `over`: the size name of the build the board holds
    before (default: a different build of the same size); kind "unchanged":
    the board already holds the image."""
    size = SIZES[size_name]
    img = make_images(workdir, board, size)
    old = img["old"]
    old_size = size
    if over:
        old_size = SIZES[over]
        old = make_images(workdir, board, old_size)["old"]
    if kind == "unchanged":
        old = img["new"]
    boards = [(board, "app")]
    variants = [
        ("make-flash", boards, tool_spec("make-flash", board, img["new"], "app"), scale, old),
        ("flashctl", boards, tool_spec("flashctl", board, img["new"], "app", verify=True, timeline=True), scale,
         old),
    ]
    what = f"end to end {board} {size_name}" + (f" over {over}" if over else "") + \
        (" (the image it holds)" if kind == "unchanged" else "")
    res, failures = alternate(runner, rounds, variants, what)
    base = [o["seconds"] for o in res["make-flash"]]
    mine = [o["seconds"] for o in res["flashctl"]]
    if not mine:
        return [], failures
    fkind = "over" if over else kind
    fl = floor_seconds(model, board, size, fkind, True, scale, end_to_end=True, old_size=old_size)
    case = "end to end, app -> app" + (f", over a {over} build" if over else "") + \
        (", the image the board holds" if kind == "unchanged" else "")
    target, floor_target = (0.3, None) if kind == "unchanged" else ((None, 1.10) if over else (0.8, 1.15))
    return [{
        "case": case, "board": board, "size": size_name, "scale": scale,
        "flashd": "flashctl flash (verify)", "baseline": "make-flash steps",
        "flashd_s": summarize(mine), "baseline_s": summarize(base), "ratio": ratio_stats(list(zip(base, mine))),
        "target": target, "floor_target": floor_target, "floor_s": fl,
        "floor_ratio": statistics.median(mine) / fl,
        "cpu": cpu_stats(res["flashctl"], size), "baseline_cpu": cpu_stats(res["make-flash"], size),
        "timeline": timeline(res["flashctl"]),
        "baseline_floor_ratio": statistics.median(base) / floor_seconds(model, board, size, "fresh", False, scale,
                                                                        end_to_end=True),
        "phases": phase_medians(res["flashctl"]),
        "pairs": len(mine), "counters": res["flashctl"][0]["counters"],
        "baseline_counters": res["make-flash"][0]["counters"],
        "baseline_parts": {k: statistics.median(o[k] for o in res["make-flash"])
                           for k in ("to_dfu", "dfu_util", "tty_wait")},
    }], failures


def find_flashtool(source, workdir):
    """Katapult's scripts/flashtool.py, copied into workdir for this run
    only: `source` is the file itself, a Katapult checkout or its git
    directory. Returns (path, python with pyserial) or (None, why)."""
    if not source:
        return None, "no Katapult checkout given (--katapult or FLASHD_BENCH_KATAPULT)"
    dst = os.path.join(workdir, "flashtool.py")
    if os.path.isfile(source):
        shutil.copy(source, dst)
    elif os.path.isfile(os.path.join(source, "scripts", "flashtool.py")):
        shutil.copy(os.path.join(source, "scripts", "flashtool.py"), dst)
    else:
        p = subprocess.run(["git", "--git-dir", source, "show", "HEAD:scripts/flashtool.py"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if p.returncode != 0:
            return None, f"no scripts/flashtool.py in {source}"
        with open(dst, "wb") as f:
            f.write(p.stdout)
    # the tool needs pyserial (Debian: python3-serial, for the system python)
    for py in (sys.executable, "/usr/bin/python3"):
        if os.access(py, os.X_OK) and subprocess.run([py, "-c", "import serial"],
                                                     stderr=subprocess.DEVNULL).returncode == 0:
            return (dst, py), None
    return None, "pyserial is missing (python3-serial)"


def katapult_floor_seconds(model, scale):
    """Katapult Klipper -> Klipper on vboard's model: the two
    re-enumerations (into Katapult and back) and the pause vboard's Katapult
    takes before it jumps to the application (katapult-tty.c). The model
    gives Katapult's flash no erase or program time and its replies no
    delay, so that is all."""
    src = open(os.path.join(ROOT, "tests", "vboard", "katapult-tty.c")).read()
    m = re.search(r"#define KATAPULT_COMPLETE_DELAY_US \((\d+)u \* 1000u\)", src)
    complete_us = int(m.group(1)) * 1000 if m else 0
    return (2 * model.reenum_us * scale + complete_us) / 1e6


def case_katapult(runner, model, board, size_name, rounds, workdir, tool):
    """Klipper -> Klipper through Katapult: flashctl flash next to Katapult's
    own flashtool.py, alternating."""
    size = SIZES[size_name]
    img = make_images(workdir, board, size)
    boards = [(board, "app", ["--bootloader", "katapult"])]
    path, python = tool
    variants = [
        ("flashtool", boards, tool_spec("flashtool", board, img["new"], "app", flashtool=path, python=python),
         1.0, img["old"]),
        ("flashctl", boards, tool_spec("flashctl", board, img["new"], "app", verify=True, timeline=True), 1.0,
         img["old"]),
    ]
    res, failures = alternate(runner, rounds, variants, f"katapult {board} {size_name}")
    base = [o["seconds"] for o in res["flashtool"]]
    mine = [o["seconds"] for o in res["flashctl"]]
    if not mine:
        return [], failures
    fl = katapult_floor_seconds(model, 1.0)
    return [{
        "case": "end to end, app -> app through Katapult", "board": board, "size": size_name, "scale": 1.0,
        "flashd": "flashctl flash (verify)", "baseline": "Katapult's flashtool.py",
        "flashd_s": summarize(mine), "baseline_s": summarize(base), "ratio": ratio_stats(list(zip(base, mine))),
        "target": 0.6, "floor_s": fl, "floor_ratio": statistics.median(mine) / fl,
        "baseline_floor_ratio": statistics.median(base) / fl,
        "cpu": cpu_stats(res["flashctl"], size), "baseline_cpu": cpu_stats(res["flashtool"], size),
        "timeline": timeline(res["flashctl"]), "phases": phase_medians(res["flashctl"]), "pairs": len(mine),
        "baseline_parts": {k: statistics.median(o[k] for o in res["flashtool"]) for k in ("tool", "tty_wait")},
    }], failures


def cpu_stats(results, size, boards=1):
    """Median CPU milliseconds per flashed MiB per board (None without data)."""
    v = [o["cpu"] for o in results if o.get("cpu") is not None]
    if not v:
        return None
    return statistics.median(v) * 1e3 / (size * boards / (1024 * KIB))


def timeline(results):
    """The median run's job states and phases, seconds since the command."""
    if not results:
        return None
    runs = sorted(results, key=lambda o: o["seconds"])
    o = runs[len(runs) // 2]
    return {"seconds": o["seconds"], "states": dict(sorted(o.get("states", {}).items(), key=lambda kv: kv[1])),
            "log": o.get("log", [])}


def case_cpu(runner, model, board, size_name, n, rounds, workdir):
    """flashd's own CPU per flashed MiB per board next to dfu-util's, the
    same flash (fresh image, no verify: the same work) on n boards at once."""
    size = SIZES[size_name]
    scale = SCALE[size_name]
    img = make_images(workdir, board, size)
    boards = [(board, "dfu")] * n
    variants = [
        ("dfu-util", boards, tool_spec("dfu-util", board, img["new"], "dfu", boards=n), scale, img["old"]),
        ("flashd", boards, tool_spec("flashd", board, img["new"], "dfu", verify=False, boards=n), scale, img["old"]),
    ]
    res, failures = alternate(runner, rounds, variants, f"CPU {board} {size_name} x{n}")
    if not res["flashd"]:
        return [], failures
    pairs = [(b["cpu"], f["cpu"]) for b, f in zip(res["dfu-util"], res["flashd"]) if b["cpu"] > 0]
    return [{
        "case": "cpu", "board": board, "size": size_name, "scale": scale, "boards": n,
        "flashd_ms_per_mib": cpu_stats(res["flashd"], size, n), "baseline_ms_per_mib": cpu_stats(res["dfu-util"], size, n),
        "flashd_cpu_s": summarize([o["cpu"] for o in res["flashd"]]),
        "baseline_cpu_s": summarize([o["cpu"] for o in res["dfu-util"]]),
        "ratio": ratio_stats(pairs) if pairs else None,
        "wall_s": summarize([o["seconds"] for o in res["flashd"]]),
        "baseline_wall_s": summarize([o["seconds"] for o in res["dfu-util"]]), "pairs": len(pairs),
    }], failures


def case_daemon(runner, workdir, idle_seconds, scale=0.5, state_tmpfs=False, groups_known=True):
    board = "octopus-pro-f446"
    size = SIZES["400K"]
    img = make_images(workdir, board, size)
    # 4 boards in application mode (Klipper), 8 in the ROM bootloader for
    # the parallel jobs; idle is measured with only the 4 present (the DFU
    # boards are unplugged until then by world.py)
    boards = [(board, "app")] * 4 + [(board, "dfu")] * 8
    spec = {"tool": "daemon", "image": img["new"], "address": APP, "idle_boards": 4, "jobs": 8,
            "idle_seconds": idle_seconds, "clients": 100, "requests": 20, "busy_rounds": 5,
            "state_tmpfs": state_tmpfs, "open_interval_ms": 100, "groups_known": groups_known}
    out = runner.run(boards, spec, scale, None)
    return out


# ---- output --------------------------------------------------------------------

def fmt_ratio(r):
    return f"{r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})"


def verdict(value, target):
    return "yes" if value <= target else "**no**"


def fmt_cpu(r):
    a, b = r.get("cpu"), r.get("baseline_cpu")
    if a is None or b is None:
        return ""
    return f"{a:.0f} / {b:.0f}"


def table(rows, daemon, meta):
    lines = []
    lines.append("| case | board | image | scale | flashd | baseline | flashd / baseline (min-max) | target | met | "
                 "floor | flashd / floor | baseline / its floor | CPU ms per MiB, flashd / baseline |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    cpu_rows = [r for r in rows if r["case"] == "cpu"]
    rows = [r for r in rows if r["case"] != "cpu"]
    for r in rows:
        floor_t = r.get("floor_target")
        floor_cell = f"{r['floor_ratio']:.2f}x" + (f" (target {floor_t}x: {verdict(r['floor_ratio'], floor_t)})"
                                                   if floor_t else "")
        t = r.get("target")
        lines.append(
            f"| {r['case']} ({r['flashd']}) | {r['board'].replace('octopus-pro-', '')} | {r['size']} | "
            f"{r['scale']} | {r['flashd_s']['median']:.3f} s | {r['baseline_s']['median']:.3f} s "
            f"({r['baseline']}) | {fmt_ratio(r['ratio'])} | {f'<= {t}x' if t else ''} | "
            f"{verdict(r['ratio']['median'], t) if t else ''} | {r['floor_s']:.3f} s | {floor_cell} | "
            f"{r['baseline_floor_ratio']:.2f}x | {fmt_cpu(r)} |")
    lines.append("")
    if cpu_rows:
        lines.append("| CPU per flashed MiB per board (fresh image, no verify) | boards | flashd | dfu-util | "
                     "flashd / dfu-util (min-max) | target | met | wall, flashd / dfu-util |")
        lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in cpu_rows:
            ok = r["flashd_ms_per_mib"] <= r["baseline_ms_per_mib"]
            lines.append(f"| {r['board'].replace('octopus-pro-', '')} {r['size']} scale {r['scale']} | {r['boards']} | "
                         f"{r['flashd_ms_per_mib']:.0f} ms | {r['baseline_ms_per_mib']:.0f} ms | "
                         f"{fmt_ratio(r['ratio']) if r['ratio'] else '-'} | <= dfu-util | {'yes' if ok else '**no**'} | "
                         f"{r['wall_s']['median']:.2f} / {r['baseline_wall_s']['median']:.2f} s |")
        lines.append("")
    for r in rows:
        tl = r.get("timeline")
        if tl and r["case"].startswith("end to end") and "over" in r["case"]:
            lines.append(f"Timeline of the median flashctl run ({r['case']}, {r['board']}, {r['size']}; "
                         f"seconds since the command, from the job's notifications):")
            lines.append("")
            lines.append("| s | state / phase |")
            lines.append("| --- | --- |")
            for k, v in tl["states"].items():
                lines.append(f"| {v:.3f} | {k} |")
            lines.append(f"| {tl['seconds']:.3f} | flashctl exits (Klipper back) |")
            lines.append("")
    if daemon:
        if not daemon.get("ok"):
            lines.append(f"Daemon cost: FAILED ({daemon.get('error')})")
        else:
            d = daemon
            lines.append("| daemon cost | measured | target | met |")
            lines.append("| --- | --- | --- | --- |")
            lines.append(f"| start to READY=1 | {d['ready_seconds'] * 1e3:.1f} ms | | |")
            lines.append(f"| RSS idle, 4 boards | {d['rss_idle_kib'] / 1024:.2f} MiB ({d['rss_idle_kib']} KiB) | "
                         f"< 4 MiB | {verdict(d['rss_idle_kib'], 4095)} |")
            bd = d["rss_idle_breakdown"]
            lines.append(f"| RSS idle without the emulation's preload libraries (anon {bd['anon']} KiB + flashd's "
                         f"own binary and libraries {bd['flashd_files']} KiB) | "
                         f"{bd['without_emulation'] / 1024:.2f} MiB | < 4 MiB | "
                         f"{verdict(bd['without_emulation'], 4095)} |")
            tf0 = d.get("tmpfs") or {}
            if tf0.get("ok") and not tf0.get("groups_known"):
                lines.append(f"| RSS idle, 4 boards, flash_group and socket_group missing from /etc/group (glibc "
                             f"loads libnss_systemd and libm to look them up) | {tf0['rss_idle_kib'] / 1024:.2f} MiB | "
                             f"< 4 MiB | {verdict(tf0['rss_idle_kib'], 4095)} |")
            lines.append(f"| idle PSS / USS (private pages: what exiting frees) | {bd['rollup_pss'] / 1024:.2f} / "
                         f"{bd['uss'] / 1024:.2f} MiB | | |")
            lines.append(f"| RSS peak (VmHWM), 8 parallel jobs | {d['rss_peak_kib'] / 1024:.2f} MiB | | |")
            if d.get("rss_after_jobs_kib"):
                lines.append(f"| RSS idle again after the 8 jobs | {d['rss_after_jobs_kib'] / 1024:.2f} MiB | | |")
            lines.append(f"| context switches in {d['idle_seconds']} s idle, 4 boards, all threads "
                         f"({d['threads_idle']} threads) | {d['idle_wakeups']} | 0 | "
                         f"{verdict(d['idle_wakeups'], 0)} |")
            li, lb = d["latency_idle"], d["latency_busy"]
            lo = d["latency_one_client"]
            lines.append(f"| device.list, one client: p50 / p99 | {lo['p50_ms']:.2f} / {lo['p99_ms']:.2f} ms | | |")
            lines.append(f"| device.list, 100 concurrent clients: p50 / p99 | {li['p50_ms']:.2f} / "
                         f"{li['p99_ms']:.2f} ms ({li['n']} requests, daemon CPU "
                         f"{li['daemon_cpu_ms_per_request'] * 1e3:.0f} us/request; main thread waited for a CPU "
                         f"{li['sched']['main_wait'] * 1e3:.0f} ms per s) | p99 < 5 ms | "
                         f"{verdict(li['p99_ms'], 5)} |")
            lo2 = d.get("latency_idle_open")
            if lo2:
                lines.append(f"| device.list, 100 clients each asking every 100 ms (open loop, 1000/s): p50 / p99 | "
                             f"{lo2['p50_ms']:.2f} / {lo2['p99_ms']:.2f} ms | p99 < 5 ms | "
                             f"{verdict(lo2['p99_ms'], 5)} |")
            bo = d.get("latency_busy_open")
            if bo:
                lines.append(f"| the same (open loop) while 8 jobs flash | {bo['p50_ms']:.2f} / {bo['p99_ms']:.2f} ms"
                             f"{'' if bo.get('jobs_still_running') else ' (jobs ended during the round)'} | "
                             f"p99 < 5 ms | {verdict(bo['p99_ms'], 5)} |")
            if lb:
                lines.append(f"| closed loop (100 clients, next request at once) while 8 jobs flash: p50 / p99 "
                             f"(worst of {lb['rounds']} rounds) | {lb['p50_ms']:.2f} / {lb['p99_ms']:.2f} ms "
                             f"({lb['n']} requests) | p99 < 5 ms | {verdict(lb['p99_ms'], 5)} |")
            sc = [b["sched"] for b in d.get("latency_busy_rounds", []) if "sched" in b]
            if sc:
                lines.append("| while 8 jobs flash, per second of wall time: main loop thread CPU / waiting for a "
                             "CPU; job worker threads CPU / waiting | "
                             f"{statistics.median(x['main_cpu'] for x in sc):.2f} / "
                             f"{statistics.median(x['main_wait'] for x in sc):.2f} s; "
                             f"{statistics.median(x['workers_cpu'] for x in sc):.2f} / "
                             f"{statistics.median(x['workers_wait'] for x in sc):.2f} s | | |")
            tf = d.get("tmpfs") or {}
            if tf.get("ok") and tf.get("latency_busy_open"):
                tb = tf["latency_busy_open"]
                lines.append(f"| open loop while 8 jobs flash, state directory on tmpfs (fsync free) | "
                             f"{tb['p50_ms']:.2f} / {tb['p99_ms']:.2f} ms | p99 < 5 ms | "
                             f"{verdict(tb['p99_ms'], 5)} |")
            if tf.get("ok") and tf.get("latency_busy"):
                tb = tf["latency_busy"]
                lines.append(f"| closed loop while 8 jobs flash, state directory on tmpfs | {tb['p50_ms']:.2f} / "
                             f"{tb['p99_ms']:.2f} ms ({tb['n']} requests) | p99 < 5 ms | "
                             f"{verdict(tb['p99_ms'], 5)} |")
            fj = d.get("fsync_per_job")
            if fj:
                lines.append(f"| fsync() per job while 8 jobs flash (perf trace): main loop thread / others | "
                             f"{fj['main']['calls']:.1f} / {fj['other']['calls']:.1f} | | |")
                lines.append(f"| main loop stalled in fsync() per job (sum) / longest single fsync() | "
                             f"{fj['main']['ms']:.1f} ms / {fj['main']['max_ms']:.1f} ms | | |")
            lines.append(f"| 8 parallel jobs (400 KiB each, scale {d.get('scale')}) | "
                         f"{d['jobs_seconds']:.2f} s, flash checked: {'ok' if d['jobs_flash_ok'] else 'WRONG'} | | |")
        lines.append("")
    if meta.get("katapult_missing"):
        lines.append(f"Katapult Klipper -> Klipper vs flashtool.py: not measured: {meta['katapult_missing']}.")
        lines.append("")
    lines.append(f"Machine: {meta['machine']}. Started {meta.get('started', '?')}; load average (1/5/15 min) "
                 f"at start {' '.join(meta['loadavg_start'])}, at end {' '.join(meta['loadavg_end'])}. "
                 f"Total {meta['total_seconds']:.0f} s.")
    return "\n".join(lines)


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated: flash,reflash,e2e,katapult,cpu,daemon")
    ap.add_argument("--idle-seconds", type=int, default=15)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "latest.json"))
    ap.add_argument("--katapult", default=os.environ.get("FLASHD_BENCH_KATAPULT", ""),
                    help="Katapult's flashtool.py, a Katapult checkout or its git directory (copied for the run)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(","))) or {"flash", "reflash", "e2e", "katapult", "cpu", "daemon"}

    t_start = time.monotonic()
    meta = {"machine": machine(), "loadavg_start": open("/proc/loadavg").read().split()[:3],
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "rounds": args.rounds}
    model = Model()
    rows, failures, daemon = [], [], None
    with tempfile.TemporaryDirectory(prefix="flashd-bench-") as workdir:
        runner = Runner(args.build, workdir, args.verbose)
        if "flash" in only:
            for board, size_name in (("octopus-pro-f429", "120K"), ("octopus-pro-f446", "30K")):
                r, f = case_flash_phase(runner, model, board, size_name, args.rounds, workdir)
                rows += r
                failures += f
        if "reflash" in only:
            for board, size_name in (("octopus-pro-f446", "120K"),):
                for kind in ("unchanged", "near-end"):
                    r, f = case_reflash(runner, model, board, size_name, kind, args.rounds, workdir)
                    rows += r
                    failures += f
        if "e2e" in only:
            for board, size_name, over, kind in (("octopus-pro-f446", "30K", None, "fresh"),
                                                 ("octopus-pro-f429", "120K", "30K", "fresh"),
                                                 ("octopus-pro-f446", "120K", None, "unchanged")):
                r, f = case_end_to_end(runner, model, board, size_name, args.rounds, workdir, over=over, kind=kind)
                rows += r
                failures += f
        if "katapult" in only:
            tool, why = find_flashtool(args.katapult, workdir)
            if tool:
                r, f = case_katapult(runner, model, "octopus-pro-f446", "30K", args.rounds, workdir, tool)
                rows += r
                failures += f
            else:
                meta["katapult_missing"] = why
        if "cpu" in only:
            for n in (1, 8):
                r, f = case_cpu(runner, model, "octopus-pro-f446", "120K", n, min(args.rounds, 3), workdir)
                rows += r
                failures += f
        if "daemon" in only:
            sys.stderr.write("daemon cost\n")
            daemon = case_daemon(runner, workdir, args.idle_seconds)
            if daemon.get("ok"):
                daemon["scale"] = 0.5
                sys.stderr.write("daemon cost, state directory on tmpfs\n")
                # and with flashd's groups missing from /etc/group (as on
                # this machine without sysusers.d): the RSS they cost
                tmpfs = case_daemon(runner, workdir, 0, state_tmpfs=True, groups_known=False)
                daemon["tmpfs"] = tmpfs
                if not tmpfs.get("ok"):
                    failures.append(f"daemon (tmpfs): {tmpfs.get('error')}")
            else:
                failures.append(f"daemon: {daemon.get('error')}")
        if failures:
            # keep the logs of failed runs
            keep = os.path.join(os.path.dirname(args.out), "failed-logs")
            os.makedirs(keep, exist_ok=True)
            for name in os.listdir(workdir):
                if name.startswith("log-"):
                    subprocess.run(["cp", os.path.join(workdir, name), keep])
    meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    meta["total_seconds"] = time.monotonic() - t_start
    text = table(rows, daemon, meta)
    print(text)
    if failures:
        print("\nFAILED runs (not timed):\n" + "\n".join("- " + f for f in failures))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "rows": rows, "daemon": daemon, "failures": failures,
                   "model": {"control_us": model.control_us, "us_per_word": model.us_per_word,
                             "erase_points": model.erase_points, "reenumerate_us": model.reenum_us,
                             "manifest_us": model.manifest_us}, "table": text}, f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

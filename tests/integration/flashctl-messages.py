#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What flashctl says, and with which exit status, when something is wrong:
the real flashd and flashctl under virtual boards.

usage: flashctl-messages.py images   (an Octopus Pro F429 in ROM DFU)
       flashctl-messages.py tty      (an Octopus F446 running Klipper)

images:
- every unusable image exits 5 (flashctl.1): missing, empty, text, 100 MB
  (over the daemon's transfer limit), 20 MB (over the decoder's), 3 MiB
  (over the board's 1 MiB flash); sizes in KiB/MiB, the large ones against
  the board's flash; hints that fit (no --address for an empty file, no
  --force vector-table for a text file); nothing written to the board;
- with --json every failing command prints one JSON error object on
  stdout (flash, info, list, job, cancel, rule remove), exit status inside;
- no internal API names (job.list, rule.list) in messages;
- the header of a .hex flash shows the image's size, not the file's;
- bash completion offers the ids of finished jobs.
tty:
- a port held by `python3 -c '...open("/dev/ttyACM0", ...)'` is refused
  (exit 5) naming the program and its pid, not a piece of the code.
"""

import json
import os
import re
import subprocess
import sys

import harness
from jobs_helpers import (APP, EXIT_REFUSED, FAST_CONFIG, Boards, app_image, check, flashctl, tmpdir,
                          write_image)

MIB = 1024 * 1024


def ihex(data, address):
    """Intel HEX as firmware builds write it: 16-byte data records, an
    extended linear address record per 64 KiB, EOF."""
    lines = []

    def rec(kind, addr, payload):
        body = bytes([len(payload), (addr >> 8) & 0xFF, addr & 0xFF, kind]) + payload
        lines.append(":" + body.hex().upper() + f"{(-sum(body)) & 0xFF:02X}")

    upper = None
    for off in range(0, len(data), 16):
        a = address + off
        if a >> 16 != upper:
            upper = a >> 16
            rec(4, 0, upper.to_bytes(2, "big"))
        rec(0, a & 0xFFFF, data[off:off + 16])
    rec(1, 0, b"")
    return ("\n".join(lines) + "\n").encode()


def sparse(path, size, head=b""):
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def no_raw_byte_counts(text):
    """Sizes are for people: no 7-digit-or-longer byte counts."""
    return not re.search(r"\b\d{7,}\b", text)


def test_unusable_images(d, boards):
    tmp = tmpdir()
    vector = app_image(1024, APP, mcu="stm32f429xx")[:8]
    cases = [
        # name, path, must appear, must not appear
        ("missing", os.path.join(tmp, "missing.bin"), ["missing.bin", "No such file"], []),
        ("empty", write_image(tmp, b"", "empty.bin"), ["empty"], ["--address"]),
        ("text", write_image(tmp, b"make: *** [Makefile:42] Error 1\nbuild failed\n", "build.log"),
         ["text file", "make: ***"], ["--force vector-table", "vector-table"]),
        ("100 MB", sparse(os.path.join(tmp, "huge.bin"), 100 * MIB, vector),
         ["100 MiB", "32 MiB", "1 MiB"], []),
        ("20 MB", sparse(os.path.join(tmp, "large.bin"), 20 * MIB, vector), ["16 MiB", "1 MiB"],
         ["--address"]),
        ("3 MiB", sparse(os.path.join(tmp, "big.bin"), 3 * MIB, vector), ["3 MiB", "1 MiB"], ["--address"]),
    ]
    written = boards.counters("0")["bytes_written"]
    for name, path, want, unwanted in cases:
        p = flashctl(d, "flash", "octopus-pro", path)
        text = p.stdout + p.stderr
        check(p.returncode == EXIT_REFUSED, f"{name}: exit {p.returncode}, want {EXIT_REFUSED}", text)
        for w in want:
            check(w in text, f"{name}: says {w!r}", text)
        for u in unwanted:
            check(u not in text, f"{name}: a hint that does not fit ({u!r})", text)
        check(no_raw_byte_counts(text), f"{name}: sizes in KiB/MiB", text)
        check("Hint:" in p.stderr or name == "missing", f"{name}: a hint", text)
        # --json: the same failure as one JSON object on stdout, nothing on stderr
        p = flashctl(d, "--json", "flash", "octopus-pro", path)
        check(p.returncode == EXIT_REFUSED and p.stderr == "", f"{name} --json: exit {p.returncode}", p)
        err = json.loads(p.stdout)["error"]
        check(err["exit"] == EXIT_REFUSED and want[0] in err["message"] + " ".join(err.get("hints", [])),
              f"{name} --json: the error object", err)
    check(boards.counters("0")["bytes_written"] == written, "nothing written for any of them")


def test_json_errors_for_every_command(d):
    for args, status, needle in ((["info", "no-such-board"], 1, "no-such-board"),
                                 (["list", "--mode=bogus"], 2, "bogus"),
                                 (["job", "99"], 1, "99"),
                                 (["cancel", "99"], 1, "99"),
                                 (["rule", "remove", "rule-99"], 1, "rule-99"),
                                 (["flash", "octopus-pro"], 2, "IMAGE")):
        p = flashctl(d, "--json", *args)
        check(p.returncode == status, f"{args}: exit {p.returncode}, want {status}", p)
        check(p.stderr == "", f"{args} --json: nothing on stderr", p.stderr)
        try:
            err = json.loads(p.stdout)["error"]
        except (ValueError, KeyError) as e:
            raise AssertionError(f"{args} --json: stdout is no JSON error object ({e}): {p.stdout!r}")
        check(err["exit"] == status and needle in err["message"], f"{args} --json: the error", err)
        # and the same command without --json: a message on stderr, stdout empty
        p = flashctl(d, *args)
        check(p.returncode == status and p.stdout == "" and needle in p.stderr, f"{args}: text error", p)
        for api in ("job.list", "rule.list", "job.get", "all: true"):
            check(api not in p.stderr, f"{args}: no API names in the message", p.stderr)


def complete(words, socket_path):
    script = os.path.join(harness.source_root(), "client", "flashctl.bash-completion")
    bindir = os.path.dirname(os.path.abspath(harness.flashctl_binary()))
    line = " ".join(words)
    prog = (f"source /usr/share/bash-completion/bash_completion; source {script}; "
            f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
            f"COMP_LINE={line!r}; COMP_POINT={len(line)}; _flashctl; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", ""), FLASHD_SOCKET=socket_path)
    p = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, env=env, timeout=20)
    return sorted(x for x in p.stdout.split("\n") if x)


def test_hex_header_and_job_completion(d, boards):
    image = app_image(96 * 1024, APP, seed=14, mcu="stm32f429xx")
    hex_file = ihex(image, APP)
    check(len(hex_file) > 2.5 * len(image), "the .hex file is much larger than its image", len(hex_file))
    path = write_image(tmpdir(), hex_file, "klipper.hex")
    p = flashctl(d, "flash", "octopus-pro", path, timeout=120 * harness.DEFAULT_TIMEOUT / 10)
    check(p.returncode == 0, f"flash exit {p.returncode}", p.stdout + p.stderr)
    header = next((line for line in p.stderr.splitlines() if line.startswith("Job ")), "")
    check("hex, 96 KiB" in header, "the header shows the image's 96 KiB", header)
    check(boards.read("0", APP, len(image)) == image, "the image is in flash")
    jobs = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)
    ids = sorted(str(j["id"]) for j in jobs)
    check(ids and complete(["flashctl", "job", ""], d.socket_path) == sorted(ids),
          "completion offers the finished jobs", (ids, complete(["flashctl", "job", ""], d.socket_path)))


def test_tty_holder_named(d, boards):
    b = boards.board("0")
    code = (f"import sys; fd = open({b['tty']!r}, 'rb', buffering=0); print('open', flush=True); "
            "sys.stdin.read()")
    holder = subprocess.Popen(["/usr/bin/python3", "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        check(holder.stdout.readline().strip() == "open", "the holder has the port open")
        path = write_image(tmpdir(), app_image(16 * 1024, APP, seed=13, mcu="stm32f446xx"))
        before = boards.counters("0")
        # the address: the F446 in its application could be one of several boards
        p = flashctl(d, "flash", "--address", hex(APP), b["tty"], path)
        text = p.stdout + p.stderr
        check(p.returncode == EXIT_REFUSED, f"refused, exit {p.returncode}", text)
        check(f"in use by python3 (pid {holder.pid})" in text, "names the program and its pid", text)
        check("buffering" not in text and "rb" not in text, "no fragment of the holder's code", text)
        after = boards.counters("0")
        check(after["bytes_written"] == before["bytes_written"], "nothing written")
    finally:
        holder.kill()
        holder.wait()


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "images"
    boards = Boards()
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        harness.wait_for(lambda: boards.board("0")["port"] in harness.devices_by_port(c), what="the board listed")
        if what == "tty":
            tests = [lambda: test_tty_holder_named(d, boards)]
            names = ["test_tty_holder_named"]
        else:
            tests = [lambda: test_unusable_images(d, boards), lambda: test_json_errors_for_every_command(d),
                     lambda: test_hex_header_and_job_completion(d, boards)]
            names = ["test_unusable_images", "test_json_errors_for_every_command",
                     "test_hex_header_and_job_completion"]
        failed = 0
        for name, t in zip(names, tests):
            try:
                t()
                print(f"ok   {name}")
            except Exception as e:
                failed += 1
                print(f"FAIL {name}: {e}")
        if failed:
            d.dump_log()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

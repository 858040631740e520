#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Safety checks of flash jobs, before anything is erased. Under

    vboard --board octopus-pro-f429 --mode app

- an image built for 0x08000000 is refused at the board's 0x08008000, and an
  image built for 0x08008000 at an explicit 0x08000000, naming the right
  address; an image for another MCU (Klipper's dictionary) and a HEX file
  that reaches into the bootloader are refused too: exit status 5, and the
  virtual board saw no erase, no write and no reboot request;
- anything below the application offset (an explicit --address there, a
  mass erase) needs --force bootloader-region, and an unaligned --address
  is refused, before anything is touched;
- `--force vector-table` overrides the one check, says so in the log, and
  the flash goes ahead; the board then comes back in its bootloader (the
  image does not start), which fails clearly (exit 6); a good image flashes
  it back from DFU mode;
- a serial port held by another program (klippy) is refused, naming it.
"""
import json
import os
import subprocess
import sys

import harness
from jobs_helpers import (APP, EXIT_FAILED, EXIT_REFUSED, FAST_CONFIG, FLASH_BASE, Boards, app_image, check,
                          flashctl, tmpdir, write_image)

BOARD = "0"


def ihex(data, address):
    """Intel HEX with extended linear address records."""
    lines, upper = [], None

    def rec(kind, addr, payload):
        b = bytes([len(payload), (addr >> 8) & 0xff, addr & 0xff, kind]) + payload
        return ":" + (b + bytes([(-sum(b)) & 0xff])).hex().upper()

    for off in range(0, len(data), 16):
        a = address + off
        if a >> 16 != upper:
            upper = a >> 16
            lines.append(rec(4, 0, upper.to_bytes(2, "big")))
        lines.append(rec(0, a & 0xffff, data[off:off + 16]))
    lines.append(rec(1, 0, b""))
    return ("\n".join(lines) + "\n").encode()


def untouched(boards, before):
    after = boards.counters(BOARD)
    for key in ("sector_erases", "mass_erases", "bytes_written", "dnloads", "baud_1200_requests"):
        check(after[key] == before[key], f"{key} unchanged (nothing erased or written, no reboot)",
              (before[key], after[key]))


def refused(d, boards, args, image_name, data, expect):
    before = boards.counters(BOARD)
    p = flashctl(d, "flash", *args, "octopus-pro", write_image(tmpdir(), data, image_name))
    check(p.returncode == EXIT_REFUSED, f"refused with exit 5, got {p.returncode}", p.stdout + p.stderr)
    for word in expect:
        check(word in p.stderr, f"message mentions {word!r}", p.stderr)
    untouched(boards, before)
    check(boards.board(BOARD)["mode"] == "app", "board still runs its application")
    return p


def test_refused_before_any_erase():
    boards = Boards()
    with harness.Flashd(config=FAST_CONFIG) as d:
        d.client()
        harness.wait_for(lambda: "1-1.1" in harness.devices_by_port(d.client()), what="board")
        # the advice is to rebuild with the board's offset; writing at the
        # address the image was built for is named only as what replaces
        # the bootloader
        p = refused(d, boards, (), "no-bootloader.bin", app_image(32 * 1024, FLASH_BASE, mcu="stm32f429xx"),
                    ["0x08000000", "0x08008000", "make menuconfig", "Bootloader offset: 32KiB",
                     "--force bootloader-region"])
        check("write it at 0x08000000 or" not in p.stderr, "no advice to overwrite the bootloader", p.stderr)
        refused(d, boards, ("--address", "0x08000000"), "klipper.bin",
                app_image(32 * 1024, APP, mcu="stm32f429xx"), ["reset vector 0x08008201", "0x08000000"])
        refused(d, boards, (), "f446.bin", app_image(32 * 1024, APP, mcu="stm32f446xx"),
                ["stm32f446xx", "stm32f429xx"])
        # a HEX file places its data itself: at 0x08004000 it overwrites the
        # bootloader, which only --force bootloader-region may do
        refused(d, boards, (), "low.hex", ihex(app_image(4096, 0x08004000), 0x08004000), ["bootloader"])
        jobs = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)
        names = [j["error"]["name"] for j in jobs]
        check(names == ["check-vector-table", "check-vector-table", "check-mcu", "check-bootloader-region"],
              "refused jobs are in the history with their check", names)
        # every name a board goes by reaches the same port
        b = boards.board(BOARD)
        wrong = write_image(tmpdir(), app_image(4096, FLASH_BASE, mcu="stm32f429xx"))
        for target in (b["tty"], b["by_id"], b["port"], b["devnode"]):
            p = flashctl(d, "--json", "flash", "--no-wait", target, wrong)
            check(p.returncode == EXIT_REFUSED, f"target {target}: refused, exit {p.returncode}", p.stdout + p.stderr)
        jobs = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)[-4:]
        check([j["port"] for j in jobs] == [b["port"]] * 4, "tty, by-id, port and USB node name the board",
              [(j["target"], j["port"]) for j in jobs])
        p = flashctl(d, "flash", "1-9.9", wrong)
        check(p.returncode == 1 and "1-9.9" in p.stderr, "an unknown target is a daemon error", p.stderr)


def test_bootloader_region_needs_force():
    """Following the old advice (--address 0x08000000 for an image built
    there) erased the stock bootloader; a mass erase did so without any
    question; an unaligned address was written and left the board stuck in
    DFU. All are refused before the board is even rebooted, and the
    refusal names the force that replaces a bootloader."""
    boards = Boards()
    with harness.Flashd(config=FAST_CONFIG) as d:
        harness.wait_for(lambda: "1-1.1" in harness.devices_by_port(d.client()), what="board")
        low = app_image(32 * 1024, FLASH_BASE, mcu="stm32f429xx")
        refused(d, boards, ("--address", "0x08000000"), "no-bootloader.bin", low,
                ["bootloader", "0x08000000-0x08007fff", "--force bootloader-region"])
        good = app_image(32 * 1024, APP, mcu="stm32f429xx")
        refused(d, boards, ("--mass-erase",), "klipper.bin", good,
                ["mass erase", "0x08000000-0x08007fff", "--force bootloader-region"])
        refused(d, boards, ("--address", "0x08008001"), "klipper.bin", good, ["0x08008001", "multiple of 4"])
        refused(d, boards, ("--address", "0x08008040"), "klipper.bin", good, ["0x08008040", "multiple of 128"])
        jobs = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)
        names = [j["error"]["name"] for j in jobs]
        check(names == ["check-bootloader-region", "check-bootloader-region", "check-vector-table",
                        "check-vector-table"], "refused with the check that failed", names)

        # the force is what replaces a bootloader: with it, the mass erase goes ahead
        bootloader = boards.read(BOARD, FLASH_BASE, APP - FLASH_BASE)
        p = flashctl(d, "flash", "--mass-erase", "--force", "bootloader-region", "octopus-pro",
                     write_image(tmpdir(), good))
        check(p.returncode == 0, f"forced mass erase flashes (exit {p.returncode})", p.stdout + p.stderr)
        check(boards.counters(BOARD)["mass_erases"] == 1, "one mass erase")
        check(boards.read(BOARD, FLASH_BASE, APP - FLASH_BASE) != bootloader, "the bootloader region was erased")
        check(boards.read(BOARD, APP, len(good)) == good, "the image is in flash")


def test_force_and_stuck_in_bootloader():
    boards = Boards()
    with harness.Flashd(config=FAST_CONFIG) as d:
        harness.wait_for(lambda: "1-1.1" in harness.devices_by_port(d.client()), what="board")
        wrong = app_image(16 * 1024, FLASH_BASE, seed=3, mcu="stm32f429xx")
        p = flashctl(d, "flash", "--force", "vector-table", "octopus-pro", write_image(tmpdir(), wrong))
        check(p.returncode == EXIT_FAILED, f"a board that comes back in DFU fails (exit {p.returncode})",
              p.stdout + p.stderr)
        check("stuck-in-bootloader" in p.stderr, "the failure says the board is stuck in its bootloader", p.stderr)
        check(boards.read(BOARD, APP, len(wrong)) == wrong, "the forced image was written")
        job = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)[-1]
        check(job["force"] == ["vector-table"], "the job records the forced check", job)
        log = json.loads(flashctl(d, "--json", "job", str(job["id"])).stdout)["log"]
        check(any("vector-table FAILED but is forced" in line for line in log), "the override is logged", log)
        check(boards.board(BOARD)["mode"] == "dfu", "the board sits in DFU mode")

        good = app_image(16 * 1024, APP, seed=4, mcu="stm32f429xx")
        p = flashctl(d, "flash", "octopus-pro", write_image(tmpdir(), good))
        check(p.returncode == 0, f"a good image from DFU mode (exit {p.returncode})", p.stdout + p.stderr)
        check(boards.read(BOARD, APP, len(good)) == good, "good image in flash")
        boards.vb.wait(BOARD, "app", 5000)


def test_tty_held_by_klipper():
    """Klipper's host (klippy) holds the serial port: refused, naming it."""
    boards = Boards()
    tty = boards.board(BOARD)["tty"]
    script = os.path.join(tmpdir(), "klippy.py")
    with open(script, "w") as f:
        f.write("import os, sys, time\n"
                f"fd = os.open({tty!r}, os.O_RDWR | os.O_NOCTTY)\n"
                "print('open', flush=True)\n"
                "sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        check(holder.stdout.readline().strip() == "open", "the holder opened the tty")
        with harness.Flashd(config=FAST_CONFIG) as d:
            harness.wait_for(lambda: "1-1.1" in harness.devices_by_port(d.client()), what="board")
            before = boards.counters(BOARD)
            p = flashctl(d, "flash", "octopus-pro", write_image(tmpdir(), app_image(8192, APP, mcu="stm32f429xx")))
            check(p.returncode == EXIT_REFUSED and "tty-busy" in p.stderr, f"refused: exit {p.returncode}",
                  p.stderr)
            check("klippy" in p.stderr and f"pid {holder.pid}" in p.stderr, "the message names the process",
                  p.stderr)
            untouched(boards, before)
    finally:
        holder.kill()
        holder.wait()


if __name__ == "__main__":
    # the forced mass erase wipes the bootloader region: last
    harness.main([test_refused_before_any_erase, test_force_and_stuck_in_bootloader, test_tty_held_by_klipper,
                  test_bootloader_region_needs_force])

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`flashctl flash mega2560 klipper.elf.hex` through the real flashd against a
virtual Arduino Mega 2560 whose MCU is simavr running the real Arduino
STK500v2 bootloader (arduino-core-avr): DTR reset into the bootloader, the
session, the application running again; bytes checked in the emulated
flash. Then an unchanged reflash that sends no program command, a change in
the last page that leaves the first pages intact (the bootloader's
sequential erase), refusals before any page is written (an image reaching
into the bootloader section, a board database whose signature differs from
the chip's), the cable pulled mid-write and a retry, and a reset pulse that
misses the chip once."""

import json
import os
import random

import harness
from jobs_helpers import Boards, FAST_CONFIG, check, flashctl, job_history, tmpdir, write_image

BOARD = "mega2560-atmega2560"
SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))
PAGE = 256
BOOT = 0x3E000


def ihex(data, base=0):
    out = []
    for off in range(0, len(data), 16):
        a = base + off
        if a >> 16 != (a - 16) >> 16 or off == 0:
            seg = bytes([2, 0, 0, 4, (a >> 24) & 255, (a >> 16) & 255])
            out.append(":" + seg.hex().upper() + "%02X" % (-sum(seg) & 255))
        chunk = data[off:off + 16]
        rec = bytes([len(chunk), (a >> 8) & 255, a & 255, 0]) + chunk
        out.append(":" + rec.hex().upper() + "%02X" % (-sum(rec) & 255))
    out.append(":00000001FF")
    return ("\n".join(out) + "\n").encode()


def avr_image(size, seed):
    rnd = random.Random(seed)
    # avr-gcc's vector table starts with `jmp __ctors_end` (0x940c)
    return bytes([0x0C, 0x94, 0x72, 0x00]) + bytes(rnd.randrange(256) for _ in range(size - 4))



def flash(d, path, *args):
    return flashctl(d, "flash", "mega2560", path, *args, timeout=180 * SCALE)


def flash_ok(d, path, *args):
    p = flash(d, path, *args)
    check(p.returncode == 0, f"flashctl flash exit {p.returncode}", p.stdout + p.stderr)
    return p


def avr_counters(boards):
    return {k: v for k, v in boards.counters(BOARD).items() if k.startswith("avr_")}


def wait_app_started(boards, before):
    harness.wait_for(lambda: avr_counters(boards)["avr_app_starts"] > before, what="the application started",
                     timeout=10 * SCALE)


def programs(boards):
    return boards.counters(BOARD)["avr_program_commands"]


def wait_listed(c, port):
    harness.wait_for(lambda: harness.devices_by_port(c).get(port), what="board listed", timeout=20 * SCALE)


def test_mega_flash():
    boards = Boards()
    b = boards.board(BOARD)
    check(b["mode"] == "app", "board starts in app mode", b)
    image = avr_image(5 * PAGE + 100, 1)
    hexfile = write_image(tmpdir(), ihex(image), "klipper.elf.hex")
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        wait_listed(c, b["port"])

        # from the application (DTR reset) back to the application
        resets = boards.counters(BOARD)["avr_resets"]
        flash_ok(d, hexfile)
        check(boards.read(BOARD, 0, len(image)) == image, "image not in the emulated flash")
        wait_app_started(boards, 0)
        counters = avr_counters(boards)
        check(counters["avr_resets"] == resets + 1, "one reset pulse", counters)
        check(programs(boards) == 6, "6 pages programmed", counters)
        j = job_history(d)
        check(len(j) == 1 and j[0]["state"] == "done", "job done", j)
        # the bootloader itself is untouched
        boot = boards.read(BOARD, BOOT, 16)
        check(boot != b"\xff" * 16, "bootloader still in flash", boot)

        # unchanged: no page is programmed
        before = programs(boards)
        p = flash_ok(d, hexfile)
        check(programs(boards) == before, "an unchanged reflash programmed pages",
              (before, programs(boards), p.stdout))

        # one byte in the last page: every page written in order, the
        # first pages survive the bootloader's sequential erase
        image2 = bytearray(image)
        image2[-10] ^= 0xFF
        before = programs(boards)
        flash_ok(d, write_image(tmpdir(), ihex(bytes(image2)), "k2.hex"))
        check(boards.read(BOARD, 0, len(image2)) == bytes(image2), "changed image not in flash")
        check(programs(boards) - before == 6, "every page from 0 programmed", programs(boards) - before)

        # .bin at 0 works the same
        image3 = avr_image(3 * PAGE, 3)
        flash_ok(d, write_image(tmpdir(), image3, "k3.bin"))
        check(boards.read(BOARD, 0, len(image3)) == image3, ".bin image not in flash")

        # into the bootloader section: refused before any reset
        big = avr_image(BOOT + 2, 4)
        before = avr_counters(boards)
        p = flash(d, write_image(tmpdir(), ihex(big), "big.hex"))
        check(p.returncode != 0 and "bootloader" in (p.stdout + p.stderr), "image into the bootloader refused",
              p.stdout + p.stderr)
        after = avr_counters(boards)
        check(after["avr_resets"] == before["avr_resets"] and
              after["avr_program_commands"] == before["avr_program_commands"], "board touched", (before, after))
        check(boards.read(BOARD, 0, len(image3)) == image3, "flash changed by a refused image")


def test_wrong_signature():
    boards = Boards()
    b = boards.board(BOARD)
    src = os.path.join(harness.boards_dir(), "mega2560.json")
    with open(src) as f:
        entry = json.load(f)
    entry["variants"][0]["avr"]["signature"] = "1e9802"
    override = tmpdir()
    with open(os.path.join(override, "mega2560.json"), "w") as f:
        json.dump(entry, f)
    before_flash = boards.read(BOARD, 0, 4 * PAGE)
    with harness.Flashd(config=FAST_CONFIG, boards_dirs=[harness.boards_dir(), override]) as d:
        wait_listed(d.client(), b["port"])
        before = programs(boards)
        p = flash(d, write_image(tmpdir(), ihex(avr_image(4 * PAGE, 9)), "other.hex"))
        out = p.stdout + p.stderr
        check(p.returncode != 0 and "1e 98 01" in out, "another chip refused", out)
        check(programs(boards) == before, "pages programmed on the wrong chip", programs(boards))
        check(boards.read(BOARD, 0, 4 * PAGE) == before_flash, "flash changed")


def test_unidentified_bridge_named():
    """A bridge the database does not name (as a CH340 or FTDI clone):
    listed in mode serial without a board; flashed with --board."""
    boards = Boards()
    b = boards.board(BOARD)
    with open(os.path.join(harness.boards_dir(), "mega2560.json")) as f:
        entry = json.load(f)
    entry["variants"][0]["usb"]["app"] = "2341:0010"
    override = tmpdir()
    with open(os.path.join(override, "mega2560.json"), "w") as f:
        json.dump(entry, f)
    image = avr_image(3 * PAGE + 7, 12)
    hexfile = write_image(tmpdir(), ihex(image), "named.hex")
    with harness.Flashd(config=FAST_CONFIG, boards_dirs=[harness.boards_dir(), override]) as d:
        c = d.client()
        wait_listed(c, b["port"])
        dev = harness.devices_by_port(c)[b["port"]]
        check(dev["mode"] == "serial" and dev["board"] is None and not dev["board_candidates"],
              "an unnamed bridge is not identified", dev)
        p = flash(d, hexfile)
        check(p.returncode != 0, "flashed by a board name no device carries", p.stdout + p.stderr)
        before = programs(boards)
        p = flashctl(d, "flash", "--board", "octopus", b["tty"], hexfile, timeout=60 * SCALE)
        check(p.returncode != 0 and programs(boards) == before, "an STM32 board name on a serial bridge",
              p.stdout + p.stderr)
        p = flashctl(d, "flash", "--board", "no-such-board", b["tty"], hexfile, timeout=60 * SCALE)
        check(p.returncode != 0 and "unknown board" in p.stdout + p.stderr, "unknown board name", p.stdout + p.stderr)
        p = flashctl(d, "flash", "--board", "mega2560", b["tty"], hexfile, timeout=180 * SCALE)
        check(p.returncode == 0, f"flash --board mega2560 exit {p.returncode}", p.stdout + p.stderr)
        check(boards.read(BOARD, 0, len(image)) == image, "image not in flash")


def test_unplug_and_retry():
    boards = Boards()
    b = boards.board(BOARD)
    image = avr_image(8 * PAGE, 5)
    hexfile = write_image(tmpdir(), ihex(image), "u.hex")
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        wait_listed(c, b["port"])
        boards.vb.quirk(BOARD, "unplug=3,300")
        p = flash(d, hexfile)
        check(p.returncode != 0, "flash with the cable pulled succeeded", p.stdout + p.stderr)
        check("vanished" in p.stdout + p.stderr or "gone" in p.stdout + p.stderr, "device gone", p.stdout + p.stderr)
        boards.vb.unquirk(BOARD, "unplug")
        boards.vb.wait(BOARD, "app", int(20000 * SCALE))
        wait_listed(c, b["port"])
        flash_ok(d, hexfile)
        check(boards.read(BOARD, 0, len(image)) == image, "retry did not flash the image")

        # the first reset pulse misses the chip: pulsed again
        boards.vb.quirk(BOARD, "avr-miss-reset")
        boards.vb.power_cycle(BOARD)
        boards.vb.wait(BOARD, "app", int(20000 * SCALE))
        wait_listed(c, b["port"])
        resets = boards.counters(BOARD)["avr_resets"]
        image2 = avr_image(2 * PAGE, 6)
        flash_ok(d, write_image(tmpdir(), ihex(image2), "m.hex"))
        check(boards.read(BOARD, 0, len(image2)) == image2, "flash after a missed reset")
        check(avr_counters(boards)["avr_resets"] == resets + 1, "one pulse reached the chip",
              avr_counters(boards))
        log = flashctl(d, "job", str(max(j["id"] for j in job_history(d)))).stdout
        check("2 reset" in log, "the job pulsed twice", log)


def test_uno_optiboot():
    """optiboot (STK500v1) on a virtual Uno: erases the page it writes, so
    a change in one page writes that page only; the rest stays."""
    boards = Boards()
    uno = "arduino-uno-atmega328p"
    b = boards.board(uno)
    image = avr_image(10 * 128 + 50, 7)
    with harness.Flashd(config=FAST_CONFIG) as d:
        wait_listed(d.client(), b["port"])
        p = flashctl(d, "flash", "arduino-uno", write_image(tmpdir(), ihex(image), "uno.hex"), timeout=180 * SCALE)
        check(p.returncode == 0, f"flashctl flash exit {p.returncode}", p.stdout + p.stderr)
        check(boards.read(uno, 0, len(image)) == image, "image not in the Uno's flash")
        image2 = bytearray(image)
        image2[5 * 128 + 3] ^= 0x33
        p = flashctl(d, "flash", "arduino-uno", write_image(tmpdir(), ihex(bytes(image2)), "uno2.hex"),
                     timeout=180 * SCALE)
        check(p.returncode == 0, f"flashctl flash exit {p.returncode}", p.stdout + p.stderr)
        check(boards.read(uno, 0, len(image2)) == bytes(image2), "changed image not in the Uno's flash")
        log = flashctl(d, "job", str(max(j["id"] for j in job_history(d)))).stdout
        check("1 written" in log and "10 unchanged and skipped" in log, "only the changed page written", log)
        # the boot section is optiboot's: refused
        p = flashctl(d, "flash", "arduino-uno", write_image(tmpdir(), ihex(avr_image(0x7E00 + 2, 8)), "big.hex"),
                     timeout=60 * SCALE)
        check(p.returncode != 0 and "bootloader" in p.stdout + p.stderr, "into optiboot refused", p.stdout)


if __name__ == "__main__":
    harness.main([test_mega_flash, test_wrong_signature, test_unidentified_bridge_named, test_unplug_and_retry,
                  test_uno_optiboot])

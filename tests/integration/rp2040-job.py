#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`flashctl flash skr-pico klipper.uf2` through the real flashd against a
virtual SKR Pico running Klipper: the 1200-baud request, the board back on
the same port in BOOTSEL (listed with mode bootsel, ROM version and flash
size), the PICOBOOT flash, the reboot into Klipper; bytes checked in the
virtual flash. Then .bin, an unchanged reflash that writes nothing, and
refusals before any erase: an RP2350 UF2, an image built for another MCU,
a .bin without a valid boot2. Last, the cable pulled mid-write: the board
comes back in BOOTSEL (boot2 erased first) and a second flash succeeds,
through a stalled command recovered by the interface reset. And a board
that ignores the 1200-baud request: the job waits with the board's hint
until the BOOTSEL button is held at reset."""

import os
import signal
import subprocess

import harness
import rp2040_helpers as rp
from jobs_helpers import Boards, FAST_CONFIG, check, flash_rpc, flashctl, job_history, tmpdir, wait_job, write_image

BOARD = "skr-pico-rp2040"
BASE = rp.FLASH_BASE
SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))



def flash_ok(d, path, *args):
    p = flashctl(d, "flash", "skr-pico", path, *args, timeout=120 * SCALE)
    check(p.returncode == 0, f"flashctl flash exit {p.returncode}", p.stdout + p.stderr)
    return p


def refused(d, boards, path, what):
    before = boards.counters(BOARD)
    p = flashctl(d, "flash", "skr-pico", path, timeout=60 * SCALE)
    check(p.returncode != 0, f"{what}: not refused", p.stdout + p.stderr)
    after = boards.counters(BOARD)
    check(after["sector_erases"] == before["sector_erases"] and after["baud_1200_requests"] ==
          before["baud_1200_requests"], f"{what}: the board was touched before the refusal", (before, after))
    return p.stdout + p.stderr


def test_klipper_bootsel_klipper():
    boards = Boards()
    b = boards.board(BOARD)
    check(b["mode"] == "app" and b["bootloader"] == "bootsel", "board starts running Klipper", b)
    image = rp.image(48 * 1024 + 300, 11)
    uf2 = write_image(tmpdir(), rp.uf2(image), "klipper.uf2")
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        harness.wait_for(lambda: harness.devices_by_port(c).get(b["port"]), what="board listed")

        flash_ok(d, uf2)
        check(boards.read(BOARD, BASE, len(image)) == image, "UF2 image not in the virtual flash")
        counters = boards.counters(BOARD)
        check(counters["baud_1200_requests"] == 1, "one 1200-baud request", counters)
        back = boards.vb.wait(BOARD, "app", int(10000 * SCALE))
        check(back["port"] == b["port"], "back on the same port", back)
        ev = boards.vb.events(BOARD)
        check("bootsel-added" in ev and ev.index("bootsel-added") < ev.index("app-back"), "via BOOTSEL", ev)
        j = job_history(d)
        check(len(j) == 1 and j[0]["state"] == "done" and j[0]["device"] == back["tty"], "job", j)
        check(j[0]["image"]["format"] == "uf2", "format", j[0]["image"])

        # .bin, changed in one sector
        image2 = bytearray(image)
        image2[20000] ^= 0x5A
        flash_ok(d, write_image(tmpdir(), bytes(image2), "k2.bin"))
        check(boards.read(BOARD, BASE, len(image2)) == bytes(image2), ".bin image not in the virtual flash")
        boards.vb.wait(BOARD, "app", int(10000 * SCALE))

        # the same again: nothing erased or written, the board still back in Klipper
        before = boards.counters(BOARD)
        flash_ok(d, write_image(tmpdir(), bytes(image2), "k3.bin"))
        after = boards.counters(BOARD)
        check(after["sector_erases"] == before["sector_erases"] and after["bytes_written"] ==
              before["bytes_written"], "an unchanged reflash erased or wrote", (before, after))
        check(after["baud_1200_requests"] == before["baud_1200_requests"] + 1, "went through BOOTSEL", after)
        boards.vb.wait(BOARD, "app", int(10000 * SCALE))
        log = flashctl(d, "job", str(max(j["id"] for j in job_history(d)))).stdout
        check("nothing erased or written" in log, "the log says nothing was written", log)

        # refused before anything is erased (and before the reboot)
        out = refused(d, boards, write_image(tmpdir(), rp.uf2(image, family=rp.UF2_FAMILY_RP2350_ARM_S),
                                             "rp2350.uf2"), "RP2350 UF2")
        check("RP2350" in out, "the refusal names the family", out)
        out = refused(d, boards, write_image(tmpdir(), rp.image(16 * 1024, 12, mcu="stm32f446xx"), "f446.bin"),
                      "image for another MCU")
        check("stm32f446xx" in out, "the refusal names the MCU", out)
        out = refused(d, boards, write_image(tmpdir(), rp.image(16 * 1024, 13, bad_boot2=True), "bad.bin"),
                      "bad boot2")
        check("boot2" in out, "the refusal names boot2", out)
        check(boards.read(BOARD, BASE, len(image2)) == bytes(image2), "flash changed by a refused image")


def test_listed_in_bootsel():
    boards = Boards()
    b = boards.board(BOARD)
    boards.vb.boot0_reset(BOARD)
    boards.vb.wait(BOARD, "bootsel", int(10000 * SCALE))
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        harness.wait_for(lambda: (harness.devices_by_port(c).get(b["port"]) or {}).get("rom_version"),
                         what="BOOTSEL board probed")
        dev = harness.devices_by_port(c)[b["port"]]
        check(dev["mode"] == "bootsel" and dev["usb_id"] == "2e8a:0003", "mode", dev)
        check(dev["rom_version"] == "B2" and dev["flash_size"] == 2 * 1024 * 1024, "ROM version, flash size", dev)
        check(dev["mcu"] == "rp2040", "mcu", dev)
        p = flashctl(d, "info", b["port"])
        out = p.stdout + p.stderr
        check("bootsel" in out and "B2" in out and "Flash: 2 MiB at 0x10000000" in out,
              "flashctl shows mode, ROM version and flash size", out)

        # flashed directly from BOOTSEL, then the cable pulled mid-write
        boards.vb.quirk(BOARD, "unplug=4")
        image = rp.image(64 * 1024, 21)
        path = write_image(tmpdir(), image)
        p = flashctl(d, "flash", "skr-pico", path, timeout=120 * SCALE)
        check(p.returncode != 0, "the unplug did not fail the flash", p.stdout + p.stderr)
        boards.vb.unquirk(BOARD, "unplug")
        check(boards.read(BOARD, BASE, 256) == b"\xff" * 256, "boot2 written before the rest")
        boards.vb.plug(BOARD)
        boards.vb.wait(BOARD, "bootsel", int(10000 * SCALE))
        harness.wait_for(lambda: (harness.devices_by_port(c).get(b["port"]) or {}).get("mode") == "bootsel",
                         what="board listed in BOOTSEL again")
        # and the second WRITE of the retry stalls: recovered by the interface reset
        boards.vb.quirk(BOARD, "picoboot-stall=2")
        resets = boards.counters(BOARD)["picoboot_resets"]
        flash_ok(d, path)
        boards.vb.unquirk(BOARD, "picoboot-stall")
        check(boards.read(BOARD, BASE, len(image)) == image, "image not in the virtual flash after the retry")
        check(boards.counters(BOARD)["picoboot_resets"] > resets + 1, "no interface reset after the stall")
        log = flashctl(d, "job", str(max(j["id"] for j in job_history(d)))).stdout
        check("stalled commands recovered" in log, "the log tells the stall", log)
        boards.vb.wait(BOARD, "app", int(10000 * SCALE))


def test_ignores_1200_baud_then_bootsel_button():
    """A board whose Klipper ignores the 1200-baud request: the job waits
    with the board's hint (the BOOT button) and goes on once the button is
    held at reset."""
    boards = Boards()
    b = boards.board(BOARD)
    if b["mode"] != "app":
        boards.vb.power_cycle(BOARD)
        boards.vb.wait(BOARD, "app", int(10000 * SCALE))
    boards.vb.quirk(BOARD, "no-1200-reboot")
    image = rp.image(12 * 1024, 31)
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        harness.wait_for(lambda: (harness.devices_by_port(c).get(b["port"]) or {}).get("mode") == "app",
                         what="board listed running Klipper")
        env = dict(os.environ, NO_COLOR="1")
        p = subprocess.Popen([harness.flashctl_binary(), "--socket", d.socket_path, "flash", "skr-pico",
                              write_image(tmpdir(), image)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        job = c.wait_notification("notify_job_update", lambda q: q[0]["state"] == "waiting-for-device" and
                                  "BOOT" in (q[0].get("message") or ""), timeout=20 * SCALE)[0]
        check(boards.board(BOARD)["mode"] == "app", "the board ignored the 1200-baud request")
        boards.vb.boot0_reset(BOARD)
        out, err = p.communicate(timeout=60 * SCALE)
        boards.vb.unquirk(BOARD, "no-1200-reboot")
        check(p.returncode == 0, f"flashctl flash exit {p.returncode}", out + err)
        check("BOOT" in job["message"], "the hint names the button", job["message"])
        check(boards.read(BOARD, BASE, len(image)) == image, "image in flash")
        boards.vb.wait(BOARD, "app", int(10000 * SCALE))


def test_restart_mid_write_resumes_in_bootsel():
    """flashd killed while it writes a board in BOOTSEL: the board stays in
    its boot ROM, and the restarted flashd retries the interrupted job as it
    does for the other bootloaders."""
    boards = Boards()
    b = boards.board(BOARD)
    image = rp.image(1536 * 1024, 31)
    boards.vb.boot0_reset(BOARD)
    boards.vb.wait(BOARD, "bootsel", int(10000 * SCALE))
    d = harness.Flashd(config=FAST_CONFIG)
    d.start()
    try:
        c = d.client()
        harness.wait_for(lambda: (harness.devices_by_port(c).get(b["port"]) or {}).get("mode") == "bootsel",
                         what="board in BOOTSEL", timeout=20 * SCALE)
        job = flash_rpc(c, "skr-pico", image)["id"]
        c.wait_notification("notify_job_update", lambda p: p[0]["id"] == job and p[0]["state"] == "flashing" and
                            p[0]["phase"] == "write" and p[0]["bytes_done"] > 0, timeout=30 * SCALE)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        check(boards.read(BOARD, BASE, len(image)) != image, "the first flash really was interrupted")
        d.stop(check=False)
        d2 = harness.Flashd(config=FAST_CONFIG)
        d2.state_dir = d.state_dir
        with d2:
            j = wait_job(d2.client(), job, timeout=60 * SCALE)
            check(j["state"] == "done" and j["attempts"] == 2, "retried after the restart", j)
            check(boards.read(BOARD, BASE, len(image)) == image, "image in flash after the retry")
    finally:
        d.cleanup()


if __name__ == "__main__":
    harness.main([test_klipper_bootsel_klipper, test_listed_in_bootsel, test_ignores_1200_baud_then_bootsel_button,
                  test_restart_mid_write_resumes_in_bootsel])

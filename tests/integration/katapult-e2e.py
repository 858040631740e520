#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Flash jobs through Katapult: the real flashd and flashctl under
virtual boards, every result read back from the virtual flash.

    vboard --board octopus-f446 --mode app --bootloader katapult -- python3 katapult-e2e.py katapult
    vboard --board octopus-f446 --mode app -- python3 katapult-e2e.py rom-dfu
    vboard --board octopus-f446 --mode dfu --bootloader katapult -- python3 katapult-e2e.py install
    vboard --board skr-mini-e3-v3 --mode app --bootloader katapult -- python3 katapult-e2e.py g0

`katapult`: `flashctl flash octopus klipper.bin` on an Octopus with Katapult
running Klipper exits 0 with the image in flash and Klipper back on the
same port path; a board already sitting in Katapult is flashed directly
(no reboot request) and listed as mode katapult with the MCU Katapult
reports, but not while another process holds its tty locked; klippy's
locked port is refused even by a flashd that runs unprivileged and cannot
read root's /proc/PID/fd (the hardened unit); a wrong MCU is refused with the flash unchanged and goes through
with --force mcu; a cable pulled mid-transfer fails clearly and the retry
flashes; a board whose database entry says reboot = uart-request gets
Klipper's serial request block instead of the 1200-baud request.
`rom-dfu`: the very same command flashes an Octopus without Katapult
through the ROM DFU bootloader. `install`: Katapult itself written at
0x08000000 through ROM DFU (--address and --force bootloader-region), then Klipper
through it. `g0`: an STM32G0 gets one priming command before CONNECT.
"""
import json
import os
import random
import shutil
import subprocess
import sys

import harness
from jobs_helpers import (APP, EXIT_FAILED, EXIT_OK, EXIT_REFUSED, FAST_CONFIG, FLASH_BASE, RAM_TOP, Boards,
                          app_image, check, flashctl, tmpdir, write_image)

sys.path.insert(0, os.path.join(harness.source_root(), "tests", "vboard"))
from vboard import klipper_reboot_request  # noqa: E402

BOARD = 0
MCU = "stm32f446xx"


def listed(c, port, mode):
    d = harness.devices_by_port(c).get(port)
    return d if d and d["mode"] == mode else None


def board_in_app(boards):
    """Start every test with Klipper running (a failed test may leave the
    board in Katapult): reset boots the application when it is plausible."""
    if boards.board(BOARD)["mode"] != "app":
        boards.reset(BOARD)
    return boards.vb.wait(BOARD, "app", 5000)


def flash_ok(boards, d, path, image, *extra, bootloader="katapult"):
    """`flashctl flash octopus IMAGE` exits 0, the image is in the virtual
    flash, the bootloader region is untouched, and the board is back as
    Klipper on the same port path (and tty)."""
    before = boards.board(BOARD)
    boot = boards.read(BOARD, FLASH_BASE, APP - FLASH_BASE)
    p = flashctl(d, "flash", *extra, "octopus", path)
    check(p.returncode == EXIT_OK, f"flashctl flash exit {p.returncode}", p.stdout + p.stderr)
    check("Done" in p.stdout, "flashctl says done", p.stdout)
    check(boards.read(BOARD, APP, len(image)) == image, "image in the virtual flash at 0x08008000")
    check(boards.read(BOARD, FLASH_BASE, APP - FLASH_BASE) == boot, "bootloader region untouched")
    after = boards.vb.wait(BOARD, "app", 5000)
    check(after["port"] == before["port"] and after["tty"] == before["tty"],
          "Klipper back on the same port path", (before, after))
    check(after["tty"] in p.stdout, "flashctl names where the board is now", p.stdout)
    check(boards.board(BOARD)["bootloader"] == bootloader, "vboard board has " + bootloader)
    return p


def test_klipper_katapult_klipper():
    """The whole Katapult path on the Katapult board: flash, progress, history, the board back in Klipper."""
    boards = Boards()
    port = boards.board(BOARD)["port"]
    image = app_image(150 * 1024 + 77, APP, seed=91, mcu=MCU)
    path = write_image(tmpdir(), image)
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        harness.wait_for(lambda: listed(c, port, "app"), what="board listed in app mode")
        requests = boards.counters(BOARD)["baud_1200_requests"]
        flash_ok(boards, d, path, image)
        events = boards.events(BOARD)
        check("katapult-added" in events or any("katapult" in e for e in events), "went through Katapult",
              events)
        check(boards.counters(BOARD)["baud_1200_requests"] == requests + 1, "one 1200-baud request")
        # on the way, the inventory listed the board in Katapult with the
        # MCU Katapult reports (our identified client got the notification)
        seen = c.wait_notification("notify_device_added", lambda p: p[0]["mode"] == "katapult", timeout=5)[0]
        check(seen["mcu"] == MCU and seen["port"] == port and seen["usb_id"] == "1d50:6177",
              "inventory listed mode katapult with the MCU Katapult reports", seen)
        job = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)[-1]
        log = "\n".join(json.loads(flashctl(d, "--json", "job", str(job["id"])).stdout)["log"])
        check("Katapult:" in log and "verified" in log, "job log tells the Katapult flash", log)


def test_already_in_katapult():
    """A board sitting in Katapult (as after a double reset) is flashed
    directly: no reboot request from flashd."""
    boards = Boards()
    b = board_in_app(boards)
    klipper_reboot_request(b["tty"])  # what a double reset does on real boards
    boards.vb.wait(BOARD, "katapult", 5000)
    requests = boards.counters(BOARD)["baud_1200_requests"]
    image = app_image(64 * 1024 + 3, APP, seed=92, mcu=MCU)
    path = write_image(tmpdir(), image)
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        dev = harness.wait_for(lambda: listed(c, b["port"], "katapult"), what="board listed in katapult mode")
        check(dev["mcu"] == MCU and dev["usb_id"] == "1d50:6177" and dev["product"] == MCU,
              "mode katapult, the MCU Katapult reports", dev)
        p = flashctl(d, "list")
        check("katapult" in p.stdout and MCU in p.stdout, "flashctl list shows katapult and the MCU", p.stdout)
        flash_ok(boards, d, path, image)
        check(boards.counters(BOARD)["baud_1200_requests"] == requests, "flashd sent no reboot request")
        job = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)[-1]
        p = flashctl(d, "job", str(job["id"]))
        check("rebooting" not in p.stdout, "no rebooting state for a board already in Katapult", p.stdout)


def test_katapult_tty_locked():
    """Another process holds Katapult's tty with the lock pyserial's
    exclusive=True takes (a klippy reconnecting to the same path): refused
    with tty-busy before any block is written; flashed once it is gone."""
    boards = Boards()
    b = board_in_app(boards)
    klipper_reboot_request(b["tty"])
    kat = boards.vb.wait(BOARD, "katapult", 5000)
    script = os.path.join(tmpdir(), "klippy.py")
    with open(script, "w") as f:
        f.write("import fcntl, os, sys\n"
                f"fd = os.open({kat['tty']!r}, os.O_RDWR | os.O_NOCTTY)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                "print('locked', flush=True)\n"
                "sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    image = app_image(20 * 1024 + 11, APP, seed=99, mcu=MCU)
    path = write_image(tmpdir(), image)
    try:
        check(holder.stdout.readline().strip() == "locked", "the holder locked the tty")
        written = boards.counters(BOARD)["bytes_written"]
        with harness.Flashd(config=FAST_CONFIG) as d:
            c = d.client()
            harness.wait_for(lambda: listed(c, kat["port"], "katapult"), what="board listed in katapult mode")
            p = flashctl(d, "flash", "octopus", path)
            check(p.returncode == EXIT_REFUSED and "tty-busy" in p.stderr and "locked" in p.stderr,
                  f"refused as tty-busy (exit {p.returncode})", p.stdout + p.stderr)
            check(boards.counters(BOARD)["bytes_written"] == written, "no block written")
            check(boards.board(BOARD)["mode"] == "katapult", "board still in Katapult")
            holder.kill()
            holder.wait()
            flash_ok(boards, d, path, image)
    finally:
        holder.kill()
        holder.wait()


def test_tty_locked_unprivileged():
    """The hardened unit: flashd runs as its own user and may not read
    root's /proc/PID/fd, so the /proc scan cannot see klippy. klippy's port
    is locked (pyserial exclusive=True = flock), and the lock probe refuses
    the flash as tty-busy all the same, with nothing rebooted or written."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("skip: needs root and setpriv to run flashd as another user")
        return
    boards = Boards()
    b = board_in_app(boards)
    # let the unprivileged daemon into the emulated world: the testbed, the
    # board's control sockets, the tty (a pty, 0600 root by default)
    for root, dirs, files in os.walk(os.environ["UMOCKDEV_DIR"]):
        for n in dirs + files:
            path = os.path.join(root, n)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o777)
    # the udev monitor emulation binds (and first unlinks) a socket here, at
    # the path an earlier root flashd of this test run may have left behind
    os.chmod(os.environ["UMOCKDEV_DIR"], 0o777)
    os.chmod(b["tty"], 0o666)
    script = os.path.join(tmpdir(), "klippy.py")
    with open(script, "w") as f:
        f.write("import fcntl, os, sys\n"
                f"fd = os.open({b['tty']!r}, os.O_RDWR | os.O_NOCTTY)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                "print('locked', flush=True)\n"
                "sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    path = write_image(tmpdir(), app_image(16 * 1024, APP, seed=101, mcu=MCU))
    os.chmod(os.path.dirname(path), 0o755)
    os.chmod(path, 0o644)
    wrapper = os.environ.get("FLASHD_WRAPPER")
    os.environ["FLASHD_WRAPPER"] = "setpriv --reuid=65534 --regid=65534 --clear-groups"
    old_umask = os.umask(0)  # the daemon's notify socket and directories
    try:
        check(holder.stdout.readline().strip() == "locked", "the holder locked the tty")
        before = boards.counters(BOARD)
        d = harness.Flashd(config=FAST_CONFIG, other_user=True)
        os.chmod(d.tmp, 0o777)
        with d:
            os.umask(old_umask)
            c = d.client()
            harness.wait_for(lambda: listed(c, b["port"], "app"), what="board listed by the unprivileged flashd")
            p = flashctl(d, "flash", "octopus", path)
            text = p.stdout + p.stderr
            check(p.returncode == EXIT_REFUSED and "tty-busy" in p.stderr and "exclusive lock" in p.stderr,
                  f"refused as tty-busy by the lock probe (exit {p.returncode})", text)
            check(f"pid {holder.pid}" not in text, "the holder could not be named (proof that /proc was closed)",
                  text)
            after = boards.counters(BOARD)
            check(after["baud_1200_requests"] == before["baud_1200_requests"] and
                  after["bytes_written"] == before["bytes_written"], "nothing rebooted, nothing written")
            check(boards.board(BOARD)["mode"] == "app", "Klipper still running")
    finally:
        os.umask(old_umask)
        if wrapper is None:
            os.environ.pop("FLASHD_WRAPPER", None)
        else:
            os.environ["FLASHD_WRAPPER"] = wrapper
        holder.kill()
        holder.wait()


def test_wrong_mcu():
    """An image built for another MCU is refused before anything is written
    (the flash is unchanged); --force mcu writes it."""
    boards = Boards()
    board_in_app(boards)
    image = app_image(40 * 1024, APP, seed=93, mcu="stm32f429xx")
    path = write_image(tmpdir(), image)
    flash_before = boards.read(BOARD, FLASH_BASE, 256 * 1024)
    written = boards.counters(BOARD)["bytes_written"]
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        harness.wait_for(lambda: listed(c, boards.board(BOARD)["port"], "app"), what="board listed")
        p = flashctl(d, "flash", "octopus", path)
        check(p.returncode == EXIT_REFUSED, f"wrong MCU refused (exit {p.returncode})", p.stdout + p.stderr)
        text = p.stdout + p.stderr
        check("stm32f429xx" in text and MCU in text, "the refusal names both MCUs", text)
        check(boards.read(BOARD, FLASH_BASE, 256 * 1024) == flash_before, "flash unchanged")
        check(boards.counters(BOARD)["bytes_written"] == written, "no block written")
        check(boards.board(BOARD)["mode"] == "app", "board left running Klipper")

        p = flash_ok(boards, d, path, image, "--force", "mcu")


def test_unplug_mid_transfer():
    """The cable is pulled after 5 Katapult blocks (and plugged back): the
    job fails saying so; the retry flashes the board."""
    boards = Boards()
    b = board_in_app(boards)
    image = app_image(48 * 1024 + 9, APP, seed=94, mcu=MCU)
    path = write_image(tmpdir(), image)
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        harness.wait_for(lambda: listed(c, b["port"], "app"), what="board listed")
        boards.quirk(BOARD, "unplug=5,300")
        try:
            p = flashctl(d, "flash", "octopus", path)
        finally:
            boards.unquirk(BOARD, "unplug")
        text = p.stdout + p.stderr
        check(p.returncode == EXIT_FAILED, f"unplugged flash fails (exit {p.returncode})", text)
        check("vanish" in text or "gone" in text or "unplug" in text or "disconnect" in text,
              "the failure says the board went away", text)
        check(boards.counters(BOARD)["unplugs"] >= 1, "vboard pulled the cable")
        check(boards.read(BOARD, APP, len(image)) != image, "the interrupted flash is incomplete")
        # the board comes back by itself (as its firmware boots); then retry
        harness.wait_for(lambda: listed(c, b["port"], "app") or listed(c, b["port"], "katapult"),
                         what="board back after the replug")
        flash_ok(boards, d, path, image)


def test_uart_request():
    """A board whose database entry says reboot = uart-request: flashd sends
    Klipper's 32-byte serial request block (at uart_baud), not the 1200-baud
    request, and flashes through Katapult."""
    boards = Boards()
    b = board_in_app(boards)
    over = tmpdir()
    with open(os.path.join(harness.boards_dir(), "octopus.json")) as f:
        db = json.load(f)
    db["reboot"] = "uart-request"
    db["bootloader"] = "katapult"
    with open(os.path.join(over, "octopus.json"), "w") as f:
        json.dump(db, f)
    image = app_image(32 * 1024 + 1, APP, seed=95, mcu=MCU)
    path = write_image(tmpdir(), image)
    requests = boards.counters(BOARD)["baud_1200_requests"]
    with harness.Flashd(config=FAST_CONFIG + "uart_baud = 115200\n",
                        boards_dirs=[harness.boards_dir(), over]) as d:
        c = d.client()
        harness.wait_for(lambda: listed(c, b["port"], "app"), what="board listed")
        flash_ok(boards, d, path, image)
        check(boards.counters(BOARD)["baud_1200_requests"] == requests, "no 1200-baud request")
        check("uart-request" in boards.events(BOARD), "vboard saw the serial request block",
              boards.events(BOARD))
        check("serial request block at 115200 baud" in d.log_text(), "flashd used uart_baud")


def test_rom_dfu_same_command():
    """The same `flashctl flash octopus klipper.bin` on an Octopus without
    Katapult goes through the ROM DFU bootloader."""
    boards = Boards()
    check(boards.board(BOARD)["bootloader"] == "rom-dfu", "this vboard has the ROM DFU bootloader only")
    port = boards.board(BOARD)["port"]
    image = app_image(150 * 1024 + 77, APP, seed=96, mcu=MCU)
    path = write_image(tmpdir(), image)
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        harness.wait_for(lambda: listed(c, port, "app"), what="board listed in app mode")
        flash_ok(boards, d, path, image, bootloader="rom-dfu")
        events = boards.events(BOARD)
        check("dfu-added" in events and "leave" in events, "went through the ROM DFU bootloader", events)


def test_g0_primed():
    """An STM32G0 board with Katapult (SKR Mini E3 v3): its USB double
    buffering holds back Katapult's first reply on real hardware, so the
    session sends one priming command before CONNECT (as flashtool.py); the
    virtual Katapult answers it with ERROR and counts it."""
    boards = Boards()
    b = boards.vb.wait(BOARD, "app", 5000)
    check(b["mcu"] == "stm32g0b1xx" and b["bootloader"] == "katapult", "a G0B1 with Katapult", b)
    app = b["app_address"]
    image = app_image(8 * 1024 + 5, app, seed=100, mcu="stm32g0b1xx")
    path = write_image(tmpdir(), image)
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        harness.wait_for(lambda: listed(c, b["port"], "app"), what="board listed")
        p = flashctl(d, "flash", "skr-mini-e3-v3", path)
        check(p.returncode == EXIT_OK, f"flashctl flash exit {p.returncode}", p.stdout + p.stderr)
        check(boards.read(BOARD, app, len(image)) == image, "image in the virtual flash")
        check(boards.vb.wait(BOARD, "app", 5000)["port"] == b["port"], "Klipper back on the same port")
    stats = [e["detail"] for e in boards.stats(BOARD)["events"] if e["event"] == "katapult-stats"]
    check(stats, "Katapult session seen", boards.events(BOARD))
    n = [int(w) for w in stats[-1].replace(",", "").split() if w.isdigit()]
    commands, written, read, nacks = n[0], n[1], n[2], n[4]
    # CONNECT + SEND_BLOCK x written + EOF + REQUEST_BLOCK x read + COMPLETE, plus the priming command;
    # on a loaded machine a reply can miss the session's resend time, and the
    # resent command is answered with a NACK: those are the only extra ones
    extra = commands - (3 + written + read)
    check(1 <= extra <= 1 + nacks, "exactly one priming command before CONNECT (and resends)", stats[-1])


def katapult_image(size=8 * 1024 + 100, seed=97):
    """A Katapult-like bootloader image: vector table for 0x08000000 (the
    flash start), initial SP at the top of RAM, then noise."""
    rnd = random.Random(seed)
    body = bytearray(rnd.randbytes(size))
    body[0:4] = RAM_TOP.to_bytes(4, "little")
    body[4:8] = (FLASH_BASE + 0x1a1).to_bytes(4, "little")
    return bytes(body)


def test_install_katapult_then_klipper():
    """Katapult itself onto a board in ROM DFU: the bootloader region, asked
    for with --address 0x08000000 --force bootloader-region (the address
    alone is refused); at the
    application address the image is refused with nothing written. The board then
    starts Katapult, and the same `flashctl flash octopus klipper.bin`
    flashes Klipper through it."""
    boards = Boards()
    b = boards.board(BOARD)
    check(b["mode"] == "dfu" and b["bootloader"] == "katapult", "a ROM-DFU board that will boot Katapult", b)
    image = katapult_image()
    path = write_image(tmpdir(), image, "katapult.bin")
    flash_before = boards.read(BOARD, FLASH_BASE, 64 * 1024)
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        harness.wait_for(lambda: listed(c, b["port"], "dfu"), what="board listed in DFU mode")
        # In ROM DFU the board is known by its layout only (Octopus, Octopus
        # Pro and Fysetc S6 share the F446): name it by its port. At the
        # application start its vector table (built for 0x08000000) says it
        # does not belong there.
        p = flashctl(d, "flash", "--address", "0x08008000", b["port"], path)
        check(p.returncode == EXIT_REFUSED, f"Katapult at the app offset refused (exit {p.returncode})",
              p.stdout + p.stderr)
        check(boards.read(BOARD, FLASH_BASE, 64 * 1024) == flash_before, "nothing written")

        # the address alone is not enough: replacing a bootloader is forced by name
        p = flashctl(d, "flash", "--address", "0x08000000", b["port"], path)
        check(p.returncode == EXIT_REFUSED and "--force bootloader-region" in p.stderr,
              f"bootloader region without the force refused (exit {p.returncode})", p.stdout + p.stderr)
        check(boards.read(BOARD, FLASH_BASE, 64 * 1024) == flash_before, "nothing written")

        p = flashctl(d, "flash", "--address", "0x08000000", "--force", "bootloader-region", b["port"], path)
        check(p.returncode == EXIT_OK, f"Katapult install exit {p.returncode}", p.stdout + p.stderr)
        check(boards.read(BOARD, FLASH_BASE, len(image)) == image, "Katapult image at 0x08000000")
        after = boards.vb.wait(BOARD, "katapult", 5000)
        check(after["port"] == b["port"], "Katapult on the same port path", after)
        dev = harness.wait_for(lambda: listed(c, b["port"], "katapult"), what="inventory lists katapult")
        check(dev["mcu"] == MCU, "Katapult reports the MCU", dev)
        job = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)[-1]
        check(job["state"] == "done" and "Katapult" in (job.get("message") or ""),
              "the job says Katapult runs now", job)

        klipper = app_image(60 * 1024 + 5, APP, seed=98, mcu=MCU)
        kpath = write_image(tmpdir(), klipper)
        p = flashctl(d, "flash", "octopus", kpath)
        check(p.returncode == EXIT_OK, f"Klipper through Katapult exit {p.returncode}", p.stdout + p.stderr)
        check(boards.read(BOARD, APP, len(klipper)) == klipper, "Klipper at 0x08008000")
        check(boards.read(BOARD, FLASH_BASE, len(image)) == image, "Katapult kept")
        check(boards.vb.wait(BOARD, "app", 5000)["port"] == b["port"], "Klipper running on the same port")


SETS = {
    "katapult": [test_klipper_katapult_klipper, test_already_in_katapult, test_katapult_tty_locked,
                 test_tty_locked_unprivileged, test_wrong_mcu,
                 test_unplug_mid_transfer, test_uart_request],
    "rom-dfu": [test_rom_dfu_same_command],
    "install": [test_install_katapult_then_klipper],
    "g0": [test_g0_primed],
}

if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "katapult"
    sys.argv[1:] = []
    harness.main(SETS[which])

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""CAN toolheads: the real flashd and flashctl against vboard's virtual CAN
bus (an EBB36 and an EBB42 on can0), every result read from the virtual
flash.

    vboard --board ebb36-v1.2 --can can0 --can-uuid 0123456789ab \
           --board ebb42-v1.2 --can can0 -- python3 can-flash.py

`flashctl flash can0:UUID klipper.bin` takes the EBB36 from Klipper through
Katapult back to Klipper; Katapult frames that arrive corrupted or not at
all are resent; a node that stops answering mid-transfer, a wrong MCU (no
block written), an interface that is down or bus-off, a missing interface
and a UUID nobody answers to each fail with their own message.
"""
import json
import os
import sys

import harness
from jobs_helpers import (EXIT_OK, Boards, app_image, check, flashctl, tmpdir, write_image)

EBB36, EBB42 = 0, 1
UUID = "0123456789ab"
TARGET = "can0:" + UUID
FLASH_BASE = 0x08000000
APP = 0x08002000  # Katapult 8 KiB
MCU = "stm32g0b1xx"
SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))
CONFIG = "reboot_wait_sec = 1\nbootloader_timeout_sec = 4\napp_timeout_sec = 10\n"


def job_log(d):
    job = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)[-1]
    return job, "\n".join(json.loads(flashctl(d, "--json", "job", str(job["id"])).stdout)["log"])


def node_in_app(boards):
    if boards.board(EBB36)["mode"] != "app":
        boards.reset(EBB36)
    return boards.vb.wait(EBB36, "app", int(5000 * SCALE))


def flash_ok(boards, d, image, *extra):
    path = write_image(tmpdir(), image)
    boot = boards.read(EBB36, FLASH_BASE, APP - FLASH_BASE)
    reboots = boards.board(EBB36)["can_reboots"]
    p = flashctl(d, "flash", *extra, TARGET, path, timeout=120 * SCALE)
    check(p.returncode == EXIT_OK, f"flashctl flash exit {p.returncode}", p.stdout + p.stderr)
    check(boards.read(EBB36, APP, len(image)) == image, "image in the virtual flash at 0x08002000")
    check(boards.read(EBB36, FLASH_BASE, APP - FLASH_BASE) == boot, "Katapult's 8 KiB untouched")
    b = boards.vb.wait(EBB36, "app", int(5000 * SCALE))
    check(b["can_reboots"] == reboots + 1, "one CAN reboot request", b)
    return p


def can_nodes(d):
    p = flashctl(d, "--json", "list")
    return {n["uuid"]: n for n in json.loads(p.stdout) if n.get("transport") == "can"}


def test_query_and_list():
    """Unassigned Klipper nodes answer the admin query: both are listed with
    interface, UUID and mode; a node in Katapult is listed as such."""
    boards = Boards()
    node_in_app(boards)
    other = boards.board(EBB42)["can_uuid"]
    with harness.Flashd(config=CONFIG) as d:
        nodes = harness.wait_for(lambda: (lambda n: n if len(n) == 2 else None)(can_nodes(d)),
                                 timeout=15 * SCALE, interval=0.3, what="two CAN nodes listed")
        for uuid in (UUID, other):
            n = nodes[uuid]
            check(n["interface"] == "can0" and n["mode"] == "klipper" and n["port"] == "can0:" + uuid,
                  "node listed with interface, uuid, mode", n)
        p = flashctl(d, "list")
        check("can0:" + UUID in p.stdout and "klipper" in p.stdout, "flashctl list shows the node", p.stdout)
        # Klipper's reboot command, sent by hand: the node answers as Katapult
        subprocess_reboot(UUID)
        harness.wait_for(lambda: can_nodes(d).get(UUID, {}).get("mode") == "katapult", timeout=15 * SCALE,
                         interval=0.3, what="node listed in katapult mode")
    boards.reset(EBB36)


def subprocess_reboot(uuid):
    """Klipper's admin REBOOT through a raw CAN_RAW socket (the preload's)."""
    import socket
    import struct
    s = socket.socket(socket.PF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    s.bind(("can0",))
    s.send(struct.pack("<IB3x8s", 0x3f0, 7, bytes([0x02]) + bytes.fromhex(uuid)))
    s.close()


def test_flash_klipper_to_klipper():
    boards = Boards()
    node_in_app(boards)
    image = app_image(60 * 1024 + 17, APP, seed=36, mcu=MCU)
    with harness.Flashd(config=CONFIG) as d:
        flash_ok(boards, d, image)
        job, log = job_log(d)
        check(job["state"] == "done", "job done", job)
        check("reboot into Katapult" in log and "back in Klipper" in log and "verified" in log,
              "job log tells the CAN flash", log)
        events = boards.events(EBB36)
        check(any("katapult-added" in e for e in events) and any("app-back" in e for e in events),
              "the node went through Katapult and came back as Klipper", events)
        # the other node on the bus was left alone
        check(boards.board(EBB42)["mode"] == "app" and boards.board(EBB42)["can_reboots"] == 0,
              "the EBB42 was not rebooted")
        # again from Klipper: Katapult's earlier node id is gone with its reboot
        image2 = app_image(20 * 1024, APP, seed=37, mcu=MCU)
        flash_ok(boards, d, image2)


def test_printer_cfg():
    """printer_cfg in flashd.conf: its [mcu NAME] canbus_uuid lines name the
    nodes; a silent one is listed as assigned; `flashctl flash NAME` flashes
    the node over CAN."""
    boards = Boards()
    node_in_app(boards)
    cfg = os.path.join(tmpdir(), "printer.cfg")
    with open(cfg, "w") as f:
        f.write("[mcu]\nserial: /dev/serial/by-id/usb-Klipper_stm32f446xx_0-if00\n\n"
                f"[mcu EBB]\ncanbus_uuid: {UUID}\n\n[mcu ghost]\ncanbus_uuid: 111111111111\n")
    image = app_image(12 * 1024 + 1, APP, seed=43, mcu=MCU)
    with harness.Flashd(config=CONFIG + f"printer_cfg = {cfg}\n") as d:
        nodes = harness.wait_for(lambda: (lambda n: n if n.get(UUID, {}).get("mode") == "klipper" else None)(
            can_nodes(d)), timeout=15 * SCALE, interval=0.3, what="EBB listed answering")
        check(nodes[UUID]["name"] == "EBB", "named after its [mcu EBB] section", nodes[UUID])
        ghost = nodes.get("111111111111")
        check(ghost and ghost["mode"] == "assigned" and not ghost["present"] and ghost["name"] == "ghost",
              "a silent printer.cfg MCU is listed as assigned", ghost)
        path = write_image(tmpdir(), image)
        p = flashctl(d, "flash", "EBB", path, timeout=120 * SCALE)
        check(p.returncode == EXIT_OK, f"flashctl flash EBB exit {p.returncode}", p.stdout + p.stderr)
        check(boards.read(EBB36, APP, len(image)) == image, "image in the EBB36's flash")


def test_corrupt_and_lost_frames():
    boards = Boards()
    node_in_app(boards)
    image = app_image(4 * 1024 + 3, APP, seed=38, mcu=MCU)
    for quirk in ("katapult-corrupt", "can-drop"):
        boards.quirk(EBB36, quirk)
        try:
            with harness.Flashd(config=CONFIG) as d:
                flash_ok(boards, d, image)
                _, log = job_log(d)
                check("frames were resent" in log, f"{quirk}: resends logged", log)
        finally:
            boards.unquirk(EBB36, quirk)
        image = app_image(4 * 1024 + 3, APP, seed=39, mcu=MCU)
    check(boards.board(EBB36)["can_frames_dropped"] > 0, "frames were lost on the way")


def test_node_stops_answering():
    boards = Boards()
    node_in_app(boards)
    image = app_image(30 * 1024, APP, seed=40, mcu=MCU)
    path = write_image(tmpdir(), image)
    boards.quirk(EBB36, "unplug=5")
    with harness.Flashd(config=CONFIG) as d:
        p = flashctl(d, "flash", TARGET, path, timeout=120 * SCALE)
        check(p.returncode != EXIT_OK, "flash failed", p.stdout)
        out = p.stdout + p.stderr
        check("stopped answering" in out and "device-gone" in out, "says the node stopped answering", out)
    check(boards.board(EBB36)["mode"] == "off", "the node is off the bus")
    # power back: the half-written image starts (its vector table went
    # first), and the same command flashes the node again from Klipper
    boards.power_cycle(EBB36)
    boards.vb.wait(EBB36, "app", int(5000 * SCALE))
    with harness.Flashd(config=CONFIG) as d:
        flash_ok(boards, d, image)


def test_wrong_mcu():
    boards = Boards()
    node_in_app(boards)
    before = boards.read(EBB36, FLASH_BASE, 128 * 1024)
    image = app_image(20 * 1024, APP, seed=41, mcu="stm32f446xx")
    path = write_image(tmpdir(), image)
    with harness.Flashd(config=CONFIG) as d:
        p = flashctl(d, "flash", TARGET, path, timeout=120 * SCALE)
        out = p.stdout + p.stderr
        check(p.returncode != EXIT_OK and "check-mcu" in out, "refused with check-mcu", out)
        check("stm32f446xx" in out and MCU in out, "names both MCUs", out)
    check(boards.read(EBB36, FLASH_BASE, 128 * 1024) == before, "flash unchanged: no block written")


def test_bus_errors():
    boards = Boards()
    node_in_app(boards)
    image = app_image(8 * 1024, APP, seed=42, mcu=MCU)
    path = write_image(tmpdir(), image)
    with harness.Flashd(config=CONFIG) as d:
        p = flashctl(d, "flash", "can1:" + UUID, path)
        out = p.stdout + p.stderr
        check(p.returncode != EXIT_OK and "no CAN interface can1" in out, "no interface", out)

        boards.request("can-down", "can0")
        try:
            p = flashctl(d, "flash", TARGET, path)
            out = p.stdout + p.stderr
            check(p.returncode != EXIT_OK and "can0 is down" in out and "ip link set can0 up" in out,
                  "interface down", out)
        finally:
            boards.request("can-up", "can0")

        boards.request("can-bus-off", "can0")
        try:
            p = flashctl(d, "flash", TARGET, path)
            out = p.stdout + p.stderr
            check(p.returncode != EXIT_OK and "bus-off" in out, "bus-off (ENOBUFS)", out)
        finally:
            boards.request("can-bus-on", "can0")

        p = flashctl(d, "flash", "can0:aaaaaaaaaaaa", path, timeout=120 * SCALE)
        out = p.stdout + p.stderr
        check(p.returncode != EXIT_OK and "did not answer as Katapult" in out and "bootloader-timeout" in out,
              "a UUID nobody answers to", out)
    check(boards.board(EBB36)["mode"] == "app" and boards.board(EBB42)["mode"] == "app",
          "both nodes still run Klipper")


if __name__ == "__main__":
    harness.main([test_query_and_list, test_flash_klipper_to_klipper, test_printer_cfg, test_corrupt_and_lost_frames, test_node_stops_answering,
                  test_wrong_mcu, test_bus_errors])

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A mainboard in Klipper's USB-to-CAN bridge mode with a toolhead behind it:

    vboard --board octopus-pro-f446 --mode app --bootloader katapult --bridge can0 \\
           --board ebb36-v1.2 --can can0 --can-uuid 0123456789ab -- python3 can-bridge.py

vboard: the bridge is gs_usb on USB with can0 below its USB interface, and
its own Klipper node answers on can0 next to the EBB36; Klipper's reboot
to its UUID takes it off USB into Katapult over USB on the same port, and
can0 with it; back in its application both are back.
flashd: `flashctl list --json` shows the bridge on its USB port with
"bridge": {"interface": "can0", "uuid": ...} and the toolhead on can0;
the interface follows the board through its bootloader.
"""
import errno
import json
import os
import select
import socket
import struct
import time

import harness
from jobs_helpers import EXIT_OK, Boards, app_image, check, flashctl, tmpdir, write_image

BRIDGE, EBB36 = 0, 1
EBB_UUID = "0123456789ab"
BRIDGE_APP, BRIDGE_MCU = 0x08008000, "stm32f446xx"  # Octopus Pro F446, 32 KiB bootloader
FMT = "<IB3x8s"
SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))
CONFIG = "reboot_wait_sec = 1\nbootloader_timeout_sec = 4\napp_timeout_sec = 10\n"


def query(timeout=1.0):
    """QUERY_UNASSIGNED on can0: {uuid: app byte} of the nodes that answer."""
    s = socket.socket(socket.PF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    s.setsockopt(socket.SOL_CAN_RAW, socket.CAN_RAW_FILTER, struct.pack("<II", 0x3f1, 0x7ff))
    s.bind(("can0",))
    s.setblocking(False)
    time.sleep(0.2)  # the bus sees the filter before the query
    s.send(struct.pack(FMT, 0x3f0, 1, b"\0"))
    found, end = {}, time.monotonic() + timeout * SCALE
    while time.monotonic() < end:
        if select.select([s], [], [], 0.1)[0]:
            _, n, data = struct.unpack(FMT, s.recv(16))
            found[data[1:7].hex()] = data[7]
    s.close()
    return found


def reboot(uuid):
    s = socket.socket(socket.PF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    s.bind(("can0",))
    s.send(struct.pack(FMT, 0x3f0, 7, bytes([0x02]) + bytes.fromhex(uuid)))
    s.close()


def sysattr(port, name):
    with open(f"/sys/bus/usb/devices/{port}/{name}") as f:
        return f.read().strip()


def iface_present():
    try:
        socket.if_nametoindex("can0")
        return True
    except OSError:
        return False


def boot_mode(boards):
    """Where the bridge's reboot takes it: Katapult over USB, or its ROM DFU."""
    return "katapult" if boards.board(BRIDGE)["bootloader"] == "katapult" else "dfu"


BOOT_USB_ID = {"katapult": ("1d50", "6177"), "dfu": ("0483", "df11")}


def bridge_in_app(boards):
    if boards.board(BRIDGE)["mode"] != "app":
        boards.reset(BRIDGE)
    return boards.vb.wait(BRIDGE, "app", int(5000 * SCALE))


def test_vboard_bridge():
    boards = Boards()
    b = bridge_in_app(boards)
    port, uuid = b["port"], b["can_uuid"]
    check(b["bridge"] is True, "vboard lists the board as a bridge", b)
    check((sysattr(port, "idVendor"), sysattr(port, "idProduct")) == ("1d50", "606f"), "gs_usb on USB")
    check(sysattr(port, "serial") == b["uid"] and sysattr(port, "manufacturer") == "Klipper",
          "the chip id as serial, Klipper's strings")
    check(f"/{port}/" in os.path.realpath("/sys/class/net/can0"), "can0 sits below the bridge's USB device",
          os.path.realpath("/sys/class/net/can0"))
    nodes = query()
    check(nodes.get(uuid) == 0x01 and nodes.get(EBB_UUID) == 0x01,
          "the bridge's own Klipper and the toolhead answer the query", nodes)

    reboot(uuid)
    mode = boot_mode(boards)
    b = boards.vb.wait(BRIDGE, mode, int(5000 * SCALE))
    check(b["port"] == port and (sysattr(port, "idVendor"), sysattr(port, "idProduct")) == BOOT_USB_ID[mode],
          f"{mode} on USB on the same port")
    check(not iface_present() and not os.path.exists("/sys/class/net/can0"), "can0 is gone with the bridge")
    check(boards.board(EBB36)["mode"] == "app", "the toolhead was not rebooted")

    boards.reset(BRIDGE)
    boards.vb.wait(BRIDGE, "app", int(5000 * SCALE))
    check(iface_present(), "can0 is back with the application")
    nodes = query()
    check(nodes.get(uuid) == 0x01 and nodes.get(EBB_UUID) == 0x01, "both answer again", nodes)


def listed(d):
    return json.loads(flashctl(d, "--json", "list").stdout)


def test_daemon_lists_bridge():
    boards = Boards()
    b = bridge_in_app(boards)
    port, uuid = b["port"], b["can_uuid"]
    with harness.Flashd(config=CONFIG) as d:
        def both():
            devs = listed(d)
            usb = [x for x in devs if x.get("port") == port]
            can = {x["uuid"]: x for x in devs if x.get("transport") == "can"}
            if usb and (usb[0].get("bridge") or {}).get("interface") == "can0" and EBB_UUID in can:
                return usb[0], can
            return None
        dev, can = harness.wait_for(both, timeout=15 * SCALE, interval=0.3,
                                    what="the bridge with its interface and the toolhead listed")
        check(dev["bridge"]["uuid"] == uuid, "the bridge's UUID from its USB serial", dev)
        check(dev["mode"] == "app" and dev["usb_id"] == "1d50:606f" and dev["can_interface"] == "can0",
              "the bridge is a Klipper board providing can0", dev)
        check(can[EBB_UUID]["interface"] == "can0", "the toolhead on can0", can[EBB_UUID])
        p = flashctl(d, "list")
        check(port in p.stdout and "can0:" + EBB_UUID in p.stdout, "flashctl list shows both", p.stdout)

        # in its bootloader the port shows Katapult, and no interface
        reboot(uuid)
        mode = boot_mode(boards)
        boards.vb.wait(BRIDGE, mode, int(5000 * SCALE))
        dev = harness.wait_for(
            lambda: next((x for x in listed(d) if x.get("port") == port and x.get("mode") == mode), None),
            timeout=15 * SCALE, interval=0.3, what="the bridge listed in its bootloader")
        check(dev["bridge"] is None and dev["can_interface"] is None, "no interface in the bootloader", dev)
        boards.reset(BRIDGE)
        boards.vb.wait(BRIDGE, "app", int(5000 * SCALE))
        harness.wait_for(both, timeout=15 * SCALE, interval=0.3, what="the interface back on the bridge's port")


def flash_bridge(boards, d, target, seed):
    b = bridge_in_app(boards)
    image = app_image(24 * 1024 + 5, BRIDGE_APP, seed=seed, mcu=BRIDGE_MCU)
    path = write_image(tmpdir(), image)
    reboots = b["can_reboots"]
    p = flashctl(d, "flash", target, path, timeout=120 * SCALE)
    out = p.stdout + p.stderr
    check(p.returncode == EXIT_OK, f"flashctl flash {target} exit {p.returncode}", out)
    check(boards.read(BRIDGE, BRIDGE_APP, len(image)) == image, "image in the bridge's virtual flash")
    b = boards.vb.wait(BRIDGE, "app", int(5000 * SCALE))
    check(b["can_reboots"] == reboots + 1, "rebooted by Klipper's CAN admin REBOOT to its own UUID", b)
    events = boards.events(BRIDGE)
    check(any(boot_mode(boards) + "-added" in e for e in events), "went through its bootloader on USB", events)
    check(iface_present(), "can0 is back when the job is done")
    job = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)[-1]
    log = "\n".join(json.loads(flashctl(d, "--json", "job", str(job["id"])).stdout)["log"])
    check("CAN admin REBOOT" in log and "can0 is back" in log, "the job log tells the bridge's way", log)
    nodes = query()
    check(nodes.get(EBB_UUID) == 0x01, "the toolhead is reachable again behind the bridge", nodes)


def test_flash_bridge():
    """The bridge by its USB port, then by can0:<its UUID>: rebooted over CAN,
    followed on its port into Katapult over USB, flashed there, and the job
    ends once can0 is back."""
    boards = Boards()
    b = bridge_in_app(boards)
    with harness.Flashd(config=CONFIG) as d:
        harness.wait_for(lambda: any((x.get("bridge") or {}).get("interface") == "can0" for x in listed(d)),
                         timeout=15 * SCALE, interval=0.3, what="the bridge listed with can0")
        flash_bridge(boards, d, b["port"], seed=61)
        harness.wait_for(lambda: any((x.get("bridge") or {}).get("interface") == "can0" for x in listed(d)),
                         timeout=15 * SCALE, interval=0.3, what="the bridge listed with can0 again")
        flash_bridge(boards, d, "can0:" + b["can_uuid"], seed=62)
    check(boards.board(EBB36)["can_reboots"] == 0, "the toolhead was left alone")


def test_toolhead_while_bridge_away():
    """While the bridge is in its bootloader, a job for a node behind it is
    refused at once and says why."""
    boards = Boards()
    b = bridge_in_app(boards)
    image = app_image(8 * 1024, 0x08002000, seed=63, mcu="stm32g0b1xx")
    path = write_image(tmpdir(), image)
    with harness.Flashd(config=CONFIG) as d:
        harness.wait_for(lambda: any((x.get("bridge") or {}).get("interface") == "can0" for x in listed(d)),
                         timeout=15 * SCALE, interval=0.3, what="the bridge listed with can0")
        reboot(b["can_uuid"])
        mode = boot_mode(boards)
        boards.vb.wait(BRIDGE, mode, int(5000 * SCALE))
        harness.wait_for(
            lambda: any(x.get("port") == b["port"] and x.get("mode") == mode for x in listed(d)),
            timeout=15 * SCALE, interval=0.3, what="the bridge listed in its bootloader")
        start = time.monotonic()
        p = flashctl(d, "flash", "can0:" + EBB_UUID, path, timeout=60 * SCALE)
        out = p.stdout + p.stderr
        check(p.returncode != EXIT_OK, "the job is refused", out)
        check("behind the USB-to-CAN bridge on " + b["port"] in out and f"({mode})" in out,
              "the message names the bridge and its state", out)
        check(time.monotonic() - start < 10 * SCALE, "at once, not after a timeout")
    check(boards.read(EBB36, 0x08002000, len(image)) != image, "nothing written to the toolhead")
    boards.reset(BRIDGE)
    boards.vb.wait(BRIDGE, "app", int(5000 * SCALE))


def test_toolhead_and_bridge_one_command():
    """`flashctl flash BRIDGE img TOOLHEAD img` (the bridge named first) flashes
    the toolhead first, then the bridge; both images checked."""
    boards = Boards()
    b = bridge_in_app(boards)
    if boards.board(EBB36)["mode"] != "app":
        boards.reset(EBB36)
    boards.vb.wait(EBB36, "app", int(5000 * SCALE))
    bridge_img = app_image(16 * 1024 + 3, BRIDGE_APP, seed=71, mcu=BRIDGE_MCU)
    ebb_img = app_image(12 * 1024 + 9, 0x08002000, seed=72, mcu="stm32g0b1xx")
    bridge_path = write_image(tmpdir(), bridge_img, name="octopus.bin")
    ebb_path = write_image(tmpdir(), ebb_img, name="ebb36.bin")
    with harness.Flashd(config=CONFIG) as d:
        harness.wait_for(lambda: any((x.get("bridge") or {}).get("interface") == "can0" for x in listed(d)),
                         timeout=15 * SCALE, interval=0.3, what="the bridge listed with can0")
        p = flashctl(d, "flash", b["port"], bridge_path, "can0:" + EBB_UUID, ebb_path, timeout=240 * SCALE)
        out = p.stdout + p.stderr
        check(p.returncode == EXIT_OK, f"flashctl flash of both exit {p.returncode}", out)
        jobs = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)[-2:]
        check([j["port"] for j in jobs] == ["can0:" + EBB_UUID, b["port"]] and
              all(j["state"] == "done" for j in jobs), "the toolhead's job, then the bridge's", jobs)
    check(boards.read(EBB36, 0x08002000, len(ebb_img)) == ebb_img, "the toolhead's image in its virtual flash")
    check(boards.read(BRIDGE, BRIDGE_APP, len(bridge_img)) == bridge_img, "the bridge's image in its virtual flash")
    check(boards.vb.wait(EBB36, "app", 5000)["mode"] == "app" and iface_present(), "both run Klipper again")


if __name__ == "__main__":
    harness.main([test_vboard_bridge, test_daemon_lists_bridge, test_flash_bridge, test_toolhead_while_bridge_away,
                  test_toolhead_and_bridge_one_command])

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The real flashd against virtual boards (run under vboard, see meson.build):

    vboard --board octopus-pro-f429 --mode dfu --quirk garbage-tail \\
           --board octopus-f429 --mode dfu --quirk short-string \\
           --board octopus-pro-f446 --mode app -- python3 core-vboard.py

- boards present at start, with their modes, ids, ttys and by-id links;
- the garbage-tail and short-string F429 layouts reported complete
  (4x16K, 1x64K, 7x128K) with a diagnostic;
- hotplug: unplug/plug seen as notify_device_removed/added;
- a board moving app -> DFU -> app keeps its identity (the port);
- device.info by port, tty, by-id link, USB node and board name;
- an identified client that never reads while notifications stream is
  disconnected; the others get every notification.
"""
import os
import socket
import sys
import time

import harness

sys.path.insert(0, os.path.join(harness.source_root(), "tests", "vboard"))
try:
    from vboard import VBoard
except ImportError:  # pragma: no cover
    VBoard = None

GARBAGE = "octopus-pro-f429"
SHORT = "octopus-f429"
APP = "octopus-pro-f446"


def world():
    if VBoard is None or "VBOARD_CONTROL" not in os.environ:
        raise harness.Skip("not running under vboard (VBOARD_CONTROL unset)")
    vb = VBoard()
    boards = {b["name"]: b for b in vb.list()}
    for name in (GARBAGE, SHORT, APP):
        assert name in boards, f"vboard world lacks {name}: {sorted(boards)}"
    return vb, boards


def wait_probed(c, port, timeout=10):
    def probed():
        d = c.call("device.info", {"device": port})
        return d if d["mode"] == "dfu" and d["probed"] else None
    return harness.wait_for(probed, timeout, what=f"DFU probe of {port}")


def test_boards_present_at_start():
    vb, boards = world()
    with harness.Flashd() as d:
        c = d.client()
        devs = harness.devices_by_port(c)
        for name, b in boards.items():
            assert b["port"] in devs, (name, sorted(devs))
            dev = devs[b["port"]]
            assert dev["id"] == dev["port"] == b["port"]
            assert dev["mode"] == b["mode"], (dev["mode"], b["mode"])
            assert dev["busnum"] == 1 and dev["devnum"] == b["devnum"]
            assert dev["usb_devnode"] == b["devnode"]
        app = devs[boards[APP]["port"]]
        assert app["usb_id"] == "1d50:614e" and app["manufacturer"] == "Klipper"
        assert app["mcu"] == "stm32f446xx"
        assert app["tty"] == boards[APP]["tty"] and app["path"] == app["tty"]
        assert app["by_id"] == boards[APP]["by_id"], (app["by_id"], boards[APP]["by_id"])
        assert app["layout"] is None
        assert {"name": "octopus-pro", "variant": "f446", "mcu": "stm32f446xx", "app_offset": 0x8000,
                "app_address": 0x08008000} in app["board_candidates"], app["board_candidates"]
        info = c.call("server.info")
        assert info["devices"] == len(boards)


def check_f429_complete(dev, what):
    assert dev["usb_id"] == "0483:df11", dev["usb_id"]
    assert harness.layout_summary(dev["layout"]) == harness.F429_LAYOUT, (what, dev["layout"])
    assert dev["layout"][0]["address"] == 0x08000000
    assert all(s["flags"] == 7 for s in dev["layout"][0]["sectors"])
    assert dev["transfer_size"] == 2048
    alt0 = [a for a in dev["alt_settings"] if a["alt"] == 0][0]
    assert harness.layout_summary(alt0["regions"]) == harness.F429_LAYOUT
    # F429 and F407 share the layout; the MCU is only known where all candidates agree
    cands = {(c["name"], c["variant"]) for c in dev["board_candidates"]}
    assert ("octopus-pro", "f429") in cands and ("octopus", "f429") in cands, cands
    return alt0


def test_garbage_tail_and_short_string_layouts():
    vb, boards = world()
    with harness.Flashd() as d:
        c = d.client()
        g = wait_probed(c, boards[GARBAGE]["port"])
        alt0 = check_f429_complete(g, "garbage-tail")
        assert alt0["truncated"] is True
        assert alt0["diagnostic"] and "3" in alt0["diagnostic"], alt0
        assert any("match the board database" in x for x in g["diagnostics"]), g["diagnostics"]

        s = wait_probed(c, boards[SHORT]["port"])
        alt0 = check_f429_complete(s, "short-string")
        assert alt0["string_patched"] is True, alt0
        assert any("claimed" in x for x in s["diagnostics"]), s["diagnostics"]
        # the probe released the devices: flashd holds no USB node open
        fds = os.listdir(f"/proc/{d.proc.pid}/fd")
        targets = []
        for fd in fds:
            try:
                targets.append(os.readlink(f"/proc/{d.proc.pid}/fd/{fd}"))
            except OSError:
                pass
        assert not [t for t in targets if "bus/usb" in t], targets


def test_hotplug():
    vb, boards = world()
    port = boards[APP]["port"]
    with harness.Flashd() as d:
        c = d.client()
        anonymous = d.client(identify=False)  # not identified: no notifications
        vb.unplug(APP)
        removed = c.wait_notification("notify_device_removed", lambda p: p[0]["port"] == port)
        assert removed[0]["mode"] == "app"  # the last state seen
        assert port not in harness.devices_by_port(c)
        try:
            c.call("device.info", {"device": port})
            raise AssertionError("removed device still found")
        except harness.RpcError as e:
            assert e.code == -32004
        vb.plug(APP)
        added = c.wait_notification("notify_device_added", lambda p: p[0]["port"] == port)
        assert added[0]["id"] == port
        harness.wait_for(lambda: harness.devices_by_port(c).get(port, {}).get("tty"), what="tty back")
        assert anonymous.call("server.info")
        anonymous.drain(0.3)
        assert anonymous.notifications == [], anonymous.notifications[:2]


def test_app_dfu_app_keeps_identity():
    vb, boards = world()
    port = boards[APP]["port"]
    with harness.Flashd() as d:
        c = d.client()
        before = c.call("device.info", {"device": port})
        vb.boot0_reset(APP)
        vb.wait(APP, "dfu", 5000)
        c.wait_notification("notify_device_removed", lambda p: p[0]["port"] == port and p[0]["mode"] == "app")
        added = c.wait_notification("notify_device_added", lambda p: p[0]["port"] == port)[0]
        assert added["id"] == port and added["mode"] == "dfu", added
        assert added["devnum"] != before["devnum"]
        dfu = wait_probed(c, port)
        assert dfu["id"] == port
        assert dfu["previous_mcu"] == "stm32f446xx"
        assert dfu["mcu"] == "stm32f446xx", dfu
        assert harness.layout_summary(dfu["layout"]) == [(4, 16384), (1, 65536), (3, 131072)]
        assert all(x["mcu"] == "stm32f446xx" for x in dfu["board_candidates"])
        vb.reset(APP)
        vb.wait(APP, "app", 5000)
        back = c.wait_notification("notify_device_added",
                                   lambda p: p[0]["port"] == port and p[0]["mode"] == "app")[0]
        assert back["id"] == port and back["mcu"] == "stm32f446xx"
        harness.wait_for(lambda: c.call("device.info", {"device": port})["tty"], what="tty back")


def test_device_info_lookups():
    vb, boards = world()
    b = boards[APP]
    with harness.Flashd() as d:
        c = d.client()
        for name in (GARBAGE, SHORT):
            wait_probed(c, boards[name]["port"])
        for key in (b["port"], b["tty"], b["by_id"], b["devnode"]):
            assert c.call("device.info", {"device": key})["port"] == b["port"], key
        # every present board could be an octopus-pro: ambiguous
        try:
            c.call("device.info", {"device": "octopus-pro"})
            raise AssertionError("ambiguous board name accepted")
        except harness.RpcError as e:
            assert e.code == -32005 and len(e.data["candidates"]) >= 2, e
        # fysetc-s6 (F446 only) can only be the app board
        assert c.call("device.info", {"device": "fysetc-s6"})["port"] == b["port"]


def test_non_reading_client_during_notification_stream():
    vb, boards = world()
    port = boards[APP]["port"]
    with harness.Flashd() as d:
        watcher = d.client()
        silent = d.client()
        silent.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # the silent client also pipelines requests it never reads, so its
        # queue passes the limit within a few plug cycles
        silent.sock.setblocking(False)
        req = b'{"jsonrpc":"2.0","method":"board.list","id":1}\x03' * 200
        cycles = 0
        # scaled: under valgrind (FLASHD_TEST_TIMEOUT_SCALE=6) the daemon
        # answers the pipelined requests several times slower
        deadline = time.monotonic() + 3 * harness.DEFAULT_TIMEOUT
        while "output queue over its limit" not in d.log_text() and time.monotonic() < deadline:
            try:
                silent.sock.send(req)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                pass
            vb.unplug(APP)
            watcher.wait_notification("notify_device_removed", lambda p: p[0]["port"] == port)
            vb.plug(APP)
            watcher.wait_notification("notify_device_added", lambda p: p[0]["port"] == port)
            cycles += 1
        assert "output queue over its limit" in d.log_text(), "silent client never disconnected"
        # the watcher saw every cycle and still gets answers
        assert watcher.call("server.info")["clients"] >= 1
        vb.unplug(APP)
        watcher.wait_notification("notify_device_removed", lambda p: p[0]["port"] == port)
        vb.plug(APP)
        watcher.wait_notification("notify_device_added", lambda p: p[0]["port"] == port)
        assert d.alive()


if __name__ == "__main__":
    harness.main([test_boards_present_at_start, test_garbage_tail_and_short_string_layouts, test_hotplug,
                  test_app_dfu_app_keeps_identity, test_device_info_lookups,
                  test_non_reading_client_during_notification_stream])

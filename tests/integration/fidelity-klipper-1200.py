#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run as: vboard --board octopus-pro-f446 --board octopus-pro-f429 --quirk no-1200-reboot -- python3 fidelity-klipper-1200.py
# Klipper's 1200-baud request makes the application vanish and the ROM DFU
# bootloader appear on the same port path with a new device number; the F429
# that ignores the request only goes to DFU with BOOT0 + reset.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vboard"))
from vboard import VBoard, dfu_util_download, klipper_reboot_request, plausible_app, run  # noqa: E402

vb = VBoard()
app = vb.board(0)
assert app["mode"] == "app", app
assert app["tty"] == "/dev/ttyACM0", app
assert app["by_id"] == "/dev/serial/by-id/usb-Klipper_stm32f446xx_%s-if00" % app["uid"], app
assert os.path.exists(app["tty"]) and os.path.realpath(app["by_id"]) != app["by_id"]

klipper_reboot_request(app["by_id"])
dfu = vb.wait(0, "dfu", 5000)
assert dfu["port"] == app["port"], (dfu, app)
assert dfu["devnum"] != app["devnum"], (dfu, app)
assert dfu["tty"] is None and not os.path.exists(app["by_id"])
rc, out = run("dfu-util", "-p", app["port"], "-l")
assert rc == 0 and 'devnum=%d' % dfu["devnum"] in out and 'path="%s"' % app["port"] in out, out
events = vb.events(0)
assert events[:4] == ["app-added", "baud-1200", "app-removed", "dfu-added"], events
assert vb.stats(0)["counters"]["reenumerations"] == 1

# flash a plausible application and leave: Klipper comes back on the tty
rc, out = dfu_util_download(plausible_app(20000), "-p", app["port"], "-a", "0", "-s", "0x08008000:leave")
assert rc == 0, rc
back = vb.wait(0, "app", 5000)
assert back["port"] == app["port"] and back["devnum"] not in (app["devnum"], dfu["devnum"]), back
assert "app-back" in vb.events(0)
assert os.path.exists(back["by_id"])

# the board with no-1200-reboot ignores the request, BOOT0 + reset works
f429 = vb.board(1)
klipper_reboot_request(f429["tty"])
try:
    vb.wait(1, "dfu", 500)
    raise AssertionError("no-1200-reboot board rebooted")
except Exception as e:
    assert "timeout" in str(e), e
assert vb.board(1)["mode"] == "app"
vb.boot0_reset(1)
d = vb.wait(1, "dfu", 5000)
assert d["port"] == f429["port"] and d["devnum"] != f429["devnum"]
print("ok")

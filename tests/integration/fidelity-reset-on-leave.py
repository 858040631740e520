#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run as: vboard --board octopus-pro-f446 --mode dfu --quirk reset-on-leave -- python3 fidelity-reset-on-leave.py
# The board resets before it answers the GETSTATUS after the leave request:
# dfu-util reports "Error during download get_status" (users read a failed
# flash) although the board comes back running the new application.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vboard"))
from vboard import VBoard, dfu_util_download, plausible_app  # noqa: E402

vb = VBoard()
image = plausible_app(30000)
rc, out = dfu_util_download(image, "-a", "0", "-s", "0x08008000:leave")
assert "File downloaded successfully" in out, out
assert "Error during download get_status" in out, out
assert rc != 0, rc
app = vb.wait(0, "app", 5000)
assert app["tty"], app
assert vb.read(0, 0x08008000, len(image)) == image
events = vb.events(0)
assert "reset-on-leave" in events and "app-back" in events, events
print("ok")

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run a harness-based test file against the socket-activated daemon.

usage: systemd-activated.py TEST.py [ARGS...]

Replaces harness.Flashd with systemd_activate.SocketActivatedFlashd, then
runs TEST.py as __main__. Used to run the hostile-client tests a second
time, with flashd started by systemd-socket-activate as flashd.socket
starts it.
"""

import os
import runpy
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import systemd_activate  # noqa: E402

if len(sys.argv) < 2:
    sys.exit(__doc__)
try:
    systemd_activate.activator()
except harness.Skip as e:
    print(f"SKIP: {e}")
    sys.exit(77)
harness.Flashd = systemd_activate.SocketActivatedFlashd
test = os.path.abspath(sys.argv[1])
sys.argv = [test] + sys.argv[2:]
sys.path.insert(0, os.path.dirname(test))
runpy.run_path(test, run_name="__main__")

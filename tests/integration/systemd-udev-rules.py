#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The generated udev rules cover every USB id of the board database.

Reads the built systemd/70-flashd.rules and daemon/boards/data/*.json and
checks that each id in usb.app / usb.dfu / usb.katapult of every variant,
and each bootloader flashd knows without a board entry, has a rule giving
group flashd mode 0660 on the usb_device node; that nothing touches ttys;
and that the generator picks up a new board file and rejects a bad id.
"""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile

SRC = os.environ.get("FLASHD_SOURCE_ROOT") or sys.exit("FLASHD_SOURCE_ROOT not set (run through meson test)")
BUILD = os.environ["FLASHD_BUILD_ROOT"]
BOARDS = os.environ.get("FLASHD_BOARDS_DIR", os.path.join(SRC, "daemon", "boards", "data"))
GEN = os.path.join(SRC, "systemd", "gen-udev-rules.py")
EXTRA = {"1eaf:0003", "1209:beba", "2e8a:0003", "2e8a:000f", "0483:df11", "1d50:614e", "1d50:6177"}
RULE = re.compile(r'^ATTR\{idVendor\}=="([0-9a-f]{4})", ATTR\{idProduct\}=="([0-9a-f]{4})", '
                  r'GROUP="flashd", MODE="0660"$')

failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def db_ids(directory):
    ids = set()
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path) as f:
            board = json.load(f)
        for v in board["variants"]:
            for mode, uid in v.get("usb", {}).items():
                if not mode.startswith("_"):
                    ids.add(uid.lower())
    return ids


def rule_ids(text):
    ids = set()
    lines = [l for l in text.splitlines() if l and not l.startswith("#")]
    for l in lines:
        m = RULE.match(l)
        if m:
            ids.add(f"{m.group(1)}:{m.group(2)}")
        else:
            check(l.startswith(("ACTION==", "SUBSYSTEM!=", "ENV{DEVTYPE}!=", "LABEL=")), f"known rule line: {l}")
    check('SUBSYSTEM!="usb", GOTO="flashd_end"' in lines and 'ENV{DEVTYPE}!="usb_device", GOTO="flashd_end"' in lines,
          "rules only apply to usb_device nodes")
    check(lines[-1] == 'LABEL="flashd_end"', "rules end at their label")
    check("tty" not in "\n".join(lines), "no rule changes tty ownership (dialout stays)")
    return ids


def main():
    built = os.path.join(BUILD, "systemd", "70-flashd.rules")
    with open(built) as f:
        covered = rule_ids(f.read())
    wanted = db_ids(BOARDS)
    check(len(wanted) > 0, f"the board database has USB ids ({len(wanted)})")
    missing = sorted((wanted | EXTRA) - covered)
    check(not missing, f"every USB id is covered; missing: {missing}")

    with tempfile.TemporaryDirectory(prefix="flashd-udev-") as tmp:
        with open(os.path.join(tmp, "new.json"), "w") as f:
            json.dump({"name": "new", "variants": [{"id": "x", "usb": {"dfu": "ABCD:1234"}}]}, f)
        out = os.path.join(tmp, "out.rules")
        r = subprocess.run([sys.executable, GEN, out, BOARDS, tmp], capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "generator runs on the database plus a new board")
        with open(out) as f:
            ids = rule_ids(f.read())
        check("abcd:1234" in ids and wanted <= ids, "a new board's id appears in the rules, lower-cased")
        with open(os.path.join(tmp, "new.json"), "w") as f:
            json.dump({"name": "bad", "variants": [{"id": "x", "usb": {"dfu": "0483-df11"}}]}, f)
        r = subprocess.run([sys.executable, GEN, out, tmp], capture_output=True, text=True, timeout=30)
        check(r.returncode != 0 and "bad USB id" in r.stderr, "generator rejects a malformed id")


main()
if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What a board runs while klippy holds its tty: flashd does not open the
port, it asks Moonraker (as its agent) for Klipper's `mcu` objects. Under

    vboard --board octopus-pro-f446 --mode app --board octopus-pro-f446 --mode app

both ttys are held with an exclusive flock (as klippy's pyserial does)
before flashd starts; printer.cfg names them [mcu] and [mcu second] by
their by-id paths; the fake Moonraker first has no Klippy (503), so both
MCUs are unknown; then Klippy reports mcu_version = the tree's version for
`mcu` and an older one for `mcu second` and `mcu tool` (a CAN node by
canbus_uuid): `flashctl status` shows current, stale and stale, the device objects carry firmware_source "moonraker", and no
identify ever reached a board. Once with printer_config in flashd.conf,
once without: then the MCUs and their serial: paths come from Klipper's
`configfile` object's `config`, queried through Moonraker too.
"""
import fcntl
import json
import os
import shutil

import harness
from jobs_helpers import Boards, check, flashctl, tmpdir
from moonraker_helpers import FakeMoonraker, flashd_with_moonraker
from update_helpers import mcu_status
from update_status_helpers import describe, fake_tree, give_to_nobody

SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))
OLD = "v0.11.0-5-gdeadbee"
TOOL_UUID = "aabbccddeeff"
# update.status runs git describe as the tree's owner: slow on a loaded machine
TIMEOUT = str(int(30 * SCALE) or 1)



def identifies(boards, board):
    return sum(1 for e in boards.stats(board)["events"] if e["event"] == "klipper-identify")


def mcu_object(version):
    return {"mcu_version": version, "mcu_build_versions": "gcc: (15:12.2.rel1-1) 12.2.1 binutils: 2.40",
            "mcu_constants": {"MCU": "stm32f446xx", "CLOCK_FREQ": 180000000}}


def test_version_through_moonraker():
    run(printer_config_file=True)


def test_printer_config_through_moonraker():
    run(printer_config_file=False)


def run(printer_config_file):
    if shutil.which("git") is None:
        raise harness.Skip("git is not installed")
    boards = Boards()
    base = tmpdir()
    tree = fake_tree(base)
    give_to_nobody(base, tree)
    host = describe(tree)
    with harness.Flashd(config="") as d0:
        devs = harness.wait_for(lambda: (lambda x: x if len(x) == 2 else None)(harness.devices_by_port(d0.client())),
                                what="two boards")
    fds = []
    try:
        for port in ("1-1.1", "1-1.2"):
            fd = os.open(devs[port]["tty"], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            fds.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = [identifies(boards, "0"), identifies(boards, "1")]
        cfg = os.path.join(base, "printer.cfg")
        with open(cfg, "w") as f:
            f.write(f"[mcu]\nserial: {devs['1-1.1']['by_id']}\n\n[mcu second]\nserial: {devs['1-1.2']['by_id']}\n"
                    f"\n[mcu tool]\ncanbus_uuid: {TOOL_UUID}\n")
        d, path = flashd_with_moonraker(enable_flashing=False)
        d.config += f"\n[klipper]\npath = {tree}\n" + (f"printer_config = {cfg}\n" if printer_config_file else "")
        # Klipper's configfile object: sections as klippy read them (includes
        # merged), option values as strings
        klippy_config = {"printer": {"kinematics": "corexy"},
                         "mcu": {"serial": devs["1-1.1"]["by_id"], "restart_method": "command"},
                         "mcu second": {"serial": " " + devs["1-1.2"]["by_id"]},
                         "mcu tool": {"canbus_uuid": TOOL_UUID}}
        with FakeMoonraker(path) as mr, d:
            mr.wait_agent(timeout=30 * SCALE)
            harness.wait_for(lambda: len(harness.devices_by_port(d.client())) == 2, what="boards")
            # no Klippy behind Moonraker: nothing is known, and flashd says why
            harness.wait_for(lambda: any(m == "printer.objects.list" for m, _ in mr.klippy_requests),
                             timeout=30 * SCALE, what="the agent asked Moonraker")
            if printer_config_file:
                s = mcu_status(d, "--timeout", TIMEOUT)
                check(s["mcu"]["state"] == "unknown" and "in use" in (s["mcu"]["reason"] or ""), "held: unknown", s)
                check(s["second"]["running_version"] is None, "nothing from a Moonraker without Klippy", s)
            else:
                p = flashctl(d, "--timeout", TIMEOUT, "status", "--json")
                got = json.loads(p.stdout)
                check(got.get("mcus") == [] and "Moonraker has not reported" in got["printer_config_error"],
                      "no MCUs known without printer_config and without Klippy", got)

            mr.set_klippy({"mcu": mcu_object(host), "mcu second": mcu_object(OLD), "mcu tool": mcu_object(OLD),
                           "toolhead": {"homed_axes": ""},
                           "configfile": {"config": klippy_config, "settings": {}, "save_config_pending": False}})

            def settled():
                s = mcu_status(d, "--timeout", TIMEOUT)
                # without printer_config the MCUs appear with Klipper's answer
                ok = s.get("mcu", {}).get("state") == "current" and s.get("second", {}).get("state") == "stale" \
                    and s.get("tool", {}).get("state") == "stale"
                return s if ok else None
            s = harness.wait_for(settled, timeout=30 * SCALE, what="current and stale through Moonraker")
            check(list(s) == ["mcu", "second", "tool"], "the MCUs in the config's order", s)
            # a CAN node klippy holds (here not even on a bus flashd sees):
            # its version from Moonraker too
            check(s["tool"]["running_version"] == OLD and s["tool"]["port"] == "can0:" + TOOL_UUID and
                  s["tool"]["transport"] == "can" and s["tool"]["running_source"] == "moonraker", "CAN node", s["tool"])
            p = flashctl(d, "--timeout", TIMEOUT, "status", "--json")
            got = json.loads(p.stdout)
            check(got["printer_config_source"] == ("file" if printer_config_file else "moonraker") and
                  got["printer_config_error"] is None, "where the MCUs came from", got)
            check(s["mcu"]["running_version"] == host and s["mcu"]["host_version"] == host, "main board", s["mcu"])
            check(s["mcu"]["mcu"] == "stm32f446xx" and s["mcu"]["port"] == "1-1.1", "MCU and port", s["mcu"])
            check(s["second"]["running_version"] == OLD and s["second"]["port"] == "1-1.2", "toolboard", s["second"])
            contract = {"name", "board", "port", "transport", "running_version", "host_version", "state"}
            for m in s.values():
                check(contract <= set(m) and m["running_source"] == "moonraker" and
                      m["transport"] == ("can" if m["name"] == "tool" else "usb"),
                      "flashctl status --json: every contract field, and where the version came from", m)
            by_port = harness.devices_by_port(d.client())
            for port, version in (("1-1.1", host), ("1-1.2", OLD)):
                dev = by_port[port]
                check(dev["firmware_version"] == version and dev["firmware_source"] == "moonraker" and
                      dev["firmware_mcu"] == "stm32f446xx", f"device {port} from Moonraker", dev)
            queries = [p for m, p in mr.klippy_requests if m == "printer.objects.query"]
            check(queries and set(queries[-1]["objects"]) == {"mcu", "mcu second", "mcu tool", "configfile"} and
                  queries[-1]["objects"]["configfile"] == ["config"], "only the mcu objects and the config", queries)
            check([identifies(boards, "0"), identifies(boards, "1")] == before,
                  "no identify reached a held board", before)
            p = flashctl(d, "--timeout", TIMEOUT, "status")
            check(p.returncode == 0 and "PORT" in p.stdout, "flashctl status table", p.stdout + p.stderr)
            rows = {line.split()[0]: line.split() for line in p.stdout.splitlines()
                    if line.split() and line.split()[0] in ("mcu", "second", "tool")}
            check(rows.get("mcu", [])[2:4] == ["1-1.1", "usb"] and rows["mcu"][4:7] == [host, host, "current"],
                  "the main board's row", p.stdout)
            check(rows.get("second", [])[2:7] == ["1-1.2", "usb", OLD, host, "stale"], "the toolboard's row", p.stdout)
            check(rows.get("tool", [])[2:7] == ["can0:" + TOOL_UUID, "can", OLD, host, "stale"], "the CAN node's row",
                  p.stdout)

            # a flash elsewhere: Klippy reports the new version, the next
            # status sees it
            mr.set_klippy({"mcu": mcu_object(host), "mcu second": mcu_object(host), "mcu tool": mcu_object(host),
                           "configfile": {"config": klippy_config}})
            harness.wait_for(lambda: (lambda s: s["second"]["state"] == "current" and s["tool"]["state"] == "current")
                             (mcu_status(d, "--timeout", TIMEOUT)), timeout=30 * SCALE,
                             what="the toolboard and the CAN node current after Klippy reports them")
    finally:
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    harness.main([test_version_through_moonraker, test_printer_config_through_moonraker])

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`flashctl status` and `flashctl update` on a printer with CAN MCUs:

    vboard --board octopus-pro-f446 --mode app --bootloader katapult --bridge can0 \\
           --board ebb36-v1.2 --can can0 --can-uuid 0123456789ab \\
           --board skr-pico --mode app

printer.cfg: [mcu] is the Octopus Pro in USB-to-CAN bridge mode (its
canbus_uuid), [mcu ebb] the EBB36 behind it on can0, [mcu pico] the SKR
Pico on USB. All three run an old Klipper: flashd reads the CAN nodes'
versions with Klipper's identify over CAN (node ids assigned by flashd,
as klippy does not hold them) and the Pico's over its tty.
- status shows all three stale, transport can/can/usb;
- `flashctl update --all` flashes the toolhead, then the Pico, then the
  bridge last (its CAN bus goes away while it is flashed), and reports
  each running the host version; status then shows all three current;
- after a new commit, with the Pico deaf to its reboot request: the Pico's
  flash fails, the two CAN MCUs are still updated, the report and the exit
  status say so, and status shows current, current, stale;
- after another, with the toolhead losing power mid-flash: it is reported
  failed, the Pico and the bridge are updated, its state is unknown.
"""
import json
import os
import shutil

import harness
from jobs_helpers import Boards, check, flashctl, job_history, tmpdir, write_image
from update_helpers import KCONFIG, describe, dictionary, fake_klipper_tree, klipper_image, mcu_status, new_commit
import rp2040_helpers as rp

BRIDGE, EBB, PICO = "0", "1", "2"
EBB_UUID = "0123456789ab"
SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))
CONFIG = "reboot_wait_sec = 1\nbootloader_timeout_sec = 4\napp_timeout_sec = 10\n"
OLD = "v0.11.0-1-g0000001"
# (board for the profile, MCU, application address)
TARGETS = {
    "mcu": ("octopus-pro", "stm32f446xx", 0x08008000),
    "ebb": ("ebb36", "stm32g0b1xx", 0x08002000),
    "pico": ("skr-pico", "rp2040", 0x10000000),
}




def old_image(name, seed):
    board, mcu, address = TARGETS[name]
    if mcu == "rp2040":
        img = bytearray(rp.image(16 * 1024, seed, mcu=None))
        blob = dictionary(OLD, mcu)
        img[16 * 1024 - len(blob) - 64:16 * 1024 - 64] = blob
        return bytes(img)
    return klipper_image(OLD, mcu, address=address, seed=seed)


def states(d):
    return {n: m["state"] for n, m in mcu_status(d).items()}


def test_update_can():
    if shutil.which("git") is None or shutil.which("make") is None:
        raise harness.Skip("needs git and make")
    boards = Boards()
    bridge, pico = boards.board(BRIDGE), boards.board(PICO)
    if bridge["mode"] != "app":
        boards.reset(BRIDGE)
        bridge = boards.vb.wait(BRIDGE, "app", int(5000 * SCALE))
    base = tmpdir()
    tree = fake_klipper_tree(base)
    cfg = os.path.join(base, "printer.cfg")
    config = CONFIG + f"\n[klipper]\npath = {tree}\nprinter_config = {cfg}\n"
    with harness.Flashd(config=config) as d:
        devs = harness.wait_for(
            lambda: (lambda x: x if pico["port"] in x and bridge["port"] in x and x[pico["port"]].get("by_id")
                     else None)(harness.devices_by_port(d.client())),
            timeout=20 * SCALE, what="the bridge and the Pico listed")
        with open(cfg, "w") as f:
            f.write(f"[mcu]\ncanbus_uuid: {bridge['can_uuid']}\n\n"
                    f"[mcu ebb]\ncanbus_uuid: {EBB_UUID}\ncanbus_interface: can0\n\n"
                    f"[mcu pico]\nserial: {devs[pico['port']]['by_id']}\n")
        # before any Klipper is flashed: nothing known, the CAN nodes asked
        # while the Pico is asked on its tty, in one call
        s = mcu_status(d)
        check(s["pico"]["state"] == "unknown" and s["ebb"]["state"] == "unknown", "nothing known yet", s)
        check(d.client().call("server.info"), "the daemon still answers")
        targets = {"ebb": "can0:" + EBB_UUID, "pico": pico["port"], "mcu": bridge["port"]}
        for seed, (name, target) in enumerate(targets.items()):
            p = flashctl(d, "flash", target, "--address", hex(TARGETS[name][2]),
                         write_image(tmpdir(), old_image(name, seed + 1)), timeout=120 * SCALE)
            check(p.returncode == 0, f"old Klipper onto {name} ({target})", p.stdout + p.stderr)
        for name, (board, mcu, address) in TARGETS.items():
            path = os.path.join(base, name + ".config")
            with open(path, "w") as f:
                f.write(KCONFIG.format(mcu=mcu).replace("0x8008000", hex(address)))
            p = flashctl(d, "profile", "add", name, "--board", board, "--mcu-name", name, "--kconfig", path)
            check(p.returncode == 0, f"profile add {name}", p.stdout + p.stderr)

        harness.wait_for(lambda: states(d) == {"mcu": "stale", "ebb": "stale", "pico": "stale"},
                         timeout=30 * SCALE, interval=0.5, what="all three stale")
        s = mcu_status(d)
        check(s["mcu"]["transport"] == "can" and s["ebb"]["transport"] == "can" and s["pico"]["transport"] == "usb",
              "transports", s)
        check(all(m["running_version"] == OLD for m in s.values()), "every board runs the old version", s)
        check(s["ebb"]["port"] == "can0:" + EBB_UUID and s["ebb"]["running_source"] == "identify"
              and s["ebb"]["mcu"] == "stm32g0b1xx", "the toolhead read over CAN", s["ebb"])
        check(s["mcu"]["bridge_port"] == bridge["port"], "the bridge known as the board on its USB port", s["mcu"])
        p = flashctl(d, "status")
        check(p.returncode == 0 and "ebb" in p.stdout and "can0:" + EBB_UUID in p.stdout, "status lists the node",
              p.stdout)
        # identified, a node keeps flashd's node id and stops answering the
        # query: flashctl list still shows it (the bridge's own node, never
        # named in a flash command, too)
        def assigned():
            listed = json.loads(flashctl(d, "--json", "list").stdout)
            modes = {x.get("uuid"): x.get("mode") for x in listed if x.get("transport") == "can"}
            return modes if modes.get(EBB_UUID) == "assigned" and modes.get(bridge["can_uuid"]) == "assigned" \
                else None
        harness.wait_for(assigned, timeout=30 * SCALE, interval=1, what="both CAN nodes listed as assigned")

        host = describe(tree)
        plan = json.loads(flashctl(d, "--json", "update", "--all", "--dry-run").stdout)
        check(plan["order"] == ["ebb", "pico", "mcu"], "the toolhead first, the bridge last", plan)
        p = flashctl(d, "update", "--all", "--dry-run")
        out = p.stdout
        check(p.returncode == 0 and out.index("1. ebb") < out.index("2. pico") < out.index("3. mcu")
              and f"flashed on its USB port {bridge['port']}" in out, "the plan for a person", out)
        n_jobs = len(job_history(d))
        p = flashctl(d, "--json", "update", "--all", timeout=300 * SCALE)
        check(p.returncode == 0, f"update exit {p.returncode}", p.stdout + p.stderr)
        report = {x["name"]: x for x in json.loads(p.stdout)["steps"]}
        check(all(x["result"] == "flashed" and x["new_version"] == host and x["current"] for x in report.values()),
              "all three flashed and running the host version", report)
        new = job_history(d)[n_jobs:]
        check([j["target"] for j in new] == ["can0:" + EBB_UUID, pico["port"], bridge["port"]],
              "one job each, in the order of the plan", new)
        s = mcu_status(d)
        check(all(m["state"] == "current" and m["running_version"] == host for m in s.values()), "all current", s)
        # the CAN nodes were read before klippy's units would be started again
        # (klippy gives them node ids, then they no longer answer flashd)
        log = d.log_text()
        restart = log.rindex("update: flash -> restart")
        for uuid in (EBB_UUID, bridge["can_uuid"]):
            line = f"CAN node can0:{uuid}: Klipper {host}"
            check(line in log and log.index(line) < restart, f"{uuid} read before the restart", log[-3000:])

        # one flash failure: the others finish, the report says which
        host = new_commit(base, tree)
        boards.vb.quirk(PICO, "no-1200-reboot")
        harness.wait_for(lambda: states(d) == {"mcu": "stale", "ebb": "stale", "pico": "stale"},
                         timeout=30 * SCALE, interval=0.5, what="all three stale after the new commit")
        p = flashctl(d, "--json", "update", "--all", timeout=300 * SCALE)
        check(p.returncode == 6, f"update with a failure exit {p.returncode}", p.stdout + p.stderr)
        report = {x["name"]: x for x in json.loads(p.stdout)["steps"]}
        check(report["pico"]["result"] == "flash-failed" and not report["pico"]["current"]
              and report["pico"]["message"], "the Pico failed, with why", report)
        check(all(report[n]["result"] == "flashed" and report[n]["current"] for n in ("ebb", "mcu")),
              "the CAN toolhead and the bridge still updated", report)
        check(states(d) == {"mcu": "current", "ebb": "current", "pico": "stale"}, "status after", mcu_status(d))
        boards.vb.unquirk(PICO, "no-1200-reboot")

        # a CAN node that loses power mid-flash: the Pico and the bridge
        # behind it still get theirs, the node is reported, and its state
        # is unknown (flashd does not guess what a half-flashed node runs)
        host = new_commit(base, tree)
        harness.wait_for(lambda: states(d) == {"mcu": "stale", "ebb": "stale", "pico": "stale"},
                         timeout=30 * SCALE, interval=0.5, what="all three stale after the third commit")
        boards.quirk(EBB, "unplug=5")
        p = flashctl(d, "--json", "update", "--all", timeout=300 * SCALE)
        check(p.returncode == 6, f"update with a CAN failure exit {p.returncode}", p.stdout + p.stderr)
        report = {x["name"]: x for x in json.loads(p.stdout)["steps"]}
        check(report["ebb"]["result"] == "flash-failed" and "stopped answering" in report["ebb"]["message"],
              "the toolhead failed, with why", report)
        check(all(report[n]["result"] == "flashed" and report[n]["current"] for n in ("pico", "mcu")),
              "the Pico and the bridge still updated", report)
        s = mcu_status(d)
        check(s["ebb"]["state"] == "unknown" and s["ebb"]["running_version"] is None and s["ebb"]["reason"],
              "the toolhead's version is unknown after the failed flash, and says why", s["ebb"])
        check(s["mcu"]["state"] == "current" and s["pico"]["state"] == "current", "the others current", s)


if __name__ == "__main__":
    harness.main([test_update_can])

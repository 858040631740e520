#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""flashctl against the real flashd and virtual boards: the acceptance test
of the client. Run under vboard (meson does this):

    vboard --board octopus-pro-f429 --mode dfu --quirk garbage-tail \\
           --board octopus-pro-f446 --mode app -- python3 flashctl-vboard.py

- `flashctl --json list --mode dfu` reports the F429 with garbage-tail as a
  DFU device with all three sector groups (4x16K, 1x64K, 7x128K);
- `flashctl list` and `flashctl info` show them to a person, sectors merged
  into ranges and marked bootloader or application, garbage escaped;
- `info` finds a device by port, USB node, tty and by-id link;
- `flashctl watch` (text and --json) sees a board unplugged and plugged back
  through the vboard control socket;
- bash completion offers the ports of present devices.
"""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import harness

F429_LAYOUT = [(4, 16 * 1024), (1, 64 * 1024), (7, 128 * 1024)]



def watchdog(proc, seconds):
    """Kill proc after `seconds` unless it is gone by then (a hung watch
    must fail the test, not hang it)."""
    t = threading.Timer(seconds, proc.kill)
    t.daemon = True
    t.start()
    return t

def control(*words):
    """One request on vboard's control socket (a line; the answer is a JSON line)."""
    path = os.environ.get("VBOARD_CONTROL")
    if not path:
        raise harness.Skip("not running under vboard (VBOARD_CONTROL unset)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall((" ".join(words) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    answer = json.loads(buf)
    assert answer.get("ok"), answer
    return answer


def vboards():
    return {b["name"]: b for b in control("list")["boards"]}


def flashctl(d, *args, check_rc=0):
    p = subprocess.run([harness.flashctl_binary(), "--socket", d.socket_path, *args],
                       env=dict(os.environ, NO_COLOR="1"), capture_output=True, text=True, timeout=20)
    if check_rc is not None:
        assert p.returncode == check_rc, (args, p.returncode, p.stdout, p.stderr)
    return p


def wait_probed(c, port):
    """The device on `port` once the daemon has read its descriptors."""
    def probed():
        d = harness.devices_by_port(c).get(port)
        return d if d and d.get("probed") else None
    return harness.wait_for(probed, what=f"device {port} probed")


def test_list_json_f429_garbage_tail():
    f429 = vboards()["octopus-pro-f429"]
    with harness.Flashd() as d:
        c = d.client()
        wait_probed(c, f429["port"])
        devs = json.loads(flashctl(d, "--json", "list", "--mode", "dfu").stdout)
        assert [x["id"] for x in devs] == [f429["port"]], devs
        dev = devs[0]
        assert dev["mode"] == "dfu" and dev["usb_id"] == "0483:df11", dev
        assert harness.layout_summary(dev["layout"]) == F429_LAYOUT, dev["layout"]
        assert dev["layout"][0]["address"] == 0x08000000
        assert all(s["flags"] == 7 for s in dev["layout"][0]["sectors"])
        # exactly the daemon's objects, all of them
        everything = json.loads(flashctl(d, "--json", "list").stdout)
        assert everything == c.call("device.list"), "list --json differs from device.list"
        assert {x["mode"] for x in everything} == {"dfu", "app"}, everything


def test_list_table():
    boards = vboards()
    f429, f446 = boards["octopus-pro-f429"], boards["octopus-pro-f446"]
    with harness.Flashd() as d:
        c = d.client()
        wait_probed(c, f429["port"])
        harness.wait_for(lambda: harness.devices_by_port(c).get(f446["port"], {}).get("tty"),
                         what="app board with its tty")
        out = flashctl(d, "list").stdout
        rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
        dev = harness.devices_by_port(c)[f429["port"]]
        row = rows[f429["port"]].split()
        assert row[1] == "dfu" and row[-3:] == ["4x16K", "1x64K", "7x128K"], out
        assert row[-5] == dev["usb_devnode"] and row[-4] == "-", (row, dev)  # no job on it
        # the board column: the board, or its candidates while ambiguous
        assert "octopus-pro" in row[2] and (dev["board"] or row[2].endswith("?")), row
        app = rows[f446["port"]].split()
        assert app[1] == "app" and "octopus-pro" in app[2] and app[3] == "stm32f446xx", out
        assert app[4] == f446["tty"] and app[5] == "-", (app, f446)
        assert "2 devices listed." in out


def test_info_sector_by_sector():
    f429 = vboards()["octopus-pro-f429"]
    with harness.Flashd() as d:
        c = d.client()
        dev = wait_probed(c, f429["port"])
        out = flashctl(d, "info", f429["port"]).stdout
        # neighbours of one size and use share a row; the bootloader's
        # sectors (below the application start 0x08008000) are marked
        sectors = [line.split() for line in out.splitlines()
                   if re.fullmatch(r"\s*\d+(-\d+)?\s+0x[0-9a-f]{8}-0x[0-9a-f]{8}\s+.*", line)]
        assert sectors == [
            ["0-1", "0x08000000-0x08007fff", "2", "x", "16", "KiB", "rew", "bootloader"],
            ["2-3", "0x08008000-0x0800ffff", "2", "x", "16", "KiB", "rew", "application"],
            ["4", "0x08010000-0x0801ffff", "64", "KiB", "rew", "application"],
            ["5-11", "0x08020000-0x080fffff", "7", "x", "128", "KiB", "rew", "application"],
        ], out
        assert "Flash: 1 MiB at 0x08000000" in out, out
        # the garbage after the layout string is escaped, never sent raw
        alt0 = [line for line in out.splitlines() if "@Internal Flash" in line]
        assert alt0 and alt0[0].isascii() and "07*128Kg\\u" in alt0[0], alt0
        assert "Application at: 0x08008000 (after a 32 KiB bootloader)" in out, out
        assert "Total: 1 MiB" in out and "Layout: 4x16K 1x64K 7x128K" in out, out
        assert "Port: " + f429["port"] in out and "USB ID: 0483:df11" not in out  # label is "USB id"
        assert "USB id: 0483:df11" in out
        # what was repaired is told, not hidden
        assert "(repaired)" in out and "Diagnostics:" in out, out
        for diag in dev["diagnostics"]:
            assert diag in out, (diag, out)
        assert json.loads(flashctl(d, "--json", "info", f429["port"]).stdout) == \
            c.call("device.info", {"device": f429["port"]})
        # by its USB node
        out = flashctl(d, "info", dev["usb_devnode"]).stdout
        assert "Port: " + f429["port"] in out


def test_info_by_tty_and_by_id():
    f446 = vboards()["octopus-pro-f446"]
    with harness.Flashd() as d:
        c = d.client()
        dev = harness.wait_for(lambda: (harness.devices_by_port(c).get(f446["port"]) or {}).get("tty")
                               and harness.devices_by_port(c)[f446["port"]], what="app board with its tty")
        # by-id links exist only where udev made them (vboard may not emulate them)
        names = [dev["tty"], f446["port"]] + ([dev["by_id"]] if dev.get("by_id") else [])
        for name in names:
            got = json.loads(flashctl(d, "--json", "info", name).stdout)
            assert got["id"] == f446["port"], (name, got["id"])
        out = flashctl(d, "info", dev["tty"]).stdout
        assert "Mode: app" in out and "MCU: stm32f446xx" in out and f"TTY: {dev['tty']}" in out, out
        assert "Board: octopus-pro" in out or "octopus-pro/f446" in out, out


def read_json_lines(proc, n, timeout=10):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        got.append(json.loads(line))
    return got


def test_watch_unplug_plug():
    f429 = vboards()["octopus-pro-f429"]
    with harness.Flashd() as d:
        c = d.client()
        wait_probed(c, f429["port"])
        clients = c.call("server.info")["clients"]
        w = subprocess.Popen([harness.flashctl_binary(), "--socket", d.socket_path, "--json", "watch"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t = subprocess.Popen([harness.flashctl_binary(), "--socket", d.socket_path, "watch"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, NO_COLOR="1"))
        # watchers that never print must not hang the test: readline sees EOF
        for p in (w, t):
            watchdog(p, 20)
        try:
            harness.wait_for(lambda: c.call("server.info")["clients"] == clients + 2, what="watchers connected")
            control("unplug", f429["port"])
            events = read_json_lines(w, 1)
            assert events and events[0]["method"] == "notify_device_removed", events
            assert events[0]["params"][0]["id"] == f429["port"]
            control("plug", f429["port"])
            # added, then changed once the layout has been read
            events = read_json_lines(w, 1)
            assert events and events[0]["method"] == "notify_device_added", events
            assert events[0]["params"][0]["id"] == f429["port"] and events[0]["params"][0]["mode"] == "dfu"
            assert all("time" in e for e in events)

            line = t.stdout.readline().split()
            assert line[1:3] == ["removed", f429["port"]], line
            line = t.stdout.readline().split()
            assert line[1:4] == ["added", f429["port"], "dfu"], line

            for p in (w, t):
                p.send_signal(signal.SIGINT)
                assert p.wait(10) == 0, p.stderr.read()
        finally:
            for p in (w, t):
                if p.poll() is None:
                    p.kill()
        wait_probed(c, f429["port"])


def test_completion_offers_ports():
    boards = vboards()
    with harness.Flashd() as d:
        c = d.client()
        wait_probed(c, boards["octopus-pro-f429"]["port"])
        script = os.path.join(harness.source_root(), "client", "flashctl.bash-completion")
        bindir = os.path.dirname(os.path.abspath(harness.flashctl_binary()))
        prog = (f"source /usr/share/bash-completion/bash_completion; source {script}; "
                f"COMP_WORDS=(flashctl --socket {d.socket_path} info ''); COMP_CWORD=4; "
                "COMP_LINE='flashctl info '; COMP_POINT=14; _flashctl; printf '%s\\n' \"${COMPREPLY[@]}\"")
        p = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, timeout=20,
                           env=dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", "")))
        offered = set(p.stdout.split())
        for b in boards.values():
            assert b["port"] in offered, (b["port"], offered)
        # board names only for devices whose board is known (an ambiguous
        # name would not resolve)
        for dev in c.call("device.list"):
            if dev["board"]:
                assert dev["board"] in offered, (dev["board"], offered)


if __name__ == "__main__":
    harness.main([test_list_json_f429_garbage_tail, test_list_table, test_info_sector_by_sector,
                  test_info_by_tty_and_by_id, test_watch_unplug_plug, test_completion_offers_ports])

# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for the rules-*.py integration tests (stdlib only).

Each test runs under the virtual boards (meson starts `vboard ... --
python3 rules-x.py`), starts the real flashd with short timeouts, manages
rules with the real flashctl or raw RPC, plugs, unplugs and resets the
virtual boards, and checks what the boards hold in their virtual flash and
how often they were flashed (vboard's own event log), not the daemon's word.
"""

import base64
import os
import time

import harness
from jobs_helpers import (APP, FAST_CONFIG, Boards, app_image, check, flashctl,  # noqa: F401
                          tmpdir, write_image)

ERASED = b"\xff" * 64


def add_rule(c, data, match, **params):
    """rule.add with the image as base64 data; returns the rule object."""
    p = {"match": match, "image": {"data": base64.b64encode(data).decode(), "name": "klipper.bin"},
         "retry_delay_sec": 0.2}
    p.update(params)
    return c.call("rule.add", p)["rule"]


def rule(c, rule_id):
    for r in c.call("rule.list")["rules"]:
        if r["id"] == rule_id:
            return r
    raise AssertionError(f"no rule {rule_id}")


def jobs(c, source=None, port=None):
    return [j for j in c.call("job.list", {"all": True})["jobs"]
            if (source is None or j["source"] == source) and (port is None or j["port"] == port)]


def wait_job_end(c, source, port, state="done", timeout=20, count=1):
    """Wait until rule `source` is done with the board on `port` (at least
    `count` jobs, all ended, no retry pending), the last job in `state`;
    returns the jobs, oldest first."""
    def ended():
        js = jobs(c, source, port)
        if len(js) < count or not all(j["state"] in ("done", "failed", "cancelled") for j in js):
            return None
        if any(p["port"] == port for p in rule(c, source)["pending"]):
            return None
        return js
    js = harness.wait_for(ended, timeout=timeout, interval=0.1,
                          what=f"{count} job(s) of {source} on {port} to end")
    check(js[-1]["state"] == state, f"last job of {source} on {port} ended {js[-1]['state']}",
          js[-1].get("error"))
    return js


def wait_listed(c, port, mode=None, timeout=10):
    """The board on `port` is listed (in `mode`) and usable: a DFU device probed, an app with its tty."""
    def ready():
        d = harness.devices_by_port(c).get(port)
        if not d or (mode and d["mode"] != mode):
            return None
        if d["mode"] == "dfu" and not d.get("probed"):
            return None
        if d["mode"] == "app" and not d.get("tty"):
            return None
        return d
    return harness.wait_for(ready, timeout=timeout, what=f"board on {port} listed")


def leaves(boards, b):
    """How many flashes the board completed (vboard's own count of DFU leave requests)."""
    return boards.events(b).count("leave")


def holds(boards, b, image, address=APP):
    return boards.read(b, address, len(image)) == image


def quiet(seconds=1.0):
    """Give the daemon time to do something it should not do."""
    time.sleep(seconds)


def unplug_all(boards):
    for b in boards.list():
        if b["mode"] != "off":
            boards.unplug(b["index"])


def fresh_state_dir():
    return os.path.join(tmpdir(), "state")


def dump_log(d):
    """The daemon's log without the debug lines (the test's polling floods them)."""
    import sys
    try:
        lines = [l for l in d.log_text().splitlines() if "[debug]" not in l]
    except OSError:
        return
    sys.stderr.write("---- flashd log (without debug) ----\n" + "\n".join(lines[-300:]) + "\n---- end ----\n")

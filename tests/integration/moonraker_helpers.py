# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for the moonraker-*.py tests: the real flashd (with --moonraker)
under virtual boards, a FakeMoonraker on a temp socket, frontends that
call flashd through server.extensions.request."""

import base64
import os
import time

import harness
from fake_moonraker import AgentCallError, FakeMoonraker, FrontendClient  # noqa: F401
from jobs_helpers import APP, FAST_CONFIG, Boards, app_image, check  # noqa: F401

FINAL = ("done", "failed", "cancelled")


def flashd_with_moonraker(enable_flashing=True, via_cli=False):
    """A Flashd whose Moonraker socket lives in its temp dir ([moonraker]
    socket, or --moonraker PATH with via_cli); returns (Flashd not yet
    started, socket path). Append file_root lines etc. to d.config."""
    d = harness.Flashd(config="")
    path = os.path.join(d.tmp, "moonraker.sock")
    d.config = FAST_CONFIG + "\n[moonraker]\n" + f"enable_flashing = {'yes' if enable_flashing else 'no'}\n"
    if via_cli:
        d.args += ["--moonraker", path]
    else:
        d.config += f"socket = {path}\n"
    return d, path


def wait_ready(c, port="1-1.1"):
    def ok():
        devs = harness.devices_by_port(c)
        return port in devs and (devs[port]["mode"] != "dfu" or devs[port].get("probed"))
    harness.wait_for(ok, what=f"board {port} listed")


def b64(data):
    return base64.b64encode(data).decode()


def job_events(fe, job_id):
    """(arrival time at the frontend, job object) of every job_update of job_id."""
    return [(t, e["data"]) for t, e in zip(fe.event_times, fe.events)
            if e.get("event") == "job_update" and e.get("data", {}).get("id") == job_id]


def sent_job_events(mr, job_id):
    """(time Moonraker received it, job object): the agent's sending times."""
    with mr.lock:
        return [(t, p["data"]) for t, p in mr.agent_events
                if p.get("event") == "job_update" and p.get("data", {}).get("id") == job_id]


def wait_job_event(fe, job_id, states=FINAL, timeout=30):
    return fe.wait_event(lambda e: e.get("event") == "job_update" and e["data"]["id"] == job_id and
                         e["data"]["state"] in states, timeout=timeout, what=f"job {job_id} in {states}")["data"]


def check_ids_echoed(mr):
    """Every request Moonraker relayed got exactly one reply with its own id."""
    with mr.lock:
        sent = [mid for mid, _, _ in mr.forwarded]
        replied = [r.get("id") for r in mr.agent_replies]
    check(sorted(sent) == sorted(replied), "each relayed request answered once, with Moonraker's id",
          (sent, replied))


def check_flash(boards, board, address, image):
    got = boards.read(board, address, len(image))
    check(got == image, f"the virtual flash holds the image at {address:#x}")


def time_limit(seconds):
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() < deadline

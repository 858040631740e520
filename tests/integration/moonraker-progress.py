#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What a web frontend sees of a flash through Moonraker, on a board with
the datasheet's timing (erase and write take seconds):

    vboard --board octopus-pro-f429 --mode dfu --timing real    (1-1.1)

The frontend is a FrontendClient on fake_moonraker.py, which relays agent
events like Moonraker does (at once, unchanged, none dropped). It must be
able to draw a progress bar:

- the first event of every phase that moves bytes (read-back, erase,
  write, verify) already carries that phase's bytes_total;
- while any phase runs longer than a second, events with a growing
  bytes_done > 0 arrive at least twice per second (on average: each is
  due half a second after the one before, however late that one went);
- the final `done` event carries the job's totals (bytes_done ==
  bytes_total == the image's payload), not zeros.
"""
import os

from moonraker_helpers import (APP, Boards, FakeMoonraker, FrontendClient, app_image, b64, check, check_flash,
                               flashd_with_moonraker, job_events, wait_job_event, wait_ready)

BOARD = "0"
PORT = "1-1.1"
SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))
BYTE_PHASES = ("read-back", "erase", "write", "verify")


def phase_runs(evs):
    """[(phase, [(t, job), ...])] for consecutive events of the flashing state."""
    runs = []
    for t, e in evs:
        if e["state"] != "flashing":
            continue
        if not runs or runs[-1][0] != e["phase"]:
            runs.append((e["phase"], []))
        runs[-1][1].append((t, e))
    return runs


def test_frontend_progress():
    boards = Boards()
    image = app_image(400 * 1024, APP, seed=71)
    d, path = flashd_with_moonraker(enable_flashing=True)
    with FakeMoonraker(path) as mr, d:
        wait_ready(d.client())
        mr.wait_agent()
        with FrontendClient(path, timeout=30 * SCALE) as fe:
            jid = fe.call("job.flash", {"target": PORT, "address": APP,
                                        "image": {"data": b64(image), "name": "klipper.bin"}})["job"]["id"]
            final = wait_job_event(fe, jid, timeout=120 * SCALE)
            evs = job_events(fe, jid)
            trace = [(round(t - evs[0][0], 2), e["state"], e["phase"], e["bytes_done"], e["bytes_total"])
                     for t, e in evs]

            check(final["state"] == "done", "the job is done", final)
            check(final["bytes_total"] == len(image) and final["bytes_done"] == len(image),
                  "the final event keeps the job's totals", trace[-3:])

            runs = phase_runs(evs)
            seen = [p for p, _ in runs]
            check("write" in seen and "verify" in seen, "the frontend saw the phases", seen)
            print("\n".join(map(str, trace)))
            for phase, run in runs:
                if phase not in BYTE_PHASES:
                    continue
                check(run[0][1]["bytes_total"] > 0, f"{phase}: its first event carries bytes_total", trace)
                # a phase that lasted more than a second: >= 2 progress events per second
                end = next((t for p2, r2 in runs[runs.index((phase, run)) + 1:] for t, _ in r2[:1]),
                           evs[-1][0])
                duration = end - run[0][0]
                moving = [e for _, e in run if e["bytes_done"] > 0]
                if duration > 1.0:
                    check(len(moving) >= int(2 * duration) - 1,
                          f"{phase} ({duration:.1f} s): progress at least twice per second", trace)
                    dones = [e["bytes_done"] for e in moving]
                    check(dones == sorted(dones), f"{phase}: bytes_done grows", dones)
                    # on a half-second grid from the phase's start: late
                    # wakeups on a loaded machine must not add up
                    times = [t for t, _ in run]
                    check(times[-1] - times[0] <= 0.5 * (len(times) - 1) + 0.15,
                          f"{phase}: twice per second on average, not less", trace)
            write = dict(runs).get("write", [])
            check(any(0 < e["bytes_done"] < e["bytes_total"] for _, e in write),
                  "bytes_done > 0 while the image is being written", trace)
        check_flash(boards, BOARD, APP, image)


if __name__ == "__main__":
    import harness
    harness.main([test_frontend_progress])

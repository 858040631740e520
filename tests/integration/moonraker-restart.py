#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Jobs through the Moonraker agent outlive Moonraker. Under

    vboard --board octopus-pro-f429 --mode dfu            (1-1.1)

- a frontend flashes the board through Moonraker and cancels the job
  through Moonraker while it writes: the cancel is answered, the
  "cancelled" event arrives, the board is left in its bootloader;
- Moonraker goes away while a job writes (its socket closed and removed):
  the job goes on, flashd keeps serving its own socket; a new Moonraker on
  the same path gets flashd back as agent within the backoff bound, and its
  frontends receive the job's events again up to "done"; the bytes are
  checked in the virtual flash;
- a second connection that identifies as "flashd" while flashd is
  registered is refused by Moonraker; flashd's own registration stays;
- the other way round: while another connection holds the name, Moonraker
  refuses flashd's identify; flashd retries and registers once the name is
  free;
- a Moonraker that accepts the connection and never answers (a socket
  nobody reads) does not hold flashd up: its own socket serves, and it
  stops cleanly.
"""
import socket
import os
import time

import harness
from moonraker_helpers import (APP, AgentCallError, Boards, FakeMoonraker, FrontendClient, app_image, b64, check,
                               check_flash, check_ids_echoed, flashd_with_moonraker, wait_job_event, wait_ready)

BOARD = "0"
PORT = "1-1.1"


def start_flash(fe, image):
    return fe.call("job.flash", {"target": PORT, "address": APP, "image": {"data": b64(image)}})["job"]["id"]


def writing(jid):
    return lambda e: (e.get("event") == "job_update" and e["data"]["id"] == jid and e["data"]["state"] == "flashing"
                      and e["data"].get("phase") == "write")


def test_cancel_through_moonraker():
    boards = Boards()
    image = app_image(384 * 1024, APP, seed=91)
    d, path = flashd_with_moonraker(enable_flashing=True)
    with FakeMoonraker(path) as mr, d:
        wait_ready(d.client())
        mr.wait_agent()
        with FrontendClient(path, timeout=30) as fe:
            jid = start_flash(fe, image)
            fe.wait_event(writing(jid), timeout=30, what="write progress")
            r = fe.call("job.cancel", {"job": jid})
            check(r["job"]["id"] == jid, "job.cancel answered through Moonraker", r)
            final = wait_job_event(fe, jid)
            check(final["state"] == "cancelled", "the job is cancelled", final)
            try:
                fe.call("job.cancel", {"job": jid})
                raise AssertionError("cancelling an ended job must fail")
            except AgentCallError as e:
                check(e.agent_error.get("code") == -32007, "busy: already ended", e.error)
            check_ids_echoed(mr)
        check(boards.board(BOARD)["mode"] == "dfu", "the board stays in its bootloader")
        check(boards.read(BOARD, APP, len(image)) != image, "the flash was really interrupted")


def test_moonraker_restart_mid_job():
    boards = Boards()
    # large enough that the write outlasts Moonraker's restart (~1 s)
    image = app_image(960 * 1024, APP, seed=92)
    d, path = flashd_with_moonraker(enable_flashing=True)
    mr = FakeMoonraker(path).start()
    try:
        with d:
            own = d.client()
            wait_ready(own)
            mr.wait_agent()
            with FrontendClient(path, timeout=30) as fe:
                jid = start_flash(fe, image)
                fe.wait_event(writing(jid), timeout=30, what="write progress")
            mr.stop()  # Moonraker exits mid-job
            t_down = time.monotonic()
            time.sleep(0.3)
            j = own.call("job.get", {"job": jid})["job"]
            check(j["state"] == "flashing", "the job goes on without Moonraker", j["state"])
            mr = FakeMoonraker(path).start()
            mr.wait_agent(timeout=10)
            check(time.monotonic() - t_down < 5, "back as agent within the backoff bound")
            j = own.call("job.get", {"job": jid})["job"]
            check(j["state"] == "flashing", "the job still runs when flashd is back (else the test proves nothing)",
                  j["state"])
            with FrontendClient(path, timeout=30) as fe2:
                final = wait_job_event(fe2, jid, timeout=30)
                check(final["state"] == "done", "events resume up to done", final)
                updates = [e for e in fe2.events if e.get("event") == "job_update"]
                check(len(updates) >= 1, "job events after the reconnect")
                check(any(x["port"] == PORT for x in fe2.call("device.list")), "calls work after the reconnect")
                check_ids_echoed(mr)
                # the name is taken while flashd is registered
                with FrontendClient(path, identify=False) as impostor:
                    try:
                        impostor.request("server.connection.identify",
                                         {"client_name": "flashd", "version": "0", "type": "agent", "url": "x"})
                        raise AssertionError("a second agent flashd must be refused")
                    except AgentCallError as e:
                        check("already registered" in e.message, "Moonraker refuses a second flashd", e.error)
                check(mr.agent_connected(), "flashd stays registered")
            log = d.log_text()
            check("Moonraker connection lost" in log, "flashd logged the lost connection")
        check_flash(boards, BOARD, APP, image)
    finally:
        mr.stop()


def test_name_taken_then_free():
    d, path = flashd_with_moonraker(enable_flashing=False)
    with FakeMoonraker(path) as mr:
        squatter = FrontendClient(path, identify=False)
        squatter.request("server.connection.identify",
                         {"client_name": "flashd", "version": "0", "type": "agent", "url": "x"})
        with d:
            wait_ready(d.client())
            harness.wait_for(lambda: "Moonraker refused flashd" in d.log_text(), what="identify refused")
            check(len(mr.identified_agents) == 1, "only the squatter is registered", mr.identified_agents)
            squatter.close()
            # Not mr.wait_agent(): until the fake Moonraker has seen the
            # squatter hang up, "flashd" is still the squatter.
            harness.wait_for(lambda: len(mr.identified_agents) >= 2 and mr.agent_connected("flashd"),
                             timeout=10, what="flashd registered once the name was free")
            check(mr.identified_agents[-1]["url"] != "x", "flashd registered once the name was free",
                  mr.identified_agents)
            with FrontendClient(path) as fe:
                check(any(x["port"] == PORT for x in fe.call("device.list")), "and answers")


def test_silent_moonraker_does_not_block():
    d, path = flashd_with_moonraker(enable_flashing=False)
    # a listening socket nobody accepts or reads: connect() succeeds (the
    # backlog), identify is written into the socket buffer, no answer
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(path)
    silent.listen(4)
    try:
        with d:
            own = d.client()
            wait_ready(own)
            t0 = time.monotonic()
            for _ in range(20):
                check(own.call("device.list")[0]["port"] == PORT, "flashd serves its own socket")
            check(time.monotonic() - t0 < 2, "without delay")
            check(d.alive(), "flashd runs")
        # leaving the block: SIGTERM and a clean exit (status 0) are checked
    finally:
        silent.close()
        if os.path.exists(path):
            os.unlink(path)


if __name__ == "__main__":
    harness.main([test_cancel_through_moonraker, test_moonraker_restart_mid_job, test_name_taken_then_free,
                  test_silent_moonraker_does_not_block])

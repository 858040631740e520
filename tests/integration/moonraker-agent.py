#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""flashd as a Moonraker agent, against a peer that speaks Moonraker's
documented agent protocol (fake_moonraker.py). Under

    vboard --board octopus-pro-f429 --mode dfu            (1-1.1)

- flashd starts before Moonraker; Moonraker comes up later and flashd
  registers as agent "flashd" (identify with type agent, version, url);
  a frontend lists the virtual board through server.extensions.request
  and gets what flashd's own socket says; errors come back as Moonraker
  relays them (424, the agent's JSON-RPC error in data); every request is
  answered with Moonraker's own id;
- with enable_flashing = no (the default) job.flash and job.cancel are
  refused with a message that names the setting, and nothing is erased;
- with enable_flashing = yes a frontend flashes the board with base64
  data: job_update events arrive, progress at most MOONRAKER_PROGRESS_HZ
  (2) per second per job, state and phase changes all of them, the last
  event is the final one; the bytes are checked in the virtual flash;
- image.path: a file under a Moonraker file root ("gcodes/...") flashes
  and makes a rule; one reached through a symlink out of the roots, or
  named with "..", is refused.
"""
import os
import time

import harness
from moonraker_helpers import (APP, AgentCallError, Boards, FakeMoonraker, FrontendClient, app_image, b64,
                               check, check_flash, check_ids_echoed, flashd_with_moonraker, job_events, sent_job_events, wait_job_event,
                               wait_ready)

BOARD = "0"
PORT = "1-1.1"


def test_late_moonraker_list_and_errors():
    d, path = flashd_with_moonraker(enable_flashing=False, via_cli=True)
    with d:
        own = d.client()
        wait_ready(own)
        # Moonraker is not there: flashd runs and serves its own socket
        time.sleep(1.0)
        check(own.call("server.info")["version"], "flashd serves without Moonraker")
        t0 = time.monotonic()
        with FakeMoonraker(path) as mr:
            mr.wait_agent(timeout=10)
            check(time.monotonic() - t0 < 5, "registered within the backoff bound")
            agent = mr.identified_agents[0]
            check(agent["name"] == "flashd" and agent["type"] == "agent", "identified as agent flashd", agent)
            check(agent["version"] and agent["url"].startswith("http"), "version and url given", agent)
            with FrontendClient(path) as fe:
                listed = fe.request("server.extensions.list")["agents"]
                check([a["name"] for a in listed] == ["flashd"], "server.extensions.list shows flashd", listed)
                devs = fe.call("device.list")
                check([x["port"] for x in devs] == [x["port"] for x in own.call("device.list")],
                      "device.list through Moonraker equals flashd's own", devs)
                check(devs[0]["port"] == PORT and devs[0]["mode"] == "dfu", "the virtual board", devs)
                info = fe.call("device.info", {"device": PORT})
                check(info["port"] == PORT, "device.info with arguments", info)
                check(fe.call("board.info", {"board": "octopus-pro"})["name"] == "octopus-pro", "board.info")
                check("job.flash" in fe.call("server.methods"), "server.methods through the agent")
                for method, args, code in (("device.info", {"device": "nope"}, -32004),
                                           ("no.such", None, -32601),
                                           ("device.list", {"bogus": 1}, -32602)):
                    try:
                        fe.call(method, args)
                        raise AssertionError(f"{method} should fail")
                    except AgentCallError as e:
                        check(e.code == 424, "Moonraker relays agent errors as 424", e.error)
                        check(e.agent_error.get("code") == code, f"{method}: agent error {code}", e.error)
                        check(e.agent_error.get("message"), "with a message", e.error)
                # Moonraker's notifications (proc_stat_update every 0.2 s) are
                # ignored: nothing but replies came back
                fe.pump(0.5)
                check_ids_echoed(mr)
                with mr.lock:
                    stray = [m for m in mr.agent_received if "method" in m and m["method"] not in (
                        "connection.send_event", "printer.objects.list", "printer.objects.query")]
                check(stray == [], "the agent sends only replies and events", stray)


def test_flashing_disabled():
    boards = Boards()
    d, path = flashd_with_moonraker(enable_flashing=False)
    with FakeMoonraker(path) as mr, d:
        own = d.client()
        wait_ready(own)
        mr.wait_agent()
        before = boards.counters(BOARD)
        with FrontendClient(path) as fe:
            for method, args in (("job.flash", {"target": PORT, "image": {"data": b64(app_image(4096, APP))}}),
                                 ("job.cancel", {"job": 1})):
                try:
                    fe.call(method, args)
                    raise AssertionError(f"{method} must be refused")
                except AgentCallError as e:
                    err = e.agent_error
                    check(err.get("code") == -32002, "permission_denied", e.error)
                    check("enable_flashing = yes" in err.get("message", "") and "[moonraker]" in err["message"],
                          "the message says how to enable it", err)
            check(fe.call("job.list") == {"jobs": []}, "reading job calls work")
        after = boards.counters(BOARD)
        check(after["sector_erases"] == before["sector_erases"] and after["dnloads"] == before["dnloads"],
              "nothing erased or written")
        check(own.call("job.list", {"all": True})["jobs"] == [], "no job was made")


def test_flash_base64_progress_coalesced():
    boards = Boards()
    image = app_image(384 * 1024, APP, seed=81)
    d, path = flashd_with_moonraker(enable_flashing=True)
    with FakeMoonraker(path) as mr, d:
        own = d.client()
        wait_ready(own)
        mr.wait_agent()
        with FrontendClient(path, timeout=30) as fe:
            job = fe.call("job.flash", {"target": PORT, "address": APP,
                                        "image": {"data": b64(image), "name": "klipper.bin"}})["job"]
            jid = job["id"]
            final = wait_job_event(fe, jid)
            check(final["state"] == "done", "the job is done", final)
            fe.pump(0.6)  # nothing may come after the final event
            evs = job_events(fe, jid)
            check(evs[-1][1]["state"] == "done", "the final event is the last", [e["state"] for _, e in evs])
            # progress within one state and phase: at most 2 per second
            runs = {}
            sent = sent_job_events(mr, jid)
            check([e for _, e in sent] == [e for _, e in evs], "the frontend got every event the agent sent")
            last_done = {}
            for t, e in sent:
                # only progress updates are coalesced; other updates of the
                # same state and phase (the job's device found, a log line)
                # go out at once and are not part of the spacing
                key = (e["state"], e.get("phase"))
                if key in last_done and last_done[key] == e.get("bytes_done"):
                    continue
                last_done[key] = e.get("bytes_done")
                runs.setdefault(key, []).append(t)
            # (measured where Moonraker receives them: a loaded machine may
            # delay a few, so most, not all, gaps must show the 0.5 s spacing;
            # without coalescing flashd's own 4/s would fail every gap)
            gaps = [b - a for times in runs.values() for a, b in zip(times, times[1:])]
            check(gaps and sum(g >= 0.4 for g in gaps) >= 0.8 * len(gaps),
                  "progress events of one state and phase ~0.5 s apart",
                  [(round(t, 3), e["state"], e["phase"], e["bytes_done"]) for t, e in sent])
            own.drain(0.3)
            own_updates = [n for n in own.notifications if n["method"] == "notify_job_update" and
                           n["params"][0]["id"] == jid]
            check(len(evs) <= len(own_updates), "never more events than flashd's own notifications",
                  (len(evs), len(own_updates)))
            duration = evs[-1][0] - evs[0][0]
            check(len(evs) <= len(runs) + 2 * duration + 2, "bounded by state changes + 2/s",
                  (len(evs), len(runs), duration))
            writes = [e for _, e in evs if e.get("phase") == "write"]
            check(len(writes) >= 1, "write progress is seen", [e.get("phase") for _, e in evs])
            got = fe.call("job.get", {"job": jid})["job"]
            check(got["state"] == "done" and got["log"], "job.get through the agent has the log")
            check(got["requested_by"]["uid"] == os.getuid(), "requested by Moonraker's user", got["requested_by"])
            check_ids_echoed(mr)
        check_flash(boards, BOARD, APP, image)


def test_flash_path_in_file_roots():
    boards = Boards()
    d, path = flashd_with_moonraker(enable_flashing=True)
    gcodes = os.path.join(d.tmp, "printer_data", "gcodes")
    config_root = os.path.join(d.tmp, "printer_data", "config")
    outside = os.path.join(d.tmp, "outside")
    for p in (gcodes, config_root, outside):
        os.makedirs(p)
    d.config += f"file_root = {gcodes}\nfile_root = {config_root}\n"
    image = app_image(40 * 1024, APP, seed=82, mcu="stm32f429xx")
    with open(os.path.join(gcodes, "klipper.bin"), "wb") as f:
        f.write(image)
    with open(os.path.join(outside, "secret.bin"), "wb") as f:
        f.write(app_image(4096, APP, seed=83))
    os.symlink(os.path.join(outside, "secret.bin"), os.path.join(gcodes, "link.bin"))
    with FakeMoonraker(path) as mr, d:
        own = d.client()
        wait_ready(own)
        mr.wait_agent()
        with FrontendClient(path, timeout=30) as fe:
            for bad in ("gcodes/link.bin", "gcodes/../../outside/secret.bin", os.path.join(outside, "secret.bin"),
                        "nosuchroot/klipper.bin", "gcodes/missing.bin"):
                try:
                    fe.call("job.flash", {"target": PORT, "image": {"path": bad}})
                    raise AssertionError(f"{bad} must be refused")
                except AgentCallError as e:
                    check(e.agent_error.get("code") in (-32002, -32602), f"{bad} refused", e.error)
                    check(e.agent_error.get("data", {}).get("path") == bad, "the error names the path", e.error)
            check(own.call("job.list", {"all": True})["jobs"] == [], "no job for a refused path")
            job = fe.call("job.flash", {"target": PORT, "address": APP, "image": {"path": "gcodes/klipper.bin"}})["job"]
            final = wait_job_event(fe, job["id"])
            check(final["state"] == "done", "flashed from the file root", final)
            # rule.add takes image.path the same way (disabled: it must not fire here)
            rule = fe.call("rule.add", {"match": {"board": "skr-pro"}, "image": {"path": "gcodes/klipper.bin"},
                                        "enabled": False})["rule"]
            check(rule["id"], "rule.add with image.path through the agent", rule)
            try:
                fe.call("rule.add", {"match": {"board": "skr-pro"}, "image": {"path": "gcodes/link.bin"}})
                raise AssertionError("rule.add with a path outside the roots must be refused")
            except AgentCallError as e:
                check(e.agent_error.get("code") == -32002, "rule.add path outside the roots refused", e.error)
            check_ids_echoed(mr)
        check_flash(boards, BOARD, APP, image)


if __name__ == "__main__":
    harness.main([test_late_moonraker_list_and_errors, test_flashing_disabled, test_flash_base64_progress_coalesced,
                  test_flash_path_in_file_roots])

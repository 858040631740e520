#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""flashd without devices: start/stop, the socket, the core methods and
JSON-RPC error handling."""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time

import harness


def test_help_and_version():
    out = subprocess.run([harness.flashd_binary(), "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.startswith("flashd "), out
    out = subprocess.run([harness.flashd_binary(), "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and "--socket" in out.stdout and "--boards-dir" in out.stdout
    out = subprocess.run([harness.flashd_binary(), "--bogus"], capture_output=True, text=True, timeout=10)
    assert out.returncode != 0


def test_ready_status_and_clean_stop():
    d = harness.Flashd().start()
    try:
        ready = d.wait_notify("READY=1")
        assert "STATUS=" in ready
        mode = os.stat(d.socket_path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660, oct(mode)
        assert os.path.isdir(d.state_dir)
        assert d.stop(signal.SIGTERM) == 0
        d.wait_notify("STOPPING=1", timeout=1)
        assert not os.path.exists(d.socket_path), "socket left behind"
    finally:
        d.cleanup()


def test_watchdog_pings():
    """With WATCHDOG_USEC set (as systemd does for WatchdogSec=), the loop
    pings WATCHDOG=1 at about half the interval."""
    with harness.Flashd(env={"WATCHDOG_USEC": "200000"}) as d:
        harness.wait_for(lambda: sum("WATCHDOG=1" in m.split("\n") for m in d.notify_messages) >= 3,
                         timeout=5, what="three watchdog pings")
        d.client().call("server.info")


def test_sigint_stops():
    d = harness.Flashd().start()
    try:
        assert d.stop(signal.SIGINT) == 0
    finally:
        d.cleanup()


def test_stale_socket_replaced_and_live_one_kept():
    with harness.Flashd() as first:
        # a second daemon on the same path must refuse, not steal the socket
        second = harness.Flashd(socket_path=first.socket_path, wait_ready=False).start()
        try:
            second.proc.wait(10)
            assert second.proc.returncode != 0
            assert "another flashd" in second.log_text()
        finally:
            second.cleanup()
        first.client().call("server.info")
    # a stale socket file (nobody listening) is replaced
    d = harness.Flashd()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(d.socket_path)
    s.close()
    try:
        d.start()
        d.client().call("server.info")
        d.stop()
    finally:
        d.cleanup()


def test_server_info_and_identify():
    with harness.Flashd() as d:
        c = d.client(identify=False)
        info = c.call("server.info")
        for key in ("version", "api_version", "uptime", "state_dir", "devices", "boards", "clients"):
            assert key in info, key
        assert info["state_dir"] == d.state_dir
        assert info["devices"] == 0
        assert info["boards"] >= 8
        r = c.call("server.connection.identify", {"client_name": "t", "version": "1", "type": "other",
                                                  "url": "http://x"})
        assert isinstance(r["connection_id"], int)
        c2 = d.client(identify=False)
        r2 = c2.call("server.connection.identify", {"client_name": "t", "version": "1", "type": "web"})
        assert r2["connection_id"] != r["connection_id"]
        try:
            c.call("server.connection.identify", {"client_name": "t"})
            raise AssertionError("missing params accepted")
        except harness.RpcError as e:
            assert e.code == -32602 and e.name == "invalid_params"


def test_device_and_board_methods():
    with harness.Flashd() as d:
        c = d.client()
        assert c.call("device.list") == []
        boards = c.call("board.list")
        names = {b["name"] for b in boards}
        assert {"octopus", "octopus-pro", "skr-3"} <= names, names
        info = c.call("board.info", {"board": "octopus-pro"})
        f429 = [v for v in info["variants"] if v["mcu"] == "stm32f429xx"]
        assert f429, info
        assert harness.layout_summary(f429[0]["layout"]) == harness.F429_LAYOUT
        for method, params, code in [
            ("device.info", {"device": "1-9.9"}, -32004),
            ("device.info", {}, -32602),
            ("device.info", {"device": 3}, -32602),
            ("device.info", {"device": "x", "extra": 1}, -32602),
            ("board.info", {"board": "no-such-board"}, -32006),
            ("device.list", {"unexpected": True}, -32602),
        ]:
            try:
                c.call(method, params)
                raise AssertionError(f"{method} {params} succeeded")
            except harness.RpcError as e:
                assert e.code == code, (method, params, e)
                assert e.message and e.name


def test_jsonrpc_errors():
    with harness.Flashd() as d:
        c = d.client()
        cases = [
            (b"garbage", -32700),
            (b"{\"jsonrpc\": \"2.0\", ", -32700),
            (b"[]", -32600),
            (b"42", -32600),
            (b'{"jsonrpc": "1.0", "method": "server.info", "id": 1}', -32600),
            (b'{"jsonrpc": "2.0", "method": 5, "id": 2}', -32600),
            (b'{"jsonrpc": "2.0", "method": "server.info", "params": 3, "id": 3}', -32600),
            (b'{"jsonrpc": "2.0", "method": "no.such", "id": 4}', -32601),
        ]
        for raw, code in cases:
            c.send_raw(raw + harness.ETX)
            m = c.recv_message()
            assert m["error"]["code"] == code, (raw, m)
            assert m["error"]["data"]["name"]
        # ids are echoed, also strings
        c.send({"jsonrpc": "2.0", "method": "server.info", "id": "abc"})
        assert c.recv_message()["id"] == "abc"
        # a notification (no id) gets no reply; the next request still works
        c.send({"jsonrpc": "2.0", "method": "server.info"})
        assert c.call("server.info")["devices"] == 0
        # batch: one array of responses, notifications left out
        c.send([{"jsonrpc": "2.0", "method": "server.info", "id": 10},
                {"jsonrpc": "2.0", "method": "server.info"},
                {"jsonrpc": "2.0", "method": "nope", "id": 11}, 5])
        batch = c.recv_message()
        assert isinstance(batch, list) and len(batch) == 3, batch
        by_id = {r.get("id"): r for r in batch}
        assert "result" in by_id[10] and by_id[11]["error"]["code"] == -32601
        assert by_id[None]["error"]["code"] == -32600
        # blank keep-alive frames are ignored
        c.send_raw(b"\x03 \n\x03")
        assert c.call("server.info")


def test_config_file():
    conf = "[flashd]\nsocket_group = nosuchgroup-xyz\nflash_group = nosuchgroup-xyz\nlog_level = info\n"
    with harness.Flashd(config=conf) as d:
        d.client().call("server.info")
    bad = harness.Flashd(config="[flashd]\nno_such_key = 1\n", wait_ready=False).start()
    try:
        bad.proc.wait(10)
        assert bad.proc.returncode != 0
        assert "no_such_key" in bad.log_text()
    finally:
        bad.cleanup()


def test_socket_activation():
    """Without --socket, flashd takes its listening socket from systemd
    (LISTEN_FDS), here from systemd-socket-activate."""
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        raise harness.Skip("systemd-socket-activate not installed")
    import tempfile
    with tempfile.TemporaryDirectory(prefix="flashd-sa-") as tmp:
        path = os.path.join(tmp, "activated.sock")
        log = open(os.path.join(tmp, "log"), "wb")
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
        p = subprocess.Popen([activate, "-l", path, "--fdname=flashd",
                              harness.flashd_binary(), "--state-dir", os.path.join(tmp, "state"),
                              "--boards-dir", harness.boards_dir()],
                             stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            def connect():
                # the path exists a moment before systemd-socket-activate listens
                try:
                    return harness.RpcClient(path)
                except (FileNotFoundError, ConnectionRefusedError):
                    return None
            # the first connection starts flashd, which takes the fd
            with harness.wait_for(connect, what="activation socket") as c:
                assert c.call("server.info")["boards"] >= 8
            with open(os.path.join(tmp, "log"), "rb") as f:
                text = f.read().decode(errors="replace")
            assert "socket-activated fd 3 (flashd)" in text, text
        finally:
            p.send_signal(signal.SIGTERM)
            rc = p.wait(10)
            log.close()
        assert rc == 0, rc


def test_bad_board_db_refuses_to_start():
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "broken.json"), "w") as f:
            f.write("{ not json")
        d = harness.Flashd(boards_dirs=[tmp], wait_ready=False).start()
        try:
            d.proc.wait(10)
            assert d.proc.returncode != 0
            assert "broken.json" in d.log_text()
        finally:
            d.cleanup()


def context_switches(pid):
    """Context switches of every thread of `pid`, and how many threads."""
    total = 0
    tasks = os.listdir(f"/proc/{pid}/task")
    for tid in tasks:
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total, len(tasks)


def test_idle_without_wakeups():
    """An idle flashd sleeps until something happens: no timer fires while
    there is nothing to do (no CAN interface to ask, no job, no watchdog)."""
    with harness.Flashd() as d:
        d.client().call("server.info")
        # the start-up threads (first identify, probes) end on their own
        harness.wait_for(lambda: context_switches(d.proc.pid)[1] == 1, timeout=20, what="only the main thread")
        before, _ = context_switches(d.proc.pid)
        time.sleep(5)
        after, _ = context_switches(d.proc.pid)
        assert after == before, f"{after - before} wakeups in 5 s of idle"


if __name__ == "__main__":
    harness.main([test_help_and_version, test_ready_status_and_clean_stop, test_watchdog_pings, test_sigint_stops,
                  test_stale_socket_replaced_and_live_one_kept, test_server_info_and_identify,
                  test_device_and_board_methods, test_jsonrpc_errors, test_config_file,
                  test_socket_activation, test_bad_board_db_refuses_to_start, test_idle_without_wakeups])

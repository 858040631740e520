#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Malformed and hostile clients must not hurt the daemon or other clients."""
import json
import os
import socket
import threading
import time

import harness


def test_garbage_and_invalid_json_keep_connection():
    with harness.Flashd() as d:
        c = d.client()
        c.send_raw(os.urandom(4096).replace(b"\x03", b"x") + harness.ETX)
        assert c.recv_message()["error"]["code"] == -32700
        c.send_raw(b"\xff\xfe\x00{\"a\":" + harness.ETX)
        assert c.recv_message()["error"]["code"] == -32700
        c.send_raw(b'{"jsonrpc":"2.0","method":"server.info","id":1,"id":2}' + harness.ETX)
        assert c.recv_message()["error"]["code"] == -32700  # duplicate keys rejected
        assert c.call("server.info")["devices"] == 0


def test_disconnect_mid_message():
    with harness.Flashd() as d:
        for _ in range(20):
            s = d.raw_socket()
            s.sendall(b'{"jsonrpc": "2.0", "method": "server.in')
            s.close()
        # and one that vanishes with a request whose reply cannot be sent
        s = d.raw_socket()
        s.sendall(b'{"jsonrpc": "2.0", "method": "board.list", "id": 1}\x03' * 50)
        s.close()
        c = d.client()
        assert c.call("server.info")
        assert d.alive()


def test_half_closed_client_gets_replies():
    """`printf ... | nc -U` style: requests, then shutdown(SHUT_WR); the
    replies still arrive, then the daemon closes."""
    with harness.Flashd() as d:
        s = d.raw_socket()
        s.sendall(b'{"jsonrpc":"2.0","method":"board.list","id":1}\x03' * 20)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        buf = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
        replies = [json.loads(f) for f in buf.split(harness.ETX) if f]
        assert len(replies) == 20 and all("result" in r for r in replies), len(replies)
        s.close()
        assert d.client().call("server.info")


def test_oversized_message_skipped():
    """10 MB without a terminator is buffered within the limit; 48 MiB + 1 is
    refused with -32001 and skipped to its ETX; the connection stays usable."""
    with harness.Flashd() as d:
        c = d.client(timeout=30)
        other = d.client()
        chunk = b"x" * (1 << 20)
        for _ in range(10):
            c.send_raw(chunk)
        # the daemon is still serving others while it holds 10 MB of c's input
        assert other.call("server.info")
        c.send_raw(harness.ETX)
        assert c.recv_message(30)["error"]["code"] == -32700
        # now over the limit: one error, then the rest up to ETX is discarded
        for _ in range(49):
            c.send_raw(chunk)
        c.send_raw(harness.ETX)
        m = c.recv_message(30)
        assert m["error"]["code"] == -32001 and m["id"] is None, m
        assert m["error"]["data"]["limit_image"] == 48 * 1024 * 1024
        assert c.call("server.info")
        assert other.call("server.info")


def test_non_reading_client_is_disconnected():
    """A client that sends requests but never reads its replies is cut off
    when its queue passes the output limit; others are unaffected."""
    with harness.Flashd() as d:
        other = d.client()
        s = d.raw_socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        req = b'{"jsonrpc":"2.0","method":"board.list","id":1}\x03' * 100
        deadline = time.monotonic() + 60
        disconnected = False
        while time.monotonic() < deadline:
            try:
                s.send(req)
            except BlockingIOError:
                # the daemon is busy answering: give it a moment
                time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                disconnected = True
                break
            if "output queue over its limit" in d.log_text():
                disconnected = True
                break
        assert disconnected, "client was not disconnected"
        # the other client is served throughout and after
        assert other.call("server.info")
        # the silent one gets at most what fitted, then EOF
        s.setblocking(True)
        s.settimeout(10)
        total = 0
        while True:
            try:
                chunk = s.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            total += len(chunk)
        assert total <= 8 * 1024 * 1024, total
        s.close()
        assert other.call("server.info")


def test_hundred_concurrent_clients():
    with harness.Flashd() as d:
        errors = []

        def worker(n):
            try:
                with harness.RpcClient(d.socket_path) as c:
                    c.identify(name=f"c{n}")
                    for _ in range(5):
                        assert c.call("server.info")["boards"] >= 8
                        assert c.call("device.list") == []
            except Exception as e:  # noqa: BLE001 - collected and reported
                errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors[:5]
        # 100 clients held open at once
        clients = [harness.RpcClient(d.socket_path) for _ in range(100)]
        # connect() returns once queued; the daemon accepts them in batches
        harness.wait_for(lambda: clients[0].call("server.info")["clients"] >= 100,
                         what="100 clients accepted")
        for c in clients:
            assert c.call("device.list") == []
        for c in clients:
            c.close()
        assert d.client().call("server.info")


if __name__ == "__main__":
    harness.main([test_garbage_and_invalid_json_keep_connection, test_disconnect_mid_message,
                  test_half_closed_client_gets_replies,
                  test_oversized_message_skipped, test_non_reading_client_is_disconnected,
                  test_hundred_concurrent_clients])

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Socket activation for real, as flashd.socket does it.

systemd-socket-activate binds the socket and holds it; the first client
connection starts flashd (exec'd in the same process with LISTEN_FDS and
LISTEN_FDNAMES=api), which answers that very connection's request, tells
the (test's) service manager READY=1, pings the watchdog when WATCHDOG_USEC
is set, serves further clients, and leaves the socket file alone on exit
(it belongs to the service manager).
"""

import os
import socket
import time

import harness
from systemd_activate import SocketActivatedFlashd, is_flashd


def test_first_connection_starts_flashd():
    with SocketActivatedFlashd(wait_ready=False) as d:
        time.sleep(0.2)
        assert d.alive(), "systemd-socket-activate exited"
        assert not is_flashd(d.exe()), f"flashd runs before any client connected ({d.exe()})"
        assert not any("READY=1" in m for m in d.notify_messages)

        # The first client's first request is answered by the flashd it started.
        c = harness.RpcClient(d.socket_path)
        d.clients.append(c)
        info = c.call("server.info")
        assert info["version"] and info["clients"] == 1, info
        assert is_flashd(d.exe()), f"not flashd after the first connection: {d.exe()}"
        d.wait_notify("READY=1")
        log = d.log_text()
        assert "socket-activated fd 3 (api)" in log, log

        # More clients on the same activated socket.
        others = [d.client() for _ in range(3)]
        for o in others:
            assert o.call("server.info")["clients"] >= 2
        assert c.call("server.info")["clients"] == 4

        assert d.stop() == 0
        assert os.path.exists(d.socket_path), "flashd removed the socket file it did not create"


def test_watchdog_and_status():
    with SocketActivatedFlashd(env={"WATCHDOG_USEC": "400000"}) as d:
        def pings():
            return sum("WATCHDOG=1" in m.split("\n") for m in list(d.notify_messages))

        try:
            harness.wait_for(lambda: pings() >= 3, 3, what="three WATCHDOG=1")
        except TimeoutError:
            raise AssertionError(f"only {pings()} WATCHDOG=1 in 3 s with WATCHDOG_USEC=400000: "
                                 f"{d.notify_messages}")
        assert any(l.startswith("STATUS=") for m in d.notify_messages for l in m.split("\n"))
        d.stop()
        assert any("STOPPING=1" in m.split("\n") for m in d.notify_messages), d.notify_messages


if __name__ == "__main__":
    harness.main([test_first_connection_starts_flashd, test_watchdog_and_status])

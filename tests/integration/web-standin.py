#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""scripts/moonraker-standin.py speaks Moonraker's protocol as Moonraker
does (moonraker/common.py, websockets.py, extensions.py, authorization.py),
so the panel developed against it works against Moonraker. Under

    vboard --board octopus-pro-f429 --mode dfu      (1-1.1)

with the real flashd as its agent:
- before flashd registers, server.extensions.request is error 400 "Agent
  flashd not connected"; flashd's registration reaches frontends as
  notify_agent_event "connected";
- requests are relayed and answered by id; flashd's errors arrive as 424
  with flashd's error object in data; events as notify_agent_event;
- with an API key: a websocket without credentials gets "Unauthorized"
  (-32602, Moonraker's mapping of 401) for everything, and no events;
  identify with the api_key, or a oneshot token from GET
  /access/oneshot_token (X-Api-Key) in ?token=, authorizes it; a token works
  once; a wrong key is refused.
"""
import asyncio
import json
import os
import urllib.error
import urllib.request

import harness
from browser_helpers import StandIn, tornado
from jobs_helpers import check
from moonraker_helpers import flashd_with_moonraker, wait_ready

PORT = "1-1.1"
KEY = "fedcba9876543210fedcba9876543210"
SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))


class Ws:
    """A websocket frontend (what the panel does), on its own event loop."""

    def __init__(self, url):
        self.loop = asyncio.new_event_loop()
        self.conn = self._run(lambda: tornado.websocket.websocket_connect(url))
        self.ids = 0
        self.events = []

    def _run(self, make, timeout=20):
        async def go():
            return await asyncio.wait_for(make(), timeout * SCALE)
        return self.loop.run_until_complete(go())

    def close(self):
        self.conn.close()
        self.loop.run_until_complete(asyncio.sleep(0.05))
        self.loop.close()

    def request(self, method, params=None):
        self.ids += 1
        rid = self.ids
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self._run(lambda: self.conn.write_message(json.dumps(msg)))
        while True:
            reply = json.loads(self._run(self.conn.read_message))
            if reply.get("id") == rid:
                return reply
            self.events.append(reply)

    def identify(self, **extra):
        return self.request("server.connection.identify",
                            dict(client_name="test", version="1", type="web", url="http://test", **extra))

    def pump(self, seconds):
        try:
            while True:
                text = self._run(self.conn.read_message, timeout=seconds / SCALE)
                self.events.append(json.loads(text))
        except asyncio.TimeoutError:
            pass

    def wait_event(self, pred, timeout=20):
        for e in self.events:
            if pred(e):
                return e
        while True:
            e = json.loads(self._run(self.conn.read_message, timeout=timeout))
            self.events.append(e)
            if pred(e):
                return e


def agent_events(ws, name=None):
    return [e["params"][0] for e in ws.events if e.get("method") == "notify_agent_event"
            and (name is None or e["params"][0].get("event") == name)]


def test_relay():
    if tornado is None:
        raise harness.Skip("python3-tornado is not installed (scripts/deps)")
    d, path = flashd_with_moonraker(enable_flashing=False, via_cli=True)
    with StandIn(path) as mr:
        ws = Ws(f"ws://127.0.0.1:{mr.port}/websocket")
        check("result" in ws.identify(), "a trusted client identifies without credentials")
        r = ws.request("server.extensions.request", {"agent": "flashd", "method": "device.list"})
        check(r.get("error", {}).get("code") == 400 and r["error"]["message"] == "Agent flashd not connected",
              "no agent: 400", r)
        check(ws.request("server.extensions.list")["result"] == {"agents": []}, "no agents listed")
        with d:
            wait_ready(d.client(), PORT)
            e = ws.wait_event(lambda e: e.get("method") == "notify_agent_event")["params"][0]
            check(e["agent"] == "flashd" and e["event"] == "connected" and e["data"]["type"] == "agent",
                  "flashd's registration announced", e)
            r = ws.request("server.extensions.request", {"agent": "flashd", "method": "device.list"})
            check([x["port"] for x in r["result"]] == [PORT], "device.list relayed", r)
            r = ws.request("server.extensions.request", {"agent": "flashd", "method": "device.info",
                                                         "arguments": {"device": "nope"}})
            err = r.get("error", {})
            check(err.get("code") == 424 and err.get("message") == "Agent flashd RPC error"
                  and err.get("data", {}).get("code") == -32004, "flashd's error inside 424", r)
            r = ws.request("server.extensions.request", {"agent": "flashd", "method": "job.cancel",
                                                         "arguments": {"job": 0}})
            check(r["error"]["data"]["code"] == -32002 and r["error"]["data"]["data"]["setting"] == "enable_flashing",
                  "the enable_flashing probe the panel uses", r)
        ws.wait_event(lambda e: e.get("method") == "notify_agent_event" and e["params"][0]["event"] == "disconnected")
        ws.close()
        check("agent flashd connected" in mr.log_text(), "the stand-in logs the agent", mr.log_text())


def test_authorization():
    if tornado is None:
        raise harness.Skip("python3-tornado is not installed (scripts/deps)")
    d, path = flashd_with_moonraker(enable_flashing=False, via_cli=True)
    with StandIn(path, api_key=KEY) as mr, d:
        wait_ready(d.client(), PORT)
        url = f"ws://127.0.0.1:{mr.port}/websocket"
        anon = Ws(url)
        r = anon.identify()
        check(r.get("error") == {"code": -32602, "message": "Unauthorized"}, "identify without credentials", r)
        r = anon.request("server.extensions.list")
        check(r.get("error", {}).get("message") == "Unauthorized", "nothing else either", r)
        bad = Ws(url)
        r = bad.identify(api_key="wrong")
        check(r.get("error", {}).get("message") == "Invalid API Key", "a wrong key is refused", r)
        keyed = Ws(url)
        check("result" in keyed.identify(api_key=KEY), "identify with the API key")
        check([a["name"] for a in keyed.request("server.extensions.list")["result"]["agents"]] == ["flashd"],
              "authorized: flashd listed")

        def oneshot(key):
            req = urllib.request.Request(f"http://127.0.0.1:{mr.port}/access/oneshot_token", headers={"X-Api-Key": key})
            return json.load(urllib.request.urlopen(req, timeout=10 * SCALE))["result"]
        try:
            oneshot("wrong")
            raise AssertionError("a oneshot token for a wrong key")
        except urllib.error.HTTPError as e:
            check(e.code == 401, "oneshot_token with a wrong key: 401", e.code)
        token = oneshot(KEY)
        tok = Ws(f"{url}?token={token}")
        check("result" in tok.identify(), "a oneshot token authorizes the websocket")
        again = Ws(f"{url}?token={token}")
        check("error" in again.identify(), "a oneshot token works once")
        # events reach authorized connections only: flashd leaving is one
        d.stop()
        keyed.wait_event(lambda e: e.get("method") == "notify_agent_event")
        tok.wait_event(lambda e: e.get("method") == "notify_agent_event")
        anon.pump(0.5)
        check(agent_events(anon) == [], "no events for an unauthorized websocket", anon.events)
        for w in (anon, bad, keyed, tok, again):
            w.close()


if __name__ == "__main__":
    harness.main([test_relay, test_authorization])

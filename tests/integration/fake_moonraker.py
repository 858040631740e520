# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for Moonraker's agent protocol (stdlib only), for the
moonraker-*.py tests. Moonraker itself cannot be vendored; this peer
follows what Moonraker documents and does (docs/external_api/extensions.md,
moonraker/components/extensions.py, moonraker/common.py,
moonraker/components/websockets.py), as far as an agent can tell:

- a Unix stream socket, each JSON-RPC 2.0 message followed by ETX (0x03);
- server.connection.identify {client_name, version, type, url} (all four
  required; a connection identifies once; type one of Moonraker's client
  types); an agent name can be registered by one connection at a time;
  every other connection then gets notify_agent_event
  [{agent, event: "connected", data: client_data}], and "disconnected" when
  the agent goes away;
- server.extensions.request {agent, method, arguments}: relayed to the
  agent as {"jsonrpc": "2.0", "method": method, "id": <Moonraker's own
  id>} plus "params": arguments when they are not empty; the agent's
  "result" is returned as is; a reply without a result becomes error 424
  "Agent <name> RPC error" whose data is the agent's error object; when the
  agent disconnects, pending calls fail with 500 "Client Socket
  Disconnected"; an unknown agent is error 400;
- connection.send_event {event, data}: only from agents, "connected" and
  "disconnected" reserved; every other connection gets notify_agent_event
  [{agent, event, data}] at once and unchanged: Moonraker neither coalesces
  nor drops agent events (ExtensionManager._handle_agent_event() calls
  send_notification(), i.e. WebsocketManager.notify_clients(), which queues
  the message on every other connection), so what a frontend sees of a
  job's progress is exactly what flashd sent; "ok" when the request had an
  id, an error (id null when the request had none) when it is refused;
- Moonraker's own notifications reach every connection, agents included
  (here notify_proc_stat_update every 0.2 s);
- Klipper's printer objects, as Moonraker relays any connection's
  printer.objects.list / printer.objects.query to Klippy (agents are
  connections like any other; klippy_connection.py request()): `klippy`
  is None while no Klippy is connected (error 503 "Klippy Host not
  connected"), else a dict object name -> status fields the test sets;
  a query answers {"eventtime", "status"} with the requested fields (all
  for null), an unknown object as {} (Klipper's webhooks.py);
- stop() and start() again on the same path model a restart of Moonraker.

Frontends connect to the same socket (Moonraker serves its API on the Unix
socket as on the websocket) with FrontendClient.
"""

import itertools
import json
import os
import selectors
import socket
import threading
import time

ETX = b"\x03"
CLIENT_TYPES = ["web", "mobile", "desktop", "display", "bot", "agent", "other"]


class _Conn:
    def __init__(self, sock, uid):
        self.sock = sock
        self.uid = uid
        self.buf = b""
        self.out = b""
        self.client_data = None  # set by identify
        self.closed = False


class FakeMoonraker:
    def __init__(self, path, stats_interval=0.2):
        self.path = path
        self.stats_interval = stats_interval
        self.lock = threading.RLock()
        self.thread = None
        self.running = False
        self.listener = None
        self.conns = {}
        self.agents = {}          # name -> _Conn
        self.pending = {}         # moonraker id -> (frontend conn, frontend id)
        self.ids = itertools.count(140000000000000, 48)  # look like Python's id()
        self.uids = itertools.count(139900000000000, 64)
        self.forwarded = []       # (moonraker id, method, params) sent to agents
        self.agent_replies = []   # replies agents sent (raw objects)
        self.agent_events = []    # (time.monotonic(), connection.send_event params) received
        self.agent_received = []  # every message an agent sent
        self.identified_agents = []  # client_data of every agent registration
        self.wake_r, self.wake_w = None, None
        self.klippy = None        # printer objects Klippy reports, or None: not connected
        self.klippy_requests = []  # (method, params) of printer.* requests

    # lifecycle ----------------------------------------------------------
    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Close everything, like Moonraker exiting (connections reset)."""
        if not self.running:
            return
        self.running = False
        self.wake_w.send(b"x")
        self.thread.join(5)
        with self.lock:
            for c in list(self.conns.values()):
                c.sock.close()
            self.conns.clear()
            self.agents.clear()
            self.pending.clear()
        self.listener.close()
        self.wake_r.close()
        self.wake_w.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # the loop -----------------------------------------------------------
    def _loop(self):
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, "listen")
        sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        registered = {}
        next_stats = time.monotonic() + self.stats_interval
        while self.running:
            with self.lock:
                for uid, c in list(self.conns.items()):
                    ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
                    if registered.get(uid) != ev:
                        if uid in registered:
                            sel.modify(c.sock, ev, uid)
                        else:
                            sel.register(c.sock, ev, uid)
                        registered[uid] = ev
                for uid in list(registered):
                    if uid not in self.conns:
                        del registered[uid]
            timeout = max(0.0, next_stats - time.monotonic())
            for key, events in sel.select(timeout):
                if key.data == "wake":
                    try:
                        self.wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                    continue
                if key.data == "listen":
                    try:
                        s, _ = self.listener.accept()
                    except BlockingIOError:
                        continue
                    s.setblocking(False)
                    with self.lock:
                        uid = next(self.uids)
                        self.conns[uid] = _Conn(s, uid)
                    continue
                with self.lock:
                    c = self.conns.get(key.data)
                    if c is None:
                        continue
                    if events & selectors.EVENT_WRITE:
                        self._flush(c)
                    if events & selectors.EVENT_READ and not c.closed:
                        self._read(c)
                    if c.closed:
                        try:
                            sel.unregister(c.sock)
                        except (KeyError, ValueError):
                            pass
                        registered.pop(c.uid, None)
                        c.sock.close()
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.stats_interval
                with self.lock:
                    self._notify_all("proc_stat_update", [{"moonraker_stats": {"time": time.time()}}])
        sel.close()

    def _read(self, c):
        try:
            data = c.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(c)
            return
        c.buf += data
        while ETX in c.buf and not c.closed:
            frame, _, c.buf = c.buf.partition(ETX)
            try:
                obj = json.loads(frame)
            except ValueError:
                self._send(c, {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None})
                continue
            self._process(c, obj)

    def _flush(self, c):
        try:
            n = c.sock.send(c.out)
            c.out = c.out[n:]
        except BlockingIOError:
            pass
        except OSError:
            self._close(c)

    def _send(self, c, obj):
        if c.closed:
            return
        c.out += json.dumps(obj).encode() + ETX
        self._flush(c)
        if c.out:
            self.wake_w.send(b"x")

    def _close(self, c):
        if c.closed:
            return
        c.closed = True
        self.conns.pop(c.uid, None)
        for mid, (fc, fid, agent) in list(self.pending.items()):
            if agent is c:
                del self.pending[mid]
                self._error(fc, fid, 500, "Client Socket Disconnected")
        if c.client_data and c.client_data["type"] == "agent" and self.agents.get(c.client_data["name"]) is c:
            del self.agents[c.client_data["name"]]
            self._notify_all("agent_event", [{"agent": c.client_data["name"], "event": "disconnected"}], mask=[c.uid])

    def _notify_all(self, name, params, mask=()):
        msg = {"jsonrpc": "2.0", "method": "notify_" + name}
        if params:
            msg["params"] = params
        for c in list(self.conns.values()):
            if c.uid not in mask:
                self._send(c, msg)

    def _error(self, c, req_id, code, message, data=None):
        # Moonraker's JsonRPC.execute_method() answers a failed request
        # without an id too (build_error() with id null); only a success
        # without an id gets no reply.
        err = {"code": code, "message": message}
        if data is not None:
            err["data"] = data
        self._send(c, {"jsonrpc": "2.0", "error": err, "id": req_id})

    def _result(self, c, req_id, result):
        if req_id is not None:
            self._send(c, {"jsonrpc": "2.0", "result": result, "id": req_id})

    # JSON-RPC -----------------------------------------------------------
    def _process(self, c, obj):
        is_agent = c.client_data is not None and c.client_data["type"] == "agent"
        if is_agent:
            self.agent_received.append(obj)
        req_id = obj.get("id")
        if obj.get("jsonrpc") != "2.0":
            return self._error(c, req_id, -32600, "Invalid Request")
        if "method" not in obj:
            # a response: only agents answer requests
            if is_agent:
                self.agent_replies.append(obj)
            entry = self.pending.pop(req_id, None) if req_id is not None else None
            if entry is None:
                return
            fc, fid, _ = entry
            if obj.get("result") is None:
                name = c.client_data["name"]
                return self._error(fc, fid, 424, f"Agent {name} RPC error", obj.get("error"))
            return self._result(fc, fid, obj["result"])
        method = obj["method"]
        params = obj.get("params", {})
        if not isinstance(params, dict):
            return self._error(c, req_id, -32602, "Invalid params:")
        handler = {
            "server.connection.identify": self._identify,
            "connection.send_event": self._send_event,
            "server.extensions.request": self._call_agent,
            "server.extensions.list": self._list_agents,
            "printer.objects.list": self._objects_list,
            "printer.objects.query": self._objects_query,
        }.get(method)
        if handler is None:
            return self._error(c, req_id, -32601, "Method not found")
        try:
            handler(c, req_id, params)
        except _ServerError as e:
            self._error(c, req_id, e.code, str(e))

    def _identify(self, c, req_id, params):
        if c.client_data is not None:
            raise _ServerError(f"Connection already identified: {c.client_data}")
        for k in ("client_name", "version", "type", "url"):
            if not isinstance(params.get(k), str):
                raise _ServerError(f"No data for argument: {k}")
        ctype = params["type"].lower()
        if ctype not in CLIENT_TYPES:
            raise _ServerError(f"Invalid Client Type: {ctype}")
        data = {"name": params["client_name"], "version": params["version"], "type": ctype, "url": params["url"]}
        if ctype == "agent":
            if data["name"] in self.agents:
                raise _ServerError(f"Agent '{data['name']}' already registered and connected'")
            self.agents[data["name"]] = c
            self.identified_agents.append(dict(data))
            self._notify_all("agent_event", [{"agent": data["name"], "event": "connected", "data": data}],
                             mask=[c.uid])
        c.client_data = data
        self._result(c, req_id, {"connection_id": c.uid})

    def _send_event(self, c, req_id, params):
        if c.client_data is None or c.client_data["type"] != "agent":
            raise _ServerError("Only connections of the 'agent' type can send events")
        event = params.get("event")
        if not isinstance(event, str):
            raise _ServerError("No data for argument: event")
        if event in ("connected", "disconnected"):
            raise _ServerError(f"Event '{event}' is reserved")
        self.agent_events.append((time.monotonic(), params))
        evt = {"agent": c.client_data["name"], "event": event}
        if params.get("data") is not None:
            evt["data"] = params["data"]
        self._notify_all("agent_event", [evt], mask=[c.uid])
        self._result(c, req_id, "ok")

    def _call_agent(self, c, req_id, params):
        agent, method = params.get("agent"), params.get("method")
        if not isinstance(agent, str) or not isinstance(method, str):
            raise _ServerError("No data for argument: agent/method")
        args = params.get("arguments")
        if args is not None and not isinstance(args, (list, dict)):
            raise _ServerError("The 'arguments' field must contain an object or a list")
        conn = self.agents.get(agent)
        if conn is None:
            raise _ServerError(f"Agent {agent} not connected")
        mid = next(self.ids)
        msg = {"jsonrpc": "2.0", "method": method, "id": mid}
        if args:
            msg["params"] = args
        self.pending[mid] = (c, req_id, conn)
        self.forwarded.append((mid, method, args))
        self._send(conn, msg)

    def _klippy_state(self, method, params):
        self.klippy_requests.append((method, params))
        if self.klippy is None:
            raise _ServerError("Klippy Host not connected", 503)
        return self.klippy

    def _objects_list(self, c, req_id, params):
        objects = self._klippy_state("printer.objects.list", params)
        self._result(c, req_id, {"objects": list(objects)})

    def _objects_query(self, c, req_id, params):
        objects = self._klippy_state("printer.objects.query", params)
        wanted = params.get("objects")
        if not isinstance(wanted, dict):
            raise _ServerError("Invalid argument", 400)
        status = {}
        for name, fields in wanted.items():
            state = objects.get(name, {})
            if fields is None:
                status[name] = dict(state)
            else:
                status[name] = {k: state[k] for k in fields if k in state}
        self._result(c, req_id, {"eventtime": time.monotonic(), "status": status})

    def set_klippy(self, objects):
        """Klippy's printer objects from now on (None: Klippy gone)."""
        with self.lock:
            self.klippy = objects

    def _list_agents(self, c, req_id, params):
        self._result(c, req_id, {"agents": [a.client_data for a in self.agents.values()]})

    # for tests ----------------------------------------------------------
    def agent_connected(self, name="flashd"):
        with self.lock:
            return name in self.agents

    def wait_agent(self, name="flashd", timeout=10.0):
        deadline = time.monotonic() + timeout
        while not self.agent_connected(name):
            if time.monotonic() > deadline:
                raise TimeoutError(f"agent {name} did not register within {timeout}s")
            time.sleep(0.02)


class _ServerError(Exception):
    def __init__(self, message, code=400):
        super().__init__(message)
        self.code = code


class AgentCallError(Exception):
    def __init__(self, error):
        self.error = error
        self.code = error.get("code")
        self.message = error.get("message")
        # Moonraker puts the agent's own error object into data (code 424)
        self.agent_error = error.get("data") or {}
        super().__init__(f"{self.code} {self.message}: {self.agent_error}")


class FrontendClient:
    """What Mainsail/Fluidd do over the websocket, on Moonraker's Unix socket."""

    def __init__(self, path, timeout=10.0, identify=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.timeout = timeout
        self.buf = b""
        self.ids = itertools.count(1)
        self.responses = {}
        self.events = []  # notify_agent_event params[0], in order
        self.event_times = []  # time.monotonic() when each arrived
        if identify:
            self.request("server.connection.identify",
                         {"client_name": "test-frontend", "version": "0", "type": "web", "url": "http://test"})

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _recv(self, deadline):
        while ETX not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("nothing from Moonraker in time")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("Moonraker closed the connection")
            self.buf += chunk
        frame, _, self.buf = self.buf.partition(ETX)
        msg = json.loads(frame)
        if "method" in msg:
            if msg["method"] == "notify_agent_event":
                self.events.append(msg["params"][0])
                self.event_times.append(time.monotonic())
        else:
            self.responses[msg.get("id")] = msg

    def request(self, method, params=None, timeout=None):
        rid = next(self.ids)
        msg = {"jsonrpc": "2.0", "method": method, "id": rid}
        if params is not None:
            msg["params"] = params
        self.sock.sendall(json.dumps(msg).encode() + ETX)
        deadline = time.monotonic() + (timeout or self.timeout)
        while rid not in self.responses:
            self._recv(deadline)
        resp = self.responses.pop(rid)
        if "error" in resp:
            raise AgentCallError(resp["error"])
        return resp["result"]

    def call(self, method, arguments=None, agent="flashd", timeout=None):
        """server.extensions.request, as a frontend writes it."""
        p = {"agent": agent, "method": method}
        if arguments is not None:
            p["arguments"] = arguments
        return self.request("server.extensions.request", p, timeout)

    def wait_event(self, predicate, timeout=None, what="agent event"):
        """The first notify_agent_event (already received or new) matching predicate."""
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = 0
        while True:
            for e in self.events[seen:]:
                if predicate(e):
                    return e
            seen = len(self.events)
            try:
                self._recv(deadline)
            except TimeoutError:
                raise TimeoutError(f"no {what} within the timeout") from None

    def pump(self, seconds):
        """Read whatever arrives for `seconds`."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self._recv(deadline)
        except TimeoutError:
            pass

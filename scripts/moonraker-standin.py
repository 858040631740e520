#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A STAND-IN for Moonraker, for developing flashd's web panel and for
`scripts/demo --web`. It is not Moonraker and must never be deployed as
one: it speaks only the subset of Moonraker's protocol that the panel and
flashd's agent link use, the way Moonraker does it (moonraker/common.py,
components/websockets.py, extensions.py, authorization.py):

- HTTP: the panel's static files at / (and /flashd/), GET /access/oneshot_token.
- /websocket and a Unix socket (JSON-RPC 2.0, each message followed by ETX):
  server.connection.identify {client_name, version, type, url,
  access_token?, api_key?}; server.extensions.list;
  server.extensions.request {agent, method, arguments}: relayed to the agent
  with the stand-in's own id; a reply without "result" becomes error 424
  "Agent NAME RPC error" with the agent's error as data; an agent that is not
  connected is error 400; connection.send_event from an agent reaches every
  other connection as notify_agent_event [{agent, event, data}], and
  "connected"/"disconnected" are sent when an agent comes and goes.
- Authorization: without --api-key every client is trusted (Moonraker's
  trusted_clients covering it). With --api-key KEY a websocket is authorized
  by a oneshot token (?token=, from GET /access/oneshot_token with the
  X-Api-Key header) or by identify's api_key; until then every method but
  identify answers "Unauthorized" (code -32602, as Moonraker maps 401) and
  no notifications reach it. Unix socket connections are not checked.

Usage: moonraker-standin.py [--host 127.0.0.1] [--port 7125]
           [--unix /tmp/moonraker.sock] [--www DIR] [--api-key KEY]
"""

import argparse
import base64
import itertools
import json
import logging
import os
import signal
import sys

import tornado.httpserver
import tornado.ioloop
import tornado.iostream
import tornado.netutil
import tornado.tcpserver
import tornado.web
import tornado.websocket

ETX = b"\x03"
CLIENT_TYPES = ["web", "mobile", "desktop", "display", "bot", "agent", "other"]
UNIX_LIMIT = 20 * 1024 * 1024  # Moonraker's reader limit on its Unix socket


class ServerError(Exception):
    def __init__(self, message, code=400, data=None):
        super().__init__(message)
        self.code = code
        self.data = data


class Server:
    def __init__(self, api_key):
        self.api_key = api_key
        self.conns = {}
        self.agents = {}
        self.pending = {}  # id sent to the agent -> (caller conn, caller id, agent conn)
        self.oneshot = set()
        self.uids = itertools.count(1)
        self.ids = itertools.count(1000)

    # connections --------------------------------------------------------
    def add(self, conn):
        conn.uid = next(self.uids)
        self.conns[conn.uid] = conn

    def remove(self, conn):
        self.conns.pop(conn.uid, None)
        for mid, (caller, cid, agent) in list(self.pending.items()):
            if agent is conn:
                del self.pending[mid]
                caller.error(cid, 500, "Client Socket Disconnected")
        data = conn.client_data
        if data and data["type"] == "agent" and self.agents.get(data["name"]) is conn:
            del self.agents[data["name"]]
            logging.info("agent %s disconnected", data["name"])
            self.notify_all("agent_event", [{"agent": data["name"], "event": "disconnected"}], mask=[conn.uid])

    def notify_all(self, name, params, mask=()):
        msg = {"jsonrpc": "2.0", "method": "notify_" + name}
        if params:
            msg["params"] = params
        for c in list(self.conns.values()):
            if c.uid not in mask and not c.need_auth:
                c.send(msg)

    def oneshot_token(self):
        token = base64.b32encode(os.urandom(20)).decode()
        self.oneshot.add(token)
        # Moonraker's oneshot tokens expire after 5 s
        tornado.ioloop.IOLoop.current().call_later(5, self.oneshot.discard, token)
        return token

    # JSON-RPC -----------------------------------------------------------
    def process(self, conn, text):
        try:
            obj = json.loads(text)
        except ValueError:
            return conn.send({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None})
        if not isinstance(obj, dict) or obj.get("jsonrpc") != "2.0":
            return conn.error(obj.get("id") if isinstance(obj, dict) else None, -32600, "Invalid Request")
        req_id = obj.get("id")
        if "method" not in obj:
            return self.agent_reply(conn, obj)
        params = obj.get("params", {})
        if not isinstance(params, dict):
            return conn.error(req_id, -32602, "Invalid params:")
        handler = {
            "server.connection.identify": self.identify,
            "server.extensions.list": self.list_agents,
            "server.extensions.request": self.call_agent,
            "connection.send_event": self.send_event,
        }.get(obj["method"])
        if handler is None:
            return conn.error(req_id, -32601, "Method not found")
        try:
            if conn.need_auth and handler != self.identify:
                raise ServerError("Unauthorized", 401)
            result = handler(conn, req_id, params)
        except ServerError as e:
            code = -32602 if e.code == 401 else e.code
            return conn.error(req_id, code, str(e), e.data)
        if result is not None:
            conn.result(req_id, result)

    def identify(self, conn, req_id, params):
        if conn.client_data is not None:
            raise ServerError(f"Connection already identified: {conn.client_data}")
        for k in ("client_name", "version", "type", "url"):
            if not isinstance(params.get(k), str):
                raise ServerError(f"No data for argument: {k}")
        if params.get("access_token") is not None:
            # this stand-in has no users: no JWT is valid here
            raise ServerError("Failed to decode JWT", 401)
        if params.get("api_key") is not None and conn.need_auth:
            if self.api_key is None or params["api_key"] != self.api_key:
                raise ServerError("Invalid API Key", 401)
            conn.need_auth = False
        elif conn.need_auth:
            raise ServerError("Unauthorized", 401)
        ctype = params["type"].lower()
        if ctype not in CLIENT_TYPES:
            raise ServerError(f"Invalid Client Type: {ctype}")
        data = {"name": params["client_name"], "version": params["version"], "type": ctype, "url": params["url"]}
        if ctype == "agent":
            if data["name"] in self.agents:
                raise ServerError(f"Agent '{data['name']}' already registered and connected'")
            self.agents[data["name"]] = conn
            logging.info("agent %s connected (%s %s)", data["name"], data["version"], data["url"])
            self.notify_all("agent_event", [{"agent": data["name"], "event": "connected", "data": data}],
                            mask=[conn.uid])
        conn.client_data = data
        return {"connection_id": conn.uid}

    def list_agents(self, conn, req_id, params):
        return {"agents": [a.client_data for a in self.agents.values()]}

    def send_event(self, conn, req_id, params):
        if conn.client_data is None or conn.client_data["type"] != "agent":
            raise ServerError("Only connections of the 'agent' type can send events")
        event = params.get("event")
        if not isinstance(event, str):
            raise ServerError("No data for argument: event")
        if event in ("connected", "disconnected"):
            raise ServerError(f"Event '{event}' is reserved")
        evt = {"agent": conn.client_data["name"], "event": event}
        if params.get("data") is not None:
            evt["data"] = params["data"]
        self.notify_all("agent_event", [evt], mask=[conn.uid])
        return "ok" if req_id is not None else None

    def call_agent(self, conn, req_id, params):
        agent, method = params.get("agent"), params.get("method")
        for k, v in (("agent", agent), ("method", method)):
            if not isinstance(v, str):
                raise ServerError(f"No data for argument: {k}")
        args = params.get("arguments")
        if args is not None and not isinstance(args, (list, dict)):
            raise ServerError("The 'arguments' field must contain an object or a list")
        target = self.agents.get(agent)
        if target is None:
            raise ServerError(f"Agent {agent} not connected")
        mid = next(self.ids)
        msg = {"jsonrpc": "2.0", "method": method, "id": mid}
        if args:
            msg["params"] = args
        self.pending[mid] = (conn, req_id, target)
        target.send(msg)
        return None  # answered when the agent replies

    def agent_reply(self, conn, obj):
        entry = self.pending.pop(obj.get("id"), None)
        if entry is None or entry[2] is not conn:
            return
        caller, cid, _ = entry
        if obj.get("result") is None:
            return caller.error(cid, 424, f"Agent {conn.client_data['name']} RPC error", obj.get("error"))
        caller.result(cid, obj["result"])


class Conn:
    """What both transports share: replies, errors, identity, auth state."""
    uid = 0
    client_data = None
    need_auth = False

    def result(self, req_id, result):
        if req_id is not None:
            self.send({"jsonrpc": "2.0", "result": result, "id": req_id})

    def error(self, req_id, code, message, data=None):
        err = {"code": code, "message": message}
        if data is not None:
            err["data"] = data
        self.send({"jsonrpc": "2.0", "error": err, "id": req_id})


class WebSocket(Conn, tornado.websocket.WebSocketHandler):
    def initialize(self, server):
        self.server = server

    def check_origin(self, origin):
        return True  # a development stand-in on loopback

    def open(self):
        self.server.add(self)
        if self.server.api_key is not None:
            token = self.get_argument("token", None)
            if token is not None and token in self.server.oneshot:
                self.server.oneshot.discard(token)
            else:
                self.need_auth = True

    def on_message(self, message):
        self.server.process(self, message)

    def on_close(self):
        self.server.remove(self)

    def send(self, obj):
        try:
            self.write_message(json.dumps(obj))
        except tornado.websocket.WebSocketClosedError:
            pass


class UnixConn(Conn):
    def __init__(self, server, stream):
        self.server = server
        self.stream = stream

    async def run(self):
        self.server.add(self)
        try:
            while True:
                frame = await self.stream.read_until(ETX, max_bytes=UNIX_LIMIT)
                text = frame[:-1].decode(errors="replace")
                if text.strip():
                    self.server.process(self, text)
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            self.server.remove(self)

    def send(self, obj):
        if not self.stream.closed():
            self.stream.write(json.dumps(obj).encode() + ETX)


class UnixServer(tornado.tcpserver.TCPServer):
    def __init__(self, server):
        super().__init__(max_buffer_size=UNIX_LIMIT + 1)
        self.server = server

    async def handle_stream(self, stream, address):
        await UnixConn(self.server, stream).run()


class OneshotToken(tornado.web.RequestHandler):
    def initialize(self, server):
        self.server = server

    def set_default_headers(self):
        self.set_header("Access-Control-Allow-Origin", "*")
        self.set_header("Access-Control-Allow-Headers", "X-Api-Key, Authorization, Content-Type")

    def options(self):
        self.set_status(204)

    def get(self):
        key = self.request.headers.get("X-Api-Key")
        if self.server.api_key is not None and key != self.server.api_key:
            self.set_status(401)
            return self.finish({"error": {"code": 401, "message": "Unauthorized"}})
        self.finish({"result": self.server.oneshot_token()})


class NoCacheStatic(tornado.web.StaticFileHandler):
    def set_extra_headers(self, path):
        self.set_header("Cache-Control", "no-store")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="A stand-in for Moonraker (development and demo only)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7125, help="0: any free port (printed)")
    ap.add_argument("--unix", default="/tmp/moonraker-standin.sock", help="the agents' Unix socket")
    ap.add_argument("--www", default=os.path.join(os.path.dirname(here), "web"), help="the panel's files")
    ap.add_argument("--api-key", default=None, help="require this API key (default: every client is trusted)")
    ap.add_argument("--ready-file", default=None, help="write 'PORT\\n' here when listening")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="moonraker-standin: %(message)s")

    server = Server(args.api_key)
    static = {"path": args.www, "default_filename": "index.html"}
    app = tornado.web.Application([
        (r"/websocket", WebSocket, {"server": server}),
        (r"/access/oneshot_token", OneshotToken, {"server": server}),
        (r"/flashd", tornado.web.RedirectHandler, {"url": "/flashd/"}),
        (r"/flashd/(.*)", NoCacheStatic, static),
        (r"/(.*)", NoCacheStatic, static),
    ])
    # Moonraker keeps Tornado's default websocket message limit (10 MiB)
    sockets = tornado.netutil.bind_sockets(args.port, args.host)
    http = tornado.httpserver.HTTPServer(app)
    http.add_sockets(sockets)
    port = sockets[0].getsockname()[1]

    if os.path.exists(args.unix):
        os.unlink(args.unix)
    unix = UnixServer(server)
    unix.add_socket(tornado.netutil.bind_unix_socket(args.unix, mode=0o660))

    logging.info("serving %s at http://%s:%d/ (websocket /websocket), agents on %s%s",
                 args.www, args.host, port, args.unix, ", API key required" if args.api_key else "")
    if args.ready_file:
        with open(args.ready_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.rename(args.ready_file + ".tmp", args.ready_file)
    loop = tornado.ioloop.IOLoop.current()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: loop.add_callback_from_signal(loop.stop))
    loop.start()
    try:
        os.unlink(args.unix)
    except FileNotFoundError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

// SPDX-License-Identifier: LGPL-2.1-or-later
// The connection to Moonraker's websocket, and flashd behind it as the
// agent "flashd": server.extensions.request out, notify_agent_event in.
// Only what Moonraker itself does (common.py, websockets.py,
// extensions.py, authorization.py) is relied on here.

export const AGENT = "flashd";
const API_KEY_STORE = "flashd-panel.moonraker-api-key";

// ?moonraker=ws://HOST:PORT/websocket, else the same origin's /websocket
export function websocketUrl(loc = window.location) {
  const q = new URLSearchParams(loc.search).get("moonraker");
  if (q) return q;
  const proto = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${loc.host}/websocket`;
}

// Moonraker's HTTP API lives at the same host as its websocket
function httpBase(wsUrl) {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  u.pathname = u.pathname.replace(/\/websocket$/, "");
  u.search = "";
  return u.toString().replace(/\/$/, "");
}

export function storedApiKey() {
  try { return localStorage.getItem(API_KEY_STORE) || ""; } catch { return ""; }
}
export function storeApiKey(key) {
  try {
    if (key) localStorage.setItem(API_KEY_STORE, key);
    else localStorage.removeItem(API_KEY_STORE);
  } catch { /* private mode: keep it for this page only */ }
}

// Moonraker maps its 401 to JSON-RPC -32602 "Unauthorized" on the websocket
function isUnauthorized(err) {
  return err && (err.code === 401 || (err.code === -32602 && /unauthori[sz]ed|api key|jwt/i.test(err.message || "")));
}

export class RpcError extends Error {
  constructor(err) {
    // 424: flashd's own error object is in data (code, message, data.name)
    const inner = err.code === 424 && err.data && typeof err.data === "object" ? err.data : null;
    super(inner ? inner.message : err.message);
    this.code = err.code;
    this.moonraker = err;
    this.flashd = inner;
    this.name_ = inner && inner.data ? inner.data.name : null;
  }
}

export class Moonraker extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.state = "connecting";   // connecting | open | unauthorized | closed
    this.detail = "";
    this.agentConnected = false;
    this.retry = 1000;
    this.apiKey = storedApiKey();
  }

  _set(state, detail = "") {
    this.state = state;
    this.detail = detail;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, detail } }));
  }

  async connect() {
    this._set("connecting", this.url);
    let url = this.url;
    if (this.apiKey) {
      // as Mainsail does: a oneshot token over HTTP authorizes the websocket
      try {
        const r = await fetch(httpBase(this.url) + "/access/oneshot_token", { headers: { "X-Api-Key": this.apiKey } });
        if (r.ok) {
          const token = (await r.json()).result;
          const u = new URL(url);
          u.searchParams.set("token", token);
          url = u.toString();
        }
      } catch { /* identify carries the key as well */ }
    }
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => this._identify();
    ws.onmessage = (ev) => this._message(ev.data);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      for (const p of this.pending.values()) p.reject(new RpcError({ code: 0, message: "connection to Moonraker lost" }));
      this.pending.clear();
      this.agentConnected = false;
      if (this.state !== "unauthorized") this._set("closed", "connection to Moonraker lost; retrying");
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 10000);
    };
  }

  async _identify() {
    const params = { client_name: "flashd-panel", version: "1", type: "web", url: window.location.href };
    if (this.apiKey) params.api_key = this.apiKey;
    try {
      await this.call("server.connection.identify", params);
    } catch (e) {
      if (isUnauthorized(e.moonraker || e)) {
        this._set("unauthorized", e.message);
        this.retry = 60000;
        return;
      }
      this._set("closed", `server.connection.identify failed: ${e.message}`);
      return;
    }
    this.retry = 1000;
    this._set("open");
    await this.checkAgent();
  }

  async checkAgent() {
    try {
      const { agents } = await this.call("server.extensions.list");
      this._agent(agents.some((a) => a.name === AGENT));
    } catch (e) {
      this._agent(false);
    }
  }

  _agent(up) {
    this.agentConnected = up;
    this.dispatchEvent(new CustomEvent("agent", { detail: { connected: up } }));
  }

  setApiKey(key) {
    this.apiKey = key;
    storeApiKey(key);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    this.retry = 1000;
    this.connect();
  }

  _message(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if (msg.id !== undefined && this.pending.has(msg.id)) {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new RpcError(msg.error));
      else p.resolve(msg.result);
      return;
    }
    if (msg.method === "notify_agent_event" && Array.isArray(msg.params)) {
      const e = msg.params[0] || {};
      if (e.agent !== AGENT) return;
      if (e.event === "connected") this._agent(true);
      else if (e.event === "disconnected") this._agent(false);
      else this.dispatchEvent(new CustomEvent("flashd", { detail: { event: e.event, data: e.data } }));
    }
  }

  call(method, params) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN)
      return Promise.reject(new RpcError({ code: 0, message: "not connected to Moonraker" }));
    const id = this.nextId++;
    const msg = { jsonrpc: "2.0", id, method };
    if (params !== undefined) msg.params = params;
    this.ws.send(JSON.stringify(msg));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  // flashd's method through Moonraker's server.extensions.request
  flashd(method, args) {
    const p = { agent: AGENT, method };
    if (args !== undefined) p.arguments = args;
    return this.call("server.extensions.request", p);
  }
}

// SPDX-License-Identifier: LGPL-2.1-or-later
// The panel: one Moonraker connection, the state flashd reports through
// it, and the four views that render that state.

import { Moonraker, websocketUrl } from "./moonraker.js";
import { clear, el, errorText } from "./util.js";
import * as boards from "./boards.js";
import * as flash from "./flash.js";
import * as history from "./history.js";
import * as rules from "./rules.js";

const views = { boards, flash, history, rules };

// What every view reads. canFlash: null (not known yet), true, false.
export const state = {
  devices: new Map(),   // port -> device object
  jobs: new Map(),      // id -> job object (without log)
  rules: [],
  boardDb: [],
  agent: false,
  canFlash: null,
  error: null,
};

const mr = new Moonraker(websocketUrl());
const ctx = { mr, state, render: renderAll };

function renderAll() {
  renderBanner();
  for (const v of Object.values(views)) v.render(ctx);
}

function renderBanner() {
  const b = document.getElementById("banner");
  let content = null;
  if (mr.state === "closed") {
    content = [
      el("strong", {}, "Moonraker is not reachable "), `at ${mr.url} (retrying). `,
      "Is Moonraker running? For a Moonraker on another host, open this page with ",
      el("code", {}, "?moonraker=ws://HOST:7125/websocket"), ".",
    ];
  } else if (mr.state === "open" && !state.agent) {
    content = [
      el("strong", {}, "flashd is not connected to Moonraker. "),
      "On the printer, point flashd at Moonraker's socket: ",
      el("code", {}, "[moonraker] socket = /home/pi/printer_data/comms/moonraker.sock"),
      " in /etc/flashd/flashd.conf (or start flashd with ",
      el("code", {}, "--moonraker PATH"),
      "), then restart flashd. Nothing can be shown until it connects.",
    ];
  } else if (mr.state === "open" && state.agent && state.canFlash === false) {
    content = [
      el("strong", {}, "Read-only: flashing through Moonraker is disabled. "),
      "To flash from this page, set ",
      el("code", {}, "enable_flashing = yes"),
      " in the [moonraker] section of /etc/flashd/flashd.conf and restart flashd.",
    ];
  } else if (state.error) {
    content = [el("strong", {}, "flashd: "), state.error];
  }
  b.hidden = !content;
  b.dataset.kind = state.canFlash === false && state.agent ? "readonly" : "problem";
  if (content) clear(b, content);
}

function setConn() {
  const c = document.getElementById("conn");
  c.dataset.state = mr.state === "open" ? (state.agent ? "ready" : "noagent") : mr.state;
  c.textContent = {
    connecting: "connecting to Moonraker…",
    open: state.agent ? "flashd connected" : "flashd not connected",
    unauthorized: "Moonraker: not authorized",
    closed: "Moonraker not reachable",
  }[mr.state];
  c.title = mr.detail || "";
  const auth = document.getElementById("auth");
  auth.hidden = mr.state !== "unauthorized";
  document.getElementById("auth-reason").textContent = mr.detail;
}

// Everything is fetched again when flashd (re)connects: events sent while
// it was away are not replayed.
async function refresh() {
  try {
    const devs = await mr.flashd("device.list");
    state.devices = new Map(devs.map((d) => [d.port, d]));
    const { jobs } = await mr.flashd("job.list", { all: true });
    state.jobs = new Map(jobs.map((j) => [j.id, j]));
    state.rules = (await mr.flashd("rule.list")).rules;
    state.boardDb = await mr.flashd("board.list");
    state.canFlash = await probeFlashing();
    state.error = null;
  } catch (e) {
    state.error = errorText(e);
  }
  renderAll();
}

// flashd's agent checks enable_flashing before it looks at anything else
// of a mutating call, so cancelling job 0 (which never exists) tells which
// it is without changing anything: permission_denied or not_found.
async function probeFlashing() {
  try {
    await mr.flashd("job.cancel", { job: 0 });
    return true;
  } catch (e) {
    if (e.flashd && e.flashd.code === -32002) return false;
    return true;
  }
}

export function noteFlashingRefused(e) {
  if (e && e.flashd && e.flashd.code === -32002 && e.flashd.data && e.flashd.data.setting === "enable_flashing") {
    state.canFlash = false;
    renderAll();
  }
}
ctx.noteFlashingRefused = noteFlashingRefused;

mr.addEventListener("state", () => { setConn(); if (mr.state !== "open") renderAll(); });
mr.addEventListener("agent", (ev) => {
  state.agent = ev.detail.connected;
  setConn();
  if (state.agent) refresh();
  else renderAll();
});
mr.addEventListener("flashd", (ev) => {
  const { event, data } = ev.detail;
  if (!data) return;
  switch (event) {
    case "device_added":
    case "device_changed":
      state.devices.set(data.port, data);
      break;
    case "device_removed":
      state.devices.delete(data.port);
      break;
    case "job_update":
      state.jobs.set(data.id, { ...(state.jobs.get(data.id) || {}), ...data });
      break;
    case "rule_changed": {
      const i = state.rules.findIndex((r) => r.id === data.id);
      if (i >= 0) state.rules[i] = data; else state.rules.push(data);
      break;
    }
    case "rule_removed":
      state.rules = state.rules.filter((r) => r.id !== data.id);
      break;
    default:
      return;
  }
  for (const v of Object.values(views)) if (v.onEvent) v.onEvent(ctx, event, data);
  renderAll();
});

function showView() {
  const name = (location.hash || "#boards").slice(1);
  const current = views[name] ? name : "boards";
  for (const n of Object.keys(views)) document.getElementById("view-" + n).hidden = n !== current;
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.view === current);
  document.body.dataset.view = current;
}

window.addEventListener("hashchange", showView);
document.getElementById("auth").addEventListener("submit", (ev) => {
  ev.preventDefault();
  mr.setApiKey(document.getElementById("api-key").value.trim());
});
document.getElementById("ws-url").textContent = mr.url;
for (const [n, v] of Object.entries(views)) v.init(ctx, document.getElementById("view-" + n));
showView();
setConn();
renderAll();
mr.connect();
// for tests and the curious: the panel's state
window.flashdPanel = ctx;

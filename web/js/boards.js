// SPDX-License-Identifier: LGPL-2.1-or-later
// Boards: every device flashd sees, by USB port path, live.

import { bytes, clear, el, hex, JOB_FINAL } from "./util.js";

let root;

export function init(ctx, node) {
  root = node;
}

const MODES = {
  app: "running its firmware",
  dfu: "DFU bootloader",
  katapult: "Katapult bootloader",
  serial: "USB serial",
  unknown: "unknown mode",
};

// The flash as a bar: one cell per sector group, widths by size; the
// region below the application start (the bootloader) is marked.
function layoutBar(dev) {
  const regions = dev.layout || dev.board_layout;
  if (!regions || !regions.length) return null;
  const region = regions[0];
  const groups = region.sectors || [];
  if (!groups.length) return null;
  const start = groups[0].address;
  const end = groups.reduce((m, g) => Math.max(m, g.address + g.count * g.size), start);
  const total = end - start;
  const appAddr = dev.app_address;
  const bar = el("div", { class: "layout-bar", title: `${region.name}: ${hex(start)}–${hex(end)}` });
  for (const g of groups) {
    for (let i = 0; i < g.count; i++) {
      const a = g.address + i * g.size;
      const boot = appAddr !== null && appAddr !== undefined && a < appAddr;
      const writable = (g.flags & 4) !== 0;
      bar.append(el("span", {
        class: "sector" + (boot ? " bootloader" : "") + (writable ? "" : " readonly"),
        style: { flexGrow: String(g.size / total * 1000) },
        title: `${hex(a)} ${bytes(g.size)}${boot ? " (bootloader)" : ""}${writable ? "" : " (not writeable)"}`,
      }));
    }
  }
  const legend = el("div", { class: "layout-legend" },
    `${region.name} ${hex(start)} · ${bytes(total)}`,
    appAddr ? el("span", {}, " · ", el("span", { class: "swatch bootloader" }), ` bootloader below ${hex(appAddr)}`) : null,
    dev.layout ? " (as the bootloader reports it)" : " (from the board database)");
  return el("div", { class: "layout" }, bar, legend);
}

function boardName(dev) {
  if (dev.board) return el("span", { class: "board-name" }, dev.board_title || dev.board,
    dev.board_variant ? ` (${dev.board_variant})` : "");
  const c = dev.board_candidates || [];
  if (!c.length) return el("span", { class: "board-name unknown" }, "not in the board database");
  return el("span", { class: "board-name ambiguous" }, "one of: ",
    c.map((x) => `${x.name}${x.variant ? " " + x.variant : ""}`).join(", "));
}

// a job running on this port (from this page, another client or a rule)
function activeJob(state, port) {
  const jobs = [...state.jobs.values()].filter((j) => j.port === port && !JOB_FINAL.includes(j.state));
  if (!jobs.length) return null;
  const j = jobs[jobs.length - 1];
  const pct = j.state === "flashing" && j.bytes_total ? ` ${Math.floor((j.bytes_done || 0) / j.bytes_total * 100)}%` : "";
  return el("a", { class: "active-job", href: "#flash", title: j.message || "" },
    `job ${j.id}: ${j.state}${j.phase && j.state === "flashing" ? " (" + j.phase + pct + ")" : ""}`);
}

function card(dev, state) {
  const rows = [
    ["Board", boardName(dev)],
    ["MCU", dev.mcu || "unknown"],
    // what the board runs, from Klipper's identify answer (app mode only)
    dev.firmware_version ? ["Firmware", dev.firmware_version] : null,
    ["USB", `${dev.usb_id}${dev.product ? " · " + dev.product : ""}${dev.serial ? " · " + dev.serial : ""}`],
    ["Path", dev.tty || dev.usb_devnode || dev.path || ""],
    dev.by_id ? ["by-id", dev.by_id] : null,
    dev.app_address ? ["App start", `${hex(dev.app_address)} (${bytes(dev.app_offset)} bootloader)`] : null,
  ].filter(Boolean);
  const notes = [...(dev.probe_error ? [dev.probe_error] : []), ...(dev.diagnostics || []), ...(dev.hints || [])];
  return el("article", { class: "board", "data-port": dev.port, "data-mode": dev.mode },
    el("header", {},
      el("span", { class: "port" }, dev.port),
      el("span", { class: "mode mode-" + dev.mode }, MODES[dev.mode] || dev.mode),
      dev.mode === "dfu" && !dev.probed ? el("span", { class: "probing" }, "reading layout…") : null,
      activeJob(state, dev.port)),
    el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    layoutBar(dev),
    notes.length ? el("ul", { class: "notes" }, notes.map((n) => el("li", {}, n))) : null);
}

export function render(ctx) {
  const { state, mr } = ctx;
  const devs = [...state.devices.values()].sort((a, b) => a.port.localeCompare(b.port, undefined, { numeric: true }));
  let body;
  if (mr.state !== "open" || !state.agent) body = el("p", { class: "empty" }, "No connection to flashd.");
  else if (!devs.length) body = el("p", { class: "empty" }, "No boards connected. Plug one in: it shows up here at once.");
  else body = el("div", { class: "boards" }, devs.map((d) => card(d, state)));
  clear(root, el("h2", {}, "Boards"), body);
}

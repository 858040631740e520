// SPDX-License-Identifier: LGPL-2.1-or-later
// Rules: flash boards automatically as they show up.

import { base64, bytes, clear, el, errorText, time } from "./util.js";

let root, list, form, msg, boardSel;

export function init(ctx, node) {
  root = node;
  list = el("div", { id: "rule-list" });
  msg = el("p", { id: "rule-msg", hidden: true });
  boardSel = el("select", { name: "board" });
  const fileInput = el("input", { name: "image", type: "file", accept: ".bin,.hex,.dfu,.uf2", required: true });
  form = el("form", { id: "rule-form", class: "rule-form", onsubmit: (ev) => { ev.preventDefault(); add(ctx, fileInput); } },
    el("h3", {}, "Add a rule"),
    el("label", {}, "Board ", boardSel),
    el("label", {}, "Port ", el("input", { name: "port", placeholder: "any, or 1-1.3 or 1-1.*", size: 14 })),
    el("label", {}, "When ", el("select", { name: "mode" },
      el("option", { value: "bootloader" }, "it shows up in its bootloader"),
      el("option", { value: "application" }, "it shows up running its firmware"))),
    el("label", {}, "Image ", fileInput),
    el("label", {}, "Repeat ", el("select", { name: "repeat" },
      el("option", { value: "always" }, "every board"), el("option", { value: "once" }, "one board, then disable"))),
    el("button", { type: "submit" }, "Add rule"), msg);
  clear(root, el("h2", {}, "Rules"), list, form);
}

function say(text, bad) {
  msg.textContent = text;
  msg.className = bad ? "refused" : "ok";
  msg.hidden = !text;
}

async function act(ctx, method, id) {
  try {
    const { rule } = await ctx.mr.flashd(method, { rule: id });
    if (method === "rule.remove") ctx.state.rules = ctx.state.rules.filter((r) => r.id !== id);
    else ctx.state.rules = ctx.state.rules.map((r) => (r.id === id ? rule : r));
    say("");
  } catch (e) {
    ctx.noteFlashingRefused(e);
    say(errorText(e), true);
  }
  ctx.render();
}

async function add(ctx, fileInput) {
  const f = fileInput.files[0];
  const data = new FormData(form);
  const match = { mode: data.get("mode") };
  if (data.get("board")) match.board = data.get("board");
  if (data.get("port")) match.port = data.get("port");
  if (!f) return say("Pick an image.", true);
  try {
    const { rule } = await ctx.mr.flashd("rule.add", {
      match, repeat: data.get("repeat"), image: { data: base64(await f.arrayBuffer()), name: f.name },
    });
    if (!ctx.state.rules.some((r) => r.id === rule.id)) ctx.state.rules.push(rule);
    say(`Added ${rule.id}.`);
    form.reset();
  } catch (e) {
    ctx.noteFlashingRefused(e);
    say(errorText(e), true);
  }
  ctx.render();
}

function matchText(m) {
  const parts = [];
  if (m.board) parts.push(m.board);
  if (m.mcu) parts.push(m.mcu);
  if (m.port) parts.push(`port ${m.port}`);
  if (m.usb_serial) parts.push(`serial ${m.usb_serial}`);
  if (m.usb_id) parts.push(m.usb_id);
  return `${parts.join(", ") || "any board"} in ${m.mode || "bootloader"} mode`;
}

function ruleCard(ctx, r) {
  const ro = ctx.state.canFlash === false;
  const last = r.last_error || r.last_fired;
  return el("article", { class: "rule" + (r.enabled ? "" : " disabled"), "data-rule": r.id },
    el("header", {}, el("strong", {}, r.name || r.id), el("span", { class: "mode" }, r.enabled ? "enabled" : "disabled")),
    el("p", {}, `When ${matchText(r.match)}: flash ${r.image.name || r.image.sha256.slice(0, 12)} (${bytes(r.image.size)}), ${r.repeat === "once" ? "once" : "every time it lacks it"}.`),
    el("p", { class: "counts" }, `fired ${r.fired}, flashed ${r.flashed}, failed ${r.failed}, skipped ${r.skipped}`,
      last ? ` · last: ${time(last.time)} port ${last.port}${last.message ? " – " + last.message : ""}` : ""),
    r.disabled_reason ? el("p", { class: "note" }, r.disabled_reason) : null,
    el("div", { class: "actions" },
      el("button", { type: "button", disabled: ro, onclick: () => act(ctx, r.enabled ? "rule.disable" : "rule.enable", r.id) }, r.enabled ? "Disable" : "Enable"),
      el("button", { type: "button", class: "danger", disabled: ro, onclick: () => act(ctx, "rule.remove", r.id) }, "Remove")));
}

export function render(ctx) {
  const { state } = ctx;
  const sel = boardSel.value;
  clear(boardSel, el("option", { value: "" }, "any board"),
    state.boardDb.map((b) => el("option", { value: b.name, selected: b.name === sel }, b.title || b.name)));
  clear(list, state.rules.length ? state.rules.map((r) => ruleCard(ctx, r)) : el("p", { class: "empty" }, "No rules."));
  for (const e of form.elements) e.disabled = state.canFlash === false || !state.agent;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
// History: every job flashd remembers, newest first, with its log on demand.

import { bytes, clear, el, time } from "./util.js";

let root, openJob = null, openLog = null;

export function init(ctx, node) {
  root = node;
}

async function show(ctx, id) {
  openJob = openJob === id ? null : id;
  openLog = null;
  ctx.render();
  if (openJob === null) return;
  try {
    const { job } = await ctx.mr.flashd("job.get", { job: id });
    if (openJob === id) openLog = job.log || [];
  } catch (e) {
    openLog = [`could not read the log: ${e.message}`];
  }
  ctx.render();
}

function outcome(j) {
  if (j.state === "failed" && j.error) return `failed: ${j.error.name}`;
  return j.state + (j.phase && j.state === "flashing" ? ` (${j.phase})` : "");
}

export function render(ctx) {
  const jobs = [...ctx.state.jobs.values()].sort((a, b) => b.id - a.id);
  const rows = [];
  for (const j of jobs) {
    rows.push(el("tr", { class: "job state-" + j.state, "data-job": j.id, onclick: () => show(ctx, j.id) },
      el("td", {}, j.id), el("td", {}, time(j.created)), el("td", {}, j.target || ""), el("td", { class: "port" }, j.port || ""),
      el("td", {}, j.board || ""), el("td", {}, j.image ? `${j.image.format || "?"} ${bytes(j.image.size)}` : ""),
      el("td", {}, typeof j.source === "string" && j.source !== "manual" ? j.source : "manual"),
      el("td", { class: "outcome" }, outcome(j))));
    if (openJob === j.id) {
      const err = j.error ? el("p", { class: "error" }, `${j.error.message} ${j.error.advice || ""}`) : null;
      rows.push(el("tr", { class: "log-row" }, el("td", { colspan: 8 }, err,
        el("pre", { class: "job-log" }, openLog ? openLog.join("\n") : "loading…"))));
    }
  }
  clear(root, el("h2", {}, "History"),
    jobs.length ? el("table", { class: "history" },
      el("thead", {}, el("tr", {}, ["Job", "Created", "Target", "Port", "Board", "Image", "Source", "State"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)) : el("p", { class: "empty" }, "No jobs yet."));
}

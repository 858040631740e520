// SPDX-License-Identifier: LGPL-2.1-or-later
// Flash: pick a board and an image, see what will happen, start, follow
// the job live, cancel, read how it ended.

import { base64, bytes, clear, duration, el, errorText, hex, JOB_FINAL } from "./util.js";

const PHASES = ["read-back", "erase", "write", "verify", "leave"];
const STEPS = ["queued", "rebooting", "waiting-for-device", "flashing", "waiting-for-app", "done"];
const STATE_WORDS = {
  queued: "Queued: waiting for its turn on the board",
  rebooting: "Asking the firmware to reboot into its bootloader",
  "waiting-for-device": "Waiting for the board to show up in its bootloader",
  flashing: "Flashing",
  "waiting-for-app": "Written: waiting for the board to come back running it",
  done: "Done: the board is running the new image",
  failed: "Failed",
  cancelled: "Cancelled",
  interrupted: "Interrupted: flashd stopped during the flash",
  superseded: "Superseded by a newer job",
};

let root, form, targetSel, fileInput, plan, startBtn, result, jobBox;
let file = null, fileBytes = null;
let jobId = null, jobLog = [], lastKey = "";
let wanted = "";   // the chosen port, kept while the board re-enumerates

export function init(ctx, node) {
  root = node;
  targetSel = el("select", { id: "flash-target", onchange: () => { wanted = targetSel.value; showPlan(ctx); } });
  fileInput = el("input", { id: "image-file", type: "file", accept: ".bin,.hex,.dfu,.uf2", onchange: () => pick(ctx, fileInput.files[0]) });
  const drop = el("div", { id: "drop", class: "drop" }, "Drop a firmware image here (.bin, .hex, .dfu, .uf2) or ", el("label", {}, fileInput));
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    if (ev.dataTransfer.files.length) pick(ctx, ev.dataTransfer.files[0]);
  });
  plan = el("div", { id: "plan", class: "plan" });
  startBtn = el("button", { id: "flash-start", type: "submit", disabled: true }, "Flash");
  result = el("div", { id: "flash-result", hidden: true });
  form = el("form", { class: "flash-form", onsubmit: (ev) => { ev.preventDefault(); start(ctx); } },
    el("label", {}, "Board ", targetSel), drop, plan, el("div", { class: "actions" }, startBtn), result);
  jobBox = el("div", { id: "job" });
  clear(root, el("h2", {}, "Flash"), form, jobBox);
}

async function pick(ctx, f) {
  file = f || null;
  fileBytes = f ? await f.arrayBuffer() : null;
  result.hidden = true;
  showPlan(ctx);
}

function detectFormat(buf, name) {
  const u8 = new Uint8Array(buf);
  const ascii = (a, b) => String.fromCharCode(...u8.subarray(a, b));
  if (u8.length >= 512 && ascii(0, 4) === "UF2\n") return "uf2";
  if (u8.length >= 16 && ascii(u8.length - 8, u8.length - 5) === "UFD") return "dfu";
  if (u8.length && u8[0] === 0x3a) return "hex";   // ':'
  const ext = (name.match(/\.([a-z0-9]+)$/i) || [])[1];
  return ext && ext.toLowerCase() !== "bin" ? ext.toLowerCase() : "bin";
}

// What flashd will do, from what it reported about the board; flashd runs
// the real safety checks before it erases anything and refuses with the
// reason, which is shown verbatim.
function showPlan(ctx) {
  const dev = ctx.state.devices.get(targetSel.value);
  const items = [];
  if (!dev) items.push(el("li", { class: "bad" }, "Pick a board."));
  else {
    items.push(el("li", {}, `Target: port ${dev.port}, ${dev.board_title || dev.board || (dev.board_candidates || []).map((c) => c.name).join(" / ") || "unknown board"}, ${dev.mcu || "MCU unknown"}`));
    if (dev.mode === "app") items.push(el("li", {}, "The board runs its firmware: flashd reboots it into its bootloader first, then brings it back."));
    else if (dev.mode === "dfu" || dev.mode === "katapult") items.push(el("li", {}, `The board is in its bootloader (${dev.mode}): flashed directly.`));
  }
  if (fileBytes) {
    const fmt = detectFormat(fileBytes, file.name);
    items.push(el("li", {}, `Image: ${file.name}, ${bytes(fileBytes.byteLength)}, ${fmt}`));
    if (fmt === "bin" && dev && dev.app_address) {
      const addr = dev.app_address;
      items.push(el("li", {}, `Written at ${hex(addr)} (the application start, after ${bytes(dev.app_offset)} of bootloader).`));
      if (fileBytes.byteLength >= 8) {
        const dv = new DataView(fileBytes);
        const sp = dv.getUint32(0, true), reset = dv.getUint32(4, true);
        const inside = reset >= addr && reset < addr + fileBytes.byteLength;
        items.push(el("li", { class: inside ? "good" : "bad" },
          `Vector table: stack ${hex(sp)}, reset ${hex(reset)}: ` +
          (inside ? "the reset vector lies inside the image at this address." :
            "the reset vector lies outside the image at this address: it was likely built for another bootloader offset; flashd will refuse it.")));
      }
      if (dev.flash_base !== null && dev.flash_size && addr + fileBytes.byteLength > dev.flash_base + dev.flash_size)
        items.push(el("li", { class: "bad" }, "The image does not fit the flash: flashd will refuse it."));
    }
    items.push(el("li", {}, "flashd checks the image (fit, vector table, bootloader region, Klipper's MCU) before anything is erased."));
  }
  clear(plan, el("ul", {}, items));
  startBtn.disabled = !(dev && fileBytes && ctx.state.canFlash !== false && ctx.state.agent);
}

async function start(ctx) {
  const target = targetSel.value;
  if (!fileBytes || !target) return;
  startBtn.disabled = true;
  result.hidden = true;
  try {
    const { job } = await ctx.mr.flashd("job.flash", { target, image: { data: base64(fileBytes), name: file.name } });
    jobId = job.id;
    jobLog = [];
    lastKey = "";
    ctx.state.jobs.set(job.id, job);
    fetchLog(ctx);
  } catch (e) {
    ctx.noteFlashingRefused(e);
    const f = e.flashd;
    const name = f && f.data ? (f.data.error && f.data.error.name) || f.data.name : null;
    clear(result, el("strong", {}, f && f.code === -32012 ? "Refused: " : "Not started: "), errorText(e),
      name ? el("span", { class: "code" }, ` (${name})`) : null);
    result.className = "refused";
    result.hidden = false;
    // the refused job is in the History with its log; the box above says it all
    jobId = null;
  }
  ctx.render();
}

async function fetchLog(ctx) {
  if (jobId === null) return;
  const id = jobId;
  try {
    const { job } = await ctx.mr.flashd("job.get", { job: id });
    if (id !== jobId) return;
    jobLog = job.log || [];
    ctx.state.jobs.set(job.id, { ...job });
    ctx.render();
  } catch { /* shown again on the next update */ }
}

export function onEvent(ctx, event, data) {
  if (event === "job_update" && data.id === jobId) {
    const key = `${data.state}/${data.phase}`;
    if (key !== lastKey) {
      lastKey = key;
      fetchLog(ctx);
    }
  }
}

async function cancel(ctx) {
  try {
    await ctx.mr.flashd("job.cancel", { job: jobId });
  } catch (e) {
    ctx.noteFlashingRefused(e);
    clear(result, el("strong", {}, "Cancel: "), errorText(e));
    result.className = "refused";
    result.hidden = false;
  }
}

function progress(job) {
  const final = JOB_FINAL.includes(job.state);
  const stepIdx = STEPS.indexOf(job.state);
  const phaseIdx = PHASES.indexOf(job.phase);
  const steps = el("ol", { class: "steps" }, STEPS.map((s, i) => el("li", {
    class: i < stepIdx || job.state === "done" ? "past" : i === stepIdx ? "current" : "",
  }, s)));
  const phases = el("ol", { class: "phases" }, PHASES.map((p, i) => el("li", {
    class: job.state === "flashing" ? (i < phaseIdx ? "past" : i === phaseIdx ? "current" : "") :
      (stepIdx > STEPS.indexOf("flashing") ? "past" : ""),
  }, p)));
  const total = job.bytes_total || 0;
  const done = job.bytes_done || 0;
  const pct = job.state === "done" ? 100 : total ? Math.min(100, done / total * 100) : 0;
  const rate = job.rate || 0;
  const eta = rate > 0 && total ? (total - done) / rate : NaN;
  const bar = el("div", { id: "job-progress", class: "progress", "data-phase": job.phase || job.state, "data-pct": pct.toFixed(1) },
    el("div", { class: "bar", style: { width: pct + "%" } }));
  const figures = job.state === "flashing" && total ?
    el("div", { class: "figures" }, `${job.phase}: ${bytes(done)} of ${bytes(total)}`,
      rate ? ` · ${bytes(Math.round(rate))}/s` : "", isFinite(eta) ? ` · ${duration(eta)} left` : "") :
    el("div", { class: "figures" }, final ? "" : job.message || "");
  return [steps, phases, bar, figures];
}

function endWords(job) {
  if (job.state === "done") return `Done: the board runs the new image${job.device ? " (now at " + job.device + ")" : ""}.`;
  if (job.state === "failed" && job.error) return `Failed: ${job.error.message}${job.error.advice ? " — " + job.error.advice : ""}`;
  if (job.state === "cancelled") return "Cancelled." + (job.phase ? " The board stays in its bootloader; flash again to finish." : "");
  return STATE_WORDS[job.state] || job.state;
}

export function render(ctx) {
  const { state } = ctx;
  // a job that runs while the one shown has ended (or none is: the page
  // was reloaded) is followed, whoever started it: a rule, flashctl
  if (jobId === null || JOB_FINAL.includes((state.jobs.get(jobId) || {}).state)) {
    const running = [...state.jobs.values()].filter((j) => !JOB_FINAL.includes(j.state));
    if (running.length) {
      jobId = running[running.length - 1].id;
      jobLog = [];
      lastKey = "";
      fetchLog(ctx);
    }
  }
  // a board being flashed leaves its port for a moment (application ->
  // bootloader -> application): keep it chosen while its job runs
  const job = jobId !== null ? state.jobs.get(jobId) : null;
  const running = job && !JOB_FINAL.includes(job.state);
  if (wanted && !state.devices.has(wanted) && !(running && job.port === wanted)) wanted = "";
  const devs = [...state.devices.values()].sort((a, b) => a.port.localeCompare(b.port, undefined, { numeric: true }));
  const options = devs.map((d) => el("option", { value: d.port, selected: d.port === wanted },
    `${d.port} · ${d.board || d.mcu || d.usb_id} (${d.mode})`));
  if (wanted && !state.devices.has(wanted))
    options.push(el("option", { value: wanted, selected: true }, `${wanted} · re-enumerating`));
  clear(targetSel, el("option", { value: "" }, devs.length ? "choose a board" : "no boards"), options);
  targetSel.value = wanted;
  showPlan(ctx);

  if (!job) {
    clear(jobBox);
    delete jobBox.dataset.state;
    return;
  }
  const final = JOB_FINAL.includes(job.state);
  jobBox.dataset.state = job.state;
  clear(jobBox,
    el("h3", {}, `Job ${job.id}: ${job.target || job.port}`),
    el("p", { id: "job-state", class: "state state-" + job.state }, final ? endWords(job) : STATE_WORDS[job.state] || job.state),
    final && job.state !== "done" && !job.started ? null : progress(job),
    final ? null : el("button", { id: "job-cancel", type: "button", onclick: () => cancel(ctx), disabled: state.canFlash === false }, "Cancel"),
    el("details", { open: true }, el("summary", {}, "Log"), el("pre", { id: "job-log" }, jobLog.join("\n"))));
  const log = document.getElementById("job-log");
  log.scrollTop = log.scrollHeight;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
// Small DOM and formatting helpers shared by the views.

// el("div", {class: "x", onclick: f}, child, "text", ...)
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "style" && typeof v === "object") Object.assign(e.style, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

export function hex(n) {
  return n === null || n === undefined ? "?" : "0x" + Number(n).toString(16).padStart(8, "0");
}

export function bytes(n) {
  if (n === null || n === undefined) return "?";
  if (n >= 1024 * 1024) return (n / 1024 / 1024).toFixed(1) + " MiB";
  if (n >= 1024) return (n / 1024).toFixed(n % 1024 ? 1 : 0) + " KiB";
  return n + " B";
}

export function duration(s) {
  if (!isFinite(s) || s < 0) return "?";
  if (s < 1) return "<1 s";
  if (s < 90) return Math.round(s) + " s";
  return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
}

export function time(t) {
  return t ? new Date(t * 1000).toLocaleString() : "";
}

// base64 of an ArrayBuffer, in chunks (String.fromCharCode(...all) overflows the stack)
export function base64(buf) {
  const u8 = new Uint8Array(buf);
  let bin = "";
  for (let i = 0; i < u8.length; i += 0x8000) bin += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  return btoa(bin);
}

// what a person reads for an RpcError (moonraker.js): flashd's message and advice
export function errorText(e) {
  const f = e.flashd;
  if (f) {
    const advice = f.data && f.data.error && f.data.error.advice;
    return advice && !f.message.includes(advice) ? `${f.message} — ${advice}` : f.message;
  }
  return e.message || String(e);
}

export const JOB_FINAL = ["done", "failed", "cancelled", "superseded"];

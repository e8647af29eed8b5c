// The dashboard page: one static HTML document with its script inline (no build step). It
// listens to /events (server-sent events, one JSON DashboardSnapshot each) and redraws:
// members, the partition → owner grid with moves highlighted, per-node charts of asks/s and
// p99 as inline SVG, hand-offs in progress and mailbox depth.
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Keyhold dashboard</title>
<style>
  :root { color-scheme: light dark; font: 14px/1.4 system-ui, sans-serif; }
  body { margin: 0 auto; max-width: 1200px; padding: 16px; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 15px; margin: 20px 0 8px; }
  #meta { color: GrayText; }
  #stale { color: #c0392b; font-weight: 600; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 3px 10px 3px 0; border-bottom: 1px solid #8884; white-space: nowrap; }
  td.num, th.num { text-align: right; }
  .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
  .fenced { color: #c0392b; font-weight: 600; }
  #grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(34px, 1fr)); gap: 3px; }
  .cell { height: 30px; border-radius: 3px; font-size: 10px; display: flex; align-items: center;
    justify-content: center; color: #fff; text-shadow: 0 0 2px #000; transition: background-color .3s; }
  .cell.none { background: repeating-linear-gradient(45deg, #888, #888 4px, #aaa 4px, #aaa 8px); }
  .cell.pending, .cell.releasing { opacity: .55; }
  .cell.moved { outline: 3px solid #f1c40f; outline-offset: -1px; }
  #charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 12px; }
  .chart { border: 1px solid #8884; border-radius: 4px; padding: 6px 8px; }
  .chart svg { width: 100%; height: 44px; display: block; }
  .chart .label { font-size: 12px; display: flex; justify-content: space-between; }
</style>
</head>
<body>
<h1>Keyhold cluster <span id="cluster">…</span></h1>
<div id="meta">waiting for the first answer…</div>
<div id="stale"></div>

<h2>Members</h2>
<table id="members">
  <thead><tr><th>Member</th><th class="num">Lease age</th><th>Fenced</th><th class="num">Partitions</th>
  <th class="num">Asks/s</th><th class="num">p50</th><th class="num">p99</th><th class="num">Mailbox</th>
  <th class="num">Active</th></tr></thead>
  <tbody></tbody>
</table>

<h2>Ring <span id="ring-summary"></span></h2>
<div id="grid"></div>

<h2>Asks/s and p99 per node</h2>
<div id="charts"></div>

<h2>Hand-offs in progress</h2>
<div id="handoffs">none</div>

<script>
"use strict";
const HISTORY = 120;
const history = new Map(); // node -> [{ at, asks, p99 }]
const movedUntil = new Map(); // partition -> time the highlight ends
let lastOwners = null;

// FNV-1a, then the golden angle: ids that differ in one character ("node-1", "node-2") get far-apart hues.
function hue(id) {
  let h = 0x811c9dc5;
  for (const ch of id) h = Math.imul(h ^ ch.codePointAt(0), 0x01000193) >>> 0;
  return Math.round((h % 1000) * 137.508) % 360;
}
const colour = (id) => "hsl(" + hue(id) + " 65% 45%)";
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const fmtMs = (v) => (v === null || v === undefined ? "-" : v >= 1000 ? (v / 1000).toFixed(1) + " s" : v >= 10 ? Math.round(v) + " ms" : v.toFixed(2) + " ms");
const fmt = (v) => (v === null || v === undefined ? "-" : String(v));

function sparkline(points, pick, stroke) {
  const w = 240, h = 40;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  svg.setAttribute("preserveAspectRatio", "none");
  const vals = points.map(pick).map((v) => (v === null || v === undefined ? 0 : v));
  const max = Math.max(1e-9, ...vals);
  const d = vals.map((v, i) => (i === 0 ? "M" : "L") + ((i / Math.max(1, HISTORY - 1)) * w).toFixed(1) + " " + (h - 2 - (v / max) * (h - 4)).toFixed(1)).join(" ");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", d || "M0 " + h);
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", stroke);
  path.setAttribute("stroke-width", "1.5");
  svg.append(path);
  return svg;
}

function render(s) {
  document.getElementById("cluster").textContent = s.cluster;
  const c = s.config;
  document.getElementById("meta").textContent =
    "ring " + c.ringSize + " · hash " + c.hash + " · heartbeat " + c.heartbeatMs + " ms · ttl " + c.ttlMs +
    " ms · skew " + c.skewMs + " ms · updated " + new Date(s.at).toLocaleTimeString();
  document.getElementById("stale").textContent = s.error ? "stale: " + s.error : "";

  const stats = new Map(s.stats.map((n) => [n.id, n]));
  const tbody = document.querySelector("#members tbody");
  tbody.replaceChildren(...s.members.map((m) => {
    const n = stats.get(m.id) || {};
    return el("tr", { "data-member": m.id, "data-fenced": String(m.fenced === true) },
      el("td", {}, el("span", { class: "swatch", style: "background:" + colour(m.id) }), m.id),
      el("td", { class: "num" }, fmtMs(m.leaseAgeMs)),
      el("td", { class: m.fenced ? "fenced" : "" }, m.fenced === null ? "no answer" : m.fenced ? "FENCED" : "no"),
      el("td", { class: "num", "data-front": m.id },
        fmt(m.owned) + (s.fronts && s.fronts[m.id] !== undefined ? " (joining, front " + s.fronts[m.id] + ")" : "")),
      el("td", { class: "num" }, n.asksPerSec === undefined || n.asksPerSec === null ? "-" : n.asksPerSec.toFixed(1)),
      el("td", { class: "num" }, fmtMs(n.p50Ms)),
      el("td", { class: "num" }, fmtMs(n.p99Ms)),
      el("td", { class: "num", "data-mailbox": m.id }, fmt(n.mailbox)),
      el("td", { class: "num" }, fmt(n.active)));
  }));

  const now = Date.now();
  if (lastOwners && lastOwners.length === s.owners.length) {
    s.owners.forEach((o, p) => { if (o !== lastOwners[p]) movedUntil.set(p, now + 3000); });
  }
  lastOwners = s.owners;
  const grid = document.getElementById("grid");
  grid.replaceChildren(...s.owners.map((o, p) => {
    const moved = (movedUntil.get(p) || 0) > now;
    const cls = "cell" + (o === null ? " none" : "") + (s.states[p] ? " " + s.states[p] : "") + (moved ? " moved" : "");
    const cell = el("div", { class: cls, "data-partition": String(p), "data-owner": o === null ? "" : o,
      title: "partition " + p + ": " + (o === null ? "no single owner" : o) + (s.states[p] && s.states[p] !== "ready" ? " (" + s.states[p] + ")" : "") },
      String(p));
    if (o !== null) cell.style.backgroundColor = colour(o);
    return cell;
  }));
  const counts = {};
  for (const o of s.owners) if (o !== null) counts[o] = (counts[o] || 0) + 1;
  const unowned = s.owners.filter((o) => o === null).length;
  document.getElementById("ring-summary").textContent = "(" + Object.entries(counts).map(([k, v]) => k + ": " + v).join(", ") + (unowned ? ", without a single owner: " + unowned : "") + ")";

  for (const n of s.stats) {
    const h = history.get(n.id) || [];
    h.push({ at: s.at, asks: n.asksPerSec, p99: n.p99Ms });
    if (h.length > HISTORY) h.shift();
    history.set(n.id, h);
  }
  for (const id of [...history.keys()]) if (!stats.has(id)) history.delete(id);
  document.getElementById("charts").replaceChildren(...[...history.entries()].map(([id, h]) => {
    const last = h[h.length - 1];
    return el("div", { class: "chart", "data-chart": id },
      el("div", { class: "label" }, el("span", {}, el("span", { class: "swatch", style: "background:" + colour(id) }), id),
        el("span", {}, (last.asks === null ? "-" : last.asks.toFixed(1)) + " asks/s")),
      sparkline(h, (x) => x.asks, colour(id)),
      el("div", { class: "label" }, el("span", {}, "p99"), el("span", {}, fmtMs(last.p99))),
      sparkline(h, (x) => x.p99, "#e67e22"));
  }));

  const moving = s.handoffs.inProgress;
  document.getElementById("handoffs").replaceChildren(moving.length === 0 ? "none" :
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Node"), el("th", {}, "Partition"), el("th", {}, "State"))),
      el("tbody", {}, ...moving.map((m) => el("tr", { "data-handoff": m.partition }, el("td", {}, m.node), el("td", {}, m.partition), el("td", {}, m.state))))));
}

const source = new EventSource("/events");
source.onmessage = (e) => render(JSON.parse(e.data));
source.onerror = () => { document.getElementById("stale").textContent = "connection to the keyhold process lost; retrying…"; };
</script>
</body>
</html>
`;

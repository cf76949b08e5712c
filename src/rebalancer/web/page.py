"""The dashboard: one self-contained page (inline CSS and JS, charts drawn as inline SVG).

It is opened as ``/?token=TOKEN``; the script keeps the token for the tab, removes it from
the address bar, and sends it as ``Authorization: Bearer`` with every API request.
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>rebalancer dashboard</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3a5f;color:#fff;padding:.7em 1.5em;display:flex;gap:1.5em;
  align-items:center;flex-wrap:wrap}
header h1{font-size:1.2em;margin:0}
main{padding:1em 1.5em;max-width:1200px}
.badge{padding:2px 8px;border-radius:4px;font-size:.85em;background:#2e7d32}
.badge.halted{background:#c62828}.badge.warn{background:#ef6c00}
.cards{display:flex;gap:1em;flex-wrap:wrap;margin:1em 0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:150px}
.card .k{font-size:.8em;color:#666}.card .v{font-size:1.3em;font-weight:600}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}
h2{font-size:1.05em;margin:.3em 0 .6em}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border-bottom:1px solid #eee;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
.out{color:#c62828;font-weight:600}.in{color:#2e7d32}
.error{background:#fdecea;color:#c62828;padding:1em;border-radius:6px;display:none}
svg text{font-size:11px;fill:#444}
button{padding:4px 12px;margin-left:.5em}
.muted{color:#777;font-size:.85em}
p.empty{margin:.2em 0}
td.text,th.text{text-align:left}
</style></head><body>
<header><h1>rebalancer</h1><span id="mode"></span><span id="halt-badge" class="badge">…</span>
<span id="ticks" class="muted" style="color:#dde"></span>
<span id="controls" style="display:none"><button id="btn-resume">resume</button>
<button id="btn-rebalance">rebalance now</button></span></header>
<main>
<div id="error" class="error"></div>
<div class="cards">
 <div class="card"><div class="k">value (last check, after its trades)</div>
  <div class="v" id="total-value">–</div></div>
 <div class="card"><div class="k">return</div><div class="v" id="return">–</div></div>
 <div class="card"><div class="k">buy-and-hold return</div>
  <div class="v" id="hold-return">–</div></div>
 <div class="card"><div class="k">fees</div><div class="v" id="fees">–</div></div>
 <div class="card"><div class="k">checks / rebalances / fills</div>
  <div class="v" id="counts">–</div></div>
 <div class="card"><div class="k">max drawdown</div><div class="v" id="drawdown">–</div></div>
</div>
<section><h2>Weights vs targets <span class="muted" id="band"></span></h2>
<div id="weights-chart"></div>
<table id="weights"><thead><tr><th>asset</th><th>amount</th><th>value</th><th>weight</th>
<th>target</th><th>band</th><th>drift</th><th></th></tr></thead><tbody></tbody></table></section>
<section><h2>Equity at each check vs buy-and-hold of the starting holdings</h2>
<div id="equity-chart"></div></section>
<section><h2>Drift history (weight − target, at each check; band dashed, axis clipped
to 2.5× the band)</h2>
<div id="drift-chart"></div></section>
<section><h2>Recent fills</h2><table id="fills"><thead><tr><th>time</th><th>side</th>
<th>symbol</th><th>amount</th><th>price</th><th>cost</th><th>fee</th></tr></thead><tbody></tbody>
</table></section>
<section><h2>Recent orders</h2><table id="orders"><thead><tr><th>created</th><th>client id</th>
<th>side</th><th>symbol</th><th>amount</th><th>status</th><th>source</th></tr></thead><tbody>
</tbody></table></section>
<section><h2>Halts</h2><table id="halts"><thead><tr><th>time</th><th>kind</th><th>reason</th>
</tr></thead><tbody></tbody></table></section>
<section id="targets-panel"><h2>Target changes <span class="muted">(optimised targets,
<code>[optimise]</code>; newest first)</span></h2>
<p class="muted empty" id="targets-empty">–</p>
<table id="targets" style="display:none"><thead><tr><th>time</th>
<th class="text">method</th><th class="text">new targets</th><th class="text">explanation</th>
</tr></thead><tbody></tbody></table></section>
<section id="flows-panel"><h2>Deposits and withdrawals <span class="muted">(found by the
checks; newest first)</span></h2>
<p class="muted empty" id="flows-empty">–</p>
<table id="flows" style="display:none"><thead><tr><th>time</th><th>asset</th><th>amount</th>
<th>value</th><th></th></tr></thead><tbody></tbody></table></section>
<p class="muted">JSON API: <code>/api/*</code>, described by <code>/openapi.json</code>.</p>
</main>
<script>
"use strict";
const params = new URLSearchParams(location.search);
if (params.get("token")) {
  sessionStorage.setItem("rebalancer-token", params.get("token"));
  params.delete("token");
  history.replaceState(null, "", location.pathname + (params.toString() ? "?" + params : ""));
}
const TOKEN = sessionStorage.getItem("rebalancer-token") || "";
const COLORS = ["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#17becf"];

async function api(path, method) {
  const r = await fetch(path, {method: method || "GET",
    headers: {"Authorization": "Bearer " + TOKEN}});
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail; } catch (e) {}
    throw new Error(r.status + " " + path + ": " + detail);
  }
  return r.json();
}
function money(x) {
  const [i, f] = Number(x).toFixed(2).split(".");
  return i.replace(/\\B(?=(\\d{3})+(?!\\d))/g, ",") + "." + f;
}
function pct(x, signed) {
  if (x === null || x === undefined) return "n/a";
  const v = (Number(x) * 100).toFixed(2) + "%";
  return signed && Number(x) >= 0 ? "+" + v : v;
}
function num(x) { return String(Number(Number(x).toPrecision(8))); }
function when(t) { return t ? t.replace("T", " ").slice(0, 16) + " UTC" : "–"; }
function esc(s) {
  return String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
}
function rows(id, items, cells) {
  document.querySelector("#" + id + " tbody").innerHTML = items.length
    ? items.map(it => "<tr>" + cells(it).map(c => "<td>" + c + "</td>").join("") + "</tr>").join("")
    : '<tr><td colspan="8" class="muted">none</td></tr>';
}
// A table shown only when it has rows; otherwise its "-empty" paragraph says why.
function optionalRows(id, items, empty, cells) {
  const table = document.getElementById(id), note = document.getElementById(id + "-empty");
  table.style.display = items.length ? "" : "none";
  note.style.display = items.length ? "none" : "";
  note.textContent = empty;
  table.querySelector("tbody").innerHTML = items.map(it => "<tr>" + cells(it).join("") +
    "</tr>").join("");
}
function td(html, cls, title) {
  return "<td" + (cls ? ` class="${cls}"` : "") + (title ? ` title="${esc(title)}"` : "") + ">" +
    html + "</td>";
}
function signed(x, fmt) { return (Number(x) > 0 ? "+" : "") + fmt(x); }
// {BTC: "0.4", ...} as "BTC 40.0 %, ..."
function targetsText(t) {
  return Object.entries(t || {}).map(([a, w]) => a + " " + (Number(w) * 100).toFixed(1) + " %")
    .join(", ");
}

// A line chart as inline SVG: series = [{name, color, values}], times = ISO strings.
function lineChart(el, times, series, opts) {
  const W = 1100, H = opts.height || 260, L = 70, R = 10, T = 10, B = 40;
  if (!times.length) { el.innerHTML = '<p class="muted">no checks yet</p>'; return; }
  const xs = times.map(t => Date.parse(t));
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const v of s.values) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  for (const y of (opts.hlines || [])) { lo = Math.min(lo, y.y); hi = Math.max(hi, y.y); }
  if (opts.clip) { lo = Math.max(lo, -opts.clip); hi = Math.min(hi, opts.clip); }
  if (lo === hi) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.05; lo -= pad; hi += pad;
  const clamp = v => Math.min(hi, Math.max(lo, v));
  const x0 = xs[0], x1 = xs[xs.length - 1] === x0 ? x0 + 1 : xs[xs.length - 1];
  const X = t => L + (t - x0) / (x1 - x0) * (W - L - R);
  const Y = v => T + (hi - v) / (hi - lo) * (H - T - B);
  let svg = `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img">`;
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4, y = Y(v);
    svg += `<line x1="${L}" x2="${W - R}" y1="${y}" y2="${y}" stroke="#eee"/>`;
    svg += `<text x="${L - 6}" y="${y + 4}" text-anchor="end">${opts.fmt(v)}</text>`;
  }
  for (let i = 0; i <= 4; i++) {
    const t = x0 + (x1 - x0) * i / 4;
    const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
    svg += `<text x="${X(t)}" y="${H - B + 16}" text-anchor="${anchor}">` +
      `${new Date(t).toISOString().slice(0, 10)}</text>`;
  }
  for (const h of (opts.hlines || [])) {
    svg += `<line x1="${L}" x2="${W - R}" y1="${Y(h.y)}" y2="${Y(h.y)}" stroke="${h.color}"` +
      ` stroke-dasharray="4 3"/>`;
  }
  series.forEach((s, k) => {
    const pts = s.values.map((v, i) => `${X(xs[i]).toFixed(1)},${Y(clamp(v)).toFixed(1)}`)
      .join(" ");
    svg += `<polyline class="series" data-name="${esc(s.name)}" fill="none" stroke="${s.color}"` +
      ` stroke-width="${s.width || 1.6}" stroke-dasharray="${s.dash || ""}" points="${pts}"/>`;
    svg += `<rect x="${L + 10 + k * 170}" y="${H - 14}" width="12" height="4" fill="${s.color}"/>` +
      `<text x="${L + 26 + k * 170}" y="${H - 9}">${esc(s.name)}</text>`;
  });
  el.innerHTML = svg + "</svg>";
}

function weightsChart(el, w) {
  const W = 1100, row = 26, L = 60, H = w.assets.length * row + 10;
  const max = Math.max(0.01, ...w.assets.map(a => Math.max(Number(a.weight),
    Number(a.band_high || a.target)))) * 1.1;
  const X = v => L + v / max * (W - L - 80);
  let svg = `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img">`;
  w.assets.forEach((a, i) => {
    const y = 5 + i * row;
    if (a.band_low !== null && a.band_high !== null) {
      svg += `<rect x="${X(a.band_low)}" y="${y}" width="${X(a.band_high) - X(a.band_low)}"` +
        ` height="${row - 6}" fill="#2ca02c" opacity="0.15"/>`;
    }
    svg += `<rect x="${L}" y="${y + 5}" width="${X(a.weight) - L}" height="${row - 16}"` +
      ` fill="${a.in_band ? "#1f77b4" : "#d62728"}"/>`;
    svg += `<line x1="${X(a.target)}" x2="${X(a.target)}" y1="${y}" y2="${y + row - 6}"` +
      ` stroke="#000" stroke-dasharray="3 2"/>`;
    svg += `<text x="${L - 6}" y="${y + 15}" text-anchor="end">${esc(a.asset)}</text>`;
    svg += `<text x="${X(a.weight) + 6}" y="${y + 15}">${pct(a.weight)}</text>`;
  });
  el.innerHTML = svg + "</svg>";
}

function showError(e) {
  const el = document.getElementById("error");
  el.style.display = "block";
  el.textContent = String(e.message || e);
}

async function load() {
  const [st, w, eq, dr, sm, fills, orders, halts, targets, flows] = await Promise.all([
    api("/api/status"), api("/api/weights"), api("/api/equity"), api("/api/drift"),
    api("/api/summary"), api("/api/fills?limit=20"), api("/api/orders?limit=20"),
    api("/api/halts"), api("/api/targets"), api("/api/flows")]);
  document.getElementById("mode").textContent = st.mode + " · " + st.account;
  const badge = document.getElementById("halt-badge");
  badge.textContent = st.halted ? "HALTED: " + st.halt.reason : "trading allowed";
  badge.className = "badge" + (st.halted ? " halted" : "");
  const hb = st.heartbeat;
  document.getElementById("ticks").innerHTML = hb
    ? `daemon <b id="daemon-state">${esc(hb.state)}</b> · last check <span id="last-tick">` +
      `${when(hb.last_tick)}</span> · next check <span id="next-tick">${when(hb.next_tick)}</span>`
    : "daemon: no heartbeat (never run)";
  document.getElementById("controls").style.display = st.control ? "inline" : "none";

  document.getElementById("total-value").textContent = money(w.total_value) + " " + w.quote;
  document.getElementById("return").textContent = pct(sm.total_return, true);
  document.getElementById("hold-return").textContent = pct(sm.hold_return, true);
  document.getElementById("fees").textContent = money(sm.fees) + " " + sm.quote;
  document.getElementById("counts").textContent =
    `${sm.checks} / ${sm.rebalances} / ${sm.fills}`;
  document.getElementById("drawdown").textContent = pct(sm.max_drawdown);
  document.getElementById("band").textContent = "(band: " + w.band + ", as of " +
    when(w.as_of) + ")";

  weightsChart(document.getElementById("weights-chart"), w);
  rows("weights", w.assets, a => [esc(a.asset), num(a.amount), money(a.value),
    `<span data-asset="${esc(a.asset)}" class="weight">${pct(a.weight)}</span>`, pct(a.target),
    a.band_low === null ? "–" : pct(a.band_low) + " – " + pct(a.band_high),
    pct(a.drift, true), a.in_band ? '<span class="in">in band</span>' :
    '<span class="out">out of band</span>']);

  lineChart(document.getElementById("equity-chart"), eq.points.map(p => p.at), [
    {name: "buy-and-hold", color: "#7f7f7f", dash: "5 3", values: eq.points.map(p => +p.hold)},
    {name: "strategy", color: COLORS[0], width: 2, values: eq.points.map(p => +p.value)}],
    {fmt: v => money(v)});
  // the band (when every asset has the same width) as dashed lines; the drift axis shows
  // about twice the band, so a first check from cash does not flatten the rest
  const widths = [...new Set(w.assets.filter(a => a.band_high !== null)
    .map(a => (Number(a.band_high) - Number(a.target)).toFixed(6)))].map(Number);
  const hlines = [{y: 0, color: "#000"}];
  if (widths.length === 1) hlines.push({y: widths[0], color: "#2ca02c"},
    {y: -widths[0], color: "#2ca02c"});
  const assets = Object.keys(dr.drift);
  lineChart(document.getElementById("drift-chart"), dr.times,
    assets.map((a, k) => ({name: a, color: COLORS[k % COLORS.length],
      values: dr.drift[a].map(Number)})),
    {fmt: v => pct(v), hlines: hlines, clip: widths.length ? 2.5 * Math.max(...widths) : 0});

  rows("fills", fills, f => [when(f.at), esc(f.side), esc(f.symbol), num(f.amount),
    num(f.price), money(f.cost), num(f.fee) + " " + esc(f.fee_asset)]);
  rows("orders", orders, o => [when(o.created_at), esc(o.client_order_id), esc(o.side),
    esc(o.symbol), num(o.amount), esc(o.status), esc(o.source)]);
  rows("halts", halts, h => [when(h.at), esc(h.kind), esc(h.reason)]);
  // every target change ([optimise]); none at all means the configured targets are in use
  optionalRows("targets", targets, "configured targets; no optimiser", c => [td(when(c.at)),
    td(esc(c.method), "text"), td(esc(targetsText(c.new)), "text",
      "was: " + targetsText(c.old)), td(esc(c.explanation), "text")]);
  const FLOWS_SHOWN = 50;
  optionalRows("flows", flows.slice(0, FLOWS_SHOWN), "none found", f => [td(when(f.at)),
    td(esc(f.asset)), td(signed(f.amount, num)), td(signed(f.value, money) + " " + esc(f.quote)),
    td(Number(f.amount) > 0 ? '<span class="in">deposit</span>' :
      '<span class="out">withdrawal</span>')]);
  if (flows.length > FLOWS_SHOWN) {
    const note = document.getElementById("flows-empty");
    note.style.display = "";
    note.textContent = `the newest ${FLOWS_SHOWN} of ${flows.length} (all: /api/flows)`;
  }
  document.body.dataset.loaded = "yes";
}

async function act(path) {
  try { const r = await api(path, "POST"); alert(r.detail); await load(); }
  catch (e) { showError(e); }
}
document.getElementById("btn-resume").onclick = () => act("/api/resume");
document.getElementById("btn-rebalance").onclick = () => act("/api/rebalance");
load().catch(e => { showError(e); document.body.dataset.loaded = "error"; });
</script></body></html>
"""

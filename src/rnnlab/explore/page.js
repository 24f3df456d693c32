// rnnlab explore: draws the data embedded in #rnnlab-data. No network, except the live box of
// `rnnlab explore --serve`, which asks the server (rnnlab's own forward pass) for each typed text.
"use strict";
const DATA = JSON.parse(document.getElementById("rnnlab-data").textContent);
const $ = (id) => document.getElementById(id);
// The data counts characters by code point (Python's str); a JS string counts UTF-16 units, so an
// emoji or a mathematical letter would shift every later position: index this array, never DATA.text.
const CHARS = Array.from(DATA.text);

// --- packed arrays (rnnlab/explore/codec.py): 4 significant digits, deflate, base85 ----------
const ALPHABET = (() => { let s = ""; for (let c = 33; c < 126; c++) { const ch = String.fromCharCode(c); if (!"\"\\<'`|>&".includes(ch)) s += ch; } return s; })();
const INDEX = new Map([...ALPHABET].map((c, i) => [c, i]));
function b85decode(text) {
  const pad = (5 - text.length % 5) % 5;
  const full = text + ALPHABET[84].repeat(pad);
  const out = new Uint8Array(full.length / 5 * 4);
  for (let g = 0, o = 0; g < full.length; g += 5, o += 4) {
    let w = 0;
    for (let k = 0; k < 5; k++) w = w * 85 + INDEX.get(full[g + k]);
    out[o] = Math.floor(w / 16777216) & 255; out[o + 1] = (w >>> 16) & 255; out[o + 2] = (w >>> 8) & 255; out[o + 3] = w & 255;
  }
  return out.subarray(0, out.length - pad);
}
async function unpack(p) {
  const stream = new Blob([b85decode(p.data)]).stream().pipeThrough(new DecompressionStream("deflate"));
  const planes = new Uint8Array(await new Response(stream).arrayBuffer());
  const [T, H] = p.shape, n = T * H, values = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const head = planes[i], m = (planes[n + i] * 256 + planes[2 * n + i]) * (head & 1 ? -1 : 1), e = (head >> 1) - 64;
    values[i] = e >= 0 ? m * Math.pow(10, e) : m / Math.pow(10, -e);  // as codec._value
  }
  return { T, H, col: (j) => values.subarray(j * T, (j + 1) * T) };  // order "F": unit j's values over time
}
async function unpackConnectivity(conn) {  // conn.rows[i]: the norms for t' = t - n + 1 .. t
  const flat = (await unpack({ ...conn.values, shape: [conn.values.shape[0], 1] })).col(0);
  let end = 0;
  conn.rows = conn.lengths.map((n) => { end += n; return Array.from(flat.subarray(end - n, end)); });
}

// --- colours (the tests recompute these) ----------------------------------------------------------
function unitColour(v, scale) {  // red for positive, blue for negative, white at 0; scale = max |v| of the unit
  const a = scale > 0 ? Math.min(Math.abs(v) / scale, 1) : 0, k = Math.round(255 * (1 - a));
  return v >= 0 ? `rgb(255, ${k}, ${k})` : `rgb(${k}, ${k}, 255)`;
}
function connColour(a) {  // a = norm / the window's largest norm
  const k = Math.round(255 * (1 - a));
  return `rgb(${k}, ${Math.round(255 - 75 * a)}, ${k})`;
}
const show = (c) => c === "\n" ? "\u21b5" : c === " " ? "\u2423" : c === "\t" ? "\u21e5" : c;
const fmt = (x) => Number(x).toPrecision(4);

// --- state of the view --------------------------------------------------------------------------
const view = { layer: 0, state: "h", unit: 0, mode: "unit", selected: null, hovered: null, layers: [] };
const spans = [];

function columnOf(layer, state, unit) { return view.layers[layer][state].col(unit); }
function maxAbs(values) { let s = 0; for (const v of values) s = Math.max(s, Math.abs(v)); return s; }

function colourText() {
  if (view.mode === "connectivity" && view.selected !== null) return colourConnectivity();
  const values = columnOf(view.layer, view.state, view.unit), scale = maxAbs(values);
  for (let t = 0; t < spans.length; t++) spans[t].style.backgroundColor = unitColour(values[t], scale);
  document.querySelectorAll("#unit-list button").forEach((b) => b.classList.toggle("active",
    +b.dataset.layer === view.layer && b.dataset.state === view.state && +b.dataset.unit === view.unit));
}

function nearestComputed(conn, t) {  // the computed position at or before t (else the first)
  let best = 0;
  conn.positions.forEach((p, i) => { if (p <= t) best = i; });
  return best;
}
function colourConnectivity() {
  const conn = DATA.connectivity, i = nearestComputed(conn, view.selected), t = conn.positions[i], row = conn.rows[i];
  const peak = Math.max(...row), start = t - row.length + 1;
  for (let k = 0; k < spans.length; k++) spans[k].style.backgroundColor = "";
  row.forEach((v, j) => { spans[start + j].style.backgroundColor = connColour(peak > 0 ? v / peak : 0); });
  spans.forEach((s) => s.classList.remove("selected"));
  spans[t].classList.add("selected");
  drawConnectivity(i);
}

function drawConnectivity(i) {
  const svg = $("conn-plot"), W = 330, Hh = 170, pad = 30;
  const series = [{ name: DATA.model.name, conn: DATA.connectivity, colour: "#2a8" }]
    .concat(DATA.compare.map((c, k) => ({ name: c.model.name, conn: c.connectivity, colour: ["#c50", "#55c", "#a3a"][k % 3] })));
  const rows = series.map((s) => s.conn.rows[i] ? s.conn.rows[i].slice().reverse() : []);  // index = characters back
  const all = rows.flat().filter((v) => v > 0);
  if (!all.length) { svg.innerHTML = ""; return; }
  const lo = Math.floor(Math.log10(Math.min(...all))), hi = Math.ceil(Math.log10(Math.max(...all))), back = Math.max(...rows.map((r) => r.length));
  const x = (k) => pad + (W - pad - 8) * k / Math.max(back - 1, 1), y = (v) => 8 + (Hh - pad - 8) * (hi - Math.log10(v)) / Math.max(hi - lo, 1);
  let out = `<line x1="${pad}" y1="${Hh - pad + 2}" x2="${W - 8}" y2="${Hh - pad + 2}" stroke="#aaa"/>`;
  for (let d = lo; d <= hi; d++) out += `<text x="2" y="${y(Math.pow(10, d)) + 3}">1e${d}</text>`;
  out += `<text x="${pad}" y="${Hh - 8}">0</text><text x="${W - 90}" y="${Hh - 8}">${back - 1} chars back</text>`;
  rows.forEach((r, s) => {
    const pts = r.map((v, k) => v > 0 ? `${x(k).toFixed(1)},${y(v).toFixed(1)}` : null).filter(Boolean).join(" ");
    out += `<polyline fill="none" stroke="${series[s].colour}" stroke-width="1.5" points="${pts}"/>`;
  });
  svg.innerHTML = out;
  $("conn-legend").innerHTML = series.map((s) => `<span style="color:${s.colour}">&#9632; ${escapeHtml(s.name)} (${escapeHtml(s.conn === DATA.connectivity ? DATA.model.cell : DATA.compare[series.indexOf(s) - 1].model.cell)})</span>`).join(" &nbsp; ")
    + `<div class="dim">at position ${series[0].conn.positions[i]}; connectivity computed at ${DATA.connectivity.positions.length} of ${CHARS.length - 1} positions, up to ${DATA.connectivity.window} characters back</div>`;
}

// Every name and character from the data goes into HTML through this (text and attribute values alike).
function escapeHtml(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

function topkList(rows) {
  return rows.map(([c, p]) => `<li><b>${escapeHtml(show(c))}</b> <span class="p">${fmt(p)}</span><span class="bar" style="width:${Math.round(80 * p)}px"></span></li>`).join("");
}

function showInfo(t) {
  $("info-char").textContent = JSON.stringify(CHARS[t]);
  $("info-pos").textContent = `position ${t}`;
  const v = columnOf(view.layer, view.state, view.unit)[t];
  $("info-value").textContent = `layer ${view.layer} ${view.state}[${view.unit}] = ${fmt(v)}`;
  $("topk").innerHTML = topkList(DATA.topk[t]);
  $("topk-compare").innerHTML = DATA.compare.map((c) => `<h3>${escapeHtml(c.model.name)} (${escapeHtml(c.model.cell)})</h3><ol>${topkList(c.topk[t])}</ol>`).join("");
  const g = DATA.layers[view.layer].gates, j = g.units.indexOf(view.unit);
  if (!DATA.model.gates.length) $("gates").textContent = `a ${DATA.model.cell} cell has no gates`;
  else if (j < 0) $("gates").textContent = `embedded for the listed units only (this unit: rnnlab explore --all-gates)`;
  else $("gates").innerHTML = DATA.model.gates.map((name) => `<span>${escapeHtml(name)} = ${fmt(view.gateArrays[view.layer][name].col(j)[t])}</span>`).join("");
}

function buildText() {
  const frag = document.createDocumentFragment();
  for (let t = 0; t < CHARS.length; t++) {
    const s = document.createElement("span");
    s.className = "ch"; s.dataset.t = t; s.textContent = CHARS[t];
    spans.push(s); frag.appendChild(s);
  }
  const box = $("text");
  box.appendChild(frag);
  box.addEventListener("mouseover", (e) => {
    const t = e.target.dataset && e.target.dataset.t;
    if (t === undefined) return;
    if (view.hovered !== null) spans[view.hovered].classList.remove("hovered");
    view.hovered = +t; spans[+t].classList.add("hovered");
    showInfo(+t);
  });
  box.addEventListener("click", (e) => {
    const t = e.target.dataset && e.target.dataset.t;
    if (t === undefined || !DATA.connectivity.positions.length) return;
    view.selected = +t; view.mode = "connectivity"; $("mode").value = "connectivity";
    colourText();
  });
}

function buildControls() {
  $("model-name").textContent = `${DATA.model.name}: ${DATA.model.num_layers} x ${DATA.model.hidden_size} ${DATA.model.cell}` +
    DATA.compare.map((c) => `, beside ${c.model.name}: ${c.model.num_layers} x ${c.model.hidden_size} ${c.model.cell}`).join("");
  $("layer").replaceChildren(...DATA.layers.map((_, l) => new Option(String(l), String(l))));
  $("state").replaceChildren(...DATA.model.states.map((s) => new Option(s, s)));
  $("unit").max = DATA.model.hidden_size - 1;
  const update = () => {
    view.layer = +$("layer").value; view.state = $("state").value;
    view.unit = Math.max(0, Math.min(DATA.model.hidden_size - 1, +$("unit").value || 0));
    view.mode = $("mode").value;
    colourText(); if (view.hovered !== null) showInfo(view.hovered);
    requestLive();
  };
  ["layer", "state", "unit", "mode"].forEach((id) => $(id).addEventListener("change", update));
  const list = $("unit-list"), byFeature = new Map();
  DATA.units.forEach((u) => { if (!byFeature.has(u.feature)) byFeature.set(u.feature, []); byFeature.get(u.feature).push(u); });
  let html = `<p class="dim">${escapeHtml(DATA.features)} features; correlation of each unit with each feature over this text. Click to colour the text.</p>`;
  for (const [feature, units] of byFeature) {
    html += `<h3>${escapeHtml(feature)}</h3>` + units.map((u) => {
      const [layer, state, unit] = [u.layer, u.state, u.unit].map(escapeHtml);
      return `<button data-layer="${layer}" data-state="${state}" data-unit="${unit}">` +
        `layer ${layer} ${state}[${unit}]  r = ${u.correlation >= 0 ? "+" : ""}${Number(u.correlation).toFixed(3)}</button>`;
    }).join("");
  }
  list.innerHTML = html;
  list.addEventListener("click", (e) => {
    const b = e.target.closest("button"); if (!b) return;
    $("layer").value = b.dataset.layer; $("state").value = b.dataset.state; $("unit").value = b.dataset.unit; $("mode").value = "unit";
    update();
  });
}

// --- the live box (only when served): every keystroke asks the server for rnnlab's forward pass -----
let liveTimer = null, liveSeq = 0;
function requestLive() {
  if (!DATA.live) return;
  clearTimeout(liveTimer);
  liveTimer = setTimeout(async () => {
    const text = $("live-input").value, seq = ++liveSeq;
    if (!text) { $("live-text").innerHTML = ""; $("live-out").innerHTML = ""; document.body.dataset.live = "0"; return; }
    const q = new URLSearchParams({ text, layer: view.layer, state: view.state, unit: view.unit });
    let answer;
    try {
      answer = await (await fetch(`/api/live?${q}`)).json();
    } catch (e) {
      answer = { error: `no answer from the server (${e.message}); is rnnlab explore --serve still running?` };
    }
    if (seq !== liveSeq) return;  // a newer keystroke is on its way
    renderLive(answer);
  }, 60);
}
function renderLive(answer) {
  if (answer.error) { $("live-out").textContent = answer.error; document.body.dataset.live = String(liveSeq); return; }
  const withStates = answer.models.find((m) => m.values);  // values[t] follows reads, which may start with a prefix ("^")
  const typed = Array.from(answer.text);  // by code point, as the server counts
  const values = withStates ? withStates.values.slice(Array.from(withStates.reads).length - typed.length) : null;
  const scale = values ? Math.max(maxAbs(values), view.layers.length ? maxAbs(columnOf(view.layer, view.state, view.unit)) : 0) : 0;
  $("live-text").innerHTML = typed.map((c, t) =>
    `<span class="ch" style="background-color:${values ? unitColour(values[t], scale) : ""}">${escapeHtml(c)}</span>`).join("");
  $("live-out").innerHTML = answer.models.map((m, i) => {
    const last = m.topk[m.topk.length - 1], reads = Array.from(m.reads);
    let html = `<div class="live-model"><h3>${escapeHtml(m.name)}: after ${escapeHtml(JSON.stringify(answer.text))}</h3><ol id="live-topk-${i}">${topkList(last)}</ol>`;
    if (m.values) html += `<div class="dim">layer ${view.layer} ${escapeHtml(view.state)}[${view.unit}] = ${fmt(m.values[m.values.length - 1])}` +
      Object.entries(m.gates || {}).map(([g, v]) => `, ${escapeHtml(g)} = ${fmt(v[v.length - 1])}`).join("") + `</div>`;
    if (m.topk.length <= 40) html += `<table><tr><th>reads</th><th>next: top 3</th></tr>` + m.topk.map((row, t) =>
      `<tr><td>${escapeHtml(show(reads[t]))}</td><td>${row.slice(0, 3).map(([c, p]) => `${escapeHtml(show(c))} ${fmt(p)}`).join(", ")}</td></tr>`).join("") + `</table>`;
    return html + `</div>`;
  }).join("");
  document.body.dataset.live = String(liveSeq);  // tests wait for this
}

async function main() {
  buildControls();
  buildText();
  view.layers = await Promise.all(DATA.layers.map(async (layer) => {
    const out = {};
    for (const s of DATA.model.states) out[s] = await unpack(layer[s]);
    return out;
  }));
  view.gateArrays = await Promise.all(DATA.layers.map(async (layer) => {
    const out = {};
    for (const g of DATA.model.gates) if (layer.gates[g]) out[g] = await unpack(layer.gates[g]);
    return out;
  }));
  await Promise.all([DATA.connectivity].concat(DATA.compare.map((c) => c.connectivity)).map(unpackConnectivity));
  if (DATA.units.length) { const u = DATA.units[0]; $("layer").value = u.layer; $("state").value = u.state; $("unit").value = u.unit; }
  view.layer = +$("layer").value; view.state = $("state").value; view.unit = +$("unit").value;
  colourText();
  if (DATA.live) { $("live").hidden = false; $("live-input").addEventListener("input", requestLive); }
  $("status").textContent = `${CHARS.length} characters`;
  window.rnnlab = { data: DATA, view, unitColour, connColour };
  document.body.dataset.ready = "1";  // tests wait for this
}
main().catch((e) => { $("status").textContent = `error: ${e}`; console.error(e); });

// The status page: reads /v1/model and /v1/models every few seconds, scores with /v1/predict.
"use strict";

const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
// Every version seen while the page is open: the store retains only the newest few, and the
// chart should show how the AUC got where it is.
const seen = new Map();

function text(id, value) { $(id).textContent = value; }

function fmt(value, digits = 3) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

function ago(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 90) return `${s.toFixed(0)} s`;
  if (s < 5400) return `${(s / 60).toFixed(0)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(0)} days`;
}

function gate(metrics) {
  // A published version passed the gate, or the gate had too few held-out examples to judge.
  if (metrics && typeof metrics.holdout_logloss === "number") {
    return `passed (holdout log-loss ${fmt(metrics.holdout_logloss)})`;
  }
  return "not judged (holdout too small)";
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function showServed(info) {
  text("served-version", `v${info.model_version}`);
  const note = $("trained-note");
  note.textContent = info.trained
    ? `trained from ${String(info.manifest.base_model || "the base model").split("/").slice(-2).join("/")}`
    : "untrained: version 0 is the base model; its scores mean nothing until the first version is published";
  note.className = info.trained ? "note" : "note warn";
  const watermark = info.manifest.data_watermark_ms;
  text("freshness", watermark ? ago(watermark) : "–");
  text("examples", info.manifest.examples_seen !== undefined ? info.manifest.examples_seen.toLocaleString() : "0");
  text("pin-note", info.pinned !== null && info.pinned !== undefined ? `pinned to v${info.pinned} on this replica` : "");
}

function showLineage(listing) {
  const body = $("lineage").querySelector("tbody");
  body.replaceChildren();
  for (const entry of [...listing.versions].reverse()) {
    const m = entry.manifest || {};
    const metrics = m.metrics || {};
    const cells = [
      `v${entry.version}${entry.version === listing.serving ? " (served)" : ""}`,
      m.parent_version ?? "–",
      m.created_at ? new Date(m.created_at).toLocaleString() : "–",
      m.examples_in_version ?? "–",
      m.examples_seen ?? "–",
      fmt(metrics.prequential_auc),
      fmt(metrics.holdout_auc),
      entry.error ? `unreadable: ${entry.error}` : gate(metrics),
    ];
    const row = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      td.textContent = String(cell);
      row.appendChild(td);
    }
    body.appendChild(row);
  }
  text("lineage-note", listing.versions.length ? "" : "No version published yet: send events and watch this table grow.");
  drawAuc(listing.versions);
}

function svg(name, attributes, content) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (content !== undefined) node.textContent = content;
  return node;
}

function drawAuc(versions) {
  const chart = $("auc-chart");
  chart.replaceChildren();
  for (const v of versions) {
    if (v.manifest && v.manifest.metrics && typeof v.manifest.metrics.prequential_auc === "number") {
      seen.set(v.version, { t: Date.parse(v.manifest.created_at), auc: v.manifest.metrics.prequential_auc, version: v.version });
    }
  }
  const points = [...seen.values()].sort((a, b) => a.version - b.version);
  const [left, right, top, bottom] = [40, 630, 10, 190];
  chart.appendChild(svg("line", { class: "axis", x1: left, y1: bottom, x2: right, y2: bottom }));
  chart.appendChild(svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: bottom }));
  for (const level of [0.5, 0.75, 1.0]) {
    const y = bottom - (level - 0.4) / 0.6 * (bottom - top);
    chart.appendChild(svg("text", { x: 4, y: y + 4 }, level.toFixed(2)));
  }
  if (points.length === 0) {
    chart.appendChild(svg("text", { x: 200, y: 100 }, "no prequential AUC yet (needs both labels in the stream)"));
    return;
  }
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  const x = (t) => (t1 > t0 ? left + (t - t0) / (t1 - t0) * (right - left) : (left + right) / 2);
  const y = (auc) => bottom - (Math.max(0.4, Math.min(1, auc)) - 0.4) / 0.6 * (bottom - top);
  chart.appendChild(svg("polyline", { class: "line", points: points.map((p) => `${x(p.t)},${y(p.auc)}`).join(" ") }));
  for (const p of points) {
    const dot = svg("circle", { class: "dot", cx: x(p.t), cy: y(p.auc), r: 3 });
    dot.appendChild(svg("title", {}, `v${p.version}: AUC ${fmt(p.auc)}`));
    chart.appendChild(dot);
  }
  chart.appendChild(svg("text", { x: left, y: 210 }, new Date(t0).toLocaleTimeString()));
  chart.appendChild(svg("text", { x: right - 60, y: 210 }, new Date(t1).toLocaleTimeString()));
}

async function refresh() {
  try {
    showServed(await getJson("/v1/model"));
  } catch (error) {
    text("served-version", "not ready");
    text("trained-note", String(error.message));
  }
  try {
    showLineage(await getJson("/v1/models"));
  } catch (error) {
    text("lineage-note", `lineage unavailable: ${error.message}`);
  }
}

$("predict-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const context = $("context").value.trim();
  const instance = context ? { text: $("text").value, context } : { text: $("text").value };
  text("prediction", "scoring…");
  try {
    const response = await fetch("/v1/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ instances: [instance] }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
    const note = body.trained === false ? " (untrained version 0)" : "";
    text("prediction", `score ${body.predictions[0].score.toFixed(4)} by v${body.model_version}${note}`);
  } catch (error) {
    text("prediction", `error: ${error.message}`);
  }
});

refresh();
setInterval(refresh, REFRESH_MS);

// Tiergate dashboard: reads /api/stats with the form's filters and draws charts (Chart.js) and tables.
// window.tiergate.ready becomes true after each complete render (the browser test waits on it).
"use strict";

const PALETTE = ["#3b6fd8", "#e07a2e", "#2aa876", "#c03e6e", "#8a5cd1", "#b59a16", "#3aa3b8", "#6b7280"];
const state = { charts: {}, ready: false, data: null };
window.tiergate = state;

const usd = (x) => (x === null || x === undefined ? "–" : "$" + Number(x).toFixed(6));
const int = (x) => (x === null || x === undefined ? "–" : String(Math.round(x)));
const ms = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(1));
const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%");
const bucketLabel = (t, bucket) => {
  const iso = new Date(t * 1000).toISOString();
  return bucket === "day" ? iso.slice(0, 10) : iso.slice(0, 13).replace("T", " ") + ":00";
};

function filtersFromUrl() {
  const p = new URLSearchParams(location.search);
  const form = document.getElementById("filters");
  for (const name of ["since", "bucket", "user", "tag"]) if (p.get(name)) form.elements[name].value = p.get(name);
  if (p.get("from")) {
    form.elements.since.value = "custom";
    form.elements.from.value = p.get("from").slice(0, 16);
    if (p.get("to")) form.elements.to.value = p.get("to").slice(0, 16);
  }
  form.classList.toggle("custom", form.elements.since.value === "custom");
  return p;
}

function queryFromForm() {
  const f = document.getElementById("filters").elements;
  const q = new URLSearchParams();
  if (f.since.value === "custom") {
    if (f.from.value) q.set("from", f.from.value + ":00Z");
    if (f.to.value) q.set("to", f.to.value + ":00Z");
  } else {
    q.set("since", f.since.value);
  }
  for (const name of ["policy", "key", "bucket", "user", "tag"]) if (f[name].value) q.set(name, f[name].value);
  return q;
}

function fillChoices(select, values, current) {
  const keep = current || select.value;
  select.replaceChildren(new Option("all", ""));
  for (const v of values) select.add(new Option(v, v));
  if (keep && !values.includes(keep)) select.add(new Option(keep, keep));
  select.value = keep || "";
}

function cell(tr, text, field, raw) {
  const td = tr.insertCell();
  td.textContent = text;
  if (field) td.dataset.field = field;
  if (raw !== undefined && raw !== null) td.dataset.raw = String(raw);
  return td;
}

// The per-model table's columns after the model name: field, format, and whether the totals row shows it.
const MODEL_COLUMNS = [
  ["tier", (v) => (v === null || v === undefined ? "–" : String(v)), false],
  ["requests", int, true],
  ["errors", int, true],
  ["degraded", int, true],
  ["prompt_tokens", int, true],
  ["cached_tokens", int, true],
  ["completion_tokens", int, true],
  ["estimated_usage", int, true],
  ["cost_usd", usd, true],
  ["baseline_cost_usd", usd, true],
  ["saved_usd", usd, true],
  ["cache_hit_rate", pct, false],
  ["p50_ms", ms, false],
  ["p95_ms", ms, false],
  ["mean_judgement", (v, m) => (v === null || v === undefined ? "–" : `${v.toFixed(2)} (${m.judged})`), true],
];

function modelRow(section, name, label, values, isTotal) {
  const tr = section.insertRow();
  tr.dataset.model = name;
  cell(tr, label, "model");
  for (const [field, fmt, summed] of MODEL_COLUMNS) {
    if (isTotal && !summed) cell(tr, "");
    else cell(tr, fmt(values[field], values), field, values[field]);
  }
}

// A table in a section that stays hidden while it has no rows; each row is keyed (data-<key[0]>) by its key[1].
function fillSection(id, items, key, columns) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren();
  for (const item of items) {
    const row = body.insertRow();
    row.dataset[key[0]] = item[key[1]];
    for (const [field, fmt] of columns) cell(row, fmt(item[field], item), field, item[field]);
  }
  document.querySelector(`#${id}-section`).hidden = items.length === 0;
}

function renderTables(d) {
  const body = document.querySelector("#models tbody");
  body.replaceChildren();
  for (const m of d.models) modelRow(body, m.model, m.model, m, false);
  const foot = document.querySelector("#models tfoot");
  foot.replaceChildren();
  const t = d.totals;
  modelRow(foot, "TOTAL", "Total", t, true);

  for (const [field, fmt] of [["requests", int], ["errors", int], ["cost_usd", usd], ["baseline_cost_usd", usd], ["saved_usd", usd]]) {
    document.querySelector(`[data-total="${field}"]`).textContent = fmt(t[field]);
  }

  const tiers = document.querySelector("#tiers tbody");
  tiers.replaceChildren();
  for (const r of d.tiers) {
    const row = tiers.insertRow();
    cell(row, String(r.tier), "tier", r.tier);
    cell(row, int(r.requests), "requests", r.requests);
    cell(row, usd(r.cost_usd), "cost_usd", r.cost_usd);
  }

  // Only policies with `cascade` produce these rows, and only requests naming their end user (`user`) those.
  const conf = (v) => (v === null ? "–" : v.toFixed(3));
  fillSection("cascade", d.cascade, ["model", "draft_model"], [
    ["draft_model", String], ["kept", int], ["escalated", int], ["draft_failed", int], ["keep_rate", pct],
    ["mean_confidence", conf], ["escalated_draft_cost_usd", usd],
  ]);
  fillSection("users", d.users, ["user", "end_user"], [
    ["end_user", String], ["requests", int], ["tokens", int], ["cost_usd", usd], ["baseline_cost_usd", usd],
    ["saved_usd", usd],
  ]);
  fillSection("tags", d.tags, ["tag", "tag"], [
    ["tag", String], ["requests", int], ["tokens", int], ["cost_usd", usd], ["baseline_cost_usd", usd],
    ["saved_usd", usd],
  ]);

  const series = document.querySelector("#series tbody");
  series.replaceChildren();
  for (const b of byBucket(d.series)) {
    const row = series.insertRow();
    cell(row, bucketLabel(b.bucket_start, d.range.bucket), "bucket_start", b.bucket_start);
    cell(row, int(b.requests), "requests", b.requests);
    cell(row, usd(b.cost_usd), "cost_usd", b.cost_usd);
    cell(row, usd(b.baseline_cost_usd), "baseline_cost_usd", b.baseline_cost_usd);
    cell(row, usd(b.saved_usd), "saved_usd", b.saved_usd);
  }
}

function byBucket(series) {
  const out = new Map();
  for (const s of series) {
    const b = out.get(s.bucket_start) || { bucket_start: s.bucket_start, requests: 0, cost_usd: 0, baseline_cost_usd: 0, saved_usd: 0 };
    b.requests += s.requests;
    b.cost_usd += s.cost_usd;
    b.baseline_cost_usd += s.baseline_cost_usd;
    b.saved_usd += s.saved_usd;
    out.set(s.bucket_start, b);
  }
  return [...out.values()].sort((a, b) => a.bucket_start - b.bucket_start);
}

function draw(id, config) {
  if (state.charts[id]) state.charts[id].destroy();
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
  state.charts[id] = new Chart(document.getElementById(id), config);
}

function renderCharts(d) {
  const buckets = [...new Set(d.series.map((s) => s.bucket_start))].sort((a, b) => a - b);
  const labels = buckets.map((b) => bucketLabel(b, d.range.bucket));
  const models = [...new Set(d.series.map((s) => s.model))].sort();
  const color = (i) => PALETTE[i % PALETTE.length];
  draw("chart-spend", {
    type: "bar",
    data: {
      labels,
      datasets: models.map((m, i) => ({
        label: m,
        backgroundColor: color(i),
        data: buckets.map((b) => (d.series.find((s) => s.bucket_start === b && s.model === m) || { cost_usd: 0 }).cost_usd),
      })),
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "USD" } } } },
  });
  const agg = byBucket(d.series);
  draw("chart-savings", {
    type: "line",
    data: {
      labels,
      datasets: [
        { label: "spend", borderColor: color(0), data: agg.map((b) => b.cost_usd) },
        { label: "baseline", borderColor: color(1), data: agg.map((b) => b.baseline_cost_usd) },
        { label: "saved", borderColor: color(2), data: agg.map((b) => b.saved_usd) },
      ],
    },
    options: { scales: { y: { title: { display: true, text: "USD" } } } },
  });
  draw("chart-requests", {
    type: "bar",
    data: { labels: d.models.map((m) => m.model), datasets: [{ label: "requests", backgroundColor: color(0), data: d.models.map((m) => m.requests) }] },
  });
  draw("chart-tiers", {
    type: "doughnut",
    data: {
      labels: d.tiers.map((t) => "tier " + t.tier),
      datasets: [{ data: d.tiers.map((t) => t.requests), backgroundColor: d.tiers.map((_, i) => color(i)) }],
    },
  });
  const answered = d.models.filter((m) => m.p50_ms !== null);
  draw("chart-latency", {
    type: "bar",
    data: {
      labels: answered.map((m) => m.model),
      datasets: [
        { label: "p50", backgroundColor: color(0), data: answered.map((m) => m.p50_ms) },
        { label: "p95", backgroundColor: color(1), data: answered.map((m) => m.p95_ms) },
      ],
    },
  });
}

// "used / limit", or just "used" when the key has no such limit.
const ofLimit = (used, limit, fmt) => (limit === null ? fmt(used) : `${fmt(used)} / ${fmt(limit)}`);

// Keys come from the policy file; without any (an open gateway) the section stays hidden. Their use is the limits'
// own count (GET /api/keys), always up to now: a limit is about the last minute or the budget's window.
async function loadKeys() {
  const resp = await fetch("/api/keys");
  if (!resp.ok) return;
  const keys = (await resp.json()).data;
  const body = document.querySelector("#keys tbody");
  body.replaceChildren();
  for (const k of keys) {
    const row = body.insertRow();
    row.dataset.key = k.key_id;
    cell(row, k.name, "name");
    cell(row, k.key_id, "key_id");
    cell(row, k.admin ? "yes" : "no", "admin");
    cell(row, k.policies ? k.policies.join(", ") : "all", "policies");
    cell(row, ofLimit(k.requests_last_minute, k.rpm, int), "requests_last_minute", k.requests_last_minute);
    cell(row, ofLimit(k.tokens_last_minute, k.tpm, int), "tokens_last_minute", k.tokens_last_minute);
    cell(row, `${usd(k.spent_usd)} (${k.spent_per})`, "spent_usd", k.spent_usd);
    cell(row, usd(k.budget_usd), "budget_usd", k.budget_usd);
  }
  document.querySelector("#keys-section").hidden = keys.length === 0;
}

// "3 / 4, 2 waiting": calls in flight from the answering worker, against the model's cap if it has one.
function inFlight(m) {
  const cap = m.max_concurrency === null ? "" : ` / ${m.max_concurrency}`;
  return `${m.in_flight}${cap}${m.waiting ? `, ${m.waiting} waiting` : ""}`;
}

// Each model's state now (GET /api/models): whether routing may use it, its servers, its spend in its budget's window
// (or the last 24h) against that budget.
async function loadModels() {
  const resp = await fetch("/api/models");
  if (!resp.ok) return;
  fillSection("model-status", (await resp.json()).data, ["model", "name"], [
    ["name", String], ["tier", String], ["status", String], ["servers", String],
    ["in_flight", (_, m) => inFlight(m)], ["spent_usd", usd],
    ["spent_per", String], ["budget_usd", (v) => (v === null ? "–" : usd(v))],
  ]);
}

// The 50 newest requests under the same filters (GET /api/requests): what each was, one line each.
async function loadRequests(q) {
  const resp = await fetch("/api/requests?limit=50&" + q.toString());
  if (!resp.ok) return;
  const time = (ts) => new Date(ts * 1000).toISOString().slice(11, 19);
  fillSection("requests", (await resp.json()).data, ["requestId", "request_id"], [
    // A refused request was routed nowhere: the model it asked for says which app's call it was.
    ["ts", time], ["endpoint", String], ["routed_model", (v, r) => v || (r.requested_model ? `asked: ${r.requested_model}` : "–")],
    ["tier", (v) => (v === null ? "–" : String(v))],
    ["status", String], ["cache", String], ["cost_usd", usd], ["latency_ms", (v) => v.toFixed(1)],
    ["tags", (v) => v.join(", ")], ["request_id", String],
  ]);
}

async function load() {
  state.ready = false;
  const status = document.getElementById("status");
  const q = queryFromForm();
  history.replaceState(null, "", "?" + q.toString());
  document.getElementById("csv-models").href = "/api/stats.csv?" + q.toString();
  const qs = new URLSearchParams(q);
  qs.set("table", "series");
  document.getElementById("csv-series").href = "/api/stats.csv?" + qs.toString();
  const resp = await fetch("/api/stats?" + q.toString());
  const d = await resp.json();
  if (!resp.ok) {
    status.textContent = "Error: " + (d.error ? d.error.message : resp.status);
    status.classList.add("error");
    return;
  }
  state.data = d;
  const f = document.getElementById("filters").elements;
  fillChoices(f.policy, d.choices.policies, d.filters.policy);
  fillChoices(f.key, d.choices.keys, d.filters.key);
  renderTables(d);
  renderCharts(d);
  await loadKeys();
  await loadModels();
  await loadRequests(q);
  const from = new Date(d.range.since * 1000).toISOString().slice(0, 16).replace("T", " ");
  const to = new Date(d.range.until * 1000).toISOString().slice(0, 16).replace("T", " ");
  status.textContent = `${d.totals.requests} requests from ${from} to ${to} UTC, ${d.range.bucket} buckets`;
  status.classList.remove("error");
  state.ready = true;
}

document.addEventListener("DOMContentLoaded", () => {
  const p = filtersFromUrl();
  const form = document.getElementById("filters");
  for (const name of ["policy", "key"]) if (p.get(name)) fillChoices(form.elements[name], [], p.get(name));
  form.elements.since.addEventListener("change", () => form.classList.toggle("custom", form.elements.since.value === "custom"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    load();
  });
  load();
});

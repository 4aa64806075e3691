// Rampart dashboard: log in, render each pushed snapshot, run operator actions. No external assets; all text
// goes in through textContent (never innerHTML), so nothing from the server is interpreted as markup.
"use strict";

const $ = (id) => document.getElementById(id);
const WORDS = {"emergency-stop": "STOP", "resume": "RESUME", "clear-breaker": "CLEAR"};
const EXPLAIN = {
  "emergency-stop": "Cancels every open order, sells every position Rampart manages at market and sets HALTED.",
  "resume": "Leaves SAFE_MODE/HALTED: new entries are allowed again.",
  "clear-breaker": "Lifts the chosen circuit breaker's cooldown.",
};
let me = null;          // {name, role, csrf, can_act}
let stream = null;      // EventSource
let last = null;        // the newest snapshot
let pending = null;     // the action the dialog is about

// --- formatting -------------------------------------------------------------------------------------------
const num = (v, d = 2) => (v === null || v === undefined || Number.isNaN(v)) ? "-" :
  Number(v).toLocaleString("en-US", {minimumFractionDigits: d, maximumFractionDigits: d});
const signed = (v) => (v === null || v === undefined) ? "-" : (v > 0 ? "+" : "") + num(v);
const pct = (v, d = 2) => (v === null || v === undefined) ? "-" : num(v * 100, d) + " %";
const time = (ms) => (ms === null || ms === undefined) ? "-" : new Date(ms).toISOString().replace("T", " ").slice(0, 19);
function ago(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "-";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}
function left(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min ${s % 60} s`;
}
function setText(id, text, cls) {
  const el = $(id);
  el.textContent = text;
  el.classList.remove("pos", "neg");
  if (cls) el.classList.add(cls);
}
const tone = (v) => (v > 0 ? "pos" : v < 0 ? "neg" : null);
function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

// --- rendering --------------------------------------------------------------------------------------------
function render(s) {
  last = s;
  const state = s.state || "UNKNOWN";
  const badge = $("state");
  badge.textContent = state;
  badge.className = "badge state-" + state;
  setText("state-text", state + (s.derisked ? " (de-risked)" : "") + (s.latency_paused ? " (latency pause)" : ""));
  const kind = s.mode === "paper" ? "forward paper session (simulated fills)" : "live session";
  setText("source", s.source === "session" ? `${kind} ${String(s.session_id || "").slice(0, 8)}` :
    "no session running: from the database");
  const banner = $("halt-banner");
  banner.hidden = !s.halt;
  if (s.halt) banner.textContent = `HALTED by ${s.halt.who}: ${s.halt.reason}`;

  const pnl = s.pnl || {};
  setText("equity", num(s.equity));
  setText("pnl-realized", signed(pnl.realized), tone(pnl.realized));
  setText("pnl-unrealized", signed(pnl.unrealized), tone(pnl.unrealized));
  setText("pnl-today", signed(pnl.today), tone(pnl.today));
  setText("pnl-since-start", signed(pnl.since_start), tone(pnl.since_start));
  setText("exposure", pct(s.exposure));
  setText("trades", s.trades ?? "-");

  setText("mode", `${s.mode || "live"} on ${s.exchange || "-"}`);
  setText("rung", s.rung ? `rung ${s.rung}: risk ${pct(s.risk_per_trade)} / trade, cap ${pct(s.exposure_cap, 0)}` : "-");
  setText("latency", s.latency_s === null || s.latency_s === undefined ? "-" : num(s.latency_s, 3) + " s");
  const gate = s.gate;
  setText("gate", gate ? gate.why : "no gate record", gate ? (gate.ok ? "pos" : "neg") : null);

  const m = s.metrics;
  // a ratio with no closed trade behind it (null) reads "—", never "0.0 %" or "0.00"; a profit factor with trades
  // but no loss is infinite (stored as null too)
  const ratio = (v, f, inf) => (v === null || v === undefined) ? (inf && m.trades ? "\u221e" : "\u2014") : f(v);
  setText("m-win-rate", m ? ratio(m.win_rate, (v) => pct(v, 1)) : "-");
  setText("m-profit-factor", m ? ratio(m.profit_factor, num, true) : "-");
  setText("m-drawdown", m ? pct(m.max_drawdown) : "-");
  setText("m-sharpe", m ? ratio(m.sharpe, num) : "-");
  setText("m-trades", m ? String(m.trades) : "-");
  setText("m-ts", m ? time(m.ts) : "not computed yet");

  renderPositions(s.positions || []);
  renderBreakers(s.breakers || []);
  renderDecisions(s.decisions || []);
  renderList("alerts", s.alerts || [], (a) => `${time(a.ts)} ${a.severity.toUpperCase()} ${a.code}: ${a.reason}`);
  renderList("events", s.events || [], (e) => `${time(e.ts)} ${e.severity.toUpperCase()} ${e.code}: ${e.message}`);
  drawChart(s.equity_curve || []);
  tick();
  renderActions();
}

function renderPositions(rows) {
  const body = $("positions");
  body.replaceChildren();
  for (const p of rows) {
    const tr = document.createElement("tr");
    tr.dataset.symbol = p.symbol;
    cell(tr, p.symbol);
    cell(tr, num(p.qty, 6));
    cell(tr, num(p.avg_price));
    cell(tr, num(p.mark));
    cell(tr, num(p.stop));
    cell(tr, signed(p.unrealized), tone(p.unrealized));
    body.appendChild(tr);
  }
  $("no-positions").hidden = rows.length > 0;
}

function renderBreakers(rows) {
  const body = $("breakers");
  body.replaceChildren();
  for (const b of rows) {
    const tr = document.createElement("tr");
    tr.dataset.breaker = b.name;
    cell(tr, b.name);
    cell(tr, b.tripped ? "BLOCKING" : "ok", b.tripped ? "neg" : "pos");
    cell(tr, b.tripped ? left(b.ms_left) : "-");
    body.appendChild(tr);
  }
}

function renderDecisions(rows) {
  const body = $("decisions");
  body.replaceChildren();
  for (const d of rows) {
    const tr = document.createElement("tr");
    cell(tr, time(d.ts));
    cell(tr, d.symbol || "-");
    cell(tr, `${d.kind || ""} ${d.action || ""}`.trim());
    cell(tr, d.code || "-");
    const why = cell(tr, d.reason || "");  // a refusal: its code and numbers; the signal's reason on hover
    if (d.signal) why.title = "signal: " + d.signal;
    body.appendChild(tr);
  }
}

function renderList(id, rows, line) {
  const ul = $(id);
  ul.replaceChildren();
  for (const r of rows) {
    const li = document.createElement("li");
    li.textContent = line(r);
    if (r.severity) li.className = "sev-" + r.severity;
    ul.appendChild(li);
  }
  if (!rows.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "none";
    ul.appendChild(li);
  }
}

// The equity curve as an SVG polyline (hand-rolled: no chart library, no CDN).
function drawChart(points) {
  const svg = $("equity-chart");
  svg.replaceChildren();
  const NS = "http://www.w3.org/2000/svg";
  const W = 800, H = 220, PAD = 28;
  if (points.length < 2) {
    const t = document.createElementNS(NS, "text");
    t.setAttribute("x", "20"); t.setAttribute("y", "110"); t.setAttribute("class", "axis");
    t.textContent = "no equity marks yet";
    svg.appendChild(t);
    return;
  }
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
  const sx = (x) => PAD + (W - 2 * PAD) * (x1 === x0 ? 1 : (x - x0) / (x1 - x0));
  const sy = (y) => H - PAD - (H - 2 * PAD) * (y - y0) / (y1 - y0);
  const line = document.createElementNS(NS, "polyline");
  line.setAttribute("points", points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "));
  line.setAttribute("class", "curve");
  svg.appendChild(line);
  for (const [y, label] of [[y1, num(y1)], [y0, num(y0)]]) {
    const t = document.createElementNS(NS, "text");
    t.setAttribute("x", "4"); t.setAttribute("y", String(sy(y) + (y === y1 ? 10 : -2)));
    t.setAttribute("class", "axis");
    t.textContent = label;
    svg.appendChild(t);
  }
  const t = document.createElementNS(NS, "text");
  t.setAttribute("x", String(W - PAD)); t.setAttribute("y", String(H - 6));
  t.setAttribute("class", "axis end");
  t.textContent = time(x1);
  svg.appendChild(t);
}

// Ages tick between pushes, from the server's clock at the snapshot (no push needed for a clock).
function tick() {
  const s = last;
  if (!s) return;
  const skew = Date.now() - (s.server_time || Date.now());
  const now = (Date.now() - skew) / 1000;
  const data = s.data || {};
  if (data.last_bar_at) {
    setText("freshness", `last candle ${time(data.last_candle_ts)}, received ${ago(now - data.last_bar_at)}`);
  } else {
    setText("freshness", data.last_candle_ts ? `last mark ${time(data.last_candle_ts)}` : "-");
  }
  const c = s.connectivity;
  if (!c) setText("connectivity", "no session running");
  else if (c.ok) setText("connectivity", `connected, last call ${ago(now - c.last_ok_at)}`, "pos");
  else setText("connectivity", c.last_error ? `failing: ${c.last_error}` : "no call yet", "neg");
}

function renderActions() {
  const can = !!(me && me.can_act);
  const paper = !!(last && last.mode === "paper");  // no real account: nothing for the emergency stop to flatten
  for (const id of ["btn-emergency", "btn-resume", "btn-clear-breaker"]) {
    const off = !can || (paper && id === "btn-emergency");
    $(id).hidden = off;
    $(id).disabled = off;
  }
  $("actions-note").textContent = can ? "Each action asks for a reason and a typed confirmation." :
    `You are logged in as a ${me ? me.role : "viewer"}: operator actions need the operator role.`;
}

// --- push ---------------------------------------------------------------------------------------------------
function connect() {
  if (stream) stream.close();
  stream = new EventSource("/api/stream");
  stream.addEventListener("snapshot", (e) => { render(JSON.parse(e.data)); setText("conn", "live"); });
  stream.onopen = () => setText("conn", "live");
  stream.onerror = () => {
    setText("conn", "reconnecting", "neg");
    fetch("/api/me", {credentials: "same-origin"}).then((r) => { if (r.status === 401) showLogin(); });
  };
}

// --- login ----------------------------------------------------------------------------------------------------
function showLogin(message) {
  if (stream) { stream.close(); stream = null; }
  me = null;
  $("dash").hidden = true;
  $("btn-logout").hidden = true;
  $("who").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-token").focus();
}

async function start(who) {
  me = who;
  $("login").hidden = true;
  $("dash").hidden = false;
  $("btn-logout").hidden = false;
  $("who").textContent = `${who.name} (${who.role})`;
  renderActions();
  const r = await fetch("/api/snapshot", {credentials: "same-origin"});
  if (r.ok) render(await r.json());
  connect();
}

async function login(event) {
  event.preventDefault();
  const input = $("login-token");
  const body = new URLSearchParams({token: input.value});
  input.value = "";  // the token is not kept in the page
  const r = await fetch("/login", {method: "POST", body, credentials: "same-origin"});
  const data = await r.json().catch(() => ({}));
  if (!r.ok) { showLogin(data.detail || "login failed"); return; }
  await start(data);
}

async function logout() {
  await fetch("/logout", {method: "POST", credentials: "same-origin", headers: {"X-CSRF-Token": me ? me.csrf : ""}});
  showLogin("logged out");
}

// --- actions ----------------------------------------------------------------------------------------------------
function openDialog(action) {
  pending = action;
  $("action-title").textContent = $(`btn-${action === "emergency-stop" ? "emergency" : action}`).textContent;
  $("action-explain").textContent = EXPLAIN[action];
  $("action-word").textContent = WORDS[action];
  $("breaker-row").hidden = action !== "clear-breaker";
  $("action-reason").value = "";
  $("action-confirm").value = "";
  $("action-go").disabled = true;
  $("action-dialog").showModal();
  $("action-reason").focus();
}

function dialogReady() {
  $("action-go").disabled = !($("action-reason").value.trim() && $("action-confirm").value.trim() === WORDS[pending]);
}

async function runAction() {
  const action = pending;
  const body = {reason: $("action-reason").value.trim(), confirm: true};
  if (action === "clear-breaker") body.breaker = $("action-breaker").value;
  $("action-go").disabled = true;
  $("action-dialog").close();
  setText("action-result", `${action}: sent, waiting for the answer...`);
  const r = await fetch(`/api/actions/${action}`, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": me.csrf}, body: JSON.stringify(body),
  });
  const data = await r.json().catch(() => ({}));
  if (r.ok) setText("action-result", `${action} accepted: ${data.summary || data.detail || ""}`, "pos");
  else setText("action-result", `${action} refused (${data.code || r.status}): ${data.detail || ""}`, "neg");
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", login);
  $("btn-logout").addEventListener("click", logout);
  for (const id of ["btn-emergency", "btn-resume", "btn-clear-breaker"]) {
    $(id).addEventListener("click", (e) => openDialog(e.currentTarget.dataset.action));
  }
  $("action-reason").addEventListener("input", dialogReady);
  $("action-confirm").addEventListener("input", dialogReady);
  $("action-cancel").addEventListener("click", () => $("action-dialog").close());
  $("action-go").addEventListener("click", runAction);
  setInterval(tick, 1000);
  const r = await fetch("/api/me", {credentials: "same-origin"});
  if (r.ok) await start(await r.json());
  else showLogin();
});

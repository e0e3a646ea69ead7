// The supervisor console's page. Plain JavaScript, no framework; every text from the
// server is inserted as text (never as HTML). The live view comes from a server-sent-event
// stream (/console/api/stream); actions are POSTs carrying the sign-in's CSRF token.
"use strict";

const state = { me: null, range: "today", rangeFigures: null, snapshot: null, chart: null,
  chat: null };

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: {} };
  if (options.body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRF-Token"] = state.me ? state.me.csrf : "";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) { location.href = "/console/signin"; throw new Error("signed out"); }
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : { error: await response.text() };
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function notice(text, error = false) {
  const box = $("notice");
  box.textContent = text;
  box.className = error ? "notice error" : "notice";
  box.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { box.hidden = true; }, 8000);
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "string") return value;
  const s = Math.round(value);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

// the p90 wait is known to within its histogram bucket: "at most" its upper bound
function upTo(value) {
  if (value === null || value === undefined) return "–";
  return typeof value === "string" ? value : `≤ ${seconds(value)}`;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

// -- actions ------------------------------------------------------------------------------

async function act(path, body, done) {
  try {
    const result = await api(path, { body });
    notice(result.message);
    if (done) await done();
  } catch (error) {
    notice(error.message, true);
  }
}

const chatPath = (tenant, session) =>
  `/console/api/chats/${encodeURIComponent(tenant)}/${encodeURIComponent(session)}`;

function agentPicker(tenant, session) {
  const dept = state.me.departments.find((d) => d.id === tenant);
  const select = el("select", { class: "assign-agent", "aria-label": "agent" },
    (dept ? dept.agents : []).map((a) => el("option", { value: a.id }, a.name)));
  const button = el("button", { class: "assign primary", on: { click: () =>
    act(`${chatPath(tenant, session)}/assign`, { agent: select.value }, refreshChat) } }, "Assign");
  return [select, button];
}

function transferPicker(tenant, session) {
  const select = el("select", { class: "transfer-target", "aria-label": "department" },
    state.me.all_departments.filter((d) => d.id !== tenant)
      .map((d) => el("option", { value: d.id }, d.name)));
  const button = el("button", { class: "transfer", on: { click: () =>
    act(`${chatPath(tenant, session)}/transfer`, { target: select.value }, refreshChat) } },
  "Transfer");
  return [select, button];
}

function closer(tenant, session) {
  const reason = el("input", { class: "close-reason", placeholder: "reason the guest is told",
    "aria-label": "reason" });
  const button = el("button", { class: "force-close danger", on: { click: () =>
    act(`${chatPath(tenant, session)}/close`, { reason: reason.value }, refreshChat) } },
  "Force-close");
  return [reason, button];
}

// -- live ---------------------------------------------------------------------------------

function figures(dept) {
  if (state.range === "hour") return dept.hour;
  if (state.range === "today") return dept.today;
  return state.rangeFigures ? state.rangeFigures[dept.id] : null;
}

function tile(label, value, id, hot = false) {
  return el("div", { class: hot ? "tile hot" : "tile", "data-figure": id },
    el("div", { class: "n" }, value), el("div", { class: "l" }, label));
}

function pairs(obj, names) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return "none";
  return entries.map(([k, v]) => `${names(k)} ${v}`).join(", ");
}

function deptName(id) {
  const d = state.me.all_departments.find((x) => x.id === id);
  return d ? d.name : id;
}

function renderDepartment(dept) {
  const f = figures(dept) || {};
  const card = el("div", { class: "dept", "data-tenant": dept.id },
    el("h2", {}, dept.name, dept.enabled ? "" : " (disabled)"));
  card.append(el("div", { class: "tiles" },
    tile("in the pipeline", dept.pipeline.count, "pipeline"),
    tile(`waiting (longest ${seconds(dept.waiting.longest)})`, dept.waiting.count, "waiting",
      dept.waiting.count > 0),
    tile("connected", dept.connected.count, "connected"),
    tile("started", f.started ?? "–", "started"),
    tile("deflected by the FAQ", f.deflected ?? "–", "deflected"),
    tile("avg speed to answer", seconds(f.speed_to_answer), "asa"),
    tile("p90 wait", upTo(f.p90_wait), "p90"),
    tile(`feedback (${f.rated ?? 0} rated)`, f.feedback ? f.feedback.toFixed(2) : "–", "feedback")));
  card.append(el("div", { class: "muted", "data-figure": "transfers" },
    `Transfers in: ${pairs(f.received, deptName)}. Out: ${pairs(f.sent, deptName)}. `,
    `Abandoned while waiting: ${f.abandoned ?? 0}; timed out: ${f.timed_out ?? 0}.`));

  const stages = Object.entries(dept.pipeline.by_stage);
  card.append(el("h3", {}, "In the pipeline, by stage"),
    el("div", { class: "by-stage" }, stages.length
      ? stages.map(([k, v]) => `${k}: ${v}`).join(" · ") : "nobody"));

  card.append(el("h3", {}, "Waiting for an agent"));
  const waiting = el("table", { class: "grid waiting" });
  for (const g of dept.waiting.guests) {
    waiting.append(el("tr", { "data-session": g.session },
      el("td", {}, el("a", { href: `#chat/${g.tenant}/${g.session}`, class: "guest" }, g.guest)),
      el("td", { class: "waited" }, seconds(g.waited)),
      el("td", { class: "muted" }, g.offered.length ? `offered to ${g.offered.join(", ")}` : ""),
      el("td", {}, agentPicker(g.tenant, g.session))));
  }
  card.append(dept.waiting.guests.length ? waiting : el("div", { class: "muted" }, "nobody"));

  card.append(el("h3", {}, "Connected, by agent"));
  const connected = el("table", { class: "grid connected" });
  for (const c of dept.connected.chats) {
    connected.append(el("tr", { "data-session": c.session },
      el("td", {}, c.agent),
      el("td", {}, el("a", { href: `#chat/${c.tenant}/${c.session}`, class: "guest" }, c.guest)),
      el("td", { class: "muted" }, when(c.since))));
  }
  card.append(dept.connected.chats.length ? connected : el("div", { class: "muted" }, "none"));

  card.append(el("h3", {}, "Agents"));
  const agents = el("table", { class: "grid agents" });
  for (const a of dept.agents) {
    const select = el("select", { class: "presence-set", "aria-label": `presence of ${a.name}`,
      on: { change: () => act(`/console/api/agents/${encodeURIComponent(a.id)}/presence`,
        { presence: select.value }) } },
    ["available", "away", "offline"].map((p) => el("option", p === a.presence
      ? { value: p, selected: "" } : { value: p }, p)));
    agents.append(el("tr", { "data-agent": a.id },
      el("td", {}, a.name, a.reachable ? "" : el("span", { class: "muted" }, " (app not installed)")),
      el("td", {}, el("span", { class: `presence ${a.presence}` }, a.presence)),
      el("td", { class: "load" }, `${a.load} / ${a.capacity} chats`),
      el("td", { class: "skills muted" }, a.skills || ""),
      el("td", {}, select)));
  }
  card.append(agents);
  return card;
}

function renderLive() {
  const snap = state.snapshot;
  if (!snap) return;
  const box = $("departments");
  const focused = document.activeElement && box.contains(document.activeElement);
  if (focused && document.activeElement.tagName === "SELECT") return; // don't yank a menu open
  box.replaceChildren(...Object.values(snap.departments).map(renderDepartment));
  $("updated").textContent = new Date(snap.at).toLocaleTimeString();
}

function connectStream() {
  const source = new EventSource("/console/api/stream");
  source.onmessage = (event) => {
    state.snapshot = JSON.parse(event.data);
    renderLive();
  };
  source.addEventListener("signedout", () => { source.close(); location.href = "/console/signin"; });
}

// the figures of a date range come from /console/api/figures (the rollups of the range's
// days), read when the range is chosen or shown again; the live counts stay live
async function applyRange() {
  const chosen = document.querySelector("input[name=range]:checked").value;
  state.range = chosen;
  if (chosen === "dates") {
    const params = new URLSearchParams({ from: $("range-from").value, to: $("range-to").value });
    const asked = state.rangeAsked = (state.rangeAsked || 0) + 1;
    state.rangeFigures = null;
    $("range-note").textContent = "";
    renderLive();
    let data;
    try { data = await api(`/console/api/figures?${params}`); } catch (error) {
      if (asked === state.rangeAsked) notice(error.message, true);
      return;
    }
    if (asked !== state.rangeAsked) return; // a later range was asked meanwhile
    state.rangeFigures = Object.fromEntries(Object.entries(data.departments)
      .map(([id, d]) => [id, d.figures]));
    $("range-note").textContent = `${data.from} to ${data.to}, as of ${new Date().toLocaleTimeString()}`;
  } else {
    $("range-note").textContent = "";
  }
  renderLive();
}

function showRange() {
  document.querySelector("input[name=range][value=dates]").checked = true;
  applyRange();
}

// -- a chat's page ------------------------------------------------------------------------

async function openChat(tenant, session) {
  state.chat = { tenant, session };
  await refreshChat();
}

async function refreshChat() {
  if (!state.chat) return;
  const { tenant, session } = state.chat;
  let page;
  try { page = await api(chatPath(tenant, session)); } catch (error) {
    notice(error.message, true); return;
  }
  // closed, or another chat opened, while this one was being read
  if (state.chat?.tenant !== tenant || state.chat?.session !== session) return;
  const s = page.session;
  $("chat-title").textContent = `${s.guest || "Guest"} · ${s.department} · ${s.state}` +
    (s.state === "open" ? ` (${s.phase})` : "");
  const actions = $("chat-actions");
  actions.replaceChildren();
  if (s.state === "open") {
    if (s.phase === "waiting") actions.append(...agentPicker(tenant, session));
    actions.append(...transferPicker(tenant, session), ...closer(tenant, session));
  }
  $("chat-timeline").replaceChildren(...page.timeline.map((e) =>
    el("li", {}, el("span", { class: "muted" }, when(e.at)), " ", el("b", {}, e.what), " ", e.detail)));
  const fb = Object.entries(page.feedback);
  $("chat-feedback").replaceChildren(fb.length ? fb.map(([k, v]) => el("div", {}, `${k}: ${v}`))
    : el("span", { class: "muted" }, "none"));
  const kv = (obj) => Object.entries(obj).map(([k, v]) =>
    el("tr", {}, el("td", {}, k), el("td", {}, v === null ? "–" : String(v))));
  $("chat-transferred").replaceChildren(...kv(page.transferred));
  $("chat-metadata").replaceChildren(...kv(page.metadata));
  $("chat-transcript").replaceChildren(...page.transcript.map((line) =>
    el("div", { class: line.visible ? "line" : "line hidden" },
      el("span", { class: "dept" }, line.department),
      el("span", { class: "who" }, line.speaker),
      line.to && line.to !== "guest" ? el("span", { class: "muted" }, ` to ${line.to}`) : "",
      el("span", { class: "muted" }, ` ${when(line.at)}: `), line.text)));
  $("chat").hidden = false;
}

function route() {
  const match = location.hash.match(/^#chat\/([^/]+)\/(.+)$/);
  if (match) openChat(decodeURIComponent(match[1]), decodeURIComponent(match[2]));
  else { $("chat").hidden = true; state.chat = null; }
}

// -- search -------------------------------------------------------------------------------

async function search(event) {
  event.preventDefault();
  const params = new URLSearchParams(new FormData($("search-form")));
  try {
    const found = await api(`/console/api/search?${params}`);
    $("search-results").tBodies[0].replaceChildren(...found.results.map((r) =>
      el("tr", { "data-session": r.session_id },
        el("td", {}, when(r.created_at)), el("td", {}, r.guest), el("td", {}, r.department),
        el("td", {}, r.state), el("td", {}, r.agent || ""),
        el("td", {}, el("a", { href: `#chat/${r.tenant_id}/${r.session_id}` }, "Open")))));
    if (!found.results.length) notice("No chat matches.");
  } catch (error) { notice(error.message, true); }
}

// -- reports ------------------------------------------------------------------------------

function reportQuery() {
  const params = new URLSearchParams();
  if ($("report-from").value) params.set("from", $("report-from").value);
  if ($("report-to").value) params.set("to", $("report-to").value);
  if ($("report-tenant").value) params.set("tenant", $("report-tenant").value);
  return params;
}

async function report(event) {
  if (event) event.preventDefault();
  const params = reportQuery();
  $("csv-days").href = `/console/api/reports.csv?${params}`;
  $("csv-transfers").href = `/console/api/reports.csv?${params}&table=transfers`;
  let data;
  try { data = await api(`/console/api/reports?${params}`); } catch (error) {
    notice(error.message, true); return;
  }
  $("report-table").tBodies[0].replaceChildren(...data.rows.map((r) => el("tr", {},
    el("td", {}, r.day), el("td", {}, r.department), el("td", {}, r.started),
    el("td", {}, r.received), el("td", {}, r.deflected), el("td", {}, r.transferred),
    el("td", {}, r.abandoned), el("td", {}, r.timed_out), el("td", {}, r.answered),
    el("td", {}, seconds(r.speed_to_answer_s)), el("td", {}, upTo(r.p90_wait_s)),
    el("td", {}, r.feedback === null ? "–" : `${r.feedback} (${r.rated})`))));
  const names = [...new Set([...Object.keys(data.transfers),
    ...Object.values(data.transfers).flatMap((t) => Object.keys(t))])];
  $("report-matrix").tHead.replaceChildren(el("tr", {}, el("th", {}, ""), names.map((n) => el("th", {}, n))));
  $("report-matrix").tBodies[0].replaceChildren(...Object.entries(data.transfers).map(([from, to]) =>
    el("tr", {}, el("th", {}, from), names.map((n) => el("td", {}, to[n] || 0)))));
  drawChart(data.rows);
}

function drawChart(rows) {
  if (typeof Chart === "undefined") { notice("The chart library is missing: run scripts/setup.", true); return; }
  const days = [...new Set(rows.map((r) => r.day))];
  const sum = (field) => days.map((d) => rows.filter((r) => r.day === d)
    .reduce((n, r) => n + (r[field] || 0), 0));
  const data = { labels: days, datasets: [
    { label: "started", data: sum("started"), backgroundColor: "#4b53bc" },
    { label: "deflected", data: sum("deflected"), backgroundColor: "#1e7a3c" },
    { label: "transferred", data: sum("transferred"), backgroundColor: "#c4841d" },
    { label: "abandoned", data: sum("abandoned"), backgroundColor: "#b3261e" },
  ] };
  if (state.chart) { state.chart.data = data; state.chart.update(); return; }
  state.chart = new Chart($("report-chart"), { type: "bar", data,
    options: { animation: false, responsive: true, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
}

// -- start --------------------------------------------------------------------------------

function showTab(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.tab === name);
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== name;
  if (name === "reports") report();
}

async function start() {
  state.me = await api("/console/api/me");
  $("who").textContent = `${state.me.name}${state.me.admin ? " (admin)" : ""}`;
  $("dev-banner").hidden = !state.me.dev_mode;
  for (const select of [$("search-tenant"), $("report-tenant")]) {
    select.append(...state.me.departments.map((d) => el("option", { value: d.id }, d.name)));
  }
  const today = new Date().toISOString().slice(0, 10);
  const weekAgo = new Date(Date.now() - 6 * 86400e3).toISOString().slice(0, 10);
  for (const [id, value] of [["range-from", weekAgo], ["range-to", today],
    ["report-from", weekAgo], ["report-to", today]]) $(id).value = value;
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
  for (const radio of document.querySelectorAll("input[name=range]")) radio.addEventListener("change", applyRange);
  $("range-apply").addEventListener("click", showRange);
  $("search-form").addEventListener("submit", search);
  $("report-form").addEventListener("submit", report);
  $("chat-close").addEventListener("click", () => { location.hash = ""; });
  $("signout").addEventListener("click", async () => {
    await api("/console/signout", { body: {} }).catch(() => {});
    location.href = state.me.dev_mode ? "/console/" : "/console/signin";
  });
  window.addEventListener("hashchange", route);
  route();
  connectStream();
}

document.addEventListener("DOMContentLoaded", () => start().catch((error) => notice(error.message, true)));

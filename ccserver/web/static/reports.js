// Daily / weekly / monthly reports per queue or per agent, with a CSV download of the same rows.
// The choice is kept in the address (?kind=queues&period=day&from=...&to=...&name=...), so a report
// can be shared and reloaded.
"use strict";

const $ = (id) => document.getElementById(id);

// Durations: s, m:ss, or h:mm:ss for the hours an agent is logged in.
function dur(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  if (s < 3600) return cc.secs(s);
  const pad = (n) => String(n).padStart(2, "0");
  return `${Math.floor(s / 3600)}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

// kind -> the filter's query parameter and label, and the columns: [heading, cell of a row]
const KINDS = {
  queues: {
    param: "queue", label: "Queue",
    columns: [
      ["Queue", (r) => r.queue],
      ["Offered", (r) => r.offered],
      ["Answered", (r) => r.answered],
      ["Abandoned (short)", (r) => `${r.abandoned} (${r.short_abandoned})`],
      ["Other", (r) => r.other],
      ["Service level", (r) => `${cc.pct(r.service_level)} / ${r.service_level_seconds}s`],
      ["Abandon rate", (r) => cc.pct(r.abandon_rate)],
      ["ASA", (r) => dur(r.asa_seconds)],
      ["AHT", (r) => dur(r.aht_seconds)],
    ],
  },
  agents: {
    param: "agent", label: "Agent",
    columns: [
      ["Agent", (r) => r.agent_id],
      ["Answered", (r) => r.answered],
      ["Talk", (r) => dur(r.talk_seconds)],
      ["Hold", (r) => dur(r.hold_seconds)],
      ["Wrap-up", (r) => dur(r.wrapup_seconds)],
      ["AHT", (r) => dur(r.aht_seconds)],
      ["Logged in", (r) => dur(r.logged_in_seconds)],
      ["Paused", (r) => dur(r.paused_seconds)],
      ["Available", (r) => dur(r.available_seconds)],
      ["Busy", (r) => dur(r.busy_seconds)],
      ["Occupancy", (r) => cc.pct(r.occupancy)],
    ],
  },
};

function isoDay(d) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function query() {
  const kind = KINDS[$("r-kind").value];
  const q = new URLSearchParams({ period: $("r-period").value, from: $("r-from").value, to: $("r-to").value });
  const name = $("r-name").value.trim();
  if (name) q.set(kind.param, name);
  return q;
}

async function names() {
  const kind = $("r-kind").value;
  $("r-name-label").textContent = KINDS[kind].label;
  const list = await cc.api("GET", kind === "queues" ? "/api/v1/queues" : "/api/v1/agents").catch(() => []);
  $("r-names").replaceChildren(...list.map((x) => {
    const o = document.createElement("option");
    o.value = x.id || x.name;
    return o;
  }));
}

async function show(ev) {
  if (ev) ev.preventDefault();
  $("report-error").textContent = "";
  const kindName = $("r-kind").value;
  const kind = KINDS[kindName];
  const q = query();
  history.replaceState(null, "", `/reports?${new URLSearchParams({ kind: kindName, name: $("r-name").value.trim(),
    period: q.get("period"), from: q.get("from"), to: q.get("to") })}`);
  const path = `/api/v1/reports/${kindName}?${q}`;
  $("report-status").textContent = "Loading…";
  let rows;
  try {
    rows = await cc.api("GET", path);
  } catch (e) {
    $("report-status").textContent = "";
    $("report-error").textContent = e.message;
    $("csv-link").hidden = true;
    return;
  }
  const head = cc.el("tr");
  for (const h of ["Period", ...kind.columns.map((c) => c[0])]) head.appendChild(cc.el("th", h));
  document.querySelector("#report thead").replaceChildren(head);
  document.querySelector("#report tbody").replaceChildren(...rows.map((r) => {
    const tr = cc.row([r.period_start, ...kind.columns.map((c) => c[1](r))]);
    for (const td of [...tr.children].slice(2)) td.className = "num";
    tr.dataset.period = r.period_start;
    tr.dataset.key = r.queue || r.agent_id;
    return tr;
  }));
  $("report-status").textContent = rows.length ? `${rows.length} row(s).` : "No activity in this range.";
  q.set("format", "csv");
  $("csv-link").href = `/api/v1/reports/${kindName}?${q}`;
  $("csv-link").hidden = false;
}

(async () => {
  await cc.whoami();
  const params = new URLSearchParams(location.search);
  const today = new Date();
  const monthAgo = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 30);
  $("r-kind").value = KINDS[params.get("kind")] ? params.get("kind") : "queues";
  $("r-period").value = ["day", "week", "month"].includes(params.get("period")) ? params.get("period") : "day";
  $("r-from").value = params.get("from") || isoDay(monthAgo);
  $("r-to").value = params.get("to") || isoDay(today);
  $("r-name").value = params.get("name") || "";
  $("r-kind").addEventListener("change", () => { $("r-name").value = ""; names(); });
  $("report-form").addEventListener("submit", show);
  await names();
  await show();
})();

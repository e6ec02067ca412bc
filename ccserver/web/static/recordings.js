// Find the call behind a complaint: search finished calls, open one, play or download its recording.
// The search is kept in the address (?caller=...#call=<id>), so a found call can be shared and reloaded.
"use strict";

const $ = (id) => document.getElementById(id);
// form field -> API query parameter
const FIELDS = { "q-caller": "caller", "q-agent": "agent", "q-queue": "queue", "q-did": "did" };
const TIMES = { "q-since": "since", "q-until": "until" };
const LIMIT = 100;

function when(iso) { return iso ? new Date(iso).toLocaleString() : "–"; }

// A datetime-local value (the browser's zone) as ISO 8601 with a zone, as the API requires.
function isoOf(local) { return local ? new Date(local).toISOString() : null; }

// An ISO time back into a datetime-local value (for a search restored from the address).
function localOf(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${date}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function query() {
  const q = new URLSearchParams();
  for (const [id, name] of Object.entries(FIELDS)) {
    const v = $(id).value.trim();
    if (v) q.set(name, v);
  }
  for (const [id, name] of Object.entries(TIMES)) {
    const v = isoOf($(id).value);
    if (v) q.set(name, v);
  }
  return q;
}

async function search(ev) {
  if (ev) ev.preventDefault();
  $("search-error").textContent = "";
  const q = query();
  if (q.has("since") && q.has("until") && q.get("since") >= q.get("until")) {
    $("search-error").textContent = "From must be before To.";
    return;
  }
  history.replaceState(null, "", `/recordings${q.size ? `?${q}` : ""}${location.hash}`);
  q.set("limit", String(LIMIT));
  $("search-status").textContent = "Searching…";
  try {
    show(await cc.api("GET", `/api/v1/recordings/calls?${q}`));
  } catch (e) {
    $("search-status").textContent = "";
    $("search-error").textContent = e.message;
  }
}

function show(calls) {
  const body = document.querySelector("#results tbody");
  body.replaceChildren(...calls.map((c) => {
    const duration = (new Date(c.ended_at) - new Date(c.arrived_at)) / 1000;
    const tr = cc.row([when(c.arrived_at), c.caller, c.did, c.queue || "", c.agent_id || "", cc.secs(duration),
      c.disposition, c.recordings.length ? "yes" : "no"]);
    tr.dataset.call = c.call_id;
    tr.tabIndex = 0;
    tr.onclick = () => openCall(c.call_id);
    tr.onkeydown = (e) => { if (e.key === "Enter") openCall(c.call_id); };
    return tr;
  }));
  $("search-status").textContent = !calls.length ? "No calls found."
    : calls.length === LIMIT ? `The newest ${LIMIT} calls: narrow the search to see older ones.`
      : `${calls.length} call(s).`;
}

function field(dl, label, value) {
  dl.append(cc.el("dt", label), cc.el("dd", value === null || value === undefined || value === "" ? "–" : value));
}

async function openCall(callId) {
  $("search-error").textContent = "";
  let found;
  try {
    found = await cc.api("GET", `/api/v1/recordings/calls?${new URLSearchParams({ call_id: callId })}`);
  } catch (e) {
    $("search-error").textContent = e.message;
    return;
  }
  const c = found[0];
  if (!c) {
    $("search-error").textContent = `Call ${callId} is not among the calls you may see.`;
    return;
  }
  history.replaceState(null, "", `${location.pathname}${location.search}#call=${encodeURIComponent(callId)}`);
  for (const tr of document.querySelectorAll("#results tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.call === callId);
  }
  $("detail-id").textContent = c.call_id;
  const dl = $("detail-fields");
  dl.replaceChildren();
  field(dl, "Caller", c.caller);
  field(dl, "Dialled (DID)", c.did);
  field(dl, "Queue", c.queue);
  field(dl, "Agent", c.agent_id);
  field(dl, "Disposition", c.disposition);
  field(dl, "Hung up by", `${c.hangup_by} (${c.hangup_cause})`);
  field(dl, "Arrived", when(c.arrived_at));
  field(dl, "Left the IVR", when(c.ivr_ended_at));
  field(dl, "Queued", when(c.enqueued_at));
  field(dl, "Answered", when(c.answered_at));
  // a call that ended while the PBX link was down: its end is when the link went down
  field(dl, "Ended", when(c.ended_at) + (c.end_estimated ? " (estimated: the PBX link was down)" : ""));
  field(dl, "Talk", cc.secs(c.talk_seconds));
  field(dl, "Hold", cc.secs(c.hold_seconds));
  field(dl, "Wrap-up", cc.secs(c.wrapup_seconds));
  field(dl, "Rang unanswered", c.ring_no_answer);
  field(dl, "Node", c.node);
  $("detail-path").textContent = c.ivr_path.length ? c.ivr_path.join(" → ") : "–";
  const vars = Object.entries(c.variables);
  $("detail-vars").textContent = vars.length ? vars.map(([k, v]) => `${k}=${v}`).join(", ") : "–";
  $("detail-recordings").replaceChildren(...(c.recordings.length ? c.recordings.map(recording)
    : [cc.el("p", "This call was not recorded.")]));
  $("call-detail").hidden = false;
  $("call-detail").scrollIntoView({ block: "nearest" });
}

function recording(r) {
  const box = cc.el("div", null, "recording");
  box.dataset.recording = r.id;
  const dl = cc.el("dl", null, "fields");
  field(dl, "Started", when(r.started_at));
  field(dl, "Ended", when(r.ended_at));
  field(dl, "Length", r.duration_seconds === null ? null : cc.secs(r.duration_seconds));
  field(dl, "Size", r.size_bytes === null ? null : `${r.size_bytes.toLocaleString()} bytes`);
  field(dl, "SHA-256", r.sha256);
  field(dl, "Paused (s from start)", r.paused_spans.map(([a, b]) => `${a.toFixed(1)}–${b.toFixed(1)}`).join(", ")
    || "never");
  box.appendChild(dl);
  if (r.ended_at === null) {
    box.appendChild(cc.el("p", "Still recording: it can be played once the call has ended."));
    return box;
  }
  // The server answers Range requests, so the player can seek; plays and downloads are audited.
  const audio = document.createElement("audio");
  audio.controls = true;
  audio.preload = "metadata";
  audio.src = r.audio_url;
  audio.onerror = () => box.appendChild(cc.el("p", "The recording cannot be played (deleted by retention?).",
    "error"));
  const link = cc.el("a", "Download");
  link.href = r.download_url;
  link.setAttribute("download", `recording-${r.id}.wav`);
  box.append(audio, " ", link);
  return box;
}

// Suggestions for the agent and queue fields: what the user may see.
async function suggestions() {
  const fill = (id, values) => $(id).replaceChildren(...values.map((v) => {
    const o = document.createElement("option");
    o.value = v;
    return o;
  }));
  const [agents, queues] = await Promise.all([cc.api("GET", "/api/v1/agents").catch(() => []),
    cc.api("GET", "/api/v1/queues").catch(() => [])]);
  fill("agent-ids", agents.map((a) => a.id));
  fill("queue-names", queues.map((q) => q.name));
}

(async () => {
  await cc.whoami();
  $("search-form").addEventListener("submit", search);
  const params = new URLSearchParams(location.search);
  for (const [id, name] of Object.entries(FIELDS)) $(id).value = params.get(name) || "";
  for (const [id, name] of Object.entries(TIMES)) $(id).value = params.get(name) ? localOf(params.get(name)) : "";
  suggestions();
  if ([...params.keys()].length) await search();
  const linked = new URLSearchParams(location.hash.slice(1)).get("call");
  if (linked) await openCall(linked);
})();

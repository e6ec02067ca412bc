"use strict";
(async () => {
  const user = await cc.whoami();
  const id = user.agent_id;
  const error = document.getElementById("action-error");
  // The choices are the server's acd.pause_reasons: the API refuses any other reason.
  const reasons = document.getElementById("pause-reason");
  for (const reason of (await cc.api("GET", "/api/v1/pause-reasons")).reasons) {
    reasons.append(new Option(reason, reason));
  }
  let me = null;
  let calls = [];
  // The recording of the call being talked on, as the server knows it (whether the PBX started
  // it, whether it is paused): fetched when that call changes and after each button.
  const recError = document.getElementById("recording-error");
  const REC_TEXT = { none: "Not recorded", starting: "Recording is starting…", running: "Recording",
    paused: "Recording paused", failed: "Recording did not start" };
  let recCall = null;  // the connected call the controls are for
  let rec = null;  // its GET /api/v1/calls/{id}/recording
  let recTimer = null;

  const renderRecording = () => {
    const box = document.getElementById("recording-controls");
    const s = rec && rec.call_id === recCall ? rec : null;
    // shown only on a call that is (or may be, on demand) recorded
    box.hidden = !s || (s.state === "none" && s.policy !== "on_demand");
    if (!s) return;
    document.getElementById("recording-state").textContent = REC_TEXT[s.state] + (s.reason ? ` (${s.reason})` : "");
    document.getElementById("btn-rec-pause").hidden = s.state !== "running";
    document.getElementById("btn-rec-resume").hidden = s.state !== "paused";
    document.getElementById("btn-rec-start").hidden = !(["none", "failed"].includes(s.state) && s.policy === "on_demand");
  };

  const loadRecording = async () => {
    clearTimeout(recTimer);
    const callId = recCall;
    if (callId) {
      try {
        const got = await cc.api("GET", `/api/v1/calls/${encodeURIComponent(callId)}/recording`);
        if (callId !== recCall) return;  // another call meanwhile: its own load renders
        rec = got;
        if (rec.state === "starting") recTimer = setTimeout(loadRecording, 1000);
      } catch (e) {
        rec = null;  // the call just ended
      }
    }
    renderRecording();
  };

  const recAct = async (action) => {
    recError.textContent = "";
    try {
      await cc.api("POST", `/api/v1/calls/${encodeURIComponent(recCall)}/recording/${action}`);
    } catch (e) {
      recError.textContent = e.message;
    }
    await loadRecording();
  };

  const render = () => {
    if (!me) {
      document.getElementById("agent-state").textContent = id ? "unknown agent" : "no agent linked to this user";
      return;
    }
    document.getElementById("agent-state").textContent = me.state.replace("_", " ");
    document.getElementById("agent-reason").textContent = me.reason ? `(${me.reason})` : "";
    document.getElementById("agent-since").textContent = me.since ? new Date(me.since * 1000).toLocaleTimeString() : "–";
    const call = calls.find((c) => c.call_id === me.call_id);
    const pop = document.getElementById("screen-pop");
    pop.hidden = !call;
    const talking = call && call.state === "connected" && me.state === "on_call" ? call.call_id : null;
    if (talking !== recCall) {
      recCall = talking;
      rec = null;
      recError.textContent = "";
      loadRecording();
    }
    if (call) {
      document.getElementById("pop-caller").textContent = call.caller;
      document.getElementById("pop-did").textContent = call.did;
      document.getElementById("pop-queue").textContent = call.queue || "";
      document.getElementById("pop-path").textContent = call.ivr_path.join(" → ");
      document.getElementById("pop-vars").textContent =
        Object.entries(call.variables).map(([k, v]) => `${k}=${v}`).join(", ");
    }
  };

  const act = async (path, body) => {
    error.textContent = "";
    try {
      me = await cc.api("POST", `/api/v1/agents/${encodeURIComponent(id)}/${path}`, body);
      render();
    } catch (e) {
      error.textContent = e.message;
    }
  };
  document.getElementById("btn-login").onclick = () => act("login", {});
  document.getElementById("btn-ready").onclick = () => act("ready");
  document.getElementById("btn-pause").onclick = () => act("pause", { reason: document.getElementById("pause-reason").value });
  document.getElementById("btn-wrapup").onclick = () => act("wrapup-done");
  document.getElementById("btn-logout").onclick = () => act("logout");
  document.getElementById("btn-rec-pause").onclick = () => recAct("pause");
  document.getElementById("btn-rec-resume").onclick = () => recAct("resume");
  document.getElementById("btn-rec-start").onclick = () => recAct("start");

  cc.live((msg) => {
    if (msg.type === "snapshot") { me = msg.agents.find((a) => a.id === id) || null; calls = msg.calls; }
    else if (msg.type === "agent" && msg.agent.id === id) me = msg.agent;
    else if (msg.type === "queues") calls = msg.calls;
    render();
  });
})();

"use strict";
(async () => {
  const user = await cc.whoami();
  const id = user.agent_id;
  const error = document.getElementById("action-error");
  let me = null;
  let calls = [];

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

  cc.live((msg) => {
    if (msg.type === "snapshot") { me = msg.agents.find((a) => a.id === id) || null; calls = msg.calls; }
    else if (msg.type === "agent" && msg.agent.id === id) me = msg.agent;
    else if (msg.type === "queues") calls = msg.calls;
    render();
  });
})();

"use strict";
(async () => {
  await cc.whoami();
  const agents = new Map();
  const spies = new Map();  // session id -> who monitors whom
  let queues = [];
  let nodes = {};
  let siteAlerts = [];
  let serverOffset = 0;  // server clock minus ours, for "time in state"

  // every node's dial string of the agent; a mixed fleet rings one person through either
  const phones = (a) => a.devices.map((d) => {
    const used = a.device_in_use?.node === d.node && a.device_in_use?.device === d.device;
    return `${d.node} ${d.device}${used ? " (in use)" : ""}`;
  }).join(", ");

  const render = () => {
    const now = Date.now() / 1000 + serverOffset;
    cc.alerts(document.getElementById("alerts"), queues, nodes, siteAlerts);
    const qb = document.querySelector("#queues tbody");
    cc.fill(qb, queues.map((q) => {
      const k = q.kpis;
      const tr = cc.row([q.name, k.waiting, cc.secs(k.longest_wait_seconds),
        `${cc.pct(k.service_level)} / ${q.service_level_seconds}s`, cc.secs(k.asa_seconds),
        cc.pct(k.abandon_rate), k.answered, cc.mmss(k.aht_seconds), k.short_abandoned,
        k.agents_ready, k.agents_on_call, k.agents_paused],
        k.breached ? "breached" : "");
      tr.dataset.queue = q.name;
      return tr;
    }));
    const wb = document.querySelector("#waiting tbody");
    cc.fill(wb, queues.flatMap((q) => q.waiting.map((w) => {
      const tr = cc.row([q.name, w.position, w.caller, cc.secs(w.wait_seconds),
        cc.secs(w.expected_wait_seconds), w.priority, w.step,
        Object.entries(w.requirements).map(([k, v]) => `${k} ≥ ${v}`).join(", "), w.ringing_agent || ""]);
      tr.dataset.call = w.call_id;
      return tr;
    })));
    const sb = document.getElementById("spies");
    sb.replaceChildren(...[...spies.values()].map((s) => {
      const li = document.createElement("li");
      const name = agents.get(s.agent_id)?.name || s.agent_id;
      li.textContent = `${s.supervisor} ${s.mode === "listen" ? "listens to" : s.mode === "whisper"
        ? "whispers to" : "barges in on"} ${name}${s.active ? "" : " (ringing)"}`;
      li.dataset.session = s.id;
      return li;
    }));
    const ab = document.querySelector("#agents tbody");
    cc.fill(ab, [...agents.values()].map((a) => {
      const tr = cc.row([a.name, a.state.replace("_", " "), a.reason || "", a.since ? cc.secs(now - a.since) : "–",
        a.calls_handled, a.queues.join(", "), phones(a)], `state-${a.state}`);
      tr.dataset.agent = a.id;
      return tr;
    }));
  };

  cc.live((msg) => {
    if (msg.now) serverOffset = msg.now - Date.now() / 1000;
    if (msg.type === "snapshot") {
      agents.clear();
      for (const a of msg.agents) agents.set(a.id, a);
      queues = msg.queues;
      nodes = msg.nodes;
      siteAlerts = msg.alerts;
      spies.clear();
      for (const s of msg.spies || []) spies.set(s.id, s);
    } else if (msg.type === "spy") {
      if (msg.event === "ended") spies.delete(msg.session.id);
      else spies.set(msg.session.id, msg.session);
    } else if (msg.type === "agent") {
      agents.set(msg.agent.id, msg.agent);
    } else if (msg.type === "queues") {
      queues = msg.queues;
      if (msg.nodes) nodes = msg.nodes;
      if (msg.alerts) siteAlerts = msg.alerts;
    }
    render();
  });
})();

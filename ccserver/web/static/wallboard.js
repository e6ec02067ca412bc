"use strict";
const NEXT_CALLERS = 5;  // waiting callers listed per queue (the tiles count them all)
(async () => {
  await cc.whoami();
  let queues = [];
  let nodes = {};
  let siteAlerts = [];
  const tile = (label, value, cls) => {
    const d = cc.el("div", null, "tile " + (cls || ""));
    d.appendChild(cc.el("span", value, "value"));
    d.appendChild(cc.el("span", label, "label"));
    return d;
  };
  const render = () => {
    cc.alerts(document.getElementById("alerts"), queues, nodes, siteAlerts);
    document.getElementById("tiles").replaceChildren(...queues.map((q) => {
      const k = q.kpis;
      const sec = cc.el("section", null, "queue" + (k.breached ? " breached" : ""));
      sec.dataset.queue = q.name;
      sec.appendChild(cc.el("h2", q.name));
      for (const t of [
        tile("waiting", k.waiting, "waiting"), tile("longest wait", cc.secs(k.longest_wait_seconds)),
        tile(`service level (${q.service_level_seconds}s)`, cc.pct(k.service_level), "sl"),
        tile("ASA", cc.secs(k.asa_seconds)), tile("AHT", cc.mmss(k.aht_seconds), "aht"),
        tile("abandoned", cc.pct(k.abandon_rate)),
        tile("ready", k.agents_ready), tile("on call", k.agents_on_call), tile("paused", k.agents_paused),
      ]) sec.appendChild(t);
      // the next callers in line: how long they waited, how long they should still wait
      const next = cc.el("ol", null, "next");
      for (const w of q.waiting.slice(0, NEXT_CALLERS)) {
        const li = cc.el("li", `#${w.position} ${w.caller} waited ${cc.secs(w.wait_seconds)}, ` +
          `expected ${cc.secs(w.expected_wait_seconds)}` + (w.step ? `, step ${w.step}` : ""));
        li.dataset.call = w.call_id;
        next.appendChild(li);
      }
      sec.appendChild(next);
      return sec;
    }));
    document.getElementById("clock").textContent = new Date().toLocaleTimeString();
  };
  cc.live((msg) => {
    if (msg.type === "snapshot" || msg.type === "queues") queues = msg.queues;
    if (msg.nodes) nodes = msg.nodes;
    if (msg.alerts) siteAlerts = msg.alerts;
    render();
  });
})();

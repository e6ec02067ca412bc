// Shared by every page: the API client (CSRF header), the live WebSocket, formatting.
"use strict";

const cc = {
  csrf: null,
  user: null,

  async api(method, path, body) {
    const opts = { method, headers: {}, credentials: "same-origin" };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = cc.csrf || "";
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const resp = await fetch(path, opts);
    const data = await resp.json().catch(() => ({}));
    if (resp.status === 401 && !path.endsWith("/login")) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname);
    }
    if (!resp.ok) {
      const fields = (data.fields || []).map((f) => `${f.field}: ${f.reason}`).join("; ");
      throw new Error((data.error || resp.statusText) + (fields ? ` (${fields})` : ""));
    }
    return data;
  },

  // Who is logged in (and the CSRF token of this session); redirects to the log-in page if nobody.
  async whoami() {
    const me = await cc.api("GET", "/api/v1/me");
    cc.user = me.user;
    cc.csrf = me.csrf_token;
    const who = document.getElementById("who");
    if (who) who.textContent = `${me.user.display_name || me.user.username} (${me.user.role})`;
    const out = document.getElementById("logout-session");
    if (out) out.addEventListener("click", async () => {
      await cc.api("POST", "/api/v1/logout").catch(() => {});
      location.href = "/login";
    });
    return me.user;
  },

  // The live stream: calls onMessage with the snapshot, then each change; reconnects with backoff
  // (a reconnect starts again from a fresh snapshot, so nothing has to be replayed).
  live(onMessage) {
    let delay = 500;
    const state = document.getElementById("link-state");
    const connect = () => {
      const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/live");
      ws.onopen = () => { delay = 500; if (state) { state.textContent = "live"; state.className = "link up"; } };
      ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
      ws.onclose = () => {
        if (state) { state.textContent = "reconnecting…"; state.className = "link down"; }
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 10000);
      };
    };
    connect();
  },

  el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  },

  row(cells, cls) {
    const tr = cc.el("tr", null, cls);
    for (const c of cells) tr.appendChild(cc.el("td", c));
    return tr;
  },

  // put rows in a table body, each cell naming its column (data-label): a table.cards shows
  // them that way at phone width (style.css)
  fill(tbody, rows) {
    const heads = [...tbody.closest("table").querySelectorAll("thead th")].map((th) => th.textContent);
    for (const tr of rows) [...tr.children].forEach((td, i) => { td.dataset.label = heads[i] ?? ""; });
    tbody.replaceChildren(...rows);
  },

  secs(s) {
    if (s === null || s === undefined) return "–";
    return Math.round(s) >= 60 ? cc.mmss(s) : `${Math.max(0, Math.round(s))}s`;
  },

  // always minutes and seconds (handle times read as 0:45, 12:03)
  mmss(s) {
    if (s === null || s === undefined) return "–";
    s = Math.max(0, Math.round(s));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  },

  pct(x) { return x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`; },

  // Alerts shared by the console and the wallboard: service level breaches, nodes down and
  // the server's standing site problems (published flows naming what is no longer configured).
  alerts(list, queues, nodes, site) {
    list.replaceChildren();
    for (const text of site || []) list.appendChild(cc.el("li", text, "alert"));
    for (const q of queues) {
      if (q.kpis.breached) {
        list.appendChild(cc.el("li", `Queue ${q.name}: service level ${cc.pct(q.kpis.service_level)} ` +
          `within ${q.service_level_seconds}s is below target`, "alert"));
      }
    }
    for (const q of queues) {
      // a caller the ACD cannot route as asked must never wait unseen
      for (const w of q.waiting.filter((x) => x.routing_note)) {
        list.appendChild(cc.el("li", `Queue ${q.name}: caller ${w.caller} — ${w.routing_note}`, "alert"));
      }
    }
    for (const [node, up] of Object.entries(nodes || {})) {
      if (!up) list.appendChild(cc.el("li", `PBX node ${node} is down`, "alert"));
    }
  },
};

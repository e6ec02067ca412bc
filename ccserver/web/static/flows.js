// The IVR flow editor: the flow as an SVG graph, node forms, check results on the nodes,
// a simulator keypad, and publish after a confirmation that shows the diff.
"use strict";

const ed = {
  flow: null,       // flow name
  version: null,    // the FlowVersionOut shown
  doc: null,        // its document, edited in place until saved
  selected: null,   // selected node id
};
const $ = (id) => document.getElementById(id);
const NODE_W = 150, NODE_H = 46, COL = 200, ROW = 70;
const TERMINAL = new Set(["queue", "transfer", "voicemail", "callback", "goto", "hangup"]);
const SVG = "http://www.w3.org/2000/svg";

function say(text, isError) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "";
}

// The node ids a node leads to, keyed like the server's node_targets (options.1, next, ...).
function targets(node) {
  const out = {};
  for (const key of ["next", "on_exhausted", "default", "open", "closed", "holiday", "on_max_visits"]) {
    if (typeof node[key] === "string") out[key] = node[key];
  }
  for (const key of ["options", "overrides"]) {
    for (const [k, v] of Object.entries(node[key] || {})) if (typeof v === "string") out[`${key}.${k}`] = v;
  }
  (Array.isArray(node.cases) ? node.cases : []).forEach((c, i) => {
    if (c && typeof c.next === "string") out[`cases.${i}.next`] = c.next;
  });
  return out;
}

// Columns by distance from the start node; nodes not reached go in a last column.
function layout(doc) {
  const nodes = doc.nodes || {};
  const depth = {};
  const queue = nodes[doc.start] ? [doc.start] : [];
  if (queue.length) depth[doc.start] = 0;
  while (queue.length) {
    const id = queue.shift();
    for (const t of Object.values(targets(nodes[id]))) {
      if (nodes[t] && depth[t] === undefined) { depth[t] = depth[id] + 1; queue.push(t); }
    }
  }
  const last = Math.max(-1, ...Object.values(depth)) + 1;
  const rows = {};
  const pos = {};
  for (const id of Object.keys(nodes)) {
    const d = depth[id] === undefined ? last : depth[id];
    rows[d] = (rows[d] || 0) + 1;
    pos[id] = { x: 20 + d * COL, y: 20 + (rows[d] - 1) * ROW };
  }
  return pos;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function problemsByNode() {
  const out = {};
  for (const p of ed.version.problems) if (p.node) (out[p.node] = out[p.node] || []).push(p);
  return out;
}

function drawGraph(onPath) {
  const g = $("graph");
  g.replaceChildren();
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 8 8", refX: "8", refY: "4", markerWidth: "8",
    markerHeight: "8", orient: "auto-start-reverse" });
  marker.appendChild(svg("path", { d: "M0,0 L8,4 L0,8 z", fill: "#6b7280" }));
  defs.appendChild(marker);
  g.appendChild(defs);
  const nodes = ed.doc.nodes || {};
  const pos = layout(ed.doc);
  let width = 400, height = 200;
  for (const p of Object.values(pos)) { width = Math.max(width, p.x + NODE_W + 40); height = Math.max(height, p.y + NODE_H + 40); }
  g.setAttribute("width", width);
  g.setAttribute("height", height);
  for (const [id, node] of Object.entries(nodes)) {
    for (const [field, t] of Object.entries(targets(node))) {
      if (!pos[t]) continue;
      const a = pos[id], b = pos[t];
      const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
      const bend = x2 > x1 ? 40 : 120;  // edges going back loop around
      g.appendChild(svg("path", { class: "edge", "data-from": id, "data-to": t, "marker-end": "url(#arrow)",
        d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}` }));
      g.appendChild(svg("text", { class: "edge-label", x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 3 },
        field.replace(/^options\./, "")));
    }
  }
  const problems = problemsByNode();
  for (const [id, node] of Object.entries(nodes)) {
    const p = pos[id];
    const cls = ["node"];
    if (TERMINAL.has(node.type)) cls.push("terminal");
    if (problems[id]) cls.push("has-problem");
    if (id === ed.selected) cls.push("selected");
    if (onPath && onPath.has(id)) cls.push("on-path");
    const group = svg("g", { class: cls.join(" "), "data-node": id, transform: `translate(${p.x},${p.y})` });
    group.appendChild(svg("title", {}, problems[id] ? problems[id].map((x) => `${x.field}: ${x.reason}`).join("\n") : id));
    group.appendChild(svg("rect", { width: NODE_W, height: NODE_H, rx: 6 }));
    group.appendChild(svg("text", { x: 8, y: 18 }, id === ed.doc.start ? `▶ ${id}` : id));
    group.appendChild(svg("text", { x: 8, y: 36 }, String(node.type)));
    if (problems[id]) {
      group.appendChild(svg("text", { class: "problem-count", x: NODE_W - 24, y: 36 }, `!${problems[id].length}`));
    }
    group.addEventListener("click", () => selectNode(id));
    g.appendChild(group);
  }
}

function drawProblems() {
  const list = $("problems");
  list.replaceChildren();
  for (const p of ed.version.problems) {
    const li = cc.el("li", `${p.field}: ${p.reason}`);
    if (p.node) {
      li.dataset.node = p.node;
      li.addEventListener("click", () => selectNode(p.node));
    }
    list.appendChild(li);
  }
  if (!ed.version.problems.length) list.appendChild(cc.el("li", "no problems", "ok"));
}

// ---- node form: scalars as inputs, maps of scalars as one input per key, the rest as JSON ----

const isScalar = (v) => v === null || ["string", "number", "boolean"].includes(typeof v);
const isScalarMap = (v) => v && typeof v === "object" && !Array.isArray(v) && Object.values(v).every(isScalar);

function input(name, value) {
  const i = cc.el("input");
  i.name = name;
  if (typeof value === "boolean") { i.type = "checkbox"; i.checked = value; } else i.value = value ?? "";
  i.dataset.kind = value === null ? "string" : typeof value;
  return i;
}

function row(labelText, control) {
  const r = cc.el("div", null, "field-row");
  r.appendChild(cc.el("label", labelText));
  r.appendChild(control);
  return r;
}

function selectNode(id) {
  ed.selected = id;
  const node = (ed.doc.nodes || {})[id];
  const form = $("node-form");
  form.replaceChildren();
  $("node-title").textContent = id;
  form.dataset.node = id;
  for (const [key, value] of Object.entries(node)) {
    if (key === "type") { form.appendChild(row("type", cc.el("strong", value))); continue; }
    if (isScalar(value)) {
      form.appendChild(row(key, input(key, value)));
    } else if (isScalarMap(value)) {
      const box = cc.el("fieldset");
      box.appendChild(cc.el("legend", key));
      for (const [k, v] of Object.entries(value)) box.appendChild(row(k, input(`${key}.${k}`, v)));
      const add = cc.el("div", null, "field-row");
      const k = input(`${key}.+key`, ""); k.placeholder = "new key";
      const v = input(`${key}.+value`, ""); v.placeholder = "value";
      add.append(k, v);
      box.appendChild(add);
      form.appendChild(box);
    } else {
      const t = cc.el("textarea");
      t.name = key;
      t.dataset.kind = "json";
      t.value = JSON.stringify(value, null, 1);
      form.appendChild(row(key, t));
    }
  }
  for (const p of problemsByNode()[id] || []) form.appendChild(cc.el("p", `${p.field}: ${p.reason}`, "error"));
  $("btn-save-node").disabled = false;
  drawGraph();
}

function readValue(el) {
  if (el.dataset.kind === "boolean") return el.checked;
  if (el.dataset.kind === "json") return JSON.parse(el.value);
  if (el.dataset.kind === "number" && el.value.trim() !== "" && !isNaN(Number(el.value))) return Number(el.value);
  return el.value;
}

function nodeFromForm(id) {
  const old = ed.doc.nodes[id];
  const node = { type: old.type };
  const els = [...$("node-form").elements].filter((e) => e.name);
  for (const [key, value] of Object.entries(old)) {
    if (key === "type") continue;
    if (isScalarMap(value)) {
      const map = {};
      for (const k of Object.keys(value)) {
        const el = els.find((e) => e.name === `${key}.${k}`);
        if (el.value !== "" || el.dataset.kind === "boolean") map[k] = readValue(el);  // empty removes
      }
      const nk = els.find((e) => e.name === `${key}.+key`).value.trim();
      const nv = els.find((e) => e.name === `${key}.+value`).value;
      if (nk) map[nk] = nv !== "" && !isNaN(Number(nv)) && Object.values(value).some((x) => typeof x === "number") ? Number(nv) : nv;
      node[key] = map;
    } else {
      const el = els.find((e) => e.name === key);
      try {
        node[key] = readValue(el);
      } catch (e) {
        throw new Error(`${key}: not valid JSON (${e.message})`);
      }
    }
  }
  return node;
}

async function saveNode() {
  const id = ed.selected;
  let node;
  try { node = nodeFromForm(id); } catch (e) { say(e.message, true); return; }
  const doc = { ...ed.doc, nodes: { ...ed.doc.nodes, [id]: node } };
  delete doc.version;
  const editable = ["draft", "checked"].includes(ed.version.status);
  try {
    const saved = editable
      ? await cc.api("PUT", `/api/v1/flows/${ed.flow}/versions/${ed.version.version}`, { document: doc })
      : await cc.api("POST", `/api/v1/flows/${ed.flow}/versions`, { document: doc });
    await loadVersions(saved.version);
    selectNode(id);
    const n = saved.problems.length;
    say(`saved ${saved.flow}@${saved.version} as a draft` + (n ? ` with ${n} problem${n > 1 ? "s" : ""}` : ""), n > 0);
  } catch (e) {
    say(e.message, true);
  }
}

// ---- simulate ----

async function simulate() {
  const body = { digits: $("sim-digits").value.trim(), caller: $("sim-caller").value.trim() };
  if ($("sim-at").value) body.at = new Date($("sim-at").value).toISOString();
  try {
    const sim = await cc.api("POST", `/api/v1/flows/${ed.flow}/versions/${ed.version.version}/simulate`, body);
    $("sim-path").replaceChildren(...sim.path.map((p) => cc.el("li", p)));
    $("sim-prompts").replaceChildren(...sim.prompts.map((p) => cc.el("li", `${p.kind}: ${p.value} (${p.language})`)));
    $("sim-ending").textContent = sim.ending + (sim.queue ? ` → queue ${sim.queue}, priority ${sim.priority}` : "");
    drawGraph(new Set(sim.path.filter((p) => !p.includes(":"))));
  } catch (e) {
    say(e.message, true);
  }
}

// ---- publish ----

async function askPublish() {
  const did = $("publish-did").value.trim();
  const v = ed.version;
  try {
    if (v.status === "draft") {
      const check = await cc.api("POST", `/api/v1/flows/${ed.flow}/versions/${v.version}/check`);
      await loadVersions(v.version);
      if (!check.ok) { say("fix the problems before publishing", true); return; }
    }
    const pubs = await cc.api("GET", "/api/v1/flow-publications");
    const current = pubs.find((p) => p.did === did);
    const list = $("publish-diff");
    list.replaceChildren();
    if (current && current.flow === ed.flow) {
      $("publish-against").textContent = `replaces ${current.flow}@${current.version} on ${did}; changes:`;
      const diff = await cc.api("GET", `/api/v1/flows/${ed.flow}/diff?old=${current.version}&new=${v.version}`);
      for (const c of diff.changes) {
        const li = cc.el("li", `${c.path}: `);
        if (c.kind !== "added") li.appendChild(cc.el("span", JSON.stringify(c.old), "old"));
        if (c.kind === "changed") li.appendChild(document.createTextNode(" → "));
        if (c.kind !== "removed") li.appendChild(cc.el("span", JSON.stringify(c.new), "new"));
        list.appendChild(li);
      }
      if (!diff.changes.length) list.appendChild(cc.el("li", "no changes"));
    } else {
      $("publish-against").textContent = current
        ? `replaces ${current.flow}@${current.version} (another flow) on ${did}`
        : `nothing is published on ${did} yet`;
    }
    $("publish-what").textContent = `${ed.flow}@${v.version} on ${did}`;
    $("publish-dialog").showModal();
  } catch (e) {
    say(e.message, true);
  }
}

async function confirmPublish() {
  $("publish-dialog").close();
  const did = $("publish-did").value.trim();
  try {
    const pub = await cc.api("POST", `/api/v1/flows/${ed.flow}/versions/${ed.version.version}/publish`, { did });
    await loadVersions(pub.version);
    say(`published ${pub.flow}@${pub.version} on ${pub.did}`);
  } catch (e) {
    say(e.message, true);
  }
}

// ---- loading ----

async function showVersion(number) {
  ed.version = await cc.api("GET", `/api/v1/flows/${ed.flow}/versions/${number}`);
  ed.doc = structuredClone(ed.version.document);
  $("version-select").value = String(number);
  $("version-status").textContent = ed.version.status.replace("_", " ");
  if (ed.selected && !(ed.doc.nodes || {})[ed.selected]) ed.selected = null;
  drawGraph();
  drawProblems();
  if (ed.selected) selectNode(ed.selected);
}

async function loadVersions(show) {
  const versions = await cc.api("GET", `/api/v1/flows/${ed.flow}/versions`);
  const sel = $("version-select");
  sel.replaceChildren(...versions.map((v) => {
    const o = cc.el("option", `${v.version} (${v.status.replace("_", " ")})`);
    o.value = String(v.version);
    return o;
  }));
  await showVersion(show ?? versions[versions.length - 1].version);
}

async function start() {
  await cc.whoami();
  const keypad = $("keypad");
  for (const d of "123456789*0#") {
    const b = cc.el("button", d);
    b.type = "button";
    b.dataset.digit = d;
    b.addEventListener("click", () => { $("sim-digits").value += d; });
    keypad.appendChild(b);
  }
  $("btn-save-node").addEventListener("click", saveNode);
  $("btn-simulate").addEventListener("click", simulate);
  $("btn-publish").addEventListener("click", askPublish);
  $("btn-confirm-publish").addEventListener("click", confirmPublish);
  $("btn-cancel-publish").addEventListener("click", () => $("publish-dialog").close());
  $("version-select").addEventListener("change", (e) => showVersion(e.target.value).catch((x) => say(x.message, true)));
  $("flow-select").addEventListener("change", (e) => {
    ed.flow = e.target.value;
    ed.selected = null;
    loadVersions().catch((x) => say(x.message, true));
  });
  const flows = await cc.api("GET", "/api/v1/flows");
  if (!flows.length) { say("no flows stored yet: import some with `ccserver flows import`"); return; }
  $("flow-select").replaceChildren(...flows.map((f) => { const o = cc.el("option", f.flow); o.value = f.flow; return o; }));
  ed.flow = flows[0].flow;
  await loadVersions();
}

start().catch((e) => say(e.message, true));

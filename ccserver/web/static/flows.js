// The IVR flow editor: the flow as an SVG graph, node forms, check results on the nodes,
// a simulator keypad, and publish after a confirmation that shows the diff.
"use strict";

const ed = {
  flow: null,       // flow name
  version: null,    // the FlowVersionOut shown
  doc: null,        // its document, edited in place until saved
  selected: null,   // selected node id
  types: {},        // node type -> NodeTypeOut (its fields)
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
  for (const key of ["next", "on_exhausted", "on_invalid", "on_timeout", "default", "open", "closed", "holiday",
    "on_max_visits"]) {
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

// ---- node form: one control per field, its kind from the node type (GET /api/v1/flow-node-types) ----
// Scalars are inputs, maps of scalars one input per key, the rest JSON text. A field left empty
// is left out of the node: its default applies, and a required one is flagged by the checks.

const isScalar = (v) => v === null || ["string", "number", "boolean"].includes(typeof v);
const isScalarMap = (v) => v && typeof v === "object" && !Array.isArray(v) && Object.values(v).every(isScalar);
const SCALAR_KINDS = new Set(["string", "number", "boolean"]);
const NODE_ID = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

function fieldInfo(type, name) {
  return ((ed.types[type] || {}).fields || []).find((f) => f.name === name);
}

// How a field is shown: from its node type, else (a field the type does not have) from its value.
function controlKind(info, value) {
  const kind = info ? info.kind : typeof value === "boolean" ? "boolean" : typeof value === "number" ? "number"
    : isScalar(value) ? "string" : isScalarMap(value) ? "map" : "list";
  if (kind === "map") {
    const scalarItems = info ? SCALAR_KINDS.has(info.item_kind) : true;
    return scalarItems && (value === undefined || isScalarMap(value)) ? "map" : "json";
  }
  if (kind === "any") return value === undefined || typeof value === "string" ? "any" : "json";
  // a list, or a value of the wrong shape (shown as written, for the checks to name)
  return kind === "list" || (value !== undefined && !isScalar(value)) ? "json" : kind;
}

function input(name, value, kind) {
  const i = cc.el("input");
  i.name = name;
  if (kind === "boolean") { i.type = "checkbox"; i.checked = value === true; } else i.value = value ?? "";
  i.dataset.kind = kind;
  return i;
}

function choice(name, value, info) {
  const sel = cc.el("select");
  sel.name = name;
  if (!info.required || value === undefined) {
    const unset = cc.el("option", info.required ? "(choose)"
      : info.default === null ? "(not set)" : `(default: ${JSON.stringify(info.default)})`);
    unset.dataset.unset = "1";
    sel.appendChild(unset);
  }
  for (const c of info.choices) {
    const o = cc.el("option", c === "" ? '"" (none)' : c);
    o.value = c;
    o.selected = c === value;
    sel.appendChild(o);
  }
  return sel;
}

function row(labelText, control) {
  const r = cc.el("div", null, "field-row");
  r.appendChild(cc.el("label", labelText));
  r.appendChild(control);
  return r;
}

// One field's control, in a box that says which field and kind it holds.
function fieldBox(name, value, info) {
  const kind = controlKind(info, value);
  let box;
  if (kind === "map") {
    box = cc.el("fieldset");
    box.appendChild(cc.el("legend", name));
    const itemKind = info ? info.item_kind : "string";
    for (const [k, v] of Object.entries(value || {})) box.appendChild(row(k, input(`${name}.${k}`, v, itemKind)));
    const add = cc.el("div", null, "field-row");
    const k = input(`${name}.+key`, "", "string"); k.placeholder = "new key";
    const v = input(`${name}.+value`, "", itemKind); v.placeholder = "value";
    add.append(k, v);
    box.appendChild(add);
  } else if (kind === "json") {
    const t = cc.el("textarea");
    t.name = name;
    t.dataset.kind = "json";
    t.value = value === undefined ? "" : JSON.stringify(value, null, 1);
    box = row(name, t);
  } else if (info && info.choices.length) {
    box = row(name, choice(name, value, info));
  } else {
    box = row(name, input(name, value, kind));
  }
  box.dataset.field = name;
  box.dataset.kind = kind;
  if (info && info.item_kind) box.dataset.itemKind = info.item_kind;
  if (info && info.required) box.classList.add("required");
  return box;
}

// The value a field gets when an admin adds it: its default, else empty (to be filled in).
function initialValue(info) {
  if (info.default !== null) return info.default;
  return info.kind === "boolean" ? false : info.kind === "map" ? {} : undefined;
}

function selectNode(id) {
  ed.selected = id;
  const node = (ed.doc.nodes || {})[id];
  const type = ed.types[node.type];
  const form = $("node-form");
  form.replaceChildren();
  $("node-title").textContent = id;
  form.dataset.node = id;
  form.appendChild(row("type", cc.el("strong", node.type)));
  if (type) form.appendChild(cc.el("p", type.description, "hint"));
  for (const [key, value] of Object.entries(node)) {
    if (key !== "type") form.appendChild(fieldBox(key, value, fieldInfo(node.type, key)));
  }
  const fields = type ? type.fields : [];
  for (const f of fields) if (f.required && !(f.name in node)) form.appendChild(fieldBox(f.name, undefined, f));
  const adder = cc.el("div", null, "field-row add-field");
  const pick = cc.el("select");
  pick.id = "add-field-name";
  const addBtn = cc.el("button", "Add field");
  addBtn.type = "button";
  addBtn.id = "btn-add-field";
  addBtn.addEventListener("click", () => {
    const info = fieldInfo(node.type, pick.value);
    if (!info) return;
    form.insertBefore(fieldBox(info.name, initialValue(info), info), adder);
    fillFieldPicker(pick, fields);
  });
  adder.append(pick, addBtn);
  form.appendChild(adder);
  fillFieldPicker(pick, fields);
  for (const p of problemsByNode()[id] || []) {
    form.appendChild(cc.el("p", `${p.field}: ${p.reason}`, "error"));
    const box = form.querySelector(`[data-field="${CSS.escape(p.field.split(".")[2] || "")}"]`);
    if (box) { box.classList.add("has-problem"); box.title = p.reason; }
  }
  $("btn-save-node").disabled = false;
  $("btn-delete-node").disabled = false;
  drawGraph();
}

// The optional fields the node does not show yet.
function fillFieldPicker(pick, fields) {
  const shown = new Set([...$("node-form").querySelectorAll("[data-field]")].map((b) => b.dataset.field));
  const free = fields.filter((f) => !shown.has(f.name));
  pick.replaceChildren(...free.map((f) => { const o = cc.el("option", f.name); o.value = f.name; return o; }));
  pick.disabled = $("btn-add-field").disabled = !free.length;
}

function scalarValue(text, kind) {
  if (kind === "number" && text.trim() !== "" && !isNaN(Number(text))) return Number(text);
  return text;
}

// A field's value from its box; undefined leaves the field out.
function readField(box) {
  const name = box.dataset.field;
  if (box.dataset.kind === "map") {
    const map = {};
    for (const el of box.querySelectorAll("input")) {
      const key = el.name.slice(name.length + 1);
      // an emptied value removes its key
      if (key === "+key" || key === "+value" || (el.value === "" && el.dataset.kind !== "boolean")) continue;
      map[key] = el.dataset.kind === "boolean" ? el.checked : scalarValue(el.value, el.dataset.kind);
    }
    const nk = box.querySelector(`[name="${CSS.escape(name)}.+key"]`).value.trim();
    const nv = box.querySelector(`[name="${CSS.escape(name)}.+value"]`).value;
    if (nk) map[nk] = scalarValue(nv, box.dataset.itemKind);
    return map;
  }
  const el = box.querySelector("[name]");
  if (el.tagName === "SELECT") return el.selectedOptions[0].dataset.unset ? undefined : el.value;
  if (el.dataset.kind === "boolean") return el.checked;
  if (el.value.trim() === "") return undefined;
  const json = el.dataset.kind === "json" || (el.dataset.kind === "any" && /^\s*[[{]/.test(el.value));
  if (!json) return scalarValue(el.value, el.dataset.kind);
  try {
    return JSON.parse(el.value);
  } catch (e) {
    throw new Error(`${name}: not valid JSON (${e.message})`);
  }
}

function nodeFromForm(id) {
  const node = { type: ed.doc.nodes[id].type };
  for (const box of $("node-form").querySelectorAll("[data-field]")) {
    const value = readField(box);
    if (value !== undefined) node[box.dataset.field] = value;
  }
  return node;
}

// Save the edited document: the draft itself, or a new draft when a published version was edited.
async function saveDocument(nodes, what) {
  const doc = { ...ed.doc, nodes };
  delete doc.version;
  const editable = ["draft", "checked"].includes(ed.version.status);
  try {
    const saved = editable
      ? await cc.api("PUT", `/api/v1/flows/${ed.flow}/versions/${ed.version.version}`, { document: doc })
      : await cc.api("POST", `/api/v1/flows/${ed.flow}/versions`, { document: doc });
    await loadVersions(saved.version);
    const n = saved.problems.length;
    const problems = n ? ` with ${n} problem${n > 1 ? "s" : ""}` : "";
    say(`${what}: saved ${saved.flow}@${saved.version} as a draft${problems}`, n > 0);
  } catch (e) {
    say(e.message, true);
  }
}

async function saveNode() {
  const id = ed.selected;
  let node;
  try { node = nodeFromForm(id); } catch (e) { say(e.message, true); return; }
  await saveDocument({ ...ed.doc.nodes, [id]: node }, `node ${id}`);
}

// Removing a node saves at once; the references left pointing at it show as check problems.
async function deleteNode() {
  const id = ed.selected;
  const nodes = { ...ed.doc.nodes };
  delete nodes[id];
  ed.selected = null;
  $("node-form").replaceChildren(cc.el("p", "Click a node in the graph to edit it.", "hint"));
  $("node-title").textContent = "";
  $("btn-save-node").disabled = $("btn-delete-node").disabled = true;
  await saveDocument(nodes, `node ${id} deleted`);
}

// A new node of the chosen type, with the type's defaults; it is saved with "Save node".
function addNode() {
  if (!ed.doc) return;
  const id = $("new-node-id").value.trim();
  const type = ed.types[$("new-node-type").value];
  if (!NODE_ID.test(id)) { say("node id: a letter, then letters, digits, _ or - (at most 64)", true); return; }
  if ((ed.doc.nodes || {})[id]) { say(`node id: ${id} already exists`, true); return; }
  const node = { type: type.type };
  for (const f of type.fields) if (!f.required && isScalar(f.default) && f.default !== null) node[f.name] = f.default;
  ed.doc.nodes = { ...ed.doc.nodes, [id]: node };
  $("new-node-id").value = "";
  selectNode(id);
  say(`node ${id} added: fill in its fields, then save it`);
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

function showChanges(changes) {
  const list = $("publish-diff");
  for (const c of changes) {
    const li = cc.el("li", `${c.path}: `);
    if (c.kind !== "added") li.appendChild(cc.el("span", JSON.stringify(c.old), "old"));
    if (c.kind === "changed") li.appendChild(document.createTextNode(" → "));
    if (c.kind !== "removed") li.appendChild(cc.el("span", JSON.stringify(c.new), "new"));
    list.appendChild(li);
  }
  if (!changes.length) list.appendChild(cc.el("li", "no changes"));
}

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
    $("publish-diff").replaceChildren();
    if (current) {
      // another flow on the DID: the diff from it shows every node that goes, comes or changes
      $("publish-against").textContent = current.flow === ed.flow
        ? `replaces ${current.flow}@${current.version} on ${did}; changes:`
        : `DID ${did}: flow ${current.flow}@${current.version} → ${ed.flow}@${v.version}; changes:`;
      const q = new URLSearchParams({ old_flow: current.flow, old: current.version, new: v.version });
      showChanges((await cc.api("GET", `/api/v1/flows/${ed.flow}/diff?${q}`)).changes);
    } else {
      $("publish-against").textContent = `nothing is published on ${did} yet`;
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
  ed.types = Object.fromEntries((await cc.api("GET", "/api/v1/flow-node-types")).map((t) => [t.type, t]));
  $("new-node-type").replaceChildren(...Object.values(ed.types).map((t) => {
    const o = cc.el("option", t.type);
    o.value = t.type;
    o.title = t.description;
    return o;
  }));
  $("btn-add-node").addEventListener("click", addNode);
  $("btn-delete-node").addEventListener("click", deleteNode);
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

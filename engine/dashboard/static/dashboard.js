// The Magnetar dashboard: polls /dashboard/api/overview and renders it. Plain DOM, no build step.
// Text from the server always goes in through textContent, never as HTML.
"use strict";

const TOKEN_KEY = "magnetar.token";
const params = new URLSearchParams(location.search);
const POLL_MS = Math.max(250, Number(params.get("interval")) || 1000);

// Last counters seen per instance, to turn totals into rates.
const previous = new Map();
// Each mesh's drawn graph, fetched again only when the mesh's version changes.
const graphs = new Map();
let pollTimer = null;

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

async function api(method, path, asText) {
  const headers = { "Accept": asText ? "*/*" : "application/json" };
  if (token()) headers["Authorization"] = "Bearer " + token();
  const resp = await fetch(path, { method, headers, cache: "no-store" });
  let body = null;
  if (asText && resp.ok) return await resp.text();
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) {
    const reason = body && body.reason ? body.reason : resp.statusText;
    const err = new Error(resp.status + ": " + reason);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function banner(text, isError) {
  const b = document.getElementById("banner");
  b.textContent = text;
  b.className = isError ? "error" : "";
  b.hidden = !text;
}

function fmtNum(n) { return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"); }
function fmtRate(r) { return r === null ? "—" : r.toFixed(1); }
// Under a microsecond, two significant digits (a fast function would read 0.000 otherwise).
function fmtMs(ms) { return !ms ? "—" : ms < 0.001 ? ms.toPrecision(2) : ms.toFixed(3); }
function fmtTime(ms) { return ms ? new Date(ms).toLocaleTimeString("en-GB") : ""; }

function stateBadge(state, field) {
  return el("span", { class: "state state-" + state, "data-field": field || "state" }, state);
}

function confirmThen(text, action) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.addEventListener("close", async function onClose() {
    dialog.removeEventListener("close", onClose);
    if (dialog.returnValue !== "ok") return;
    try {
      await action();
    } catch (e) {
      banner(text.replace(/\?$/, "") + " failed: " + e.message, true);
    }
    poll();
  });
  dialog.showModal();
}

function kindLabel(c) {
  return c.mesh ? c.kind + " · mesh " + c.mesh : c.kind;
}

function instancePath(row, verb) {
  return "/admin/v3/functions/" + row.name + "/" + row.instanceId + "/" + verb;
}

function instanceAction(row, verb) {
  const label = verb.charAt(0).toUpperCase() + verb.slice(1);
  return el("button", {
    "data-action": verb,
    onclick: () => confirmThen(label + " instance " + row.instanceId + " of " + row.name + "?", async () => {
      const what = label + " of " + row.name + " instance " + row.instanceId;
      banner(what + " in progress…", false);
      await api("POST", instancePath(row, verb));
      banner(what + " done.", false);
    }),
  }, label);
}

// Rates from the counters of the previous poll; a counter that went down means the instance
// started over, so no rate until the next poll.
function rates(row, atMs) {
  const prev = previous.get(row.key);
  previous.set(row.key, { received: row.received, processed: row.processed, at: atMs });
  if (!prev || atMs <= prev.at || row.received < prev.received || row.processed < prev.processed) {
    return { inRate: null, outRate: null };
  }
  const dt = (atMs - prev.at) / 1000;
  return { inRate: (row.received - prev.received) / dt, outRate: (row.processed - prev.processed) / dt };
}

function numCell(field, value) { return el("td", { class: "num", "data-field": field }, value); }

function renderWorkers(cluster) {
  const tbody = document.querySelector("#workers tbody");
  tbody.replaceChildren();
  for (const w of cluster.workers) {
    const health = !w.reachable ? "unreachable" : w.draining ? "draining" : "running";
    const drain = el("button", {
      "data-action": "drain",
      onclick: () => confirmThen("Drain worker " + w.workerId + "? Its instances move to the others.",
        async () => {
          banner("Drain of " + w.workerId + " in progress…", false);
          const out = await api("PUT", "/admin/v2/worker/leader/drain?workerId=" + encodeURIComponent(w.workerId));
          banner("Drain of " + w.workerId + ": " + (out && out.status ? out.status : "requested"), false);
        }),
    }, "Drain");
    tbody.append(el("tr", { "data-worker": w.workerId },
      el("td", {}, w.workerId),
      el("td", {}, w.isLeader ? "leader" : "member"),
      el("td", {}, w.url || ""),
      el("td", {}, w.runtime || "—"),
      numCell("instances", fmtNum(w.instanceCount)),
      el("td", { title: w.problem || "" }, stateBadge(health, "health")),
      el("td", {}, w.draining ? "" : drain)));
  }
  const leader = cluster.leader ? cluster.leader + " (epoch " + cluster.epoch + ")" : "none elected";
  document.getElementById("cluster-summary").textContent =
    cluster.workers.length + " worker(s); leader: " + leader;
}

function renderComponents(data) {
  const tbody = document.querySelector("#components tbody");
  const errors = [];
  tbody.replaceChildren();
  for (const c of data.components) {
    const counted = c.instances.map((r) => ({ row: r, ...rates(r, data.generatedAtMs) }));
    const sum = (f) => c.instances.reduce((a, r) => a + (r[f] || 0), 0);
    const sumRate = (f) => counted.some((x) => x[f] === null) ? null : counted.reduce((a, x) => a + x[f], 0);
    const running = c.instances.filter((r) => r.state === "running").length;
    const backlogs = c.instances.map((r) => r.backlog).filter((b) => b !== null && b !== undefined);
    tbody.append(el("tr", { class: "component", "data-component": c.name },
      el("td", { "data-field": "kind" }, kindLabel(c)),
      el("td", {}, c.name),
      el("td", {}, ""),
      el("td", { "data-field": "running" }, running + "/" + c.parallelism + " running"),
      numCell("restarts", fmtNum(sum("numRestarts"))),
      numCell("in-rate", fmtRate(sumRate("inRate"))),
      numCell("out-rate", fmtRate(sumRate("outRate"))),
      numCell("received", fmtNum(sum("received"))),
      numCell("processed", fmtNum(sum("processed"))),
      numCell("latency", ""),
      numCell("backlog", backlogs.length ? fmtNum(backlogs.reduce((a, b) => a + b, 0)) : "—"),
      numCell("user-exceptions", fmtNum(sum("userExceptions"))),
      numCell("system-exceptions", fmtNum(sum("systemExceptions"))),
      numCell("dead-lettered", fmtNum(sum("deadLettered"))),
      el("td", {}, "")));
    for (const { row, inRate, outRate } of counted) {
      // A mesh's member is stopped and started with its mesh; only a restart is its own.
      const actions = c.mesh ? el("td", {}, instanceAction(row, "restart")) : el("td", {},
        row.state === "stopped" ? instanceAction(row, "start") : instanceAction(row, "stop"), " ",
        instanceAction(row, "restart"));
      tbody.append(el("tr", { class: "instance", "data-key": row.key },
        el("td", {}, ""),
        el("td", {}, "instance " + row.instanceId),
        el("td", { "data-field": "worker" }, row.workerId || "—"),
        el("td", {}, stateBadge(row.state)),
        numCell("restarts", fmtNum(row.numRestarts)),
        numCell("in-rate", fmtRate(inRate)),
        numCell("out-rate", fmtRate(outRate)),
        numCell("received", fmtNum(row.received)),
        numCell("processed", fmtNum(row.processed)),
        numCell("latency", fmtMs(row.averageLatencyMs)),
        numCell("backlog", fmtNum(row.backlog)),
        numCell("user-exceptions", fmtNum(row.userExceptions)),
        numCell("system-exceptions", fmtNum(row.systemExceptions)),
        numCell("dead-lettered", fmtNum(row.deadLettered)),
        actions));
      const notes = [];
      if (row.reason) notes.push(row.state + ": " + row.reason);
      if (row.lastFailure) notes.push("last failure: " + row.lastFailure);
      if (row.inputLagMs > 1000) notes.push("behind its inputs: the newest input taken was published " + (row.inputLagMs / 1000).toFixed(1) + " s ago");
      if (notes.length) {
        tbody.append(el("tr", { class: "detail", "data-detail": row.key },
          el("td", {}, ""), el("td", { colspan: "14" }, notes.join(" · "))));
      }
      for (const e of row.latestErrors || []) errors.push({ ...e, key: row.key });
    }
  }
  document.getElementById("no-components").hidden = data.components.length > 0;
  renderErrors(errors);
}

// The graph as an image: fetched with the token (an <img> cannot send one), shown as a data: URL.
async function meshGraph(mesh) {
  const cached = graphs.get(mesh.name);
  if (cached && cached.version === mesh.version) return cached.url;
  const svg = await api("GET", mesh.graphPath, true);
  const url = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(svg);
  graphs.set(mesh.name, { version: mesh.version, url });
  return url;
}

function renderMeshes(meshes) {
  const box = document.getElementById("meshes");
  const seen = new Set();
  for (const mesh of meshes) {
    seen.add(mesh.name);
    let card = box.querySelector('div.mesh[data-mesh="' + CSS.escape(mesh.name) + '"]');
    if (!card) {
      card = el("div", { class: "mesh", "data-mesh": mesh.name },
        el("h3", {}), el("p", { class: "mesh-condition" }), el("table", { class: "mesh-members" }),
        el("img", { class: "mesh-graph", alt: "graph of mesh " + mesh.name }));
      box.append(card);
    }
    card.querySelector("h3").replaceChildren(
      "mesh " + mesh.name + " (version " + mesh.version + ") ", stateBadge(mesh.state, "mesh-state"));
    const c = mesh.condition;
    card.querySelector(".mesh-condition").replaceChildren(
      el("span", { "data-field": "condition" }, c.condition + "=" + c.status + " · " + c.reason),
      ...(mesh.warnings || []).map((w) => el("span", { class: "warning" }, " · warning: " + w)));
    const head = el("tr", {}, el("th", {}, "Member"), el("th", {}, "Kind"), el("th", {}, "Condition"),
      el("th", { title: "instances running of instances wanted" }, "Instances"), el("th", {}, "Reason"));
    card.querySelector("table").replaceChildren(head, ...mesh.members.map((m) =>
      el("tr", { "data-member": m.name },
        el("td", {}, m.name),
        el("td", {}, m.kind),
        el("td", {}, stateBadge(m.condition.state, "member-state"), " " + m.condition.condition),
        numCell("member-instances", m.numRunning + "/" + m.numInstances),
        el("td", { "data-field": "member-reason" }, m.condition.reason))));
    const img = card.querySelector("img");
    meshGraph(mesh).then((url) => { if (img.getAttribute("src") !== url) img.setAttribute("src", url); })
      .catch((e) => { img.alt = "graph of mesh " + mesh.name + " unavailable: " + e.message; });
  }
  for (const card of [...box.querySelectorAll("div.mesh")]) {
    if (!seen.has(card.dataset.mesh)) { card.remove(); graphs.delete(card.dataset.mesh); }
  }
  document.getElementById("no-meshes").hidden = meshes.length > 0;
}

function renderErrors(errors) {
  errors.sort((a, b) => b.timestampMs - a.timestampMs);
  const tbody = document.querySelector("#errors tbody");
  tbody.replaceChildren(...errors.slice(0, 20).map((e) => el("tr", {},
    el("td", {}, fmtTime(e.timestampMs)), el("td", {}, e.key), el("td", {}, e.kind),
    el("td", { class: "error-text" }, e.text))));
  document.getElementById("no-errors").hidden = errors.length > 0;
}

async function poll() {
  clearTimeout(pollTimer);
  try {
    const data = await api("GET", "/dashboard/api/overview");
    document.getElementById("served-by").textContent = "served by " + data.servedBy;
    document.getElementById("updated").textContent = "updated " + fmtTime(data.generatedAtMs);
    renderWorkers(data.cluster);
    renderMeshes(data.meshes || []);
    renderComponents(data);
    const b = document.getElementById("banner");
    if (b.classList.contains("error") && b.dataset.source === "poll") banner("", false);
  } catch (e) {
    const hint = e.status === 401 || e.status === 403 ? " — paste an API token above" : "";
    banner("Cannot read the cluster: " + e.message + hint, true);
    document.getElementById("banner").dataset.source = "poll";
  } finally {
    pollTimer = setTimeout(poll, POLL_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = document.getElementById("token");
    if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    input.placeholder = token() ? "a token is set for this tab" : "paste a bearer token";
    poll();
  });
  document.getElementById("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById("token").placeholder = "paste a bearer token (kept for this tab only)";
    poll();
  });
  if (token()) document.getElementById("token").placeholder = "a token is set for this tab";
  poll();
});

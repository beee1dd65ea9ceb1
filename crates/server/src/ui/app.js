// The web view's Jobs list: the server's table rows for each Job (STATUS and COMPLETIONS as
// kubectl prints them), kept live by a watch from the list's resourceVersion; ages and
// durations tick here.
"use strict";

const TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io";
const SYMBOLS = { Complete: "✓", Failed: "✗", FailureTarget: "✗", Running: "▶", Suspended: "⏸" };
const main = document.getElementById("main");
const jobs = new Map(); // "namespace/name" -> {object, cells}
let columns = [];
const filter = { namespace: "", status: "" };

function key(object) {
  return `${object.metadata.namespace}/${object.metadata.name}`;
}

function keep(row) {
  jobs.set(key(row.object), { object: row.object, cells: row.cells });
}

// kubectl's HumanDuration (k8s.io/apimachinery/pkg/util/duration).
function human(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 ? `${m}m${s % 60}s` : `${m}m`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 24 * 8) return h % 24 ? `${d}d${h % 24}h` : `${d}d`;
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

function since(time, now) {
  return time ? (now - Date.parse(time)) / 1000 : null;
}

function duration(job, now) {
  const status = job.status || {};
  if (!status.startTime) return "";
  const end = status.completionTime ? Date.parse(status.completionTime) : now;
  return human((end - Date.parse(status.startTime)) / 1000);
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function select(label, values, current, onChange) {
  const wrap = document.createElement("label");
  wrap.textContent = `${label} `;
  const box = document.createElement("select");
  for (const value of ["", ...values]) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value || "all";
    option.selected = value === current;
    box.append(option);
  }
  box.addEventListener("change", () => onChange(box.value));
  wrap.append(box);
  return wrap;
}

function render() {
  const now = Date.now();
  const statusAt = columns.findIndex((c) => c.name === "Status");
  const completionsAt = columns.findIndex((c) => c.name === "Completions");
  const all = [...jobs.values()].sort((a, b) => key(a.object).localeCompare(key(b.object)));
  const namespaces = [...new Set(all.map((j) => j.object.metadata.namespace))];
  const statuses = [...new Set(all.map((j) => j.cells[statusAt]))];
  const shown = all.filter(
    (j) =>
      (!filter.namespace || j.object.metadata.namespace === filter.namespace) &&
      (!filter.status || j.cells[statusAt] === filter.status),
  );
  const heading = document.createElement("h2");
  heading.textContent = "Jobs";
  const filters = document.createElement("div");
  filters.className = "filters";
  filters.append(
    select("Namespace", namespaces, filter.namespace, (v) => { filter.namespace = v; render(); }),
    select("Status", statuses, filter.status, (v) => { filter.status = v; render(); }),
  );
  const table = document.createElement("table");
  table.id = "jobs";
  const head = table.createTHead().insertRow();
  for (const [name, wide] of [["Namespace", true], ["Name"], ["Status"], ["Completions"],
    ["Duration", true], ["Age"]]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    if (wide) th.className = "wide";
    head.append(th);
  }
  const body = table.createTBody();
  for (const job of shown) {
    const status = job.cells[statusAt];
    const row = body.insertRow();
    row.dataset.job = key(job.object);
    row.append(
      cell(job.object.metadata.namespace, "wide"),
      cell(job.object.metadata.name),
      cell(`${SYMBOLS[status] || "•"} ${status}`, `status-${status}`),
      cell(job.cells[completionsAt], "num"),
      cell(duration(job.object, now), "num wide"),
      cell(human(since(job.object.metadata.creationTimestamp, now)), "num"),
    );
  }
  const scroll = document.createElement("div");
  scroll.className = "scroll";
  scroll.append(table);
  const parts = [heading, filters, scroll];
  if (!shown.length) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = all.length ? "No Job matches." : "No Jobs yet.";
    parts.push(empty);
  }
  // Keep the focused filter focused across a redraw.
  const focused = document.activeElement && document.activeElement.closest("label")?.textContent;
  main.replaceChildren(...parts);
  if (focused) {
    for (const label of main.querySelectorAll("label")) {
      if (label.textContent === focused) label.querySelector("select").focus();
    }
  }
}

async function signedIn(response) {
  if (response.status === 401) {
    location.reload(); // the sign-in page
    throw new Error("signed out");
  }
  if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
  return response;
}

async function list() {
  const response = await signedIn(
    await fetch("/apis/batch/v1/jobs?includeObject=Object", { headers: { Accept: TABLE } }),
  );
  const table = await response.json();
  columns = table.columnDefinitions;
  jobs.clear();
  for (const row of table.rows) keep(row);
  render();
  return table.metadata.resourceVersion;
}

async function watch(version) {
  const url = `/apis/batch/v1/jobs?watch=1&allowWatchBookmarks=true&includeObject=Object&resourceVersion=${version}`;
  const response = await signedIn(await fetch(url, { headers: { Accept: TABLE } }));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (!line.trim()) continue;
      const event = JSON.parse(line);
      if (event.type === "ERROR") throw new Error(event.object.message);
      if (event.type === "BOOKMARK") continue;
      for (const row of event.object.rows || []) {
        if (event.type === "DELETED") jobs.delete(key(row.object));
        else keep(row);
      }
      render();
    }
  }
}

async function live() {
  for (;;) {
    try {
      await watch(await list());
    } catch (error) {
      if (error.message === "signed out") return;
      console.warn("jobs watch:", error);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

setInterval(render, 1000);
live();

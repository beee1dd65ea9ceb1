// The web view: the Jobs list (the server's table rows, STATUS and COMPLETIONS as kubectl
// prints them), a Job's page (conditions, spec, the grid of its indexes or pods, events) and
// a pod's page (containers and logs). Everything is read from the Kubernetes API and kept
// live by watches from each list's resourceVersion; ages and durations tick here.
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
  const years = Math.floor(d / 365);
  if (d < 365 * 8 && d % 365) return `${years}y${d % 365}d`;
  return `${years}y`;
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

// A table's column headings: [name, class] each.
function headings(table, columns) {
  const head = table.createTHead().insertRow();
  for (const [name, className] of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    if (className) th.className = className;
    head.append(th);
  }
}

function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}

function renderJobs() {
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
    select("Namespace", namespaces, filter.namespace, (v) => { filter.namespace = v; renderJobs(); }),
    select("Status", statuses, filter.status, (v) => { filter.status = v; renderJobs(); }),
  );
  const table = document.createElement("table");
  table.id = "jobs";
  headings(table, [["Namespace", "wide"], ["Name"], ["Status"], ["Completions"],
    ["Duration", "wide"], ["Age"]]);
  const body = table.createTBody();
  for (const job of shown) {
    const status = job.cells[statusAt];
    const row = body.insertRow();
    row.dataset.job = key(job.object);
    const name = document.createElement("td");
    name.append(link(`#/jobs/${key(job.object)}`, job.object.metadata.name));
    row.append(
      cell(job.object.metadata.namespace, "wide"),
      name,
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

// Lists `path` and then watches it from the list's resourceVersion, calling `onList` with
// the list and `onEvent` with each event, until `signal` aborts (which also closes the
// connection: a browser opens few to one server); after a broken watch it lists again.
async function live(path, headers, signal, onList, onEvent) {
  const separator = path.includes("?") ? "&" : "?";
  const alive = () => !signal.aborted;
  while (alive()) {
    try {
      const listed = await signedIn(await fetch(path, { headers, signal }));
      const list = await listed.json();
      onList(list);
      const url = `${path}${separator}watch=1&allowWatchBookmarks=true&resourceVersion=${list.metadata.resourceVersion}`;
      const response = await signedIn(await fetch(url, { headers, signal }));
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      while (alive()) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (!line.trim()) continue;
          const event = JSON.parse(line);
          if (event.type === "ERROR") throw new Error(event.object.message);
          if (event.type !== "BOOKMARK") onEvent(event);
        }
      }
      reader.cancel();
    } catch (error) {
      if (error.message === "signed out") return;
      console.warn(path, error);
    }
    if (alive()) await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// The view now shown: a view watches from its creation until another is shown.
let view = { alive: false, render: () => {}, watches: new AbortController() };

function show(next) {
  view.alive = false;
  view.watches.abort();
  view = next;
  view.render();
}

function jobsView() {
  const self = { alive: true, render: renderJobs, watches: new AbortController() };
  live(
    "/apis/batch/v1/jobs?includeObject=Object",
    { Accept: TABLE },
    self.watches.signal,
    (table) => {
      columns = table.columnDefinitions;
      jobs.clear();
      for (const row of table.rows) keep(row);
      if (self.alive) renderJobs();
    },
    (event) => {
      for (const row of event.object.rows || []) {
        if (event.type === "DELETED") jobs.delete(key(row.object));
        else keep(row);
      }
      if (self.alive) renderJobs();
    },
  );
  return self;
}

// Index sets as the API writes them: "1,3-5".
function indexes(text) {
  const out = new Set();
  for (const part of (text || "").split(",").filter(Boolean)) {
    const [a, b] = part.split("-").map(Number);
    for (let i = a; i <= (b ?? a); i++) out.add(i);
  }
  return out;
}

const INDEX = "batch.kubernetes.io/job-completion-index";
const STATES = ["pending", "running", "succeeded", "failed"];
const COLOURS = { pending: "#d0d7de", running: "#0969da", succeeded: "#1a7f37", failed: "#cf222e" };

// The state of each cell: an index of an Indexed Job, or a pod of another.
function cells(job, pods) {
  const status = job.status || {};
  const byIndex = new Map();
  for (const pod of pods.values()) {
    const index = Number(pod.metadata.annotations?.[INDEX] ?? NaN);
    if (Number.isNaN(index)) continue;
    if (!byIndex.has(index)) byIndex.set(index, []);
    byIndex.get(index).push(pod);
  }
  if (job.spec.completionMode === "Indexed") {
    const done = indexes(status.completedIndexes);
    const failed = indexes(status.failedIndexes);
    const out = [];
    for (let i = 0; i < job.spec.completions; i++) {
      const attempts = byIndex.get(i) || [];
      const running = attempts.some((p) => !["Succeeded", "Failed"].includes(p.status?.phase));
      const state = done.has(i) ? "succeeded" : failed.has(i) ? "failed"
        : running ? "running" : "pending";
      out.push({ label: `index ${i}`, state, pods: attempts, perIndex: failed.has(i) });
    }
    return out;
  }
  return [...pods.values()]
    .sort((a, b) => a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp))
    .map((pod) => {
      const phase = pod.status?.phase;
      const state = phase === "Succeeded" ? "succeeded" : phase === "Failed" ? "failed"
        : phase === "Running" ? "running" : "pending";
      return { label: pod.metadata.name, state, pods: [pod], perIndex: false };
    });
}

// One cell: its colour and a shape, so the states differ without colour too.
function drawCell(ctx, x, y, size, state, perIndex) {
  ctx.fillStyle = COLOURS[state];
  const inner = Math.max(1, size - 1);
  if (state === "pending") {
    ctx.fillRect(x, y, inner, inner);
    return;
  }
  ctx.fillRect(x, y, inner, inner);
  if (size < 6) return;
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = Math.max(1, size / 8);
  ctx.beginPath();
  if (state === "failed") {
    ctx.moveTo(x + size * 0.25, y + size * 0.25);
    ctx.lineTo(x + size * 0.7, y + size * 0.7);
    ctx.moveTo(x + size * 0.7, y + size * 0.25);
    ctx.lineTo(x + size * 0.25, y + size * 0.7);
    if (perIndex) ctx.rect(x + 1, y + 1, inner - 2, inner - 2);
  } else if (state === "running") {
    ctx.arc(x + inner / 2, y + inner / 2, inner / 5, 0, 2 * Math.PI);
  } else {
    ctx.moveTo(x + size * 0.22, y + size * 0.5);
    ctx.lineTo(x + size * 0.42, y + size * 0.7);
    ctx.lineTo(x + size * 0.75, y + size * 0.28);
  }
  ctx.stroke();
}

// The width a canvas may take in the page, its padding left out (no sideways scrolling on
// a phone).
function contentWidth() {
  const style = getComputedStyle(main);
  const inner = main.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return Math.max(200, Math.min(inner || 800, 1200));
}

function grid(all, onOpen) {
  const wrap = document.createElement("div");
  wrap.className = "grid";
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const c of all) counts[c.state]++;
  const summary = document.createElement("p");
  summary.id = "grid-summary";
  summary.textContent = `${all.length} cells: ` +
    STATES.map((s) => `${counts[s]} ${s}`).join(", ");
  const legend = document.createElement("p");
  legend.className = "legend";
  for (const state of STATES) {
    const sample = document.createElement("canvas");
    sample.width = sample.height = 14;
    drawCell(sample.getContext("2d"), 0, 0, 14, state, false);
    legend.append(sample, ` ${state} `);
  }
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", summary.textContent);
  canvas.tabIndex = 0;
  const width = contentWidth();
  const size = Math.max(3, Math.min(24, Math.floor(Math.sqrt((width * 300) / Math.max(1, all.length)))));
  const perRow = Math.max(1, Math.floor(width / size));
  canvas.width = perRow * size;
  canvas.height = Math.ceil(all.length / perRow) * size;
  const ctx = canvas.getContext("2d");
  all.forEach((c, i) => drawCell(ctx, (i % perRow) * size, Math.floor(i / perRow) * size, size, c.state, c.perIndex));
  const tip = document.createElement("div");
  tip.className = "tip";
  tip.hidden = true;
  const at = (event) => {
    // The canvas may be drawn smaller than its pixels (a scrollbar came after it was sized).
    const box = canvas.getBoundingClientRect();
    const x = ((event.clientX - box.left) * canvas.width) / box.width;
    const y = ((event.clientY - box.top) * canvas.height) / box.height;
    const column = Math.floor(x / size);
    return column < perRow ? all[Math.floor(y / size) * perRow + column] : undefined;
  };
  canvas.addEventListener("mousemove", (event) => {
    const c = at(event);
    tip.hidden = !c;
    if (!c) return;
    const pods = c.pods.map((p) => `${p.metadata.name} (${p.status?.phase || "Pending"})`).join(", ");
    tip.textContent = `${c.label}: ${c.state}${c.perIndex ? " (backoffLimitPerIndex)" : ""}; ` +
      `${c.pods.length} attempt(s)${pods ? `: ${pods}` : ""}`;
  });
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  canvas.addEventListener("click", (event) => {
    const c = at(event);
    const pod = c?.pods[c.pods.length - 1];
    if (pod) onOpen(pod);
  });
  wrap.append(summary, legend, canvas, tip);
  // The failed cells as links too: for the keyboard, and to find them among thousands.
  const failed = all.filter((c) => c.state === "failed" && c.pods.length);
  if (failed.length) {
    const list = document.createElement("p");
    list.className = "failed";
    list.append("Failed: ");
    for (const c of failed.slice(0, 50)) {
      const pod = c.pods[c.pods.length - 1];
      const a = link(`#/pods/${pod.metadata.namespace}/${pod.metadata.name}`, c.label);
      list.append(a, " ");
    }
    if (failed.length > 50) list.append(`and ${failed.length - 50} more`);
    wrap.append(list);
  }
  return wrap;
}

// When a pod ran: from its start to its containers' last end (or now, while it runs).
function span(pod, now) {
  const statuses = [...(pod.status?.initContainerStatuses || []), ...(pod.status?.containerStatuses || [])];
  const start = pod.status?.startTime || pod.metadata.creationTimestamp;
  const ends = statuses.map((s) => s.state?.terminated?.finishedAt).filter(Boolean);
  const done = ["Succeeded", "Failed"].includes(pod.status?.phase);
  const end = done && ends.length ? Math.max(...ends.map(Date.parse)) : now;
  return { start: Date.parse(start), end: Math.max(end, Date.parse(start)) };
}

// A row per index (its attempts side by side, so retries and back-off gaps show) or per
// pod, a bar from each pod's start to its end, coloured and patterned by its outcome.
function timeline(job, pods, onOpen) {
  const now = Date.now();
  const indexed = job.spec.completionMode === "Indexed";
  const rows = new Map();
  for (const pod of pods.values()) {
    const label = indexed ? `index ${pod.metadata.annotations?.[INDEX]}` : pod.metadata.name;
    if (!rows.has(label)) rows.set(label, []);
    rows.get(label).push(pod);
  }
  const ordered = [...rows.entries()].sort((a, b) =>
    indexed ? Number(a[0].slice(6)) - Number(b[0].slice(6)) : a[0].localeCompare(b[0]));
  const bars = ordered.flatMap(([, list], row) => list.map((pod) => ({ row, pod, ...span(pod, now) })));
  const from = Math.min(...bars.map((b) => b.start), job.status?.startTime ? Date.parse(job.status.startTime) : now);
  const to = Math.max(...bars.map((b) => b.end), from + 1000);
  const wrap = document.createElement("div");
  wrap.className = "timeline";
  const summary = document.createElement("p");
  summary.id = "timeline-summary";
  summary.textContent = `${ordered.length} rows, ${bars.length} pods, over ${human((to - from) / 1000)}`;
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", summary.textContent);
  const labelWidth = 110;
  const width = contentWidth();
  const height = Math.max(2, Math.min(18, Math.floor(4000 / Math.max(1, ordered.length))));
  canvas.width = width;
  canvas.height = ordered.length * height;
  const ctx = canvas.getContext("2d");
  const x = (t) => labelWidth + ((t - from) / (to - from)) * (width - labelWidth - 4);
  ctx.font = `${Math.min(12, height - 2)}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  ordered.forEach(([label], row) => {
    if (height >= 10) {
      ctx.fillStyle = "#57606a";
      ctx.fillText(label, 2, row * height + height / 2, labelWidth - 6);
    }
  });
  for (const bar of bars) {
    const phase = bar.pod.status?.phase;
    const state = phase === "Succeeded" ? "succeeded" : phase === "Failed" ? "failed"
      : phase === "Running" ? "running" : "pending";
    const left = x(bar.start);
    const w = Math.max(2, x(bar.end) - left);
    const top = bar.row * height + 1;
    ctx.fillStyle = COLOURS[state];
    ctx.fillRect(left, top, w, Math.max(1, height - 2));
    if (state === "failed" && height >= 6) {
      // Hatched, so a failed attempt differs from a success without colour.
      ctx.strokeStyle = "#fff";
      ctx.beginPath();
      for (let hx = left; hx < left + w; hx += 6) {
        ctx.moveTo(hx, top + height - 2);
        ctx.lineTo(Math.min(hx + height - 2, left + w), top);
      }
      ctx.stroke();
    }
  }
  canvas.addEventListener("click", (event) => {
    const box = canvas.getBoundingClientRect();
    const row = Math.floor(((event.clientY - box.top) * canvas.height) / box.height / height);
    const px = ((event.clientX - box.left) * canvas.width) / box.width;
    const t = from + ((px - labelWidth) / (width - labelWidth - 4)) * (to - from);
    const hit = bars.find((b) => b.row === row && b.start <= t && t <= b.end) ||
      bars.filter((b) => b.row === row).pop();
    if (hit) onOpen(hit.pod);
  });
  wrap.append(summary, canvas);
  return wrap;
}

function definitions(pairs) {
  const dl = document.createElement("dl");
  for (const [term, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    dl.append(dt, dd);
  }
  return dl;
}

function heading(level, text) {
  const h = document.createElement(`h${level}`);
  h.textContent = text;
  return h;
}

function eventsTable(events) {
  const table = document.createElement("table");
  headings(table, [["Type"], ["Reason"], ["Object"], ["Message"]]);
  const body = table.createTBody();
  const sorted = [...events.values()].sort((a, b) =>
    (a.lastTimestamp || a.metadata.creationTimestamp).localeCompare(b.lastTimestamp || b.metadata.creationTimestamp));
  for (const e of sorted) {
    const row = body.insertRow();
    const object = `${e.involvedObject.kind.toLowerCase()}/${e.involvedObject.name}`;
    row.append(cell(e.type), cell(e.reason), cell(object), cell(e.message));
  }
  const scroll = document.createElement("div");
  scroll.className = "scroll";
  scroll.append(table);
  return scroll;
}

function keyed(map, list) {
  map.clear();
  for (const item of list.items) map.set(item.metadata.name, item);
}

function applyEvent(map, event) {
  if (event.type === "DELETED") map.delete(event.object.metadata.name);
  else map.set(event.object.metadata.name, event.object);
}

function jobView(namespace, name) {
  const pods = new Map();
  const events = new Map();
  let job = null;
  const self = { alive: true, watches: new AbortController() };
  self.render = () => {
    if (!self.alive) return;
    const back = link("#/", "← Jobs");
    if (!job) {
      main.replaceChildren(back, heading(2, `Job ${name}`),
        document.createTextNode(self.listed ? "This Job does not exist (any more)." : "Loading…"));
      return;
    }
    const spec = job.spec;
    const status = job.status || {};
    const conditions = (status.conditions || []).filter((c) => c.status === "True")
      .map((c) => `${c.type} (${c.reason})`).join(", ");
    const policies = [spec.podFailurePolicy && "podFailurePolicy", spec.successPolicy && "successPolicy",
      spec.backoffLimitPerIndex !== undefined && `backoffLimitPerIndex ${spec.backoffLimitPerIndex}`]
      .filter(Boolean).join(", ");
    const summary = definitions([
      ["Namespace", namespace],
      ["Conditions", conditions || "none"],
      ["Completions", `${status.succeeded || 0}/${spec.completions ?? "∞"}`],
      ["Parallelism", spec.parallelism],
      ["Mode", spec.completionMode],
      ["Backoff limit", spec.backoffLimit],
      ["Policies", policies],
      ["Active / failed", `${status.active || 0} / ${status.failed || 0}`],
      ["Duration", duration(job, Date.now())],
    ]);
    const open = (pod) => { location.hash = `#/pods/${namespace}/${pod.metadata.name}`; };
    const finished = (status.conditions || []).some((c) =>
      ["Complete", "Failed"].includes(c.type) && c.status === "True");
    const jobEvents = new Map([...events].filter(([, e]) =>
      e.involvedObject.name === name || pods.has(e.involvedObject.name)));
    main.replaceChildren(back, heading(2, `Job ${name}`), actions(self, namespace, name, spec, finished), summary,
      heading(3, spec.completionMode === "Indexed" ? "Indexes" : "Pods"),
      grid(cells(job, pods), open), heading(3, "Timeline"), timeline(job, pods, open),
      heading(3, "Events"), eventsTable(jobEvents));
  };
  const signal = self.watches.signal;
  const base = `/api/v1/namespaces/${namespace}`;
  live(`/apis/batch/v1/namespaces/${namespace}/jobs?fieldSelector=metadata.name%3D${name}`, {}, signal,
    (list) => { job = list.items[0] || null; self.listed = true; self.render(); },
    (event) => { job = event.type === "DELETED" ? null : event.object; self.render(); });
  live(`${base}/pods?labelSelector=batch.kubernetes.io%2Fjob-name%3D${name}`, {}, signal,
    (list) => { keyed(pods, list); self.render(); },
    (event) => { applyEvent(pods, event); self.render(); });
  live(`${base}/events`, {}, signal,
    (list) => { keyed(events, list); self.render(); },
    (event) => { applyEvent(events, event); self.render(); });
  return self;
}

// What a user does with kubectl: suspend or resume (`kubectl patch`), delete (`kubectl
// delete`, the pods with it), through the same API, so its checks and errors apply.
function actions(self, namespace, name, spec, finished) {
  const bar = document.createElement("div");
  bar.className = "actions";
  const said = document.createElement("p");
  said.className = "error";
  said.setAttribute("role", "alert");
  said.textContent = self.said || "";
  const path = `/apis/batch/v1/namespaces/${namespace}/jobs/${name}`;
  const act = async (request) => {
    try {
      const response = await fetch(path, request);
      if (response.status === 401) return location.reload();
      const body = await response.json();
      self.said = response.ok ? "" : body.message || response.statusText;
    } catch (error) {
      self.said = error.message;
    }
    self.render();
  };
  const button = (text, onClick) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  };
  if (!finished) {
    const suspend = !spec.suspend;
    bar.append(button(suspend ? "Suspend" : "Resume", () => act({
      method: "PATCH",
      headers: { "Content-Type": "application/merge-patch+json" },
      body: JSON.stringify({ spec: { suspend } }),
    })));
  }
  if (self.confirming) {
    bar.append(`Delete Job ${name} and its pods? `,
      button("Yes, delete", () => {
        self.confirming = false;
        act({ method: "DELETE", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ kind: "DeleteOptions", apiVersion: "v1", propagationPolicy: "Background" }) });
      }),
      button("Cancel", () => { self.confirming = false; self.render(); }));
  } else {
    bar.append(button("Delete…", () => { self.confirming = true; self.render(); }));
  }
  bar.append(said);
  return bar;
}

function containerRows(pod) {
  const table = document.createElement("table");
  headings(table, [["Container"], ["Kind"], ["State"], ["Exit code"], ["Reason"], ["Restarts"]]);
  const body = table.createTBody();
  const statuses = [...(pod.status?.initContainerStatuses || []), ...(pod.status?.containerStatuses || [])];
  const kinds = new Map();
  for (const c of pod.spec.initContainers || []) kinds.set(c.name, c.restartPolicy === "Always" ? "sidecar" : "init");
  for (const c of pod.spec.containers) kinds.set(c.name, "main");
  for (const [name, kind] of kinds) {
    const s = statuses.find((x) => x.name === name) || {};
    const state = s.state || {};
    const [which, detail] = Object.entries(state)[0] || ["waiting", {}];
    const row = body.insertRow();
    row.append(cell(name), cell(kind), cell(which), cell(detail.exitCode ?? ""),
      cell(detail.reason || ""), cell(s.restartCount ?? 0, "num"));
  }
  return table;
}

async function follow(pre, path, signal) {
  try {
    const response = await signedIn(await fetch(path, { signal }));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    while (!signal.aborted) {
      const { value, done } = await reader.read();
      if (done) return;
      pre.textContent += value;
    }
    reader.cancel();
  } catch (error) {
    if (!signal.aborted) pre.textContent += `\n[${error.message}]`;
  }
}

function podView(namespace, name) {
  let pod = null;
  const logs = new Map(); // container -> <pre>, kept across redraws while it follows
  const self = { alive: true, watches: new AbortController() };
  self.render = () => {
    if (!self.alive) return;
    const back = pod ? link(`#/jobs/${namespace}/${pod.metadata.labels?.["batch.kubernetes.io/job-name"] || ""}`, "← Job")
      : link("#/", "← Jobs");
    if (!pod) {
      main.replaceChildren(back, heading(2, `Pod ${name}`), document.createTextNode("Not found (yet)."));
      return;
    }
    const parts = [back, heading(2, `Pod ${name}`), definitions([
      ["Phase", pod.status?.phase || "Pending"],
      ["Reason", pod.status?.reason],
      ["Message", pod.status?.message],
      ["Node", pod.spec.nodeName],
    ]), containerRows(pod)];
    const containers = [...(pod.spec.initContainers || []), ...pod.spec.containers].map((c) => c.name);
    for (const container of containers) {
      if (!logs.has(container)) {
        const pre = document.createElement("pre");
        pre.className = "log";
        pre.dataset.container = container;
        logs.set(container, pre);
        follow(pre, `/api/v1/namespaces/${namespace}/pods/${name}/log?container=${container}&follow=true`, self.watches.signal);
      }
      parts.push(heading(3, `Log of ${container}`), logs.get(container));
    }
    main.replaceChildren(...parts);
  };
  live(`/api/v1/namespaces/${namespace}/pods?fieldSelector=metadata.name%3D${name}`, {}, self.watches.signal,
    (list) => { pod = list.items[0] || null; self.render(); },
    (event) => { pod = event.type === "DELETED" ? pod : event.object; self.render(); });
  return self;
}

function route() {
  const [, kind, namespace, name] = location.hash.split("/");
  if (kind === "jobs" && name) show(jobView(decodeURIComponent(namespace), decodeURIComponent(name)));
  else if (kind === "pods" && name) show(podView(decodeURIComponent(namespace), decodeURIComponent(name)));
  else show(jobsView());
}

window.addEventListener("hashchange", route);
// Ages and durations tick; a page drawn from a canvas is not redrawn for that.
setInterval(() => { if (view.render === renderJobs) renderJobs(); }, 1000);
route();

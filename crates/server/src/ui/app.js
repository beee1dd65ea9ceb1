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

// Reads the watch of `path` from `resourceVersion`, calling `onEvent` with each event, until
// the stream ends or `signal` aborts.
async function watchFrom(path, headers, signal, resourceVersion, onEvent) {
  const separator = path.includes("?") ? "&" : "?";
  const url = `${path}${separator}watch=1&allowWatchBookmarks=true&resourceVersion=${resourceVersion}`;
  const response = await signedIn(await fetch(url, { headers, signal }));
  await readLines(response, signal, (event) => {
    if (event.type === "ERROR") throw new Error(event.object.message);
    if (event.type !== "BOOKMARK") onEvent(event);
  });
}

// Calls `onLine` with each line of JSON of `response`, until it ends or `signal` aborts.
async function readLines(response, signal, onLine) {
  // Decoded here rather than through a TextDecoderStream: a second stream cost each chunk
  // of a busy watch another round of promises.
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let rest = "";
  while (!signal.aborted) {
    const { value, done } = await reader.read();
    if (done) break;
    const lines = (rest + decoder.decode(value, { stream: true })).split("\n");
    rest = lines.pop();
    for (const line of lines) if (line.trim()) onLine(JSON.parse(line));
  }
  reader.cancel();
}

// Runs `attempt` again a second after it ends or breaks, until `signal` aborts or the
// browser is signed out. `attempt` gets a signal that closes its streams either way.
async function again(signal, what, attempt) {
  while (!signal.aborted) {
    const these = new AbortController();
    const stop = () => these.abort();
    signal.addEventListener("abort", stop);
    try {
      await attempt(these.signal);
    } catch (error) {
      if (error.message === "signed out") return;
      if (!signal.aborted) console.warn(what, error);
    } finally {
      these.abort();
      signal.removeEventListener("abort", stop);
    }
    if (!signal.aborted) await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// Lists `path` and then watches it from the list's resourceVersion, until `signal` aborts;
// after a broken watch it lists again.
function live(path, headers, signal, onList, onEvent) {
  return again(signal, path, async (these) => {
    const list = await (await signedIn(await fetch(path, { headers, signal: these }))).json();
    onList(list);
    await watchFrom(path, headers, these, list.metadata.resourceVersion, onEvent);
  });
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
  // A running Job's status changes hundreds of times a second: the table is redrawn at most
  // every 250 ms, not at each change.
  const draw = throttled(() => { if (self.alive) renderJobs(); }, () => 250);
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
      draw();
    },
  );
  return self;
}

// A cell's state, as a code (a 100,000-index Job's states are one byte each).
const PENDING = 0, RUNNING = 1, SUCCEEDED = 2, FAILED = 3, FAILED_INDEX = 4;
const STATES = ["pending", "running", "succeeded", "failed"];
const COLOURS = ["#d0d7de", "#0969da", "#1a7f37", "#cf222e", "#cf222e"];

function phaseState(phase) {
  return phase === "Succeeded" ? SUCCEEDED : phase === "Failed" ? FAILED
    : phase === "Running" ? RUNNING : PENDING;
}

function byCreation(a, b) {
  return a.created.localeCompare(b.created) || a.name.localeCompare(b.name);
}

// Sets `code` for every index of an index set as the API writes them ("1,3-5").
function fillIndexes(states, text, code) {
  for (const part of (text || "").split(",")) {
    if (!part) continue;
    const [a, b] = part.split("-").map(Number);
    states.fill(code, a, Math.min((b ?? a) + 1, states.length));
  }
}

// The grid's cells: a state per index of an Indexed Job (the Job's status names its
// finished indexes in a few ranges; its pods say which run and which failed), or per pod
// of another. One pass over the pods per update; an index's attempts are grouped only
// when asked for (a tip, a link).
function gridCells(job, records) {
  if (job.spec.completionMode === "Indexed") {
    const count = job.spec.completions;
    const states = new Uint8Array(count);
    for (const r of records.values()) {
      const i = r.index;
      if (!(i >= 0 && i < count)) continue;
      if (r.end === null) states[i] = RUNNING;
      else if (states[i] !== RUNNING) states[i] = Math.max(states[i], phaseState(r.phase));
    }
    fillIndexes(states, job.status?.completedIndexes, SUCCEEDED);
    fillIndexes(states, job.status?.failedIndexes, FAILED_INDEX);
    let attempts = null;
    const grouped = () => {
      if (attempts) return attempts;
      attempts = new Map();
      for (const r of records.values()) {
        if (!attempts.has(r.index)) attempts.set(r.index, []);
        attempts.get(r.index).push(r);
      }
      for (const list of attempts.values()) list.sort(byCreation);
      return attempts;
    };
    return { count, states, label: (i) => `index ${i}`, attempts: (i) => grouped().get(i) || [] };
  }
  const pods = [...records.values()].sort(byCreation);
  return {
    count: pods.length,
    states: Uint8Array.from(pods, (r) => phaseState(r.phase)),
    label: (i) => pods[i].name,
    attempts: (i) => [pods[i]],
  };
}

// One cell: its colour and a shape, so the states differ without colour too.
function drawCell(ctx, x, y, size, code) {
  const inner = Math.max(1, size - 1);
  ctx.clearRect(x, y, size, size);
  ctx.fillStyle = COLOURS[code];
  ctx.fillRect(x, y, inner, inner);
  if (code === PENDING || size < 6) return;
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = Math.max(1, size / 8);
  ctx.beginPath();
  if (code === FAILED || code === FAILED_INDEX) {
    ctx.moveTo(x + size * 0.25, y + size * 0.25);
    ctx.lineTo(x + size * 0.7, y + size * 0.7);
    ctx.moveTo(x + size * 0.7, y + size * 0.25);
    ctx.lineTo(x + size * 0.25, y + size * 0.7);
    if (code === FAILED_INDEX) ctx.rect(x + 1, y + 1, inner - 2, inner - 2);
  } else if (code === RUNNING) {
    ctx.arc(x + inner / 2, y + inner / 2, inner / 5, 0, 2 * Math.PI);
  } else {
    ctx.moveTo(x + size * 0.22, y + size * 0.5);
    ctx.lineTo(x + size * 0.42, y + size * 0.7);
    ctx.lineTo(x + size * 0.75, y + size * 0.28);
  }
  ctx.stroke();
}

// The width a canvas may take in the page, its padding left out (no sideways scrolling on
// a phone). Observed rather than read: reading it at each redraw forced a layout each time.
let mainWidth = 0;
new ResizeObserver(([entry]) => {
  if (entry.contentRect.width === mainWidth) return;
  mainWidth = entry.contentRect.width;
  view?.schedule?.();
}).observe(main);
function contentWidth() {
  return Math.max(200, Math.min(mainWidth || 800, 1200));
}

function describe(cells, i) {
  const code = cells.states[i];
  const attempts = cells.attempts(i);
  const shown = attempts.slice(-5).map((r) => `${r.name} (${r.phase})`).join(", ");
  const more = attempts.length > 5 ? `${attempts.length - 5} earlier, ` : "";
  return `${cells.label(i)}: ${STATES[Math.min(code, FAILED)]}` +
    `${code === FAILED_INDEX ? " (backoffLimitPerIndex)" : ""}; ` +
    `${attempts.length} attempt(s)${shown ? `: ${more}${shown}` : ""}`;
}

// The grid, drawn on a canvas (100,000 cells are too many DOM nodes) and redrawn where
// cells changed only. Kept across updates, so hover and keyboard focus stay: the arrow keys
// move a cell's outline, Enter opens its latest pod.
function makeGrid(namespace, onOpen) {
  const wrap = document.createElement("div");
  wrap.className = "grid";
  const summary = document.createElement("p");
  summary.id = "grid-summary";
  const legend = document.createElement("p");
  legend.className = "legend";
  STATES.forEach((state, code) => {
    const sample = document.createElement("canvas");
    sample.width = sample.height = 14;
    drawCell(sample.getContext("2d"), 0, 0, 14, code);
    legend.append(sample, ` ${state} `);
  });
  const framed = document.createElement("canvas");
  framed.width = framed.height = 14;
  drawCell(framed.getContext("2d"), 0, 0, 14, FAILED_INDEX);
  legend.append(framed, " failed index (backoffLimitPerIndex) ");
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  canvas.tabIndex = 0;
  const ctx = canvas.getContext("2d");
  const tip = document.createElement("div");
  tip.className = "tip";
  tip.setAttribute("aria-live", "polite");
  tip.hidden = true;
  const failedList = document.createElement("p");
  failedList.className = "failed";
  wrap.append(summary, legend, canvas, tip, failedList);
  let cells = { count: 0, states: new Uint8Array(0) };
  let drawn = null; // the states, size and row length on the canvas now
  let focus = -1;
  let failedKey = "";

  const place = (i) => [(i % drawn.perRow) * drawn.size, Math.floor(i / drawn.perRow) * drawn.size];
  const outline = () => {
    if (focus < 0 || focus >= cells.count) return;
    const [x, y] = place(focus);
    ctx.strokeStyle = "#1b1f24";
    ctx.lineWidth = 2;
    ctx.strokeRect(x + 1, y + 1, drawn.size - 3, drawn.size - 3);
  };
  const redraw = (i) => {
    const [x, y] = place(i);
    drawCell(ctx, x, y, drawn.size, cells.states[i]);
  };
  const at = (event) => {
    // The canvas may be drawn smaller than its pixels (a scrollbar came after it was sized).
    const box = canvas.getBoundingClientRect();
    const x = ((event.clientX - box.left) * canvas.width) / box.width;
    const y = ((event.clientY - box.top) * canvas.height) / box.height;
    const column = Math.floor(x / drawn.size);
    const i = Math.floor(y / drawn.size) * drawn.perRow + column;
    return column < drawn.perRow && i < cells.count ? i : -1;
  };
  const open = (i) => {
    const attempts = cells.attempts(i);
    if (attempts.length) onOpen(attempts[attempts.length - 1].name);
  };
  const tell = (i) => {
    tip.hidden = i < 0;
    if (i >= 0) tip.textContent = describe(cells, i);
  };
  canvas.addEventListener("mousemove", (event) => tell(at(event)));
  canvas.addEventListener("mouseleave", () => tell(focus));
  canvas.addEventListener("click", (event) => {
    const i = at(event);
    if (i >= 0) open(i);
  });
  canvas.addEventListener("blur", () => {
    if (focus >= 0 && focus < cells.count) redraw(focus);
    focus = -1;
    tell(-1);
  });
  canvas.addEventListener("keydown", (event) => {
    if (!cells.count) return;
    const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -drawn.perRow, ArrowDown: drawn.perRow };
    if (event.key === "Enter" && focus >= 0) return open(focus);
    let next;
    if (event.key in moves) next = focus < 0 ? 0 : Math.max(0, Math.min(cells.count - 1, focus + moves[event.key]));
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = cells.count - 1;
    else return;
    event.preventDefault();
    if (focus >= 0 && focus < cells.count) redraw(focus);
    focus = next;
    outline();
    tell(focus);
  });

  const update = (next) => {
    cells = next;
    const counts = [0, 0, 0, 0];
    for (const code of cells.states) counts[Math.min(code, FAILED)]++;
    const told = `${cells.count} cells: ` + STATES.map((s, c) => `${counts[c]} ${s}`).join(", ");
    if (told !== summary.textContent) {
      summary.textContent = told;
      canvas.setAttribute("aria-label", `${told}. Arrow keys move between cells, Enter opens a cell's pod.`);
    }
    const width = contentWidth();
    const size = Math.max(3, Math.min(24, Math.floor(Math.sqrt((width * 300) / Math.max(1, cells.count)))));
    const perRow = Math.max(1, Math.floor(width / size));
    const whole = !drawn || drawn.size !== size || drawn.perRow !== perRow || drawn.states.length !== cells.count;
    if (whole) {
      canvas.width = perRow * size;
      canvas.height = Math.ceil(cells.count / perRow) * size;
      drawn = { size, perRow, states: new Uint8Array(cells.count) };
    }
    for (let i = 0; i < cells.count; i++) {
      if (whole || drawn.states[i] !== cells.states[i]) redraw(i);
    }
    drawn.states.set(cells.states);
    outline();
    if (!tip.hidden && focus >= 0) tell(focus);
    // The failed cells as links too: for the keyboard, and to find them among thousands.
    const failed = [];
    for (let i = 0; i < cells.count && failed.length <= 50; i++) {
      if (cells.states[i] >= FAILED && cells.attempts(i).length) failed.push(i);
    }
    const named = failed.slice(0, 50).map((i) => [cells.label(i), cells.attempts(i).at(-1).name]);
    const key = JSON.stringify(named) + failed.length;
    if (key !== failedKey) {
      failedKey = key;
      failedList.replaceChildren();
      if (named.length) failedList.append("Failed: ");
      for (const [label, pod] of named) failedList.append(link(`#/pods/${namespace}/${pod}`, label), " ");
      if (failed.length > 50) failedList.append("and more");
    }
  };
  return { element: wrap, update };
}

// A row per index (its attempts side by side, so retries and back-off gaps show) or per
// pod, a bar from each pod's start to its end, coloured and patterned by its outcome. Past
// 1,000 rows a line holds several, their bars drawn over each other: stragglers still
// stand out, and the canvas stays a canvas a page can hold.
function drawTimeline(wrap, job, records, onOpen) {
  const now = Date.now();
  const indexed = job.spec.completionMode === "Indexed";
  const rows = new Map();
  for (const r of records.values()) {
    const row = indexed ? r.index : r.name;
    if (!rows.has(row)) rows.set(row, []);
    rows.get(row).push(r);
  }
  const ordered = [...rows.keys()].sort(indexed ? (a, b) => a - b : undefined);
  const perLine = Math.ceil(ordered.length / 1000) || 1;
  const lines = Math.ceil(ordered.length / perLine);
  let from = job.status?.startTime ? Date.parse(job.status.startTime) : now;
  let to = from + 1000;
  for (const r of records.values()) {
    from = Math.min(from, r.start);
    to = Math.max(to, r.end ?? now);
  }
  const summary = document.createElement("p");
  summary.id = "timeline-summary";
  summary.textContent = `${ordered.length} rows${perLine > 1 ? ` (${perLine} a line)` : ""}, ` +
    `${records.size} pods, over ${human((to - from) / 1000)}`;
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", summary.textContent);
  const labelWidth = 110;
  const width = contentWidth();
  const height = Math.max(2, Math.min(18, Math.floor(4000 / Math.max(1, lines))));
  canvas.width = width;
  canvas.height = lines * height;
  const ctx = canvas.getContext("2d");
  const x = (t) => labelWidth + ((t - from) / (to - from)) * (width - labelWidth - 4);
  ctx.font = `${Math.min(12, height - 2)}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  if (height >= 10) {
    ctx.fillStyle = "#57606a";
    for (let line = 0; line < lines; line++) {
      const first = ordered[line * perLine];
      const label = perLine > 1 ? `${first}–${ordered[Math.min(ordered.length, (line + 1) * perLine) - 1]}`
        : indexed ? `index ${first}` : first;
      ctx.fillText(label, 2, line * height + height / 2, labelWidth - 6);
    }
  }
  const lineOf = new Map(ordered.map((row, i) => [row, Math.floor(i / perLine)]));
  for (const r of records.values()) {
    const state = phaseState(r.phase);
    const left = x(r.start);
    const w = Math.max(2, x(r.end ?? now) - left);
    const top = lineOf.get(indexed ? r.index : r.name) * height + 1;
    ctx.fillStyle = COLOURS[state];
    ctx.fillRect(left, top, w, Math.max(1, height - 2));
    if (state === FAILED && height >= 6) {
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
    const line = Math.floor(((event.clientY - box.top) * canvas.height) / box.height / height);
    const px = ((event.clientX - box.left) * canvas.width) / box.width;
    const t = from + ((px - labelWidth) / (width - labelWidth - 4)) * (to - from);
    const here = ordered.slice(line * perLine, (line + 1) * perLine).flatMap((row) => rows.get(row));
    const hit = here.find((r) => r.start <= t && t <= (r.end ?? now)) || here.at(-1);
    if (hit) onOpen(hit.name);
  });
  wrap.replaceChildren(summary, canvas);
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

// Events, oldest first; `dropped` says older ones were left out.
function eventsTable(events, dropped) {
  const table = document.createElement("table");
  headings(table, [["Type"], ["Reason"], ["Object"], ["Message"]]);
  const body = table.createTBody();
  events.sort((a, b) => (eventTime(a) < eventTime(b) ? -1 : eventTime(a) > eventTime(b) ? 1 : 0));
  for (const e of events) {
    const row = body.insertRow();
    const object = `${e.involvedObject.kind.toLowerCase()}/${e.involvedObject.name}`;
    row.append(cell(e.type), cell(e.reason), cell(object), cell(e.message));
  }
  const scroll = document.createElement("div");
  scroll.className = "scroll";
  if (dropped) {
    const note = document.createElement("p");
    note.className = "empty";
    note.textContent = "The newest events; older ones are left out.";
    scroll.append(note);
  }
  scroll.append(table);
  return scroll;
}

function eventTime(e) {
  return e.lastTimestamp || e.eventTime || e.metadata.creationTimestamp;
}

// Events as a page keeps them: the newest `keep` (the controller of a 100,000-pod Job says
// "Created pod" 100,000 times). `version` moves with every change.
function recentEvents(keep) {
  const events = new Map();
  const self = { events, version: 0, dropped: false };
  const put = (e) => {
    events.delete(e.metadata.name); // an updated event is the newest again
    events.set(e.metadata.name, e);
    while (events.size > keep) {
      events.delete(events.keys().next().value);
      self.dropped = true;
    }
  };
  self.list = (list) => {
    events.clear();
    self.dropped = false;
    const items = [...list.items].sort((a, b) => (eventTime(a) < eventTime(b) ? -1 : 1));
    for (const e of items) put(e);
    self.version++;
  };
  self.apply = (event) => {
    if (event.type === "DELETED") events.delete(event.object.metadata.name);
    else put(event.object);
    self.version++;
  };
  return self;
}

// Calls `render` soon, at most every `gap()` ms: a busy Job's changes come by the thousand.
function throttled(render, gap) {
  let timer = null;
  let last = -Infinity; // performance.now() starts near 0 in a new page
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      last = performance.now();
      render();
    }, Math.max(0, last + gap() - performance.now()));
  };
}

function jobView(namespace, name) {
  // pod name -> what the grid, the timeline and their tips need of it (from the server's
  // stream, not whole pods, so that a Job of 100,000 pods fits in a page)
  const records = new Map();
  const jobEvents = recentEvents(100);
  const podWarnings = recentEvents(100);
  let job = null;
  let page = null; // the parts of the page kept across updates
  const self = { alive: true, watches: new AbortController() };
  const open = (pod) => { location.hash = `#/pods/${namespace}/${pod}`; };
  const build = () => {
    const grid = makeGrid(namespace, open);
    page = {
      actions: document.createElement("div"), actionsKey: "", summary: document.createElement("div"),
      grid, timeline: document.createElement("div"), events: document.createElement("div"), timelineAt: 0,
    };
    page.timeline.className = "timeline";
    // The timeline and the events are drawn when they are on screen or near it: below the
    // fold, a large Job's timeline would cost the page most of its drawing for nothing.
    page.near = new Set();
    const near = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting) page.near.add(entry.target);
        else page.near.delete(entry.target);
      }
      self.schedule();
    }, { rootMargin: "300px" });
    near.observe(page.timeline);
    near.observe(page.events);
    main.replaceChildren(link("#/", "← Jobs"), heading(2, `Job ${name}`), page.actions, page.summary,
      heading(3, job.spec.completionMode === "Indexed" ? "Indexes" : "Pods"), grid.element,
      heading(3, "Timeline"), page.timeline, heading(3, "Events"), page.events);
  };
  self.render = () => {
    if (!self.alive) return;
    if (!job) {
      page = null;
      main.replaceChildren(link("#/", "← Jobs"), heading(2, `Job ${name}`),
        document.createTextNode(self.listed ? "This Job does not exist (any more)." : "Loading…"));
      return;
    }
    if (!page) build();
    const spec = job.spec;
    const status = job.status || {};
    const finished = (status.conditions || []).some((c) =>
      ["Complete", "Failed"].includes(c.type) && c.status === "True");
    // The buttons are redrawn only when they change, so the one focused stays focused.
    const actionsKey = JSON.stringify([spec.suspend, finished, self.confirming, self.said]);
    if (actionsKey !== page.actionsKey) {
      page.actionsKey = actionsKey;
      const next = actions(self, namespace, name, spec, finished);
      page.actions.replaceWith(next);
      page.actions = next;
    }
    const conditions = (status.conditions || []).filter((c) => c.status === "True")
      .map((c) => `${c.type} (${c.reason})`).join(", ");
    const policies = [spec.podFailurePolicy && "podFailurePolicy", spec.successPolicy && "successPolicy",
      spec.backoffLimitPerIndex !== undefined && `backoffLimitPerIndex ${spec.backoffLimitPerIndex}`]
      .filter(Boolean).join(", ");
    const summary = [
      ["Namespace", namespace],
      ["Conditions", conditions || "none"],
      ["Completions", `${status.succeeded || 0}/${spec.completions ?? "∞"}`],
      ["Parallelism", spec.parallelism],
      ["Mode", spec.completionMode],
      ["Backoff limit", spec.backoffLimit],
      ["Policies", policies],
      ["Active / failed", `${status.active || 0} / ${status.failed || 0}`],
      ["Duration", duration(job, Date.now())],
    ];
    const summaryKey = JSON.stringify(summary);
    if (summaryKey !== page.summaryKey) {
      page.summaryKey = summaryKey;
      page.summary.replaceChildren(definitions(summary));
    }
    page.grid.update(gridCells(job, records));
    if (!self.painted) {
      self.painted = true;
      performance.mark("joblet:job-painted");
    }
    // The timeline draws every pod: at most once a second from 2,000 pods, every 3 s from
    // 10,000.
    if (!page.near.has(page.timeline)) {
      page.timelineAt = 0;
    } else if (records.size < 2000 || performance.now() - page.timelineAt > (large() ? 3000 : 1000)) {
      page.timelineAt = performance.now();
      drawTimeline(page.timeline, job, records, open);
    } else {
      self.schedule();
    }
    // Redrawn when they change (whether a pod's warning is the Job's depends on its pods).
    const eventsKey = `${jobEvents.version}/${podWarnings.version}/${podWarnings.events.size && records.size}`;
    if (eventsKey !== page.eventsKey && page.near.has(page.events)) {
      page.eventsKey = eventsKey;
      const ours = [...podWarnings.events.values()].filter((e) => records.has(e.involvedObject.name));
      page.events.replaceChildren(eventsTable([...jobEvents.events.values(), ...ours],
        jobEvents.dropped || podWarnings.dropped));
    }
    if (self.loaded && !self.complete) {
      self.complete = true;
      performance.mark("joblet:job-loaded");
    }
  };
  // A Job of many pods is redrawn less often: drawing is most of what the page costs.
  const large = () => records.size >= 10000;
  self.schedule = throttled(() => self.render(), () => (large() ? 800 : 200));
  const signal = self.watches.signal;
  const base = `/api/v1/namespaces/${namespace}`;
  // The Job and its pods come in one stream the server makes for this page from its watch
  // cache (ui/job_stream.rs): the Job when it changed, each pod's state (index, phase,
  // start, end) when it changed, at most every 250 ms. Watching them through the API cost
  // the page and the server an event for each of a busy Job's thousands of changes a
  // second. A pod's times are when the server saw it appear and end (the API's are whole
  // seconds); a pod deleted before it ended is "Deleted".
  const changed = (message) => {
    if ("job" in message) {
      job = message.job;
      self.listed = true;
      // The first paint waits for nothing; later changes go with the next throttled redraw.
      if (!self.painted) return self.render();
    }
    if (message.pods) {
      if (message.listing && !self.listing) self.listing = new Set();
      for (const pod of message.pods) {
        records.set(pod.name, { ...pod, index: pod.index ?? NaN });
        if (message.listing) self.listing.add(pod.name);
      }
    }
    if (message.listed) {
      for (const pod of records.keys()) if (!self.listing.has(pod)) records.delete(pod);
      self.listing = null;
      self.loaded = true;
    }
    self.schedule();
  };
  again(signal, name, async (these) => {
    const response = await signedIn(await fetch(`/ui/api/jobs/${namespace}/${name}`, { signal: these }));
    self.listing = null;
    await readLines(response, these, changed);
  });
  // The Job's own events, and its pods' warnings (back-off, failures): a large Job's pods'
  // every event would be most of the namespace's.
  live(`${base}/events?fieldSelector=involvedObject.kind%3DJob,involvedObject.name%3D${name}`, {}, signal,
    (list) => { jobEvents.list(list); self.schedule(); },
    (event) => { jobEvents.apply(event); self.schedule(); });
  live(`${base}/events?fieldSelector=involvedObject.kind%3DPod,type%3DWarning`, {}, signal,
    (list) => { podWarnings.list(list); self.schedule(); },
    (event) => { podWarnings.apply(event); self.schedule(); });
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

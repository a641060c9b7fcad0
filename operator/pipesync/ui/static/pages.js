// One function per page: each fetches what it shows and renders into `main`.
// `ctx` = { main, namespace, route, poll(fn), onLeave(fn) } from app.js.
import { ApiError, ns, request, text } from "./api.js";
import { drawDag, sameShape } from "./dag.js";
import { clear, h, link, phase, table } from "./dom.js";
import { RUN_PHASES, ago, formatValue, routeFor, shortCommit } from "./util.js";
import { viewer } from "./viewers.js";

const PAGE_SIZE = 100;

// The page table, in the navigation's order: each page's route (the <page> of
// #/ns/<namespace>/<page>), the function that draws it, and for a top-level page the
// label of its navigation link. app.js builds its routes and the navigation from it, so a
// new page is its function and its `page(...)` line here, nothing in app.js or index.html.
export const PAGES = [];

function page(route, draw, nav) {
  PAGES.push({ route, draw, nav });
}

export function showError(main, error) {
  const message = error instanceof ApiError ? error.message : String(error);
  main.append(h("p", { testid: "error-message", class: "error" }, message));
}

function empty(message) {
  return h("p", { testid: "empty-state", class: "empty" }, message);
}

function conditionsList(conditions) {
  return h("ul", { class: "conditions" }, (conditions || []).map((c) =>
    h("li", null, h("strong", null, `${c.type}=${c.status}`), ` ${c.reason || ""}: ${c.message || ""}`)));
}

// --- login ------------------------------------------------------------------------------

export function login(ctx, done) {
  const token = h("textarea", { testid: "login-token", rows: 4, placeholder: "Kubernetes bearer token", autocomplete: "off" });
  const problem = h("p", { testid: "login-error", class: "error", hidden: true });
  const submit = h("button", { testid: "login-submit", type: "submit" }, "Log in");
  const form = h("form", { class: "login" },
    h("h1", null, "Log in"),
    h("p", null, "Paste a Kubernetes token (e.g. from ", h("code", null, "kubectl create token NAME"),
      "). What you see is what your RBAC allows."),
    token, submit, problem);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.hidden = true;
    try {
      const answer = await request("login", { method: "POST", body: { token: token.value } });
      done(answer.user);
    } catch (error) {
      problem.textContent = error.message;
      problem.hidden = false;
    }
  });
  ctx.main.append(form);
}

// --- experiments ----------------------------------------------------------------------------

page("experiments", experiments, "Experiments");
export async function experiments(ctx) {
  const { main, namespace } = ctx;
  const data = await request(`${ns(namespace)}/experiments`);
  main.append(h("h1", null, "Experiments"));
  if (!data.items.length) { main.append(empty("No experiments in this namespace.")); return; }
  main.append(table("experiments-table", ["name", "description", "runs", "last run"], data.items.map((e) =>
    h("tr", { testid: "experiment-row", "data-experiment": e.name },
      h("td", null, link(routeFor(namespace, "runs", null, { experiment: e.name }), e.name)),
      h("td", null, e.description), h("td", null, String(e.runs)),
      h("td", null, e.lastRun ? link(routeFor(namespace, "runs", e.lastRun), e.lastRun) : "")))));
}

// --- runs ---------------------------------------------------------------------------------

page("runs", runs, "Runs");
export async function runs(ctx) {
  const { main, namespace, route } = ctx;
  const filters = { pipeline: "", experiment: "", phase: "", commit: "", q: "", archived: "", offset: "0", ...route.params };
  const go = (changes) => { window.location.hash = routeFor(namespace, "runs", null, { ...filters, offset: "0", ...changes }); };
  const input = (key, testid, placeholder) => {
    const field = h("input", { testid, value: filters[key], placeholder, "aria-label": placeholder });
    field.addEventListener("change", () => go({ [key]: field.value.trim() }));
    return field;
  };
  const phaseSelect = h("select", { testid: "filter-phase", "aria-label": "phase" },
    h("option", { value: "" }, "any phase"),
    RUN_PHASES.map((p) => h("option", { value: p, selected: p === filters.phase }, p)));
  phaseSelect.addEventListener("change", () => go({ phase: phaseSelect.value }));
  const archived = h("input", { type: "checkbox", checked: filters.archived === "true" });
  archived.addEventListener("change", () => go({ archived: archived.checked ? "true" : "" }));
  const compareButton = h("button", { testid: "compare-button", disabled: true }, "Compare selected");
  const total = h("span", { testid: "runs-total" }, "");
  main.append(h("h1", null, "Runs"),
    h("div", { class: "filters" },
      input("q", "filter-name", "name contains"), input("pipeline", "filter-pipeline", "pipeline"),
      input("experiment", "filter-experiment", "experiment"), phaseSelect,
      input("commit", "filter-commit", "commit"),
      h("label", null, archived, " include archived (S3)"), compareButton),
    h("p", { class: "muted" }, total, " runs"));
  const holder = h("div");
  main.append(holder);
  const selected = new Set();
  compareButton.addEventListener("click", () => {
    window.location.hash = routeFor(namespace, "compare", null, { runs: [...selected].join(",") });
  });
  const query = new URLSearchParams({ ...filters, limit: String(PAGE_SIZE) });
  const render = (data) => {
    total.textContent = String(data.total);
    clear(holder);
    if (!data.items.length) { holder.append(empty("No runs match.")); return; }
    const rows = data.items.map((run) => {
      const box = h("input", { type: "checkbox", testid: "run-select", "data-run": run.name, checked: selected.has(run.name), "aria-label": `select ${run.name}` });
      box.addEventListener("change", () => {
        if (box.checked) selected.add(run.name); else selected.delete(run.name);
        compareButton.disabled = selected.size < 2;
      });
      return h("tr", { testid: "run-row", "data-run": run.name, "data-phase": run.phase },
        h("td", null, box),
        h("td", null, link(routeFor(namespace, "runs", run.name), run.name), run.archived ? h("span", { class: "tag" }, "archived") : null),
        h("td", null, phase(run.phase)), h("td", null, run.progress),
        h("td", null, run.pipeline ? link(routeFor(namespace, "pipelines", run.pipeline), run.pipeline) : "(inline)"),
        h("td", null, run.experiment), h("td", { class: "mono" }, shortCommit(run.commit)),
        h("td", { title: run.createdAt }, ago(run.createdAt)), h("td", null, run.duration));
    });
    holder.append(table("runs-table", ["", "name", "phase", "progress", "pipeline", "experiment", "commit", "created", "duration"], rows));
    const offset = Number(filters.offset) || 0;
    const pager = h("div", { class: "pager" });
    if (offset > 0) pager.append(h("button", { onclick: () => go({ offset: String(Math.max(offset - PAGE_SIZE, 0)) }) }, "← newer"));
    pager.append(` ${offset + 1}–${offset + data.items.length} of ${data.total} `);
    if (offset + PAGE_SIZE < data.total) pager.append(h("button", { onclick: () => go({ offset: String(offset + PAGE_SIZE) }) }, "older →"));
    holder.append(pager);
  };
  const load = async () => render(await request(`${ns(namespace)}/runs?${query}`));
  await load();
  ctx.poll(load);
}

// --- one run ----------------------------------------------------------------------------------

page("runs-detail", runDetail);
export async function runDetail(ctx) {
  const { main, namespace, route } = ctx;
  const name = route.name;
  let detail = await request(`${ns(namespace)}/runs/${encodeURIComponent(name)}`);
  let selectedTask = route.params.task || "";
  const header = h("div", { class: "run-header" });
  const graphBox = h("div", { class: "graph-box" });
  const panel = h("div", { class: "panel-holder" });
  main.append(header, graphBox, panel);

  let dag = null;
  let drawn = null;
  const select = (task) => {
    selectedTask = task;
    history.replaceState(null, "", routeFor(namespace, "runs", name, { task }));
    dag.select(task);
    renderPanel();
  };
  const renderHeader = () => {
    const run = detail.run;
    clear(header).append(...[
      h("h1", null, run.name, " ", h("span", { testid: "run-phase", class: `phase phase-${run.phase.toLowerCase()}` }, run.phase),
        detail.archived ? h("span", { class: "tag" }, "archived in S3") : null),
      h("p", { class: "muted" },
        run.pipeline ? ["pipeline ", link(routeFor(namespace, "pipelines", run.pipeline), run.pipeline), ` @ ${run.pipelineVersion} `] : "inline pipeline ",
        run.experiment ? ["· experiment ", link(routeFor(namespace, "runs", null, { experiment: run.experiment }), run.experiment), " "] : null,
        run.commit ? `· commit ${shortCommit(run.commit)} ` : null,
        `· progress ${run.progress || "-"} · ${run.duration || ""}`),
      detail.message ? h("p", null, detail.message) : null,
      h("div", { class: "params" }, h("strong", null, "Parameters: "),
        Object.entries(run.params).map(([k, v]) => h("span", { class: "param" }, `${k}=${v}`))),
      h("div", { class: "actions" },
        detail.canCancel ? h("button", { testid: "cancel-button", onclick: () => act("cancel") }, "Cancel") : null,
        detail.canRerun ? h("button", { testid: "rerun-button", onclick: () => act("rerun") }, "Re-run") : null,
        detail.canRetry ? h("button", { testid: "retry-button", title: "a new run that reuses this run's succeeded tasks and runs the rest", onclick: () => act("retry") }, "Retry from failure") : null),
    ].filter(Boolean));
  };
  const act = async (what) => {
    if (what === "cancel" && !window.confirm(`Cancel run ${name}?`)) return;
    try {
      const answer = await request(`${ns(namespace)}/runs/${encodeURIComponent(name)}/${what}`, { method: "POST" });
      if (what === "rerun" || what === "retry") window.location.hash = routeFor(namespace, "runs", answer.name);
    } catch (error) { showError(header, error); }
  };
  const renderGraph = () => {
    if (dag && sameShape(drawn, detail.graph)) {
      dag.updateNodes(detail.graph);
    } else {
      dag = drawDag(detail.graph, select, selectedTask);
      clear(graphBox).append(dag,
        h("p", { class: "muted legend" }, "wheel: zoom · drag: pan · double-click: fit · click a task for details"));
    }
    drawn = detail.graph;
  };
  let logTimer = null;
  const renderPanel = () => {
    clear(panel);
    clearInterval(logTimer);
    const task = detail.tasks[selectedTask];
    if (!task) return;
    const logView = h("pre", { testid: "log-view", class: "log" }, "");
    const logSource = h("span", { class: "muted" });
    const artifactBox = h("div");
    const logChoices = task.logs.map((entry) => {
      const label = entry.instance === null ? `attempt ${entry.attempt}` : `item ${entry.instance} · attempt ${entry.attempt}`;
      return h("option", { value: JSON.stringify(entry) }, label);
    });
    const logSelect = h("select", { "aria-label": "log" }, logChoices);
    if (logChoices.length) logSelect.selectedIndex = logChoices.length - 1;
    let logMissing = false;
    const loadLog = async () => {
      if (!logSelect.value) { logView.textContent = "(no attempt started yet)"; return; }
      const entry = JSON.parse(logSelect.value);
      const query = new URLSearchParams({ task: task.name, attempt: String(entry.attempt) });
      if (entry.instance !== null) query.set("instance", String(entry.instance));
      try {
        const log = await text(`${ns(namespace)}/runs/${encodeURIComponent(name)}/logs?${query}`);
        logView.textContent = log.text || "(empty)";
        logSource.textContent = log.source === "pod" ? " live from the pod"
          : log.source === "local" ? " from the local work directory" : " from S3";
        logMissing = false;
      } catch (error) {
        logView.textContent = error.message;
        logMissing = true;  // e.g. between the pod's end and the upload to S3: ask again
      }
    };
    logSelect.addEventListener("change", loadLog);
    const artifactLinks = task.outputs.artifacts.map((artifact) => {
      const label = artifact.instance === null ? artifact.name : `${artifact.name} [${artifact.instance}]`;
      return h("li", null, h("a", {
        href: "#", testid: "artifact-link", "data-artifact": artifact.name,
        onclick: async (event) => {
          event.preventDefault();
          clear(artifactBox);
          const query = artifact.instance === null ? "" : `?instance=${artifact.instance}`;
          try {
            const view = await request(`${ns(namespace)}/runs/${encodeURIComponent(name)}/artifacts/${encodeURIComponent(task.name)}/${encodeURIComponent(artifact.name)}/view${query}`);
            artifactBox.append(viewer(view));
          } catch (error) { showError(artifactBox, error); }
        },
      }, label));
    });
    panel.append(h("section", { testid: "task-panel", "data-task": task.name, class: "task-panel" },
      h("h2", null, task.name, " ", phase(task.phase)),
      task.description ? h("p", null, task.description) : null,
      h("p", { class: "muted" }, `attempts ${task.attempts}`, task.exitCode !== null && task.exitCode !== undefined ? ` · exit code ${task.exitCode}` : "",
        task.image ? ` · image ${task.image}` : "", task.pool ? ` · pool ${task.pool}` : ""),
      task.cachedFrom ? h("p", { testid: "cached-from", class: "muted" }, "cached: results of ",
        link(routeFor(namespace, "runs", task.cachedFrom.run), task.cachedFrom.run),
        `, task ${task.cachedFrom.task}`) : null,
      task.message && !task.cachedFrom ? h("p", { class: "error" }, task.message) : null,
      task.instances.length ? h("p", null, `forEach items: ${task.instances.length} (`,
        task.instances.map((i) => `${i.index}:${i.phase}`).join(", "), ")") : null,
      h("h3", null, "Parameters"),
      h("div", { testid: "task-params" }, Object.entries((task.inputs && task.inputs.parameters) || detail.run.params).map(([k, v]) => h("span", { class: "param" }, `${k}=${v}`))),
      h("h3", null, "Outputs"),
      h("table", { testid: "task-outputs", class: "grid" }, h("tbody", null,
        Object.entries(task.outputs.parameters).map(([k, v]) => h("tr", null, h("td", null, k), h("td", { class: "mono" }, formatValue(v)))))),
      h("h3", null, "Artifacts"), artifactLinks.length ? h("ul", null, artifactLinks) : h("p", { class: "muted" }, "none"),
      artifactBox,
      h("h3", null, "Log ", logSelect, logSource), logView));
    loadLog();
    // Refresh a running task's log, and a missing one until it arrives.
    logTimer = setInterval(() => {
      if (task.phase === "Running" || logMissing) loadLog();
    }, 2000);
  };
  renderHeader(); renderGraph(); renderPanel();
  ctx.onLeave(() => clearInterval(logTimer));
  ctx.poll(async () => {
    if (["Succeeded", "Failed", "Cancelled"].includes(detail.run.phase) && detail.archived) return;
    const fresh = await request(`${ns(namespace)}/runs/${encodeURIComponent(name)}`, { etag: detail.etag });
    if (fresh.notModified) return;
    const taskBefore = JSON.stringify(detail.tasks[selectedTask] || null);
    detail = fresh;
    renderHeader(); renderGraph();
    if (JSON.stringify(detail.tasks[selectedTask] || null) !== taskBefore) renderPanel();
  });
}

// --- compare -----------------------------------------------------------------------------------

page("compare", compare);
export async function compare(ctx) {
  const { main, namespace, route } = ctx;
  const data = await request(`${ns(namespace)}/compare?runs=${encodeURIComponent(route.params.runs || "")}`);
  main.append(h("h1", null, "Compare runs"));
  const section = (title, rows) => {
    main.append(h("h2", null, title));
    if (!rows.length) { main.append(h("p", { class: "muted" }, "none")); return; }
    main.append(h("table", { testid: "compare-table", class: "grid compare" },
      h("thead", null, h("tr", null, h("th", null, "name"), data.runs.map((run) => h("th", null, link(routeFor(namespace, "runs", run.name), run.name))))),
      h("tbody", null, rows.map((row) => h("tr", { testid: "compare-row", "data-name": row.name, "data-differs": String(row.differs), class: row.differs ? "differs" : "" },
        h("td", null, row.name, row.differs ? h("span", { class: "tag warn" }, "differs") : null),
        row.values.map((value) => h("td", { class: row.differs ? "differs mono" : "mono" }, formatValue(value))))))));
  };
  section("Parameters", data.params);
  section("Metrics", data.metrics);
  section("Outputs", data.outputs);
}

// --- pipelines, recurring runs, git sources ---------------------------------------------------

page("pipelines", pipelines, "Pipelines");
export async function pipelines(ctx) {
  const { main, namespace } = ctx;
  const data = await request(`${ns(namespace)}/pipelines`);
  main.append(h("h1", null, "Pipelines"));
  if (!data.items.length) { main.append(empty("No pipelines in this namespace.")); return; }
  main.append(table("pipelines-table", ["name", "ready", "latest version", "versions", "tasks", "source"], data.items.map((p) =>
    h("tr", { testid: "pipeline-row", "data-pipeline": p.name },
      h("td", null, link(routeFor(namespace, "pipelines", p.name), p.name)),
      h("td", { title: p.message }, p.ready ? "yes" : "no"), h("td", { class: "mono" }, p.latestVersion),
      h("td", null, String(p.versions)), h("td", null, String(p.taskCount)), h("td", null, p.source)))));
}

page("pipelines-detail", pipelineDetail);
export async function pipelineDetail(ctx) {
  const { main, namespace, route } = ctx;
  const data = await request(`${ns(namespace)}/pipelines/${encodeURIComponent(route.name)}`);
  main.append(h("h1", null, data.pipeline.name), h("p", null, data.description), conditionsList(data.conditions),
    h("h2", null, "Parameters"),
    h("ul", null, data.params.map((p) => h("li", null, `${p.name} (${p.type})`, p.default !== undefined && p.default !== null ? ` = ${formatValue(p.default)}` : ""))),
    h("h2", null, "Graph"), drawDag(data.graph, () => {}, ""),
    h("h2", null, "Versions"),
    h("table", { testid: "pipeline-versions", class: "grid" },
      h("thead", null, h("tr", null, ["version", "commit", "from", "first seen", "runs"].map((t) => h("th", null, t)))),
      h("tbody", null, data.versions.map((v) => h("tr", { testid: "version-row", "data-version": v.id },
        h("td", { class: "mono" }, v.id),
        h("td", { class: "mono" }, v.fileUrl ? h("a", { testid: "version-file-link", href: v.fileUrl, target: "_blank", rel: "noopener noreferrer" }, shortCommit(v.commit)) : shortCommit(v.commit)),
        h("td", null, v.source), h("td", { title: v.createdAt }, ago(v.createdAt)),
        h("td", null, link(routeFor(namespace, "runs", null, { pipeline: data.pipeline.name }), "runs")))))));
}

page("recurringruns", recurringRuns, "Recurring runs");
export async function recurringRuns(ctx) {
  const { main, namespace } = ctx;
  const data = await request(`${ns(namespace)}/recurringruns`);
  main.append(h("h1", null, "Recurring runs"));
  if (!data.items.length) { main.append(empty("No recurring runs in this namespace.")); return; }
  main.append(table("recurring-table", ["name", "pipeline", "schedule", "suspended", "last", "next", "active"], data.items.map((r) =>
    h("tr", { testid: "recurring-row", "data-recurring": r.name },
      h("td", null, link(routeFor(namespace, "recurringruns", r.name), r.name)),
      h("td", null, r.pipeline), h("td", { class: "mono" }, `${r.schedule} (${r.timeZone})`),
      h("td", null, r.suspended ? "yes" : "no"), h("td", null, ago(r.lastScheduleTime)),
      h("td", null, r.nextScheduleTime), h("td", null, String(r.active))))));
}

page("recurringruns-detail", recurringDetail);
export async function recurringDetail(ctx) {
  const { main, namespace, route } = ctx;
  const data = await request(`${ns(namespace)}/recurringruns/${encodeURIComponent(route.name)}`);
  const r = data.recurringRun;
  main.append(h("h1", null, r.name), h("p", null, `${r.schedule} (${r.timeZone}) · ${data.concurrencyPolicy} · pipeline ${r.pipeline}`, r.suspended ? " · suspended" : ""),
    conditionsList(data.conditions),
    h("p", null, `fired ${data.counts.fired || 0} · skipped ${data.counts.skipped || 0} · missed ${data.counts.missed || 0}`),
    h("h2", null, "Next fire times"),
    h("ul", { testid: "next-fire-times" }, data.nextFireTimes.map((t) => h("li", null, t))),
    h("h2", null, "History"),
    data.history.length ? table("runs-table", ["name", "phase", "started", "duration"], data.history.map((run) =>
      h("tr", { testid: "run-row", "data-run": run.name, "data-phase": run.phase },
        h("td", null, link(routeFor(namespace, "runs", run.name), run.name)), h("td", null, phase(run.phase)),
        h("td", null, ago(run.startedAt)), h("td", null, run.duration)))) : empty("No runs yet."));
}

page("gitsources", gitSources, "Git sources");
export async function gitSources(ctx) {
  const { main, namespace } = ctx;
  const data = await request(`${ns(namespace)}/gitsources`);
  main.append(h("h1", null, "Git sources"));
  if (!data.items.length) { main.append(empty("No git sources in this namespace.")); return; }
  main.append(table("gitsources-table", ["name", "url", "ref", "revision", "ready", "errors"], data.items.map((g) =>
    h("tr", { testid: "gitsource-row", "data-gitsource": g.name },
      h("td", null, link(routeFor(namespace, "gitsources", g.name), g.name)), h("td", { class: "mono" }, g.url),
      h("td", null, g.ref), h("td", { class: "mono" }, g.revision),
      h("td", { title: g.message }, g.ready ? "yes" : `no (${g.reason})`), h("td", null, String(g.errors))))));
}

page("gitsources-detail", gitSourceDetail);
export async function gitSourceDetail(ctx) {
  const { main, namespace, route } = ctx;
  const data = await request(`${ns(namespace)}/gitsources/${encodeURIComponent(route.name)}`);
  const g = data.gitSource;
  main.append(h("h1", null, g.name), h("p", { class: "mono" }, `${g.url} @ ${g.ref}`),
    h("p", null, `applied ${g.revision || "-"} · attempted ${data.lastAttemptedRevision || "-"}`),
    conditionsList(data.conditions),
    h("h2", null, "Errors"),
    data.errors.length ? h("ul", { testid: "gitsource-errors" }, data.errors.map((e) =>
      h("li", null, h("span", { class: "mono" }, `${e.file}:${e.line || 0}:${e.column || 0}`), `: ${e.message}`))) : h("p", { class: "muted" }, "none"),
    h("h2", null, "Inventory"),
    h("ul", null, data.inventory.map((entry) => h("li", { class: "mono" }, entry))));
}

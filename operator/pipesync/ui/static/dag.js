// Draws the server-computed Graph as one SVG: positions come from the server, so this is
// one pass over nodes and edges, built in slices, with one click listener.
import { s } from "./dom.js";

// Tooltips (<title>) cost an element per task: only for graphs small enough not to matter.
const TITLE_LIMIT = 500;
// Text is most of the cost of drawing an SVG (measured: 2,000 labelled boxes take a
// 150 ms longer main-thread task than bare ones). Below this scale labels are unreadable
// anyway, so big graphs get their labels only where the user zooms in, and only for the
// boxes in view, a bounded number per frame.
const READABLE_SCALE = 0.55;
const LABELS_PER_FRAME = 300;
const NODES_PER_SLICE = 400;

function labels(node) {
  const phase = node.phase || "";
  return [
    s("text", { x: 10, y: 17, class: "label" }, node.label.length > 22 ? `${node.label.slice(0, 21)}…` : node.label),
    s("text", { x: 10, y: 32, class: "sub" }, phase),
  ];
}

function nodeClass(node, selected) {
  const phase = (node.phase || "none").toLowerCase();
  return `node phase-${phase}${node.exit ? " exit" : ""}${node.id === selected ? " selected" : ""}`;
}

function badges(node) {
  const found = [];
  if (node.forEach) {
    const f = node.forEach;
    found.push(s("text", { testid: "dag-foreach", x: node.width - 8, y: 17, class: "badge", "text-anchor": "end" },
      `×${f.total} ${f.succeeded}✓${f.failed ? ` ${f.failed}✗` : ""}`));
  }
  if (node.attempts > 1) {
    found.push(s("text", { testid: "dag-retries", x: node.width - 8, y: 32, class: "badge", "text-anchor": "end" },
      `↻${node.attempts - 1}`));
  }
  return found;
}

// Same tasks as drawn: only phases, counts and retries changed, so update in place.
export function sameShape(a, b) {
  if (!a || !b || a.nodes.length !== b.nodes.length) return false;
  return a.nodes.every((node, i) => node.id === b.nodes[i].id && node.x === b.nodes[i].x && node.y === b.nodes[i].y);
}

export function drawDag(graph, onSelect, selected) {
  const width = Math.max(graph.width, 200);
  const height = Math.max(graph.height, 100);
  const svg = s("svg", {
    testid: "dag", class: "dag", viewBox: `0 0 ${width} ${height}`,
    width: Math.min(width, 1400), height: Math.min(height, 700),
    role: "img", "aria-label": "pipeline graph",
  });
  const edges = s("g", { class: "edges" });
  const nodes = s("g", { class: "nodes" });
  const byId = new Map();
  for (const edge of graph.edges) {
    const [[x1, y1], [x2, y2]] = edge.points;
    const middle = (y1 + y2) / 2;
    edges.append(s("path", { d: `M${x1},${y1} C${x1},${middle} ${x2},${middle} ${x2},${y2}` }));
  }
  const small = graph.nodes.length <= TITLE_LIMIT;
  let current = graph;
  let chosen = selected;
  const build = (node) => {
    const phase = node.phase || "";
    const group = s("g", {
      testid: "dag-node", "data-task": node.id, "data-phase": phase,
      class: nodeClass(node, chosen), transform: `translate(${node.x},${node.y})`, tabindex: "0",
      "aria-label": `${node.label} ${phase}`,
    });
    group.append(
      s("rect", { width: node.width, height: node.height, rx: 6 }),
      // Element.append takes nodes, not arrays: spread the label and badge lists.
      ...(small ? labels(node) : []),
      ...(small ? [s("title", null, `${node.label}${phase ? ` — ${phase}` : ""}`)] : []),
      ...(small ? badges(node) : []),
    );
    byId.set(node.id, group);
    return group;
  };
  // Boxes are built in slices, one per task of the event loop, so a big graph never
  // holds the main thread long enough to freeze the page.
  const slice = (start) => {
    const part = document.createDocumentFragment();
    for (const node of current.nodes.slice(start, start + NODES_PER_SLICE)) part.append(build(node));
    nodes.append(part);
    if (start + NODES_PER_SLICE < current.nodes.length) setTimeout(() => slice(start + NODES_PER_SLICE), 0);
  };
  slice(0);
  svg.append(edges, nodes);
  svg.addEventListener("click", (event) => {
    const target = event.target.closest("[data-task]");
    if (target) onSelect(target.dataset.task);
  });
  svg.addEventListener("keydown", (event) => {
    const target = event.target.closest("[data-task]");
    if (target && event.key === "Enter") onSelect(target.dataset.task);
  });
  const labelled = new Set(graph.nodes.length <= TITLE_LIMIT ? graph.nodes.map((n) => n.id) : []);
  let pending = false;
  const labelVisible = () => {
    pending = false;
    if (labelled.size === current.nodes.length) return;
    const view = svg.viewBox.baseVal;
    const scale = svg.clientWidth / view.width;
    if (!(scale >= READABLE_SCALE)) return;
    let added = 0;
    for (const node of current.nodes) {
      if (labelled.has(node.id)) continue;
      if (node.x + node.width < view.x || node.x > view.x + view.width
          || node.y + node.height < view.y || node.y > view.y + view.height) continue;
      byId.get(node.id).append(...labels(node), ...badges(node));
      labelled.add(node.id);
      if (++added >= LABELS_PER_FRAME) { schedule(); break; }
    }
  };
  const schedule = () => {
    if (!pending) { pending = true; requestAnimationFrame(labelVisible); }
  };
  enablePanZoom(svg, width, height, schedule);
  // Live updates and selection touch only the boxes that changed, never the whole SVG.
  svg.updateNodes = (fresh) => {
    fresh.nodes.forEach((node, i) => {
      const before = current.nodes[i];
      if (before.phase === node.phase && before.attempts === node.attempts
          && JSON.stringify(before.forEach) === JSON.stringify(node.forEach)) return;
      const group = byId.get(node.id);
      if (!group) return; // its slice is not built yet: it will be built from `current`
      group.dataset.phase = node.phase || "";
      group.setAttribute("class", nodeClass(node, chosen));
      group.setAttribute("aria-label", `${node.label} ${node.phase || ""}`);
      const sub = group.querySelector(".sub");
      if (sub) sub.textContent = node.phase || "";
      if (labelled.has(node.id)) {
        for (const badge of group.querySelectorAll(".badge")) badge.remove();
        group.append(...badges(node));
      }
    });
    current = fresh;
  };
  svg.select = (task) => {
    byId.get(chosen)?.classList.remove("selected");
    chosen = task;
    byId.get(chosen)?.classList.add("selected");
  };
  return svg;
}

function enablePanZoom(svg, width, height, changed) {
  let box = { x: 0, y: 0, w: width, h: height };
  const apply = () => {
    svg.setAttribute("viewBox", `${box.x} ${box.y} ${box.w} ${box.h}`);
    changed();
  };
  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    const factor = event.deltaY > 0 ? 1.15 : 1 / 1.15;
    const rect = svg.getBoundingClientRect();
    const px = box.x + ((event.clientX - rect.left) / rect.width) * box.w;
    const py = box.y + ((event.clientY - rect.top) / rect.height) * box.h;
    box = { x: px - (px - box.x) * factor, y: py - (py - box.y) * factor, w: box.w * factor, h: box.h * factor };
    apply();
  }, { passive: false });
  let drag = null;
  svg.addEventListener("pointerdown", (event) => {
    if (event.target.closest("[data-task]")) return;
    drag = { x: event.clientX, y: event.clientY, box: { ...box } };
  });
  window.addEventListener("pointerup", () => { drag = null; });
  svg.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const rect = svg.getBoundingClientRect();
    box = {
      ...drag.box,
      x: drag.box.x - ((event.clientX - drag.x) / rect.width) * drag.box.w,
      y: drag.box.y - ((event.clientY - drag.y) / rect.height) * drag.box.h,
    };
    apply();
  });
  svg.addEventListener("dblclick", () => { box = { x: 0, y: 0, w: width, h: height }; apply(); });
}

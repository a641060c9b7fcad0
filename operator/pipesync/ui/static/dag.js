// Draws the server-computed Graph as one SVG: positions come from the server, so this is
// one pass over nodes and edges, built in a fragment, with one click listener.
import { s } from "./dom.js";

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
  const fragment = document.createDocumentFragment();
  for (const edge of graph.edges) {
    const [[x1, y1], [x2, y2]] = edge.points;
    const middle = (y1 + y2) / 2;
    edges.append(s("path", { d: `M${x1},${y1} C${x1},${middle} ${x2},${middle} ${x2},${y2}` }));
  }
  for (const node of graph.nodes) {
    const phase = node.phase || "";
    const group = s("g", {
      testid: "dag-node", "data-task": node.id, "data-phase": phase,
      class: `node phase-${(phase || "none").toLowerCase()}${node.exit ? " exit" : ""}${node.id === selected ? " selected" : ""}`,
      transform: `translate(${node.x},${node.y})`, tabindex: "0",
    });
    group.append(
      s("rect", { width: node.width, height: node.height, rx: 6 }),
      s("text", { x: 10, y: 17, class: "label" }, node.label.length > 22 ? `${node.label.slice(0, 21)}…` : node.label),
      s("text", { x: 10, y: 32, class: "sub" }, phase),
      s("title", null, `${node.label}${phase ? ` — ${phase}` : ""}`),
    );
    if (node.forEach) {
      const f = node.forEach;
      group.append(s("text", { testid: "dag-foreach", x: node.width - 8, y: 17, class: "badge", "text-anchor": "end" },
        `×${f.total} ${f.succeeded}✓${f.failed ? ` ${f.failed}✗` : ""}`));
    }
    if (node.attempts > 1) {
      group.append(s("text", { testid: "dag-retries", x: node.width - 8, y: 32, class: "badge", "text-anchor": "end" },
        `↻${node.attempts - 1}`));
    }
    fragment.append(group);
  }
  nodes.append(fragment);
  svg.append(edges, nodes);
  svg.addEventListener("click", (event) => {
    const target = event.target.closest("[data-task]");
    if (target) onSelect(target.dataset.task);
  });
  svg.addEventListener("keydown", (event) => {
    const target = event.target.closest("[data-task]");
    if (target && event.key === "Enter") onSelect(target.dataset.task);
  });
  enablePanZoom(svg, width, height);
  return svg;
}

function enablePanZoom(svg, width, height) {
  let box = { x: 0, y: 0, w: width, h: height };
  const apply = () => svg.setAttribute("viewBox", `${box.x} ${box.y} ${box.w} ${box.h}`);
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

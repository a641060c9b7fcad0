// Artifact viewers. Data arrives normalised by the server (metrics, confusion matrix, ROC).
import { h, s } from "./dom.js";
import { formatValue, heat, scale } from "./util.js";

export function viewer(view) {
  const box = h("div", { testid: "artifact-view", "data-viewer": view.viewer, class: "artifact" },
    h("div", { class: "artifact-head" },
      h("strong", null, view.name), ` — ${view.viewer}, ${view.size === null ? "over 1 MiB" : `${view.size} bytes`} `,
      h("a", { href: view.url, target: "_blank", rel: "noopener" }, "raw")));
  box.append(body(view));
  return box;
}

function body(view) {
  switch (view.viewer) {
    case "image":
      return h("img", { testid: "artifact-image", src: view.url, alt: view.name, class: "artifact-image" });
    case "metrics":
      return metrics(view.data);
    case "confusion_matrix":
      return confusion(view.data);
    case "roc":
      return roc(view.data);
    case "markdown":
      return h("iframe", { testid: "artifact-frame", sandbox: "", src: `${view.url}${view.url.includes("?") ? "&" : "?"}render=1`, class: "artifact-frame", title: view.name });
    case "html":
      return h("iframe", { testid: "artifact-frame", sandbox: "", src: view.url, class: "artifact-frame", title: view.name });
    case "json":
      return h("pre", { testid: "artifact-text", class: "text" }, view.data === null ? view.text || "" : JSON.stringify(view.data, null, 2));
    case "text":
      return h("pre", { testid: "artifact-text", class: "text" }, view.text || "");
    default:
      return h("p", null, "Binary content: use the raw link to download it.");
  }
}

function metrics(data) {
  const rows = Object.entries((data && data.metrics) || {}).map(([name, value]) =>
    h("tr", null, h("td", null, name), h("td", { class: "number" }, formatValue(value))));
  return h("table", { testid: "metrics-table", class: "grid" },
    h("thead", null, h("tr", null, h("th", null, "metric"), h("th", null, "value"))), h("tbody", null, rows));
}

function confusion(data) {
  const max = Math.max(1, ...data.matrix.flat());
  const head = h("tr", null, h("th", { class: "corner" }, "true \\ predicted"), data.labels.map((label) => h("th", null, label)));
  const rows = data.matrix.map((row, i) => h("tr", null, h("th", null, data.labels[i]),
    row.map((value, j) => {
      const colour = heat(value / max);
      const cell = h("td", { "data-row": i, "data-col": j, class: `cell${colour.dark ? " dark" : ""}${i === j ? " diagonal" : ""}` }, formatValue(value));
      cell.style.backgroundColor = colour.background;
      return cell;
    })));
  return h("table", { testid: "confusion-matrix", class: "confusion" }, h("thead", null, head), h("tbody", null, rows));
}

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

function roc(data) {
  const size = 320, pad = 40;
  const x = scale(0, 1, pad, size - 10), y = scale(0, 1, size - pad, 10);
  const svg = s("svg", { testid: "roc-curve", class: "roc", viewBox: `0 0 ${size + 180} ${size}`, width: size + 180, height: size });
  svg.append(
    s("line", { x1: x(0), y1: y(0), x2: x(1), y2: y(0), class: "axis" }),
    s("line", { x1: x(0), y1: y(0), x2: x(0), y2: y(1), class: "axis" }),
    s("line", { x1: x(0), y1: y(0), x2: x(1), y2: y(1), class: "chance" }),
    s("text", { x: size / 2, y: size - 8, "text-anchor": "middle" }, "false positive rate"),
    s("text", { x: 12, y: size / 2, transform: `rotate(-90 12 ${size / 2})`, "text-anchor": "middle" }, "true positive rate"));
  for (const tick of [0, 0.5, 1]) {
    svg.append(s("text", { x: x(tick), y: y(0) + 14, "text-anchor": "middle", class: "tick" }, String(tick)));
    svg.append(s("text", { x: x(0) - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick" }, String(tick)));
  }
  data.curves.slice(0, COLOURS.length).forEach((curve, index) => {
    const points = curve.fpr.map((fpr, i) => `${x(fpr).toFixed(1)},${y(curve.tpr[i]).toFixed(1)}`).join(" ");
    svg.append(s("polyline", { points, fill: "none", stroke: COLOURS[index], "stroke-width": 2 }));
    const label = curve.auc === null ? curve.label : `${curve.label} (AUC ${curve.auc.toFixed(3)})`;
    svg.append(s("rect", { x: size + 4, y: 14 + index * 18, width: 10, height: 10, fill: COLOURS[index] }),
      s("text", { x: size + 18, y: 23 + index * 18, class: "legend" }, label));
  });
  return svg;
}

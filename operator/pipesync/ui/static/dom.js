// Building DOM safely: text always goes through text nodes, never innerHTML.

const SVG = "http://www.w3.org/2000/svg";

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setAttributes(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      node.setAttribute("class", value);
    } else if (key === "testid") {
      node.dataset.testid = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttributes(node, attrs);
  return append(node, children);
}

export function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  setAttributes(node, attrs);
  return append(node, children);
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

export function table(testid, headers, rows) {
  return h("table", { testid, class: "grid" },
    h("thead", null, h("tr", null, headers.map((title) => h("th", null, title)))),
    h("tbody", null, rows));
}

export function phase(value) {
  return h("span", { class: `phase phase-${String(value || "Pending").toLowerCase()}` }, value || "Pending");
}

export function link(href, text, attrs) {
  return h("a", { href, ...(attrs || {}) }, text);
}

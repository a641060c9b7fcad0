// Small pure helpers (also loaded by the Node tests: no DOM here).

export function parseRoute(hash) {
  const text = (hash || "").replace(/^#/, "") || "/";
  const [path, query = ""] = text.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = Object.fromEntries(new URLSearchParams(query));
  if (parts[0] === "login") return { page: "login", params };
  if (parts[0] !== "ns" || parts.length < 3) return { page: "home", params };
  const [, namespace, kind, name] = parts;
  return { page: name ? `${kind}-detail` : kind, namespace, name, params };
}

export function routeFor(namespace, kind, name, params) {
  let hash = `#/ns/${encodeURIComponent(namespace)}/${kind}`;
  if (name) hash += `/${encodeURIComponent(name)}`;
  const query = new URLSearchParams(
    Object.entries(params || {}).filter(([, v]) => v !== "" && v !== undefined && v !== null));
  const text = query.toString();
  return text ? `${hash}?${text}` : hash;
}

export function shortCommit(commit) {
  return commit ? String(commit).slice(0, 10) : "";
}

export function ago(iso, now = Date.now()) {
  if (!iso) return "";
  const seconds = Math.round((now - Date.parse(iso)) / 1000);
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 60) return `${Math.max(seconds, 0)}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

export function formatValue(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    return Number.isInteger(value) ? String(value) : value.toPrecision(4).replace(/\.?0+$/, "");
  }
  return String(value);
}

// Linear scale from [d0, d1] to [r0, r1].
export function scale(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

// 0..1 -> a light-to-dark blue for heat-map cells; text colour to stay readable.
export function heat(fraction) {
  const f = Math.min(Math.max(fraction, 0), 1);
  const light = Math.round(96 - f * 60);
  return { background: `hsl(210, 70%, ${light}%)`, dark: light < 60 };
}

export const RUN_PHASES = ["Pending", "Running", "Succeeded", "Failed", "Cancelling", "Cancelled"];

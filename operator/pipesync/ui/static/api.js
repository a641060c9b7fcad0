// The JSON API client: one place that knows the base path, the write header and 401s.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const BASE = "api/";

export async function request(path, { method = "GET", body, etag } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-Pipesync-Request"] = "1";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (etag) headers["If-None-Match"] = etag;
  const response = await fetch(BASE + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 304) return { notModified: true, etag };
  if (response.status === 204) return {};
  const type = response.headers.get("Content-Type") || "";
  const data = type.startsWith("application/json") ? await response.json() : await response.text();
  if (!response.ok) {
    const message = (data && data.error) || `${response.status} ${response.statusText}`;
    if (response.status === 401 && !path.startsWith("login")) {
      window.location.hash = "#/login";
    }
    throw new ApiError(response.status, message);
  }
  if (typeof data === "object" && data !== null) {
    Object.defineProperty(data, "etag", { value: response.headers.get("ETag"), enumerable: false });
  }
  return data;
}

export async function text(path) {
  const response = await fetch(BASE + path, { credentials: "same-origin" });
  if (response.status === 401) window.location.hash = "#/login";
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch { /* not JSON */ }
    throw new ApiError(response.status, message);
  }
  return { text: await response.text(), source: response.headers.get("X-Pipesync-Log-Source") };
}

export function ns(namespace) {
  return `namespaces/${encodeURIComponent(namespace)}`;
}

// fetch() wrapper: JSON in/out, session cookie, 401 sends the user back to the login page.
"use strict";
window.XL = window.XL || {};
XL.api = async (path, opts = {}) => {
  const init = { method: opts.method || "GET", headers: {}, credentials: "same-origin", cache: "no-store" };
  if (opts.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  const resp = await fetch(path.replace(/^\//, ""), init);
  if (resp.status === 401 && !opts.allow401) {
    document.dispatchEvent(new CustomEvent("xl:unauthorized"));
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!resp.ok) {
    const d = data && data.detail;
    // FastAPI's 422: a list of {loc, msg}; shown as "field: message" rather than raw JSON.
    const detail = data && data.code === "database_unavailable" ? XL.t("err.db_down") // the server's words are English
      : !d ? `HTTP ${resp.status}` : typeof d === "string" ? d
      : Array.isArray(d) ? d.map((x) => `${(x.loc || []).slice(1).join(".") || "request"}: ${x.msg}`).join("; ") : JSON.stringify(d);
    const err = new Error(detail);
    err.status = resp.status;
    throw err;
  }
  return data;
};
XL.el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
};

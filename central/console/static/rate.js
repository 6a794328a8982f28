// The public's rating page (/rate/<code>): the case slip's code is the only key; no login.
"use strict";
(() => {
  const { t, e, fmtTime } = XL;
  const $ = (id) => document.getElementById(id);
  const code = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const api = `../api/public/orders/${encodeURIComponent(code)}`; // relative: works behind a path prefix
  let view = null; let stars = 0;

  async function load() {
    const resp = await fetch(api, { cache: "no-store" });
    if (!resp.ok) { fail(resp.status === 404 ? t("r.unknown") : `HTTP ${resp.status}`); return; }
    view = await resp.json();
    render();
  }
  function fail(msg) { $("rate-error").textContent = msg; $("rate-error").hidden = false; }

  function render() {
    XL.applyI18n();
    $("rate-case").hidden = false;
    $("rate-order").textContent = `#${view.order_id}`;
    $("rate-category").textContent = e("kind", view.category);
    $("rate-town").textContent = view.town || "—";
    $("rate-state").textContent = e("state", view.state);
    $("rate-closed").textContent = fmtTime(view.closed_at);
    $("rate-form").hidden = !view.can_rate;
    $("rate-stars").replaceChildren(...[1, 2, 3, 4, 5].map((n) => {
      const b = document.createElement("button");
      b.type = "button"; b.className = `star${n <= stars ? " on" : ""}`; b.dataset.stars = String(n);
      b.setAttribute("role", "radio"); b.setAttribute("aria-checked", String(n === stars));
      b.title = t(`r.s${n}`); b.textContent = "★";
      b.addEventListener("click", () => { stars = n; $("rate-submit").disabled = false; render(); });
      return b;
    }));
    $("rate-note").placeholder = t("r.note");
    const done = !view.can_rate;
    $("rate-done").hidden = !done;
    if (done) $("rate-done").textContent = view.rating ? `${t("r.rated")} ${"★".repeat(view.rating)}` : t("r.not_closed");
  }

  $("rate-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!stars) return;
    $("rate-submit").disabled = true;
    const resp = await fetch(`${api}/rating`, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ rating: stars, note: $("rate-note").value }) });
    if (resp.status !== 204) {
      let detail = `HTTP ${resp.status}`;
      try { detail = (await resp.json()).detail || detail; } catch {}
      fail(detail); $("rate-submit").disabled = false; return;
    }
    $("rate-form").hidden = true;
    $("rate-done").hidden = false;
    $("rate-done").textContent = stars < 3 ? t("r.thanks_reopen") : t("r.thanks");
    $("rate-done").dataset.done = String(stars);
  });
  for (const b of document.querySelectorAll(".lang-toggle")) b.addEventListener("click", () => XL.toggleLang());
  document.addEventListener("xl:lang", () => { if (view) render(); });

  XL.applyI18n();
  load().catch((err) => fail(err.message));
})();

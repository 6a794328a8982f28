// Console shell: login, tabs (hash routes), the live feed (REST page + SSE), orders, health wall.
// On every (re)connect of the stream the feed is refetched, so nothing stored meanwhile is missed.
"use strict";
(() => {
  const { el, t, e, api, fmtTime } = XL;
  const MAX_CARDS = 200; // live arrivals push the oldest cards out beyond this; "load older" raises it
  const PAGE = 100;
  const STATES = ["new", "accepted", "verified", "dispatched", "escalated", "in_progress", "resolved", "closed", "rejected"];
  const OPEN = STATES.filter((s) => s !== "closed" && s !== "rejected");
  const statesOf = (v) => (v === "open" ? OPEN : v ? [v] : []); // a state filter's value -> the states it keeps
  let cap = MAX_CARDS;
  const $ = (id) => document.getElementById(id);
  let me = null; let stream = null; let refs = { stations: [], cameras: [], departments: [], workers: [] };
  XL.refs = refs;
  XL.deptName = (id) => { const d = XL.refs.departments.find((x) => x.id === id); return d ? (XL.lang() === "en" ? d.name_en : d.name) : id; };
  XL.workerName = (id) => { if (!id) return "—"; const w = XL.refs.workers.find((x) => x.id === id); return w ? `${w.name} (${id})` : id; };
  const cards = new Map(); // alert id -> { el, ts, a }
  let total = null; // alerts matching the filters, as the server counted them, plus live arrivals

  XL.showNotice = (msg) => { const n = $("notice"); n.textContent = msg; n.hidden = false; setTimeout(() => { n.hidden = true; }, 6000); };
  XL.showError = (msg) => { const n = $("error"); n.textContent = msg; n.hidden = !msg; if (msg) setTimeout(() => { n.hidden = true; }, 8000); };

  function setConn(state) { const c = $("conn"); c.textContent = t(`conn.${state}`); c.className = `conn conn-${state}`; c.dataset.state = state; }

  // -- login --------------------------------------------------------------------------------
  async function boot() {
    XL.applyI18n();
    try { me = await api("/api/auth/me", { allow401: true }); } catch (err) {
      me = null;
      if (err.status === 503) { // the centre is up but its database is not: say so, and try again
        showLogin(); $("login-error").textContent = err.message; $("login-error").hidden = false;
        setTimeout(() => { if (!me) boot(); }, 5000);
        return;
      }
    }
    if (!me) { showLogin(); return; }
    $("login-view").hidden = true; $("app-view").hidden = false;
    $("whoami").textContent = `${me.display_name} · ${me.role}${me.station_id ? ` · ${me.station_id}` : ""}`;
    document.body.dataset.role = me.role;
    for (const a of document.querySelectorAll('[data-tab="health"],[data-tab="stats"]')) a.hidden = me.role === "worker";
    document.querySelector('[data-tab="users"]').hidden = me.role !== "admin";
    try {
      const [stations, cameras, departments, workers] = await Promise.all(
        ["stations", "cameras", "departments", "workers"].map((k) => api(`/api/reference/${k}`)));
      refs = { stations, cameras, departments, workers };
    } catch { refs = { stations: [], cameras: [], departments: [], workers: [] }; }
    XL.refs = refs;
    fillFilters();
    follow();
    route();
  }

  function showLogin() {
    $("app-view").hidden = true; $("login-view").hidden = false;
    if (stream) { stream.close(); stream = null; }
    $("login-user").focus();
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").hidden = true;
    try {
      await api("/api/auth/login", { method: "POST", body: { username: $("login-user").value, password: $("login-pass").value }, allow401: true });
      $("login-pass").value = "";
      boot();
    } catch (err) { $("login-error").textContent = `${t("login.failed")}: ${err.message}`; $("login-error").hidden = false; }
  });
  // -- own password ----------------------------------------------------------------------
  $("pw-open").addEventListener("click", () => { $("pw-form").reset(); $("pw-msg").hidden = true; $("pw-dialog").showModal(); });
  $("pw-cancel").addEventListener("click", () => $("pw-dialog").close());
  $("pw-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const say = (msg) => { $("pw-msg").textContent = msg; $("pw-msg").hidden = false; };
    if ($("pw-new").value !== $("pw-again").value) { say(t("pw.differ")); return; }
    try {
      await api("/api/auth/password", { method: "POST", body: { current_password: $("pw-current").value, new_password: $("pw-new").value } });
      $("pw-dialog").close();
      XL.showNotice(t("pw.done"));
    } catch (err) { say(err.message); }
  });
  $("logout").addEventListener("click", async () => { try { await api("/api/auth/logout", { method: "POST" }); } catch {} me = null; cards.clear(); $("feed").replaceChildren(); XL.attention.reset(); showLogin(); });
  document.addEventListener("xl:unauthorized", () => { if (me) { me = null; showLogin(); } });
  for (const b of document.querySelectorAll(".lang-toggle")) b.addEventListener("click", () => XL.toggleLang());
  document.addEventListener("xl:lang", () => { if (me) { fillFilters(); rebuildCards(); route(); } });

  // -- routes ------------------------------------------------------------------------------
  function route() {
    if (!me) return;
    const hash = location.hash || (me.role === "worker" ? "#/orders" : "#/feed");
    const [, view, arg] = hash.split("/");
    for (const v of ["feed", "orders", "incident", "health", "stats", "users"]) $(`view-${v}`).hidden = v !== view;
    for (const a of document.querySelectorAll("[data-tab]")) a.classList.toggle("active", a.dataset.tab === view);
    if (view !== "incident") XL.clearIncident();
    if (view === "feed") { loadFeed(); XL.attention.seen(); }
    else if (view === "orders") loadOrders();
    else if (view === "incident") XL.showIncident(Number(arg));
    else if (view === "health") loadHealth();
    else if (view === "stats") XL.showStats();
    else if (view === "users") XL.showUsers(me);
    else $("view-feed").hidden = false;
  }
  window.addEventListener("hashchange", route);

  // -- feed --------------------------------------------------------------------------------
  function option(value, label, selected) { return el("option", { value, selected: selected ? true : null }, label); }
  function fillFilters() {
    const keep = (id) => $(id).value;
    const st = keep("f-station"); const cam = keep("f-camera"); const rule = keep("f-rule"); const state = keep("f-state");
    const visible = refs.stations.filter((s) => me.role !== "operator" || s.id === me.station_id);
    $("f-station").replaceChildren(option("", t("f.all")), ...visible.map((s) => option(s.id, `${s.name}`, s.id === st)));
    $("f-camera").replaceChildren(option("", t("f.all")), ...refs.cameras.filter((c) => !st || c.station_id === st)
      .filter((c) => visible.some((s) => s.id === c.station_id)).map((c) => option(c.code, `${c.name} (${c.code})`, c.code === cam)));
    $("f-rule").replaceChildren(option("", t("f.all")), ...["intrusion", "line_crossing", "loitering", "crowd", "stationary_vehicle"].map((k) => option(k, e("kind", k), k === rule)));
    $("f-state").replaceChildren(...stateOptions(state));
    $("o-state").replaceChildren(...stateOptions($("o-state").value));
  }
  function stateOptions(sel) { return [option("", t("f.all")), option("open", t("f.open"), sel === "open"), ...STATES.map((s) => option(s, e("state", s), s === sel))]; }
  for (const id of ["f-station", "f-camera", "f-rule", "f-state", "f-since", "f-until"]) {
    $(id).addEventListener("change", () => { if (id === "f-station") fillFilters(); cards.clear(); cap = MAX_CARDS; $("feed").replaceChildren(); loadFeed(); });
  }
  // A time picked in the console is Beijing time, as every time it shows (XL.fmtTime), whatever the PC's zone.
  const beijing = (v) => (v ? new Date(`${v.length === 16 ? `${v}:00` : v}+08:00`).toISOString() : "");
  function filters() {
    return { station: $("f-station").value, camera: $("f-camera").value, rule: $("f-rule").value, state: $("f-state").value,
      since: beijing($("f-since").value), until: beijing($("f-until").value) };
  }
  function matches(a) {
    const f = filters(); const ts = Date.parse(a.ts);
    return (!f.station || a.station === f.station) && (!f.camera || a.camera === f.camera)
      && (!f.rule || a.rule_kind === f.rule || a.rule === f.rule) && (!f.state || statesOf(f.state).includes(a.order_state))
      && (!f.since || ts >= Date.parse(f.since)) && (!f.until || ts < Date.parse(f.until));
  }
  function cameraName(a) { const c = refs.cameras.find((x) => x.id === `${a.station}:${a.camera}`); return c ? c.name : a.camera; }

  function buildCard(a) {
    const node = document.getElementById("card-tpl").content.firstElementChild.cloneNode(true);
    const link = a.incident_id ? `#/incident/${a.incident_id}` : null;
    node.querySelector(".thumb").href = link || "#/feed";
    const img = node.querySelector("img"); img.src = a.snapshot_url; img.alt = `${a.station}/${a.camera}`;
    const prio = node.querySelector(".prio");
    if (a.priority) { prio.textContent = e("prio", a.priority); prio.className = `prio p${a.priority}`; } else prio.remove();
    node.querySelector(".kind").textContent = e("kind", a.rule_kind);
    const st = node.querySelector(".state");
    if (a.order_state) { st.textContent = e("state", a.order_state); st.className = `state s-${a.order_state}`; } else st.remove();
    node.querySelector(".camera").textContent = `${cameraName(a)} · ${a.station}/${a.camera}`;
    node.querySelector(".rule").textContent = `${a.rule} / ${a.zone}`;
    node.querySelector(".score").textContent = `${a.label} ${(a.score * 100).toFixed(0)}%`;
    const ts = node.querySelector(".ts"); ts.dateTime = a.ts; ts.textContent = fmtTime(a.ts);
    node.dataset.id = String(a.id);
    if (a.incident_id) { node.dataset.incident = String(a.incident_id); node.addEventListener("click", (ev) => { if (!ev.target.closest("a")) location.hash = link; }); }
    return node;
  }
  function addAlert(a, isNew) {
    if (!matches(a)) return;
    const old = cards.get(a.id);
    const node = buildCard(a);
    if (isNew) node.classList.add("new");
    if (old) { old.el.replaceWith(node); cards.set(a.id, { el: node, ts: old.ts, a }); return; }
    const ts = Date.parse(a.ts);
    let before = null;
    for (const n of $("feed").children) { const o = cards.get(Number(n.dataset.id)); if (o && (o.ts < ts || (o.ts === ts && Number(n.dataset.id) < a.id))) { before = n; break; } }
    $("feed").insertBefore(node, before);
    cards.set(a.id, { el: node, ts, a });
    while ($("feed").children.length > cap) { const last = $("feed").lastElementChild; cards.delete(Number(last.dataset.id)); last.remove(); }
    $("empty").hidden = cards.size > 0;
  }
  function dropCard(id) { const c = cards.get(id); if (!c) return; c.el.remove(); cards.delete(id); if (total !== null) total -= 1; renderCount(); }
  function renderCount() {
    $("count").textContent = `${t("feed.count")}: ${total ?? "–"}`;
    $("feed-older").hidden = total === null || cards.size >= total;
    $("empty").hidden = cards.size > 0;
  }
  function rebuildCards() { for (const [, c] of cards) addAlert(c.a, false); }
  // The newest page, or (older) the page after the last card: a cursor, so arrivals meanwhile shift nothing.
  async function loadFeed(older = false) {
    const f = filters(); const q = new URLSearchParams();
    for (const k of ["station", "camera", "rule", "since", "until"]) if (f[k]) q.set(k, f[k]);
    for (const s of statesOf(f.state)) q.append("state", s);
    $("feed-export").href = `api/alerts/export.csv?${q}`; // the same filters, every page, as a spreadsheet
    q.set("limit", String(PAGE));
    const last = $("feed").lastElementChild;
    if (older && last) q.set("before", last.dataset.id);
    try {
      const page = await api(`/api/alerts?${q}`);
      if (older) cap = Math.max(cap, cards.size + page.items.length);
      for (const a of page.items) addAlert(a, false);
      total = page.total;
      renderCount();
    } catch (err) { XL.showError(err.message); }
  }
  $("feed-older").addEventListener("click", () => loadFeed(true));

  function follow() {
    if (stream) stream.close();
    setConn("connecting");
    stream = new EventSource("api/alerts/stream");
    stream.addEventListener("open", () => { setConn("live"); if (!$("view-feed").hidden) loadFeed(); });
    stream.addEventListener("alert", (ev) => {
      const a = JSON.parse(ev.data);
      const fresh = !cards.has(a.id) && matches(a);
      if (fresh && total !== null) { total += 1; renderCount(); }
      addAlert(a, true);
      if (fresh) XL.attention.arrived(a);
    });
    stream.addEventListener("order", (ev) => {
      const o = JSON.parse(ev.data);
      for (const [id, c] of [...cards]) {
        if (c.a.incident_id !== o.incident_id) continue;
        c.a.order_state = o.state; c.a.priority = o.priority;
        if (matches(c.a)) addAlert(c.a, false); else dropCard(id); // e.g. closed while the feed shows open ones
      }
      if (filters().state && !$("view-feed").hidden) loadFeed(); // alerts whose order just entered the state
      if (XL.currentIncident() === o.incident_id) XL.showIncident(o.incident_id);
      if (!$("view-orders").hidden) loadOrders();
    });
    stream.addEventListener("error", () => {
      setConn(stream.readyState === EventSource.CLOSED ? "offline" : "connecting");
      if (stream.readyState === EventSource.CLOSED && me) setTimeout(follow, 5000);
    });
  }

  // -- orders ------------------------------------------------------------------------------
  // Reloads keep as many rows as are shown, so an update does not fold back pages the user opened.
  async function loadOrders(more = false) {
    const shown = $("orders-body").children.length;
    const q = new URLSearchParams({ limit: String(more ? PAGE : Math.max(PAGE, shown)), offset: String(more ? shown : 0) });
    for (const s of statesOf($("o-state").value)) q.append("state", s);
    try {
      const page = await api(`/api/orders?${q}`);
      const rows = page.items.map((o) => el("tr", { "data-order": o.id, class: o.ack_breached ? "late" : "", onclick: () => { location.hash = `#/incident/${o.incident_id}`; } },
        el("td", {}, o.id), el("td", {}, XL.prioBadge(o.priority)), el("td", {}, XL.stateBadge(o.state)), el("td", {}, o.station),
        el("td", {}, e("kind", o.category)), el("td", {}, XL.deptName(o.department_id)), el("td", {}, XL.workerName(o.assignee_worker_id)),
        el("td", {}, fmtTime(o.ack_due_at)), el("td", {}, o.escalation_level)));
      if (more) { // orders created meanwhile shift the offset: skip the rows already shown
        const have = new Set([...$("orders-body").children].map((r) => r.dataset.order));
        $("orders-body").append(...rows.filter((r) => !have.has(r.dataset.order)));
      } else $("orders-body").replaceChildren(...rows);
      const n = $("orders-body").children.length;
      $("orders-count").textContent = `${t("nav.orders")}: ${page.total}`;
      $("orders-empty").hidden = n > 0;
      $("orders-more").hidden = n >= page.total;
    } catch (err) { XL.showError(err.message); }
  }
  $("o-state").addEventListener("change", () => { $("orders-body").replaceChildren(); loadOrders(); });
  $("orders-more").addEventListener("click", () => loadOrders(true));

  // -- health wall -------------------------------------------------------------------------
  // A camera's live snapshot, asked for from the wall, shows above it until another is asked for.
  async function wallLive(station, cam) {
    const box = $("wall-live"); const asked = `${station.id}/${cam.code}`;
    box.dataset.asked = asked; box.hidden = false;
    const title = `${station.name} · ${cam.name} (${asked})`;
    box.replaceChildren(el("p", { class: "muted" }, `${title}: ${t("i.live_ok")}`));
    try {
      const got = await XL.liveSnapshot(station.id, cam.code, () => box.dataset.asked === asked && !$("view-health").hidden);
      if (!got || box.dataset.asked !== asked) return;
      const img = el("img", { id: "wall-live-image", src: got.url, alt: title });
      const fig = el("figure", {}, el("figcaption", {}, `${title} · ${t("i.live_got")} ${fmtTime(got.at)}`), img);
      img.addEventListener("load", () => XL.zoneDrawer(fig, img), { once: true }); // installers draw zones on it
      box.replaceChildren(fig);
    } catch (err) { if (box.dataset.asked === asked) box.replaceChildren(el("p", { class: "error" }, `${title}: ${err.message}`)); }
  }

  const HEALTH_REFRESH_MS = 5000; // a wall left open follows stations going offline and coming back
  setInterval(() => { if (me && !$("view-health").hidden && !document.hidden) loadHealth(); }, HEALTH_REFRESH_MS);
  async function loadHealth() {
    try {
      const wall = await api("/api/stations/health");
      $("health-wall").replaceChildren(...wall.map((s) => {
        const status = s.status || "unknown";
        return el("article", { class: `tile st-${status}`, "data-station": s.id },
          el("header", {}, el("i", { class: "dot" }), el("b", {}, s.name), el("span", { class: "muted" }, ` ${s.id}`),
            el("span", { class: "badge" }, t(`h.${["online", "offline", "silent"].includes(status) ? status : "unknown"}`))),
          el("div", { class: "nums" },
            el("div", {}, el("span", { class: "n" }, s.alerts_24h), t("h.alerts24")),
            el("div", {}, el("span", { class: "n" }, s.open_orders), t("h.open")),
            el("div", {}, el("span", { class: "n small" }, fmtTime(s.last_alert_at)), t("h.last"))),
          el("ul", { class: "cams" }, s.cameras.map((c) => el("li", { class: `cam cs-${c.status || "unknown"}`, "data-camera": c.code },
            el("i", { class: "dot" }), `${c.name}`, el("span", { class: "muted" }, ` ${c.alerts_24h}`),
            el("button", { type: "button", class: "link live-btn", title: t("i.live"), "data-live": `${s.id}/${c.code}`,
              onclick: () => wallLive(s, c) }, t("h.live"))))));
      }));
    } catch (err) { XL.showError(err.message); }
  }

  boot();
})();

// Incident view: snapshot, clip, the work order with the actions this user may take, and its history.
"use strict";
(() => {
  const { el, t, e, api, fmtTime } = XL;
  let current = null; // incident id on screen
  let shown = 0; // the latest showIncident call: an earlier one still loading must not draw over it
  let live = null; // { incident, url, at }: the last live snapshot asked for here, kept across re-renders

  function prioBadge(p) { return el("span", { class: `prio p${p}` }, e("prio", p)); }
  function stateBadge(s) { return el("span", { class: `state s-${s}` }, e("state", s)); }

  // "m:ss" of a position in a clip.
  function clipTime(s) {
    const n = Math.floor(s);
    return `${Math.floor(n / 60)}:${String(n % 60).padStart(2, "0")}`;
  }

  // An alert's clip: one shared by overlapping events starts before most of them (up to ~35 s), so
  // the player seeks to where this alert's event starts once the metadata is in; the caption says
  // where that is and seeks there again on a click. No offset (older alerts): from the start.
  function clipPlayer(a) {
    const offset = typeof a.clip_offset_s === "number" ? a.clip_offset_s : null;
    // The station's clip first; a clip in a codec this browser cannot decode (H.265 on Chromium or
    // Firefox for Linux) fails to load and the browser moves on to the centre's H.264 copy.
    const sources = [a.clip_url, a.clip_h264_url].filter(Boolean).map((src) => el("source", { src, type: "video/mp4" }));
    const video = el("video", { id: "incident-clip", controls: true, muted: true, playsinline: true,
      preload: "metadata", "data-offset": offset }, sources);
    // None of them plays here (an H.265 clip whose copy is not made yet): say so, and offer the file.
    const unplayable = el("p", { class: "muted", id: "incident-clip-unplayable", hidden: true },
      t(a.clip_h264_url ? "i.clip_unplayable" : "i.clip_copying"), " ",
      el("a", { href: a.clip_url, download: "" }, t("i.clip_download")));
    sources[sources.length - 1].addEventListener("error", () => { unplayable.hidden = false; });
    const seek = () => {
      if (offset === null || video.readyState < 1) return; // before the metadata: loadedmetadata seeks
      const d = video.duration;
      video.currentTime = Number.isFinite(d) ? Math.min(offset, d) : offset;
    };
    if (offset) video.addEventListener("loadedmetadata", seek, { once: true });
    const at = offset === null ? null : el("button", { type: "button", class: "link clip-at", id: "incident-clip-at",
      title: t("i.event_seek"), onclick: seek }, `${t("i.event_at")} ${clipTime(offset)}`);
    return { video, at, unplayable };
  }

  function kv(label, value, cls) {
    return el("div", { class: `kv ${cls || ""}` }, el("span", { class: "k" }, label), el("span", { class: "v" }, value ?? t("i.none")));
  }

  function actionForm(order, action, workers) {
    const note = el("input", { class: "note", placeholder: t("i.note"), "data-note": action });
    const extra = [];
    let worker = null; let reason = null;
    if (action === "inform") {
      worker = el("select", { "data-worker": "1" },
        workers.map((w) => el("option", { value: w.id, selected: w.id === order.suggested_worker_id ? true : null },
          `${w.name} (${w.id})${w.on_duty ? " ●" : ""}`)));
      extra.push(el("label", { class: "inline" }, t("i.worker"), worker));
    }
    if (action === "reject") {
      reason = el("select", { "data-reason": "1" },
        el("option", { value: "false_alarm" }, t("reason.false_alarm")), el("option", { value: "duplicate" }, t("reason.duplicate")));
      extra.push(el("label", { class: "inline" }, t("i.reason"), reason));
    }
    const btn = el("button", { type: "button", class: `act act-${action}`, "data-action": action }, e("action", action));
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      const body = { action, note: note.value };
      if (worker) body.worker_id = worker.value;
      if (reason) body.reason = reason.value;
      try {
        await api(`/api/orders/${order.id}/actions`, { method: "POST", body });
        await XL.showIncident(current);
      } catch (err) {
        XL.showError(`${e("action", action)}: ${err.message}`);
        btn.disabled = false;
      }
    });
    return el("div", { class: "action-row" }, btn, ...extra, note);
  }

  async function render(inc, call) {
    const root = document.getElementById("view-incident");
    const order = inc.order;
    const cover = inc.alerts[inc.alerts.length - 1] || inc.alerts[0];
    const clipAlert = [...inc.alerts].reverse().find((a) => a.clip_url);
    const clip = clipAlert ? clipPlayer(clipAlert) : null;
    const media = el("div", { class: "media" },
      el("figure", {}, el("figcaption", {}, t("i.snapshot")),
        cover ? el("img", { id: "incident-snapshot", src: cover.snapshot_url, alt: `${inc.station}/${inc.camera}` }) : null),
      el("figure", {}, el("figcaption", {}, t("i.clip"), clip?.at),
        clip ? [clip.video, clip.unplayable] : el("p", { class: "muted" }, t("i.noclip"))));
    if (live && live.incident === inc.id) media.append(liveFigure(live));
    const staff = document.body.dataset.role !== "worker"; // workers see their orders' evidence, not cameras
    const liveBtn = staff ? el("button", { type: "button", class: "ghost", id: "live-snapshot" }, t("i.live")) : null;
    const liveMsg = el("span", { class: "muted", id: "live-msg" });
    liveBtn?.addEventListener("click", () => requestLive(inc, liveBtn, liveMsg));
    const strip = el("div", { class: "strip", id: "alert-strip" }, inc.alerts.map((a) =>
      el("label", { class: "shot", "data-alert": a.id },
        el("img", { src: a.snapshot_url, title: `#${a.id} ${fmtTime(a.ts)}`, alt: `#${a.id}` }),
        staff && inc.alerts.length > 1 ? el("input", { type: "checkbox", value: a.id, "data-split": a.id }) : null)));
    const splitBtn = staff && inc.alerts.length > 1
      ? el("button", { type: "button", class: "ghost", id: "split", onclick: () => split(inc) }, t("i.split")) : null;

    let orderPanel = el("p", { class: "muted" }, t("i.none"));
    let history = [];
    if (order) {
      history = await api(`/api/orders/${order.id}/events`);
      const needsWorkers = order.allowed_actions.includes("inform");
      const workers = needsWorkers ? await api("/api/reference/workers") : [];
      const relevant = workers.filter((w) => w.grid_id === order.grid_id || w.department_id === order.department_id);
      orderPanel = el("div", { class: "order", id: "order-panel", "data-state": order.state },
        el("div", { class: "order-head" }, el("span", { class: "oid" }, `${t("i.order")} #${order.id}`), prioBadge(order.priority), stateBadge(order.state)),
        el("div", { class: "kvs" },
          kv(t("o.department"), XL.deptName(order.department_id)), kv(t("o.grid"), inc.grid_name || order.grid_id),
          kv(t("o.suggested"), XL.workerName(order.suggested_worker_id)), kv(t("o.assignee"), XL.workerName(order.assignee_worker_id), "assignee"),
          kv(t("o.ack_due"), `${fmtTime(order.ack_due_at)}${order.ack_breached ? ` · ${t("i.breached")}` : ""}`, order.ack_breached ? "late" : ""),
          kv(t("o.resolve_due"), `${fmtTime(order.resolve_due_at)}${order.resolve_breached ? ` · ${t("i.breached")}` : ""}`, order.resolve_breached ? "late" : ""),
          kv(t("o.level"), `${order.escalation_level} · ${order.escalation_name || ""}`),
          order.rating ? kv(t("o.rating"), "★".repeat(order.rating)) : null,
          order.rating_code ? kv(t("o.rating_link"), el("a", { id: "rating-link", href: `rate/${order.rating_code}`, target: "_blank", rel: "noopener" },
            new URL(`rate/${order.rating_code}`, location.href).href), "wide") : null),
        el("h3", {}, t("i.actions")),
        el("div", { class: "actions", id: "actions" },
          order.allowed_actions.length
            ? order.allowed_actions.map((a) => actionForm(order, a, relevant.length ? relevant : workers))
            : el("p", { class: "muted" }, t("i.noactions"))));
    }
    const timeline = el("ol", { class: "timeline", id: "history" }, history.map((h) =>
      el("li", { "data-action": h.action },
        el("time", {}, fmtTime(h.at)), el("b", {}, e("action", h.action)),
        el("span", { class: "muted" }, ` ${h.from_state ? e("state", h.from_state) + " → " : ""}${e("state", h.to_state)}`),
        el("span", { class: "actor" }, h.actor), h.note ? el("q", {}, h.note) : null)));

    if (call !== shown) return; // another incident (or a fresher copy) was asked for while this one loaded
    root.dataset.incident = String(inc.id);
    root.replaceChildren(
      el("div", { class: "incident-head" },
        el("a", { href: "#/feed", class: "back" }, t("i.back")),
        el("h2", {}, `#${inc.id} ${e("kind", inc.category)} · ${inc.camera_name || inc.camera}`),
        el("span", { class: "muted" }, `${inc.station} / ${inc.camera} · ${fmtTime(inc.first_ts)} – ${fmtTime(inc.last_ts)} · ${inc.alert_count}`),
        inc.merged_into_id ? el("a", { href: `#/incident/${inc.merged_into_id}`, id: "merged-into" }, `${t("i.merged_into")} #${inc.merged_into_id}`) : null,
        liveBtn, liveMsg),
      el("div", { class: "incident-body" },
        el("div", { class: "left" }, media, el("h3", {}, `${t("i.alerts")} (${inc.alerts.length})`, splitBtn), strip,
          staff ? el("div", { id: "merge" }) : null),
        el("div", { class: "right" }, orderPanel, el("h3", {}, t("i.history")), timeline)));
    if (staff) showMergeCandidates(inc);
  }

  function liveFigure(shot) {
    return el("figure", { id: "live-figure" }, el("figcaption", {}, `${t("i.live_got")} ${fmtTime(shot.at)}`),
      el("img", { id: "live-image", src: shot.url, alt: t("i.live_got") }));
  }

  async function requestLive(inc, btn, msg) {
    const say = (text) => { const m = document.getElementById("live-msg"); if (m) m.textContent = text; }; // re-renders replace msg
    btn.disabled = true;
    msg.textContent = t("i.live_ok");
    try {
      const got = await XL.liveSnapshot(inc.station, inc.camera, () => current === inc.id);
      if (!got) return;
      live = { incident: inc.id, ...got };
      document.getElementById("live-figure")?.remove();
      document.querySelector("#view-incident .media")?.append(liveFigure(live));
      say("");
    } catch (err) { say(err.message); } finally { btn.disabled = false; }
  }

  // Incidents of the same grid and category nearby in time (the API's candidates) can be merged here.
  async function showMergeCandidates(inc) {
    let cands = [];
    try { cands = await api(`/api/incidents/${inc.id}/merge-candidates`); } catch { return; }
    const box = document.getElementById("merge");
    if (!box || current !== inc.id || !cands.length) return;
    box.replaceChildren(el("h3", {}, t("i.merge_title")), el("ul", { class: "cands" }, cands.map((c) =>
      el("li", { "data-candidate": c.id },
        el("a", { href: `#/incident/${c.id}` }, `#${c.id}`), ` ${c.camera_name || c.camera} · ${fmtTime(c.first_ts)} · ${c.alert_count} `,
        c.order ? stateBadge(c.order.state) : null,
        el("button", { type: "button", class: "ghost", "data-merge": c.id, onclick: () => merge(inc, c.id) }, t("i.merge"))))));
  }

  async function merge(inc, other) {
    try {
      await api(`/api/incidents/${inc.id}/merge`, { method: "POST", body: { incident_ids: [other] } });
      await XL.showIncident(inc.id);
    } catch (err) { XL.showError(`${t("i.merge")}: ${err.message}`); }
  }

  async function split(inc) {
    const ids = [...document.querySelectorAll("#alert-strip input[data-split]:checked")].map((c) => Number(c.value));
    if (!ids.length) { XL.showError(t("i.split_none")); return; }
    try {
      const made = await api(`/api/incidents/${inc.id}/split`, { method: "POST", body: { alert_ids: ids } });
      location.hash = `#/incident/${made.id}`;
    } catch (err) { XL.showError(`${t("i.split")}: ${err.message}`); }
  }

  XL.showIncident = async (id) => {
    current = id;
    const call = ++shown;
    try {
      const inc = await api(`/api/incidents/${id}`);
      if (call === shown) await render(inc, call);
    } catch (err) { XL.showError(err.message); }
  };
  XL.currentIncident = () => current;
  XL.clearIncident = () => { current = null; };
  XL.prioBadge = prioBadge;
  XL.stateBadge = stateBadge;
})();

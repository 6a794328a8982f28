// Statistics page: small SVG charts drawn here (no library, nothing fetched from outside).
"use strict";
(() => {
  const { el, t, e, api } = XL;
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#4f9dff", "#ff8a3d", "#3fb950", "#d2a8ff", "#f2cc60", "#ff5a4f", "#56d4dd", "#b0bac6", "#e879f9", "#a3e635", "#fb7185", "#94a3b8"];

  function svg(tag, attrs = {}, ...kids) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    for (const k of kids.flat()) if (k) n.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return n;
  }

  function legend(names) {
    return el("div", { class: "legend" }, names.map((n, i) =>
      el("span", {}, el("i", { style: `background:${COLORS[i % COLORS.length]}` }), n)));
  }

  // Stacked bars: one bar per label, one segment per series.
  function stacked(labels, series, { w = 640, h = 220 } = {}) {
    const names = Object.keys(series);
    const totals = labels.map((_, i) => names.reduce((s, n) => s + series[n][i], 0));
    const max = Math.max(1, ...totals);
    const pad = { l: 36, r: 8, t: 10, b: 26 };
    const bw = (w - pad.l - pad.r) / labels.length;
    const y = (v) => h - pad.b - (v / max) * (h - pad.t - pad.b);
    const g = svg("svg", { viewBox: `0 0 ${w} ${h}`, class: "chart", role: "img" });
    for (const frac of [0, 0.5, 1]) {
      const v = Math.round(max * frac);
      g.append(svg("line", { x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v), class: "gridline" }),
        svg("text", { x: pad.l - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, v));
    }
    labels.forEach((lab, i) => {
      let acc = 0;
      names.forEach((n, j) => {
        const v = series[n][i];
        if (!v) return;
        g.append(svg("rect", { x: pad.l + i * bw + 2, width: Math.max(1, bw - 4), y: y(acc + v), height: y(acc) - y(acc + v),
          fill: COLORS[j % COLORS.length] }, svg("title", {}, `${lab} ${n}: ${v}`)));
        acc += v;
      });
      if (labels.length <= 16 || i % 2 === 0) {
        g.append(svg("text", { x: pad.l + i * bw + bw / 2, y: h - 8, class: "axis", "text-anchor": "middle" }, lab));
      }
    });
    return el("div", {}, g, legend(names));
  }

  function hbars(entries, { w = 640 } = {}) {
    const max = Math.max(1, ...entries.map(([, v]) => v));
    const rowH = 20; const h = entries.length * rowH + 8; const left = 120;
    const g = svg("svg", { viewBox: `0 0 ${w} ${h}`, class: "chart", role: "img" });
    entries.forEach(([name, v], i) => {
      const bw = ((w - left - 40) * v) / max;
      g.append(svg("text", { x: left - 6, y: i * rowH + 16, class: "axis", "text-anchor": "end" }, name),
        svg("rect", { x: left, y: i * rowH + 5, width: Math.max(1, bw), height: rowH - 8, fill: COLORS[0] }),
        svg("text", { x: left + bw + 6, y: i * rowH + 16, class: "axis" }, v));
    });
    return g;
  }

  function line(labels, values, { w = 640, h = 180 } = {}) {
    const pts = values.map((v, i) => [i, v]).filter(([, v]) => v !== null);
    const max = Math.max(1, ...pts.map(([, v]) => v));
    const pad = { l: 36, r: 8, t: 10, b: 26 };
    const x = (i) => pad.l + (i * (w - pad.l - pad.r)) / Math.max(1, labels.length - 1);
    const y = (v) => h - pad.b - (v / max) * (h - pad.t - pad.b);
    const g = svg("svg", { viewBox: `0 0 ${w} ${h}`, class: "chart", role: "img" });
    g.append(svg("line", { x1: pad.l, x2: w - pad.r, y1: y(0), y2: y(0), class: "gridline" }),
      svg("text", { x: pad.l - 6, y: y(max) + 4, class: "axis", "text-anchor": "end" }, max.toFixed(1)));
    if (pts.length) {
      g.append(svg("polyline", { points: pts.map(([i, v]) => `${x(i)},${y(v)}`).join(" "), class: "line" }));
      for (const [i, v] of pts) g.append(svg("circle", { cx: x(i), cy: y(v), r: 3, class: "dot" }, svg("title", {}, `${labels[i]}: ${v.toFixed(1)}`)));
    }
    labels.forEach((lab, i) => { if (i % 2 === 0) g.append(svg("text", { x: x(i), y: h - 8, class: "axis", "text-anchor": "middle" }, lab)); });
    return g;
  }

  function gauge(label, pct) {
    const v = pct === null || pct === undefined ? null : pct;
    const r = 38; const c = 2 * Math.PI * r;
    const g = svg("svg", { viewBox: "0 0 100 100", class: "gauge" },
      svg("circle", { cx: 50, cy: 50, r, class: "gauge-bg" }),
      svg("circle", { cx: 50, cy: 50, r, class: `gauge-fg ${v !== null && v < 80 ? "bad" : ""}`,
        "stroke-dasharray": `${((v ?? 0) / 100) * c} ${c}`, transform: "rotate(-90 50 50)" }),
      svg("text", { x: 50, y: 56, "text-anchor": "middle", class: "gauge-text" }, v === null ? "—" : `${v}%`));
    return el("div", { class: "gauge-box" }, g, el("div", {}, label));
  }

  XL.showStats = async () => {
    const root = document.getElementById("stats");
    try {
      const [a, o] = await Promise.all([api("/api/stats/alerts-per-day?days=14"), api("/api/stats/orders?days=14")]);
      const days = a.days.map((d) => d.slice(5));
      const byRule = Object.fromEntries(Object.entries(a.by_rule).map(([k, v]) => [e("kind", k), v]));
      const stationTotals = Object.entries(a.by_station).map(([k, v]) => [k, v.reduce((s, x) => s + x, 0)]);
      const ackMin = o.ack_median_s_by_day.map((v) => (v === null ? null : v / 60));
      const states = Object.entries(o.by_state).map(([k, v]) => [e("state", k), v]);
      const card = (title, body, id) => el("section", { class: "panel", id }, el("h3", {}, title), body);
      root.replaceChildren(
        card(t("s.per_day_rule"), Object.keys(byRule).length ? stacked(days, byRule) : el("p", { class: "muted" }, t("s.nodata")), "chart-rule"),
        card(t("s.per_station"), stationTotals.length ? hbars(stationTotals) : el("p", { class: "muted" }, t("s.nodata")), "chart-station"),
        card(t("s.ack"), line(days, ackMin), "chart-ack"),
        card(t("s.sla"), el("div", { class: "gauges" }, gauge(t("s.ack_sla"), o.ack_sla_kept_pct), gauge(t("s.resolve_sla"), o.resolve_sla_kept_pct)), "chart-sla"),
        card(t("s.states"), states.length ? hbars(states) : el("p", { class: "muted" }, t("s.nodata")), "chart-states"));
    } catch (err) { XL.showError(err.message); }
  };
})();

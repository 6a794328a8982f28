// Drawing a zone or a tripwire on a camera's live picture: the installer clicks points on what the
// camera sends and gets the normalised coordinates to paste under that camera in the station's YAML
// (docs/edge.md), instead of guessing them. A tripwire shows the sides the agent calls A and B.
"use strict";
window.XL = window.XL || {};
(() => {
  const { el, t } = XL;
  const SVG = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    return n;
  };
  const r3 = (v) => Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000;
  const pt = ([x, y]) => `[${x}, ${y}]`;

  // Where "A" and "B" go: either side of the segment's middle, at right angles. A is on the right of
  // someone on p1 facing p2, y down (edge/geometry.py: Tripwire, side_points).
  XL.sidePoints = (p1, p2, off) => {
    const dx = p2[0] - p1[0], dy = p2[1] - p1[1], n = Math.hypot(dx, dy) || 1e-9;
    const ux = (-dy / n) * off, uy = (dx / n) * off, mx = (p1[0] + p2[0]) / 2, my = (p1[1] + p2[1]) / 2;
    return [[mx + ux, my + uy], [mx - ux, my - uy]];
  };

  // Puts the tools under `img` (a camera's picture, inside `figure`) once it has loaded.
  XL.zoneDrawer = (figure, img) => {
    let mode = "zone", points = [];
    const W = img.naturalWidth, H = img.naturalHeight;
    const overlay = svg("svg", { id: "draw-svg", class: "draw-svg", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
    const frame = el("div", { class: "draw-frame" });
    img.replaceWith(frame);
    frame.append(img, overlay);
    const yaml = el("pre", { id: "draw-yaml", class: "draw-yaml" });
    const hint = el("p", { id: "draw-hint", class: "muted" });
    const btn = (id, key, onclick) => el("button", { type: "button", id, onclick }, t(key));
    const tools = el("div", { class: "draw-tools" },
      btn("draw-zone", "d.zone", () => { mode = "zone"; points = []; render(); }),
      btn("draw-line", "d.line", () => { mode = "line"; points = []; render(); }),
      btn("draw-mask", "d.mask", () => { mode = "mask"; points = []; render(); }),
      btn("draw-undo", "d.undo", () => { points.pop(); render(); }),
      btn("draw-clear", "d.clear", () => { points = []; render(); }),
      btn("draw-copy", "d.copy", async () => {
        try { await navigator.clipboard.writeText(yaml.textContent); XL.showNotice(t("d.copied")); }
        catch { getSelection().selectAllChildren(yaml); } // plain http: no clipboard; select it for Ctrl+C
      }));
    figure.append(tools, hint, yaml);

    overlay.addEventListener("click", (e) => {
      const box = overlay.getBoundingClientRect();
      const p = [r3((e.clientX - box.left) / box.width), r3((e.clientY - box.top) / box.height)];
      if (mode === "line" && points.length === 2) points = []; // a third click starts a new line
      points.push(p);
      render();
    });

    function render() {
      const px = points.map(([x, y]) => [x * (W - 1), y * (H - 1)]);
      const dot = Math.max(3, W / 160), stroke = Math.max(2, W / 320), font = Math.max(14, W / 30);
      overlay.replaceChildren();
      for (const b of tools.querySelectorAll("#draw-zone, #draw-line, #draw-mask")) b.classList.toggle("active", b.id === `draw-${mode}`);
      const polygon = mode !== "line"; // a zone or a motion mask
      if (polygon && px.length >= 2) {
        overlay.append(svg(px.length >= 3 ? "polygon" : "polyline",
          { points: px.map((p) => p.join(",")).join(" "), class: mode === "mask" ? "draw-shape mask" : "draw-shape", "stroke-width": stroke }));
      }
      if (mode === "line" && px.length === 2) {
        overlay.append(svg("line", { x1: px[0][0], y1: px[0][1], x2: px[1][0], y2: px[1][1], class: "draw-shape", "stroke-width": stroke }));
        XL.sidePoints(px[0], px[1], font * 1.5).forEach(([x, y], i) => {
          const label = svg("text", { x, y, class: `draw-side side-${"ab"[i]}`, "font-size": font, "text-anchor": "middle", "dominant-baseline": "middle" });
          label.textContent = "AB"[i];
          overlay.append(label);
        });
      }
      px.forEach(([x, y], i) => overlay.append(svg("circle", { cx: x, cy: y, r: dot, class: i ? "draw-dot" : "draw-dot first" })));
      const done = polygon ? points.length >= 3 : points.length === 2;
      hint.textContent = done ? t("d.paste") : t(polygon ? "d.hint_zone" : "d.hint_line");
      const pts = points.map(pt).join(", ");
      yaml.textContent = !done ? ""
        : mode === "zone" ? `zones:\n  - {id: zone-1, points: [${pts}]}`
          : mode === "mask" ? `motion:\n  mask:\n    - [${pts}]   # motion here is ignored (trees, timestamps)`
            : `rules:\n  - {id: line-1, kind: line_crossing, line: [${pts}], direction: both}   # a_to_b | b_to_a | both`;
      figure.querySelector("#draw-copy").disabled = !done;
    }
    render();
  };
})();

// The run page's model timing chart: an SVG drawn from <script id="gantt-data"> (see
// dockyard.timing). Bars are coloured by status class (text and icons elsewhere carry the
// status too); the critical path is outlined and linked; peak concurrency is a marked line.
// Keyboard: focus the chart (Tab), then Left/Right step through the nodes by start time,
// Up/Down move along the critical path, Home/End jump to the first/last node. A checkbox
// collapses the idle stretches (on by default when they are most of the run).
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const ROW = 16, GAP = 3, LEFT = 8, TOP = 22, BOTTOM = 8;

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }

  function fmt(s) {
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + "s";
    const m = Math.floor(s / 60), r = Math.round(s % 60);
    return m + "m " + String(r).padStart(2, "0") + "s";
  }

  // real seconds -> drawn seconds; with ``collapse`` each idle gap longer than 2% of the run
  // is drawn 2% wide (dbt's start-up between steps otherwise takes most of the chart)
  function timeMap(data, collapse) {
    const span = data.span > 0 ? data.span : 1;
    const cap = span * 0.02;
    const gaps = collapse ? (data.gaps || []).filter(function (g) { return g.e - g.s > cap; }) : [];
    const map = function (t) {
      let out = t;
      for (const g of gaps) {
        if (t >= g.e) out -= (g.e - g.s) - cap;
        else if (t > g.s) out -= (t - g.s) - ((t - g.s) * cap) / (g.e - g.s);
      }
      return out;
    };
    return { map: map, shown: map(span), gaps: gaps, span: span };
  }

  function idleShare(data) {
    const idle = (data.gaps || []).reduce(function (a, g) { return a + (g.e - g.s); }, 0);
    return data.span > 0 ? idle / data.span : 0;
  }

  function draw(box, data, collapse) {
    const width = Math.max(box.clientWidth || 0, 280); // the box's width: no page overflow on a phone
    const tm = timeMap(data, collapse);
    const span = tm.span;
    const lanes = Math.max(data.lanes, 1);
    const height = TOP + lanes * (ROW + GAP) + BOTTOM;
    const x = function (t) { return LEFT + (tm.map(t) / (tm.shown || 1)) * (width - 2 * LEFT); };
    const y = function (lane) { return TOP + lane * (ROW + GAP); };
    const svg = el("svg", { class: "gantt-chart", width: width, height: height, viewBox: "0 0 " + width + " " + height,
      tabindex: "0", role: "img", "aria-label": data.bars.length + " nodes over " + fmt(span) + "; use the arrow keys" });
    // time axis: evenly spaced, or (collapsed) where each stretch of work starts
    let marks = [];
    if (tm.gaps.length) marks = [0].concat(tm.gaps.map(function (g) { return g.e; }), [span]);
    else for (let i = 0; i <= 6; i++) marks.push((span * i) / 6);
    let lastX = -Infinity;
    marks.forEach(function (t, i) {
      const at = x(t);
      el("line", { class: "axis", x1: at, x2: at, y1: TOP - 4, y2: height - BOTTOM,
        stroke: "currentColor", "stroke-opacity": "0.15" }, svg);
      if (at - lastX < 56 && i !== marks.length - 1) return;
      if (i === marks.length - 1 && at - lastX < 56) return;
      lastX = at;
      const label = el("text", { class: "tick", x: at, y: 12, fill: "currentColor", "font-size": "11",
        "text-anchor": i === 0 ? "start" : i === marks.length - 1 ? "end" : "middle" }, svg);
      label.textContent = "+" + fmt(t);
    });
    for (const g of data.gaps || []) {
      const r = el("rect", { class: "idle", x: x(g.s), y: TOP - 4, width: Math.max(x(g.e) - x(g.s), 1),
        height: height - TOP - BOTTOM + 4, fill: "currentColor", "fill-opacity": "0.06" }, svg);
      el("title", {}, r).textContent = "idle " + fmt(g.e - g.s) + " (dbt starting or parsing)";
    }
    const cursor = el("rect", { class: "cursor", x: 0, y: 0, width: 0, height: 0, fill: "none", stroke: "currentColor",
      "stroke-width": "3", "pointer-events": "none", visibility: "hidden" });
    const byKey = new Map();
    const rects = [];
    for (const b of data.bars) {
      const r = el("rect", {
        class: "bar st-" + String(b.status || "unknown").replace(/[^a-z0-9]/gi, "-") + (b.crit ? " crit" : ""),
        x: x(b.s), y: y(b.lane), width: Math.max(x(b.e) - x(b.s), 1.5), height: ROW, fill: "currentColor",
        opacity: b.crit ? "1" : "0.55", stroke: b.crit ? "currentColor" : "none", "stroke-width": b.crit ? "1" : "0",
        "data-k": b.k,
      }, svg);
      if (b.crit) {
        // an outline in the page's text colour (the bar's own colour is its status)
        el("rect", { class: "crit-outline", x: x(b.s), y: y(b.lane), width: Math.max(x(b.e) - x(b.s), 1.5), height: ROW,
          fill: "none", stroke: "currentColor", "stroke-width": "2", "pointer-events": "none" }, svg);
      }
      el("title", {}, r).textContent = b.name + " (" + b.status + ") " + fmt(b.e - b.s);
      byKey.set(b.k, { bar: b, rect: r });
      rects.push(r);
    }
    for (const link of data.links || []) {
      const p = byKey.get(link.p), c = byKey.get(link.c);
      if (!p || !c) continue;
      el("line", { class: "crit-link " + link.kind, x1: x(p.bar.e), y1: y(p.bar.lane) + ROW / 2,
        x2: x(c.bar.s), y2: y(c.bar.lane) + ROW / 2, stroke: "currentColor", "stroke-width": "1.5",
        "stroke-dasharray": link.kind === "step" ? "4 3" : "none", "pointer-events": "none" }, svg);
    }
    if (data.peak_at !== null && data.peak_at !== undefined) {
      el("line", { class: "peak", x1: x(data.peak_at), x2: x(data.peak_at), y1: TOP - 6, y2: height - BOTTOM,
        stroke: "currentColor", "stroke-dasharray": "2 2", "pointer-events": "none" }, svg);
      const label = el("text", { class: "peak-label", x: x(data.peak_at) + 3, y: TOP - 8, fill: "currentColor", "font-size": "11" }, svg);
      label.textContent = "peak " + data.peak;
    }
    svg.appendChild(cursor);
    box.textContent = "";
    box.appendChild(svg);
    const info = document.createElement("p");
    info.className = "gantt-info";
    info.setAttribute("aria-live", "polite");
    info.textContent = "Hover or focus the chart and use the arrow keys to read each node.";
    box.appendChild(info);

    const order = data.bars.slice().sort(function (a, b) { return a.s - b.s || a.k - b.k; }).map(function (b) { return b.k; });
    const crit = data.critical || [];
    let current = null;
    function show(k) {
      const item = byKey.get(k);
      if (!item) return;
      if (current !== null && byKey.get(current)) byKey.get(current).rect.classList.remove("current");
      current = k;
      item.rect.classList.add("current");
      for (const a of ["x", "y", "width", "height"]) cursor.setAttribute(a, item.rect.getAttribute(a));
      cursor.setAttribute("visibility", "visible");
      const b = item.bar;
      const t0 = data.t0 ? new Date(data.t0).getTime() : null;
      const at = function (s) { return t0 === null ? "+" + fmt(s) : new Date(t0 + s * 1000).toLocaleTimeString(); };
      info.textContent = b.id + " · " + b.status + " · step " + b.step + " · " + at(b.s) + " → " + at(b.e) +
        " (" + fmt(b.e - b.s) + ")" + (b.crit ? " · on the critical path" : "");
    }
    svg.addEventListener("mouseover", function (ev) {
      const k = ev.target && ev.target.getAttribute && ev.target.getAttribute("data-k");
      if (k !== null && k !== undefined) show(Number(k));
    });
    svg.addEventListener("focus", function () { if (current === null && order.length) show(crit.length ? crit[0] : order[0]); });
    svg.addEventListener("keydown", function (ev) {
      if (!order.length) return;
      let next = null;
      const i = order.indexOf(current), j = crit.indexOf(current);
      if (ev.key === "ArrowRight") next = order[Math.min(order.length - 1, i + 1)];
      else if (ev.key === "ArrowLeft") next = order[Math.max(0, i - 1)];
      else if (ev.key === "ArrowDown" && crit.length) next = crit[Math.min(crit.length - 1, j + 1)];
      else if (ev.key === "ArrowUp" && crit.length) next = crit[Math.max(0, j - 1)];
      else if (ev.key === "Home") next = order[0];
      else if (ev.key === "End") next = order[order.length - 1];
      if (next !== null) { ev.preventDefault(); show(next); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const box = document.getElementById("gantt");
    const data = window.dockyard && window.dockyard.data("gantt-data");
    if (!box || !data) return;
    const chart = document.createElement("div");
    let collapse = idleShare(data) > 0.4;
    if ((data.gaps || []).length) {
      const label = document.createElement("label");
      label.className = "gantt-collapse";
      const box2 = document.createElement("input");
      box2.type = "checkbox";
      box2.checked = collapse;
      box2.addEventListener("change", function () { collapse = box2.checked; draw(chart, data, collapse); });
      label.appendChild(box2);
      label.appendChild(document.createTextNode(" Collapse idle time (" + Math.round(idleShare(data) * 100) + "% of the run)"));
      box.appendChild(label);
    }
    box.appendChild(chart);
    draw(chart, data, collapse);
    let timer = null;
    window.addEventListener("resize", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { draw(chart, data, collapse); }, 150);
    });
  });
})();

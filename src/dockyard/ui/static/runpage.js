// The run page's live part (the log tail, step statuses, nodes done) while the run runs,
// polling /runs/{id}/live?log_offset=N; and the model page's duration trend (an SVG).
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const MAX_LOG = 400000; // characters kept on the page

  function live(run) {
    const log = document.getElementById("live-log");
    const status = document.getElementById("live-status");
    const progress = document.getElementById("live-progress");
    let offset = -1;
    function tick(data) {
      if (data.log && log) {
        const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        let text = log.textContent + data.log;
        if (text.length > MAX_LOG) text = text.slice(text.length - MAX_LOG);
        log.textContent = text;
        if (atEnd) log.scrollTop = log.scrollHeight;
      }
      offset = data.log_offset;
      if (status) status.textContent = data.status;
      if (progress) progress.textContent = data.nodes_done + " of " + data.nodes_total + " nodes done";
      for (const s of data.steps || []) {
        const cell = document.querySelector('#steps tr[data-step="' + s.index + '"] .step-status');
        if (cell) cell.textContent = s.status;
      }
      if (data.final && data.log_offset >= data.log_size) {
        setTimeout(function () { window.location.reload(); }, 800); // the whole page, final
        return false;
      }
      return true;
    }
    // the URL moves with the log offset, so this is a loop of its own (every 1.5 s; slower
    // in a hidden tab), not dockyard.poll
    async function loop() {
      let again = true;
      try {
        const res = await fetch("/runs/" + run.id + "/live?log_offset=" + offset,
          { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (res.status === 401 || res.status === 404) again = false;
        else if (res.ok) again = tick(await res.json());
      } catch (e) { /* the server restarts: try again */ }
      if (again) setTimeout(loop, document.hidden ? 6000 : 1500);
    }
    loop();
  }

  function trend(box, points) {
    const w = Math.max(box.clientWidth || 0, 480), h = 140, pad = 24;
    const max = Math.max.apply(null, points.map(function (p) { return p.s; })) || 1;
    const x = function (i) { return pad + (i * (w - 2 * pad)) / Math.max(points.length - 1, 1); };
    const y = function (s) { return h - pad - (s / max) * (h - 2 * pad); };
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("class", "trend");
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Duration of the last " + points.length + " runs, longest " + max.toFixed(1) + " s");
    const axis = document.createElementNS(NS, "line");
    for (const [k, v] of [["class", "axis"], ["x1", pad], ["x2", w - pad], ["y1", h - pad], ["y2", h - pad]]) axis.setAttribute(k, v);
    svg.appendChild(axis);
    const line = document.createElementNS(NS, "polyline");
    line.setAttribute("points", points.map(function (p, i) { return x(i) + "," + y(p.s); }).join(" "));
    svg.appendChild(line);
    points.forEach(function (p, i) {
      const c = document.createElementNS(NS, "circle");
      c.setAttribute("cx", x(i)); c.setAttribute("cy", y(p.s)); c.setAttribute("r", 3);
      if (p.status !== "success" && p.status !== "pass") c.setAttribute("class", "bad");
      const t = document.createElementNS(NS, "title");
      t.textContent = "run #" + p.run_id + ": " + p.s.toFixed(2) + " s (" + p.status + ")";
      c.appendChild(t);
      svg.appendChild(c);
    });
    const label = document.createElementNS(NS, "text");
    label.setAttribute("x", pad); label.setAttribute("y", 14);
    label.textContent = "max " + max.toFixed(2) + " s";
    svg.appendChild(label);
    box.appendChild(svg);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const d = window.dockyard;
    const run = d && d.data("run-data");
    if (run && !run.final) live(run);
    const box = document.getElementById("trend");
    const points = d && d.data("trend-data");
    if (box && points && points.length > 1) trend(box, points);
  });
})();

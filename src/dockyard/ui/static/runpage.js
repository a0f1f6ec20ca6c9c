// The run page's live part (the log tail, step statuses, nodes done) while the run runs,
// polling /runs/{id}/live?log_offset=N; the node table's pages, sorts and filters fetched
// from /runs/{id}/nodes and swapped in (the links and the form work without this: same
// query parameters, the whole page); and the model page's duration trend (an SVG).
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

  // the node table: a sort or page link, the form, typing in the filter box or choosing a
  // status fetches the table alone; the address follows (a deep link), focus stays put
  function nodeTable(run) {
    const form = document.getElementById("nodes-form");
    const box = document.getElementById("nodes-table");
    if (!form || !box) return;
    const input = form.querySelector("input[name=q]");
    const select = form.querySelector("select[name=status]");
    let seq = 0, timer = null;
    function query(params) {
      const out = new URLSearchParams();
      for (const [k, v] of params) if (v !== "") out.set(k, v);
      return out.toString();
    }
    async function load(q, focusKey) {
      const mine = ++seq;
      const url = "/runs/" + run.id + (q ? "?" + q : "");
      box.setAttribute("aria-busy", "true");
      try {
        const res = await fetch("/runs/" + run.id + "/nodes" + (q ? "?" + q : ""),
          { headers: { Accept: "text/html" }, credentials: "same-origin" });
        if (mine !== seq) return;
        if (!res.ok || res.redirected) { window.location.assign(url + "#nodes-section"); return; }
        const html = await res.text();
        if (mine !== seq) return;
        box.innerHTML = html; // the server's template: every value escaped
        if (window.dockyard && window.dockyard.localTimes) window.dockyard.localTimes(box);
        history.replaceState(null, "", url + "#nodes-section");
        if (focusKey) { // a link: the form shows the table's filters
          const params = new URLSearchParams(q);
          if (input) input.value = params.get("q") || "";
          if (select) select.value = params.get("status") || "";
        }
        const target = focusKey && box.querySelector('[data-key="' + focusKey + '"]');
        if (target) target.focus();
      } catch (e) {
        if (mine === seq) window.location.assign(url + "#nodes-section");
      } finally {
        if (mine === seq) box.removeAttribute("aria-busy");
      }
    }
    box.addEventListener("click", function (e) {
      const a = e.target.closest("a[data-key]");
      if (!a || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      load(query(new URL(a.href, window.location.href).searchParams), a.dataset.key);
    });
    function fromForm() { clearTimeout(timer); load(query(new FormData(form))); }
    form.addEventListener("submit", function (e) { e.preventDefault(); fromForm(); });
    if (input) input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(fromForm, 250); });
    if (select) select.addEventListener("change", fromForm);
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
    if (run) nodeTable(run);
    const box = document.getElementById("trend");
    const points = d && d.data("trend-data");
    if (box && points && points.length > 1) trend(box, points);
  });
})();

// dockyard's pages: local times, sortable/filterable tables, polling. No framework, no
// build step; data comes from <script type="application/json"> blocks (CSP: no inline code).
"use strict";
(function () {
  const dockyard = (window.dockyard = window.dockyard || {});
  const FINAL = new Set(["success", "error", "cancelled", "skipped", "lost"]);

  // <time datetime="...Z" title="... UTC"> shown in the viewer's time zone, UTC on hover
  dockyard.localTimes = function (root) {
    const fmt = new Intl.DateTimeFormat(undefined, {
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    for (const el of (root || document).querySelectorAll("time[datetime]")) {
      const d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) el.textContent = fmt.format(d);
    }
  };

  dockyard.data = function (id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  };

  function cellValue(td) {
    const v = td.dataset.sort !== undefined ? td.dataset.sort : td.textContent.trim();
    const n = Number(v);
    return v !== "" && !isNaN(n) ? n : v.toLowerCase();
  }

  // <table class="sortable">: header buttons (keyboard: Tab + Enter/Space) sort the rows;
  // a table with data-filter gets a text box that hides rows not containing its text
  dockyard.sortable = function (table) {
    const body = table.tBodies[0];
    if (!body) return;
    const heads = table.tHead ? Array.from(table.tHead.rows[0].cells) : [];
    heads.forEach(function (th, index) {
      if (th.dataset.nosort !== undefined) return;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", function () {
        const asc = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        const rows = Array.from(body.rows);
        rows.sort(function (a, b) {
          const x = cellValue(a.cells[index]), y = cellValue(b.cells[index]);
          const c = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : typeof x === "number" ? -1 : 1;
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
    if (table.dataset.filter !== undefined) {
      const input = document.createElement("input");
      input.type = "search";
      input.className = "table-filter";
      input.placeholder = table.dataset.filter || "Filter rows";
      input.setAttribute("aria-label", input.placeholder);
      table.parentNode.insertBefore(input, table);
      input.addEventListener("input", function () {
        const q = input.value.toLowerCase();
        for (const row of body.rows) row.hidden = q !== "" && !row.textContent.toLowerCase().includes(q);
      });
    }
  };

  // poll url every ms milliseconds, calling callback(data); stops when data.status is final
  // (or callback returns false). Returns a function that stops it.
  dockyard.poll = function (url, ms, callback) {
    let stopped = false, timer = null;
    async function tick() {
      if (stopped) return;
      try {
        const res = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (res.status === 401) { stopped = true; return; }
        if (res.ok) {
          const data = await res.json();
          const more = callback(data);
          if (more === false || (data && FINAL.has(data.status))) stopped = true;
        }
      } catch (e) { /* the server restarts: try again */ }
      if (!stopped) timer = setTimeout(tick, document.hidden ? ms * 4 : ms);
    }
    tick();
    return function () { stopped = true; clearTimeout(timer); };
  };
  dockyard.FINAL = FINAL;

  document.addEventListener("DOMContentLoaded", function () {
    dockyard.localTimes();
    for (const t of document.querySelectorAll("table.sortable")) dockyard.sortable(t);
  });
})();

// The dashboard's live part: while runs are in progress, poll /live/dashboard every 2 s and
// update each run's "models done of total"; reload once when the set of runs changes.
"use strict";
(function () {
  const rows = document.querySelectorAll("#running tr[data-run]");
  if (!rows.length) return;
  const shown = new Set(Array.from(rows, function (r) { return Number(r.dataset.run); }));
  window.dockyard.poll("/live/dashboard", 2000, function (data) {
    const now = new Set(data.running.map(function (r) { return r.id; }));
    for (const run of data.running) {
      const row = document.querySelector('#running tr[data-run="' + run.id + '"]');
      if (!row) continue;
      const bar = row.querySelector("progress"), text = row.querySelector(".progress-text");
      bar.max = Math.max(run.nodes_total, 1);
      bar.value = run.nodes_done;
      text.textContent = run.nodes_done + " of " + run.nodes_total;
    }
    const same = now.size === shown.size && Array.from(now).every(function (id) { return shown.has(id); });
    if (!same) { window.location.reload(); return false; }
    return data.running.length > 0;
  });
})();

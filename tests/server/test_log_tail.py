"""The retry classification reads the end of a failed step's log, never a whole huge log
into the scheduler's or worker's memory (issue 7, item 2, same class: unbounded reads)."""

from __future__ import annotations

from dockyard.app.runs import RETRY_LOG_TAIL_BYTES


def test_run_log_reads_only_the_tail_when_asked(server_app):
    app = server_app
    run_id = app.triggers.enqueue("upstream-a", trigger="manual").run_id
    folder = app.runs.folder(run_id) / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "step-1.log", "wb") as fh:
        fh.truncate(64 << 20)  # 64 MiB (sparse)
        fh.seek(0, 2)
        fh.write(b"\nDatabase Error: connection reset by peer\n")
    text = app.runs.logs(run_id, 1, tail=RETRY_LOG_TAIL_BYTES)
    assert len(text) < RETRY_LOG_TAIL_BYTES + 200
    assert text.endswith("connection reset by peer\n")

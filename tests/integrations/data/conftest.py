"""One real shop project on DuckDB for the data integrations' tests (session-scoped): a
successful build with docs (seeds carrying ``atlan`` and ``metabase`` meta blocks, marts
carrying ``meta.looker`` and ``meta.metabase``), then a failing run, both sent as OpenLineage
events to a receiver on 127.0.0.1 by the foreground runs' delivery."""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from dockyard.app import App

ROOT = Path(__file__).resolve().parents[3]
API_KEY = "ol-test-key-7f3a9c"

SEEDS = {
    "version": 2,
    "seeds": [
        {
            "name": "raw_customers",
            "description": "Customers as exported by the shop.",
            "config": {
                "meta": {
                    "owner": "data-team@example.com",
                    "atlan": {"attributes": {"certificateStatus": "VERIFIED"}},
                    "metabase": {"display_name": "Raw customers"},
                }
            },
            "columns": [{"name": "id", "description": "The shop's customer id."}],
        }
    ],
}
LOOKER = {
    "fct_orders": {
        "meta": {
            "owner": "analytics",
            "looker": {
                "label": "Orders",
                "measures": {"order_count_distinct": {"type": "count_distinct", "sql": "${TABLE}.order_id"}},
            },
            "metabase": {"display_name": "Orders"},
        },
        "columns": {
            "order_id": {"description": "The order.", "meta": {"metabase": {"display_name": "Order ID"}}},
            "customer_id": {
                "description": "Who ordered.",
                "meta": {"looker": {"dimension": {"label": "Customer", "hidden": "yes"}}},
            },
        },
    },
    "dim_customers": {"meta": {"looker": {"explore": False}}},
}


def _decorate(dest: Path) -> None:
    (dest / "seeds" / "_seeds.yml").write_text(yaml.safe_dump(SEEDS, sort_keys=False))
    path = dest / "models" / "marts" / "_marts.yml"
    data = yaml.safe_load(path.read_text())
    for model in data["models"]:
        extra = LOOKER.get(model["name"], {})
        if "meta" in extra:
            model["meta"] = extra["meta"]
        for column in model.get("columns", []):
            column.update(extra.get("columns", {}).get(column["name"], {}))
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@dataclass
class Receiver:
    """An OpenLineage endpoint on loopback: every POST body and its headers."""

    events: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, status: int = 201, delay_s: float = 0.0) -> tuple[ThreadingHTTPServer, str]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if delay_s:
                    threading.Event().wait(delay_s)
                with receiver.lock:
                    receiver.events.append(json.loads(body))
                    receiver.headers.append(dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"


@dataclass
class ShopRuns:
    app: App
    good: object  # the successful run (RunRecord)
    broken: object  # the failed run
    receiver: Receiver
    db_dir: Path
    project: Path


@pytest.fixture(scope="session")
def shop_runs(tmp_path_factory) -> ShopRuns:
    base = tmp_path_factory.mktemp("data-integrations")
    dest = base / "shop"
    shutil.copytree(
        ROOT / "examples" / "shop",
        dest,
        ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*", ".user.yml"),
    )
    _decorate(dest)
    (base / "db").mkdir()
    receiver = Receiver()
    server, url = receiver.start()
    with (dest / "dockyard.yml").open("a") as fh:
        fh.write(
            f"""\
  - name: "Build and docs"
    environment: dev
    commands: ["dbt seed", "dbt run", "dbt test", "dbt docs generate"]
  - name: "Broken"
    environment: dev
    commands: ["dbt run --select broken+"]
events:
  foreground_wait_seconds: 60
  delivery_timeout_seconds: 30
openlineage:
  enabled: true
  url: "{url}"
  namespace: shop-dev
  api_key: env:DOCKYARD_TEST_OL_KEY
"""
        )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHOP_DUCKDB_DIR", str(base / "db"))
        mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        mp.setenv("DOCKYARD_TEST_OL_KEY", API_KEY)
        mp.delenv("DOCKYARD_STORE_URL", raising=False)
        mp.delenv("OPENLINEAGE_URL", raising=False)
        app = App.open(dest / "dockyard.yml")
        app.sync()
        good = app.run_job("Build and docs")
        assert good.status.value == "success", app.runs.logs(good.id)[-3000:]
        (dest / "models" / "broken.sql").write_text("select * from {{ ref('fct_orders') }} where no_such_column = 1\n")
        broken = app.run_job("Broken")
        assert broken.status.value == "error"
        yield ShopRuns(app, good, broken, receiver, base / "db", dest)
        app.close()
    server.shutdown()

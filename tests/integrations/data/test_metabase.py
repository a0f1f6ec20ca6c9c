"""dockyard sync metabase against a small Metabase on 127.0.0.1 that speaks the routes used
(GET /api/database, /api/table, /api/table/:id/query_metadata; PUT /api/table/:id,
/api/field/:id; x-api-key), with the shop's real manifest: a dry run changes nothing, --apply
writes what differs, then nothing is left to change."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from dockyard.cli.main import cli

pytestmark = pytest.mark.slow
KEY = "mb-test-key-1c2d"


def _table(ident, db, name, display, description=None):
    return {
        "id": ident,
        "db_id": db,
        "schema": "dev",
        "name": name,
        "display_name": display,
        "description": description,
    }


def _field(ident, table, name, display):
    return {"id": ident, "table_id": table, "name": name, "display_name": display, "description": None}


def _state():
    dim = "One row per customer with order history and lifetime value."
    tables = [
        _table(10, 1, "fct_orders", "Fct Orders"),
        _table(11, 1, "dim_customers", "Dim Customers", dim),  # already equal: no change
        _table(12, 1, "raw_customers", "Raw Customers"),
        _table(20, 2, "fct_orders", "Fct Orders"),  # another database
    ]
    fields = [
        _field(100, 10, "order_id", "Order Id"),
        _field(101, 10, "customer_id", "Customer ID"),
        _field(120, 12, "id", "ID"),
    ]
    return {
        "databases": [{"id": 1, "name": "shop", "engine": "duckdb"}, {"id": 2, "name": "other", "engine": "h2"}],
        "tables": {t["id"]: t for t in tables},
        "fields": {f["id"]: f for f in fields},
        "puts": [],
    }


@pytest.fixture
def metabase():
    state = _state()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status, body=None):
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if self.headers.get("x-api-key") != KEY:
                self._send(401, {"message": "Unauthenticated"})
                return False
            return True

        def do_GET(self):  # noqa: N802
            if not self._authorised():
                return
            if self.path == "/api/database":
                return self._send(200, {"data": state["databases"], "total": len(state["databases"])})
            if self.path == "/api/table":
                return self._send(200, list(state["tables"].values()))
            if m := re.fullmatch(r"/api/table/(\d+)/query_metadata", self.path):
                table = state["tables"].get(int(m[1]))
                if table is None:
                    return self._send(404, {"message": "Not found."})
                fields = [f for f in state["fields"].values() if f["table_id"] == table["id"]]
                return self._send(200, {**table, "fields": fields})
            self._send(404, {"message": "Not found."})

        def do_PUT(self):  # noqa: N802
            if not self._authorised():
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            m = re.fullmatch(r"/api/(table|field)/(\d+)", self.path)
            items = state["tables" if m and m[1] == "table" else "fields"] if m else {}
            if not m or int(m[2]) not in items:
                return self._send(404, {"message": "Not found."})
            items[int(m[2])].update(body)
            state["puts"].append((self.path, body))
            self._send(200, items[int(m[2])])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _sync(shop_runs, url, *args, key=KEY, monkeypatch=None):
    monkeypatch.setenv("METABASE_API_KEY", key)
    return CliRunner().invoke(
        cli, ["sync", "metabase", "--url", url, "--config", str(shop_runs.app.loaded.path), *args]
    )


EXPECTED = {
    ("table", "dev.fct_orders", "description"),
    ("table", "dev.fct_orders", "display_name"),
    ("field", "dev.fct_orders.order_id", "description"),
    ("field", "dev.fct_orders.order_id", "display_name"),
    ("field", "dev.fct_orders.customer_id", "description"),
    ("table", "dev.raw_customers", "description"),
    ("table", "dev.raw_customers", "display_name"),
    ("field", "dev.raw_customers.id", "description"),
}


def test_dry_run_then_apply_then_nothing_left(shop_runs, metabase, monkeypatch):
    state, url = metabase
    result = _sync(shop_runs, url, "--database", "shop", "--json", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["applied"] is False and state["puts"] == []  # a dry run writes nothing
    assert {(c["kind"], c["label"], c["key"]) for c in plan["changes"]} == EXPECTED
    new = {(c["label"], c["key"]): c["new"] for c in plan["changes"]}
    assert (
        new["dev.fct_orders", "display_name"] == "Orders"
        and new["dev.fct_orders.order_id", "display_name"] == "Order ID"
    )

    result = _sync(shop_runs, url, "--database", "shop", "--apply", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    assert "applied 8 changes (5 requests)" in result.output
    puts = dict(state["puts"])
    assert puts["/api/table/10"] == {
        "description": "One row per order with item count and total in dollars.",
        "display_name": "Orders",
    }
    assert puts["/api/field/100"] == {"description": "The order.", "display_name": "Order ID"}
    assert "/api/table/20" not in puts and "/api/table/11" not in puts  # another database; already equal
    assert state["tables"][20]["description"] is None

    result = _sync(shop_runs, url, "--database", "shop", monkeypatch=monkeypatch)
    assert result.exit_code == 0 and "Metabase is up to date" in result.output


def test_a_wrong_key_or_an_ambiguous_database_is_an_error(shop_runs, metabase, monkeypatch):
    state, url = metabase
    result = _sync(shop_runs, url, "--database", "shop", key="wrong", monkeypatch=monkeypatch)
    assert result.exit_code != 0 and "HTTP 401" in result.output and "check the API key" in result.output
    assert "wrong" not in result.output
    result = _sync(shop_runs, url, monkeypatch=monkeypatch)  # two databases, no --database
    assert (
        result.exit_code != 0 and "several Metabase databases" in result.output and "shop, other" not in result.output
    )
    assert "databases: other, shop" in result.output
    result = CliRunner().invoke(
        cli, ["sync", "metabase", "--url", url, "--token", KEY, "--config", str(shop_runs.app.loaded.path)]
    )
    assert result.exit_code != 0 and "must be a reference" in result.output and state["puts"] == []

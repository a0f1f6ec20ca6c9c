"""S3: planted canary secrets never appear in any sink.

Sinks scanned: step log files, stored artifacts (``runs/<id>/artifacts/**``), every other file
dockyard writes under the project (its state folder: the SQLite file itself, WAL included,
and derived profiles; dbt's ``logs/`` folder), every row of every table of the store (SQLite
and PostgreSQL), and the terminal: stdout and stderr of ``dockyard run``, ``run --json``,
``show``, ``logs``, ``artifacts``, ``runs`` and ``validate --connection``. Each canary is
looked for raw and in its base64 (three alignments, two alphabets), URL-encoded and hex forms
(see ``tests/security/canary.py``).

Not scanned: dbt's own target folders (``.dockyard/targets/<env>/``), which hold dbt's
compiled SQL and partial-parse cache exactly as dbt writes them (a model that puts a secret
into its SQL puts it there), and the warehouse itself.

Every scenario also checks that the secret did reach dbt and was masked where it would have
appeared (``***``), so a scan of empty or irrelevant sinks cannot pass by accident.
"""

from __future__ import annotations

import base64
import json
import secrets
import signal
import time
from urllib.parse import quote, quote_plus

import pytest
from tests.e2e.conftest import dockyard_processes
from tests.security.canary import Canary, CanaryScanner, new_canary
from tests.security.conftest import DBT_TARGETS, CanaryShop

STORE_AND_MODE = [
    pytest.param(("sqlite", "fork"), id="sqlite-fork"),
    pytest.param(("sqlite", "subprocess"), id="sqlite-subprocess"),
    pytest.param(("postgresql", "fork"), id="postgresql-fork", marks=pytest.mark.postgres),
]


def _assert_sinks_covered(scanner: CanaryScanner, run_ids: list[int], rows: dict[str, int]) -> None:
    """The sinks that must exist did exist and were scanned (nothing passes vacuously)."""
    files = {sink for sink in scanner.scanned if sink.startswith("file ")}
    for run_id in run_ids:
        prefix = f"file <project>/.dockyard/runs/{run_id}/"
        assert any(f.startswith(prefix + "logs/step-") for f in files), f"no step log of run {run_id} scanned"
        assert any(f.startswith(prefix + "artifacts/") and f.endswith("run_results.json") for f in files), (
            f"no artifact of run {run_id} scanned"
        )
    for table in ("runs", "run_steps", "node_results", "artifacts", "jobs", "environments"):
        assert rows.get(table), f"store table {table} is empty: {rows}"


def _json(proc):
    """The JSON a ``--json`` command printed (a CompletedProcess or an (out, err) pair)."""
    out, err = (proc.stdout, proc.stderr) if hasattr(proc, "stdout") else proc
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError(f"no JSON on stdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}") from None


def _wait_for_log(path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} did not appear in {path} within {timeout} s")


# -- the scanner can fail --------------------------------------------------------------------


def test_scanner_finds_a_canary_planted_in_a_log_file(tmp_path):
    """Sanity: every form the scanner knows is found in a log file, and the failure names it."""
    canary = new_canary("planted", special=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "clean.log").write_text("10:00:00  nothing to see here ***\n")
    raw = canary.value.encode()
    samples = {
        "raw": canary.value,
        "quote": quote(canary.value),
        "quote_plus": quote_plus(canary.value),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
    }
    # base64 of the canary embedded in a longer blob at every alignment (a Basic auth header)
    for prefix in ("", "u", "us", "user:"):
        for suffix in ("", "@", "@h", "@host:5432"):
            blob = (prefix + canary.value + suffix).encode()
            samples[f"b64 {prefix!r}+{suffix!r}"] = base64.b64encode(blob).decode()
            samples[f"b64url {prefix!r}+{suffix!r}"] = base64.urlsafe_b64encode(blob).decode()
    for n, text in enumerate(samples.values()):
        (logs / f"step-{n}.log").write_text(f"10:00:00  some line\n10:00:01  leaked: {text} (end)\n")

    scanner = CanaryScanner([canary])
    scanner.scan_tree(tmp_path, label="<tmp>")
    assert scanner.scanned["file <tmp>/logs/clean.log"] > 0
    found_in = {f.sink for f in scanner.findings}
    assert "file <tmp>/logs/clean.log" not in found_in
    for n, name in enumerate(samples):
        assert f"file <tmp>/logs/step-{n}.log" in found_in, f"{name} form not found"
    with pytest.raises(AssertionError) as failure:
        scanner.assert_clean()
    assert "file <tmp>/logs/step-0.log" in str(failure.value) and "'planted' (raw" in str(failure.value)

    # a transformed value is not recognised (the trust boundary, see the last test)
    other = CanaryScanner([canary])
    other.scan("reversed", canary.value[::-1])
    other.assert_clean()


# -- full-stack runs ---------------------------------------------------------------------------


@pytest.mark.parametrize("canary_shop", STORE_AND_MODE, indirect=True)
def test_success_and_failure_runs_leak_no_canary(canary_shop: CanaryShop):
    shop = canary_shop
    scanner = shop.scanner()

    ok = shop.cli(scanner, "run", "canary ok", check=0)  # text: dbt's log lines echoed
    assert "api token: ***" in ok.stdout and "proxy user: ***" in ok.stdout, ok.stdout[-3000:]
    fail_run = _json(shop.cli(scanner, "run", "canary fail", "--json", check=1))
    fail_id = fail_run["id"]
    [ok_id] = [r["id"] for r in _json(shop.cli(scanner, "runs", "--json")) if r["job"] == "canary ok"]
    [node] = [n for n in fail_run["nodes"] if n["name"] == "canary_fail"]
    assert node["status"] == "error" and '"***"' in node["message"], node

    for args in (
        ["show", str(ok_id)],
        ["show", str(fail_id)],
        ["show", str(fail_id), "--json"],
        ["logs", str(ok_id)],
        ["logs", str(fail_id), "--step", "1"],
        ["artifacts", str(ok_id)],
        ["artifacts", str(ok_id), "--json"],
        ["runs"],
    ):
        shop.cli(scanner, *args, check=0)
    rows = shop.scan_persisted(scanner)

    # the secrets did reach dbt and DuckDB (and were masked on the way out)
    assert shop.duckdb_rows("select api_token from analytics_canary.canary_ok") == [(shop.api_token.value,)]
    assert shop.duckdb_rows("select password_length, user_length from analytics_canary.canary_settings") == [
        (len(shop.warehouse_password.value), len(shop.proxy_user.value))
    ]
    ok_run = _json(shop.project.cli("show", str(ok_id), "--json", check=0))
    assert ok_run["status"] == "success" and ok_run["has_warnings"] is True
    assert {(a["step_index"], a["name"]) for a in ok_run["artifacts"]} >= {
        (1, "manifest.json"),
        (1, "run_results.json"),
        (2, "run_results.json"),
        (3, "catalog.json"),
    }
    assert (shop.path / ".dockyard" / "profiles" / "prod" / "profiles.yml").is_file()
    _assert_sinks_covered(scanner, [ok_id, fail_id], rows)
    # control: dbt's own target folder (unscrubbed, not a sink) holds the canaries' raw values,
    # so an unscrubbed copy of any of its files would have been caught
    control = shop.scanner()
    control.scan_tree(shop.path / DBT_TARGETS, label="<targets>")
    assert control.found(shop.api_token.label), "the models did not put the secret into dbt's output"
    scanner.assert_clean()


def test_cancelled_run_leaks_no_canary(canary_shop: CanaryShop):
    shop = canary_shop
    shop.project.write(
        "models/canary/canary_slow.sql",
        """\
        {{ config(materialized='table') }}
        {{ log("slow model token: " ~ env_var('SHOP_API_TOKEN'), info=True) }}
        -- token {{ env_var('SHOP_API_TOKEN') }}
        select '{{ env_var('SHOP_API_TOKEN') }}' as token, count(*) as n, sum(a.range * b.range % 7) as s
        from range(200000000) a, range(100) b
    """,
    )
    shop.project.add_job("""\
        - name: canary slow
          environment: prod
          commands: ["dbt run --select canary_slow canary_ok", "dbt docs generate"]
    """)
    scanner = shop.scanner()
    proc = shop.project.popen("run", "canary slow", "--json")
    try:
        run_id = shop.project.wait_for_step(1)
        _wait_for_log(
            shop.path / ".dockyard" / "runs" / str(run_id) / "logs" / "step-1.log",
            "START sql table model analytics_canary.canary_slow",
        )
        time.sleep(1)  # the slow query is running
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    scanner.scan_process("dockyard run 'canary slow' --json (SIGINT)", (out, err))
    assert proc.returncode == 130, err[-3000:]
    run = _json((out, err))
    assert run["id"] == run_id and run["status"] == "cancelled"
    assert [s["status"] for s in run["steps"]] == ["cancelled", "skipped"]

    for args in (
        ["show", str(run_id)],
        ["show", str(run_id), "--json"],
        ["logs", str(run_id)],
        ["artifacts", str(run_id)],
        ["runs"],
    ):
        shop.cli(scanner, *args, check=0)
    logs = shop.project.cli("logs", str(run_id), check=0).stdout
    assert "slow model token: ***" in logs and "run cancelled" in logs, logs[-3000:]
    rows = shop.scan_persisted(scanner)
    assert rows["node_results"] and rows["run_steps"] == 2
    time.sleep(0.5)
    assert not dockyard_processes(str(shop.project.config))
    scanner.assert_clean()


def test_validate_connection_leaks_no_canary(canary_shop: CanaryShop):
    """``dbt debug`` prints the profile's settings (``http_proxy_username`` unmasked by dbt),
    and a connection that fails echoes the path that holds the secret."""
    shop = canary_shop
    profiles = shop.path / "profiles.yml"
    profiles.write_text(
        profiles.read_text()
        + """\
    broken:
      type: duckdb
      path: "/nonexistent/{{ env_var('SHOP_API_TOKEN') }}/shop.duckdb"
      schema: broken
      threads: 1
"""
    )
    with open(shop.project.config) as fh:
        text = fh.read()
    text = text.replace(
        "\njobs:\n",
        """
  broken:
    target: broken
    secrets: {SHOP_API_TOKEN: "env:CANARY_SRC_1"}
jobs:
""",
        1,
    )
    shop.project.config.write_text(text)

    scanner = shop.scanner()
    proc = shop.cli(scanner, "validate", "--connection", check=1)
    assert "✓ connection prod: dbt debug: all checks passed" in proc.stdout, proc.stdout
    # dbt's error names the file; dockyard prints that line (the terminal may wrap it)
    assert "✗ connection broken:" in proc.stdout and '"/nonexistent/***/shop.duckdb"' in proc.stdout, proc.stdout
    shop.scan_persisted(scanner)  # dbt's logs/ folder in the project, the store
    scanner.assert_clean()


def test_config_error_does_not_echo_a_literal_secret(canary_shop: CanaryShop):
    """A secret written as a literal by mistake (a numeric one fails type validation, which
    would otherwise print the offending value) is not repeated on the terminal (think CI logs)."""
    shop = canary_shop
    pin = Canary("literal numeric secret in dockyard.yml", str(10**20 + secrets.randbelow(10**20)))
    text = shop.project.config.read_text()
    assert 'SHOP_API_TOKEN: "env:CANARY_SRC_1"' in text
    shop.project.config.write_text(text.replace('SHOP_API_TOKEN: "env:CANARY_SRC_1"', f"SHOP_API_TOKEN: {pin.value}"))
    scanner = CanaryScanner([pin])
    for args in (["validate"], ["jobs"], ["run", "canary ok"]):
        proc = shop.cli(scanner, *args, check=None)
        assert proc.returncode != 0 and "environments.prod.secrets.SHOP_API_TOKEN" in proc.stderr, proc.stderr
    scanner.assert_clean()


# -- the trust boundary ------------------------------------------------------------------------


def test_trust_boundary_transformed_secret_is_visible(canary_shop: CanaryShop):
    """Documented in docs/operations.md ("Trust boundary"): the dbt project is trusted code. A
    model that transforms a secret (reverses it, splits it into characters) produces a value no
    scrubber can recognise, and it *is* visible in the log and the artifacts. This test asserts
    that it is, so the boundary is explicit, not hidden; the untransformed value still is not."""
    shop = canary_shop
    shop.project.write(
        "models/canary/canary_reversed.sql",
        """\
        {{ log("reversed token: " ~ env_var('SHOP_API_TOKEN')[::-1], info=True) }}
        {{ log("spelled token: " ~ (env_var('SHOP_API_TOKEN') | list | join(' ')), info=True) }}
        select '{{ env_var('SHOP_API_TOKEN')[::-1] }}' as reversed_token
    """,
    )
    shop.project.add_job("""\
        - name: canary reversed
          environment: prod
          commands: ["dbt run --select canary_reversed"]
    """)
    reversed_token = shop.api_token.reversed("SHOP_API_TOKEN reversed by a model")
    spelled = Canary("SHOP_API_TOKEN spelled out by a model", " ".join(shop.api_token.value))
    transformed = CanaryScanner([reversed_token, spelled])
    untouched = shop.scanner()
    proc = shop.project.cli("run", "canary reversed", check=0)
    run_id = _json(shop.project.cli("runs", "--json", check=0))[0]["id"]
    for scanner in (transformed, untouched):
        scanner.scan_process("dockyard run 'canary reversed'", proc)
        shop.scan_persisted(scanner)

    sinks = {f.sink for f in transformed.found(reversed_token.label)}
    assert f"file <project>/.dockyard/runs/{run_id}/logs/step-1.log" in sinks, transformed.report()
    assert f"file <project>/.dockyard/runs/{run_id}/artifacts/step-1/run_results.json" in sinks
    assert f"file <project>/.dockyard/runs/{run_id}/artifacts/step-1/manifest.json" in sinks
    assert "terminal `dockyard run 'canary reversed'` stdout" in sinks
    assert any("logs/step-1.log" in f.sink for f in transformed.found(spelled.label)), transformed.report()
    untouched.assert_clean()

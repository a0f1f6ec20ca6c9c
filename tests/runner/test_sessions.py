"""Finding a process's warehouse connections in /proc, and reading a target's credentials."""

from __future__ import annotations

import os
import socket

import pytest

from dockyard.runner.sessions import PostgresWarehouse, _normal, connections, render_output


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_connections_finds_this_process_sockets_to_a_port(family, host):
    with socket.socket(family) as server:
        try:
            server.bind((host, 0))
        except OSError:
            pytest.skip(f"{host} is not available here")
        server.listen()
        port = server.getsockname()[1]
        with socket.socket(family) as client, socket.socket(family) as other:
            client.connect((host, port))
            accepted, _ = server.accept()
            with accepted:
                found = connections([os.getpid()], port)
                assert {(s.addr, s.port) for s in found} == {(host, client.getsockname()[1])}
                # a connection to another port is not one of the warehouse's
                with socket.socket(family) as elsewhere:
                    elsewhere.bind((host, 0))
                    elsewhere.listen()
                    other.connect((host, elsewhere.getsockname()[1]))
                    assert {s.port for s in connections([os.getpid()], port)} == {client.getsockname()[1]}
    assert connections([os.getpid()], port) == set()


def test_addresses_are_normalised():
    assert _normal("::ffff:127.0.0.1") == "127.0.0.1"  # a v4 client of a dual-stack socket
    assert _normal("fe80::1%eth0") == "fe80::1"
    assert _normal("::1") == "::1"


def test_a_target_is_rendered_with_the_run_environment():
    output = {
        "type": "postgres",
        "host": "{{ env_var('H', 'db.local') }}",
        "port": "{{ env_var('P') | as_number }}",
        "user": "u",
        "password": "{{ env_var('DBT_ENV_SECRET_PW') }}",
        "dbname": "d",
        "threads": 4,
    }
    rendered = render_output(output, {"P": "6543", "DBT_ENV_SECRET_PW": "s3cret"})
    assert rendered["host"] == "db.local" and rendered["password"] == "s3cret" and rendered["threads"] == 4
    warehouse = PostgresWarehouse.from_output(output, {"P": "6543", "DBT_ENV_SECRET_PW": "s3cret"})
    assert (warehouse.host, warehouse.port, warehouse.user, warehouse.dbname) == ("db.local", 6543, "u", "d")


def test_only_postgres_targets_and_renderable_ones_are_swept():
    assert PostgresWarehouse.from_output({"type": "duckdb", "path": "x.duckdb"}, {}) is None
    assert PostgresWarehouse.from_output(None, {}) is None
    # a variable without a default that is not set: dbt will say so; no sweep
    assert PostgresWarehouse.from_output({"type": "postgres", "host": "{{ env_var('MISSING') }}"}, {}) is None

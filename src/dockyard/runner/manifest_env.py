"""The ``metadata.env`` of a step's ``manifest.json``, made this run's.

dbt fills ``metadata.env`` (the ``DBT_ENV_CUSTOM_ENV_*`` variables, such as dockyard's
``DBT_CLOUD_RUN_ID``) when it parses in full; a partial parse keeps the saved manifest's
metadata, so every later run's manifest carries the run id of the run that last parsed in full
(dbt Cloud parses each run from a fresh clone and never shows this). Clients read
``metadata.env`` to tie an artifact to its run, so the stored artifact gets the step's own
values. Only the ``metadata`` object at the head of the file is decoded and rewritten; the
rest (tens of MB on big projects) is copied as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

PREFIX = "DBT_ENV_CUSTOM_ENV_"
HEAD = b'{"metadata": '
MAX_METADATA = 1 << 20  # the metadata object is a few hundred bytes


def custom_env(env: Mapping[str, str]) -> dict[str, str]:
    """What dbt puts into ``metadata.env`` for a process with environment ``env``."""
    return {k[len(PREFIX) :]: v for k, v in env.items() if k.startswith(PREFIX)}


def with_env(data: bytes, env: Mapping[str, str]) -> bytes:
    """``data`` (a manifest.json) with ``metadata.env`` set to ``env``; unchanged when it
    already is, or when the file does not start as dbt writes it."""
    if not data.startswith(HEAD):
        return data
    head = data[len(HEAD) : len(HEAD) + MAX_METADATA].decode("utf-8", errors="ignore")
    try:
        metadata, end = json.JSONDecoder().raw_decode(head)
    except ValueError:
        return data
    if not isinstance(metadata, dict) or metadata.get("env") == dict(env):
        return data
    metadata["env"] = dict(env)
    rest = len(HEAD) + len(head[:end].encode("utf-8"))
    return HEAD + json.dumps(metadata).encode("utf-8") + data[rest:]

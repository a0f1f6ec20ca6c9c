"""CI runs never take the production environment's run slots: the CI environment's
``max_concurrent_runs`` below ``server.workers`` keeps the other slots for the others, however
many pull requests queue builds (and without it, they would take every slot)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import DAILY, make_app
from tests.webhooks.conftest import Sender, pull_request

from dockyard.api.app import create_app
from dockyard.server.worker import Worker


def _configure(shop, limit: bool) -> None:
    config = shop / "dockyard.yml"
    text = config.read_text()
    text = text.replace(
        "    triggers: {github_webhook: true}",
        "    allow_overlap: true                # PR builds may run side by side\n    triggers: {github_webhook: true}",
    )
    if limit:
        text = text.replace("  ci:\n    target: ci\n", "  ci:\n    target: ci\n    max_concurrent_runs: 1\n")
    config.write_text(text)


@pytest.mark.parametrize("limit", [True, False], ids=["ci limited to 1", "no limit"])
def test_ci_runs_leave_the_production_slot_free(hooked, limit):
    _configure(hooked, limit)
    app = make_app(hooked)
    try:
        assert app.config.server.workers == 2
        with TestClient(create_app(app), base_url="https://testserver") as client:
            send = Sender(client)
            ci = [
                send.github("pull_request", pull_request(n, sha=f"{n}" * 40)).json()["data"]["runs"][0]
                for n in (1, 2, 3)
            ]
        prod = app.triggers.trigger(DAILY, {"cause": "merge"})  # queued after the three PR builds
        slots = [Worker(app, worker_id=f"slot-{i}") for i in (1, 2)]
        claimed = [app.store.queue.claim(w.id, w.host, **w.limits()) for w in slots]
        ids = [c.run_id for c in claimed if c is not None]
        if limit:
            assert ids == [ci[0], prod]  # the second slot skips the PR builds for the production run
            assert app.store.queue.claim("slot-3", "h", **slots[0].limits()) is None  # nor a third CI run
        else:
            assert ids == [ci[0], ci[1]]  # what the limit prevents: PR builds in every slot
    finally:
        app.close()

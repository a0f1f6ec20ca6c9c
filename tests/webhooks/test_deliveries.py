"""The store's webhook deliveries on SQLite and PostgreSQL: one owner per delivery id (also
among concurrent claimers), duplicates once done, a stale claim taken over exactly once, a
released claim at once, pruning of old handled deliveries."""

from __future__ import annotations

import threading
from datetime import timedelta

from tests.store.conftest import pg_url, store  # noqa: F401 - the store fixtures, both backends

from dockyard import clock


def test_claim_finish_duplicate_release_and_prune(store):  # noqa: F811
    hooks = store.webhooks
    first = hooks.claim("github", "d1", "pull_request")
    assert first.owner and not first.retry
    again = hooks.claim("github", "d1", "pull_request")
    assert not again.owner and again.state == "pending"  # being handled
    assert hooks.claim("gitlab", "d1", "Push Hook").owner  # ids are per provider
    hooks.finish("github", "d1", {"runs": [3]})
    done = hooks.claim("github", "d1", "pull_request")
    assert not done.owner and done.state == "done" and done.result == {"runs": [3]}

    old = clock.now() - timedelta(minutes=10)
    assert hooks.claim("github", "d2", "pull_request", now=old).owner  # its handler then died
    takeover = hooks.claim("github", "d2", "pull_request")
    assert takeover.owner and takeover.retry
    assert not hooks.claim("github", "d2", "pull_request").owner  # the takeover's claim is fresh

    assert hooks.claim("github", "d3", "push").owner
    hooks.release("github", "d3")  # its handler failed
    assert hooks.claim("github", "d3", "push").owner  # the next copy acts at once

    hooks.finish("github", "d2", None)
    assert hooks.prune(clock.now() + timedelta(seconds=1)) == 2  # d1 and d2 were handled
    assert hooks.get("github", "d1") is None and hooks.get("github", "d3")["state"] == "pending"


def test_concurrent_copies_of_a_delivery_have_one_owner(store):  # noqa: F811
    for name, now in (("new", None), ("stale", clock.now() - timedelta(minutes=10))):
        if now is not None:
            store.webhooks.claim("github", name, "pull_request", now=now)
        barrier = threading.Barrier(8)
        owners = []

        def claim(name=name, barrier=barrier, owners=owners):
            barrier.wait()
            owners.append(store.webhooks.claim("github", name, "pull_request").owner)

        threads = [threading.Thread(target=claim) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(owners) == [False] * 7 + [True], name

"""Slack (Block Kit) and Microsoft Teams (Adaptive Card): shape, escaping, bounded sizes, delivery."""

from __future__ import annotations

import json

import pytest
from tests.channels.conftest import LOOPBACK, run_alert

from dockyard.alert import AlertItem, Severity
from dockyard.channels import ChannelError, msteams, slack


def _texts(blocks) -> list[str]:
    out = []
    for block in blocks:
        if "text" in block:
            out.append(block["text"]["text"])
        for f in block.get("fields", []):
            out.append(f["text"])
        for e in block.get("elements", []):
            out.append(e["text"]["text"] if isinstance(e.get("text"), dict) else e["text"])
    return out


def test_slack_payload_golden_fields() -> None:
    body = slack.payload(run_alert())
    assert body["text"].startswith("\U0001f534 nightly failed in prod")
    blocks = body["blocks"]
    assert [b["type"] for b in blocks] == [
        "header",
        "section",
        "section",
        "divider",
        "section",
        "section",
        "context",
        "actions",
    ]
    assert blocks[0]["text"] == {"type": "plain_text", "text": "\U0001f534 nightly failed in prod", "emoji": True}
    assert blocks[1]["text"]["text"] == "2 nodes failed. Attempt 3 of 3."
    assert [f["text"] for f in blocks[2]["fields"]] == [
        "*Job*\nnightly",
        "*Environment*\nprod",
        "*Trigger*\nschedule",
        "*Duration*\n1m 02s",
    ]
    assert blocks[4]["text"]["text"] == (
        '*orders*  error\n```\nDatabase Error in model orders\n  column "amount" does not exist\n```'
    )
    assert blocks[6]["elements"][0]["text"] == "and 3 more nodes"
    button = blocks[7]["elements"][0]
    assert button["url"] == "https://dockyard.example.com/runs/42" and button["text"]["text"] == "View run"


def test_slack_escapes_mrkdwn_and_keeps_code_blocks_closed() -> None:
    evil = "<!channel> <https://evil.example|click> & ```\n*bold* <@U123>"
    alert = run_alert(text=evil, items=(AlertItem("m<x>", "error", evil),), facts=(("Job", "<!here>"),))
    texts = _texts(slack.payload(alert)["blocks"]) + [slack.payload(alert)["text"]]
    joined = "\n".join(texts)
    assert "<!channel>" not in joined and "<!here>" not in joined and "<https://evil" not in joined
    assert "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp;" in joined
    item = slack.payload(alert)["blocks"][4]["text"]["text"]
    assert item.count("```") == 2 and item.endswith("```")


def test_slack_limits_hold_for_huge_alerts() -> None:
    items = tuple(AlertItem(f"model_{i}" * 40, "error", "x" * 5000) for i in range(80))
    facts = tuple((f"fact {i}", "v" * 5000) for i in range(30))
    alert = run_alert(title="t" * 500, text="&" * 5000, items=items, items_total=200, facts=facts)
    body = slack.payload(alert)
    blocks = body["blocks"]
    assert len(blocks) <= 50
    assert len(blocks[0]["text"]["text"]) <= 150
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
            assert not block["text"]["text"].rstrip("…").endswith(("&", "&a", "&am"))
        if "fields" in block:
            assert len(block["fields"]) <= 10 and all(len(f["text"]) <= 2000 for f in block["fields"])
    assert blocks[-2]["type"] == "context" and blocks[-2]["elements"][0]["text"].startswith("and ")
    assert len(body["text"]) <= 3000


def test_slack_drops_a_link_that_is_no_http_url() -> None:
    body = slack.payload(run_alert(url="javascript:alert(1)"))
    assert all(b["type"] != "actions" for b in body["blocks"])


def test_slack_send_posts_to_the_webhook(receiver) -> None:
    result = slack.send(receiver.url("/services/T/B/x"), run_alert(), timeout=5, allow_hosts=LOOPBACK)
    assert result == "200"
    request = receiver.requests[0]
    assert request.path == "/services/T/B/x"
    assert request.headers["content-type"] == "application/json"
    assert request.json == json.loads(json.dumps(slack.payload(run_alert())))


def test_slack_errors_name_the_host_only(receiver) -> None:
    receiver.answer(404, "no_service")
    with pytest.raises(ChannelError) as caught:
        slack.send(receiver.url("/services/T/B/sekrit-token-1"), run_alert(), timeout=5, allow_hosts=LOOPBACK)
    assert caught.value.message == "slack webhook (127.0.0.1) answered 404: no_service"


# -- Teams ---------------------------------------------------------------------------------


def test_teams_payload_golden_fields() -> None:
    body = msteams.payload(run_alert())
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    title = card["body"][0]
    assert title["type"] == "TextBlock" and title["color"] == "Attention" and title["weight"] == "Bolder"
    assert title["text"] == "\U0001f534 nightly failed in prod"
    facts = next(b for b in card["body"] if b["type"] == "FactSet")["facts"]
    assert facts[0] == {"title": "Job", "value": "nightly"}
    texts = [b.get("text") for b in card["body"]]
    assert "orders \u2014 error" in texts
    assert "not\\_null\\_orders\\_id \u2014 fail" in texts
    assert texts[-1] == "and 3 more nodes"
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "View run", "url": "https://dockyard.example.com/runs/42"}
    ]


def test_teams_colour_follows_the_severity_and_resolves() -> None:
    card = msteams.payload(run_alert(severity=Severity.WARNING))["attachments"][0]["content"]
    assert card["body"][0]["color"] == "Warning"
    card = msteams.payload(run_alert(event="resolved", severity=Severity.OK, resolves=True))["attachments"][0]
    assert card["content"]["body"][0]["color"] == "Good"


def test_teams_escapes_markdown() -> None:
    alert = run_alert(items=(AlertItem("m", "error", "[click](https://evil.example) **loud** _x_"),))
    card = msteams.payload(alert)["attachments"][0]["content"]
    message = next(b["text"] for b in card["body"] if b.get("fontType") == "Monospace")
    assert message == "\\[click\\](https://evil.example) \\*\\*loud\\*\\* \\_x\\_"


def test_teams_card_stays_under_the_size_limit() -> None:
    items = tuple(AlertItem(f"model_{i}", "error", "é" * 2000) for i in range(20))
    alert = run_alert(items=items, items_total=200, text="t" * 10_000)
    body = msteams.payload(alert)
    assert msteams.size(body) <= msteams.MAX_BODY_BYTES
    texts = [b.get("text", "") for b in body["attachments"][0]["content"]["body"]]
    shown = sum(1 for t in texts if t.startswith("model\\_"))
    assert 0 < shown < 20
    assert texts[-1] == f"and {200 - shown} more"


def test_teams_send_posts_to_the_workflow(receiver) -> None:
    receiver.answer(202, "")
    assert (
        msteams.send(receiver.url("/workflows/abc/triggers/manual"), run_alert(), timeout=5, allow_hosts=LOOPBACK)
        == "202"
    )
    assert receiver.requests[0].json["attachments"][0]["content"]["type"] == "AdaptiveCard"


def test_terminal_escapes_and_bidi_overrides_never_reach_a_message() -> None:
    from dockyard.channels import email, pagerduty

    dirty = "\x1b[31mDatabase Error\x1b[0m in \u202emodel\x07 orders"
    alert = run_alert(title=dirty, items=(AlertItem(dirty, "error", dirty + "\r\nline 2"),))
    rendered = [
        json.dumps(slack.payload(alert), ensure_ascii=False),
        json.dumps(msteams.payload(alert), ensure_ascii=False),
        json.dumps(pagerduty.payload(alert, "k" * 32), ensure_ascii=False),
        email.message(alert, sender="a@example.org", to=["b@example.org"]).as_string(),
    ]
    for text in rendered:
        assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text and "\\u001b" not in text
    assert "Database Error in model orders" in rendered[0]

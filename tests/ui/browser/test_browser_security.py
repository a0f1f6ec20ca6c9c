"""Security in the browser: a read-only viewer gets no action buttons and its POSTs are
refused; a POST without the session's CSRF token (absent, or stolen from another session) is
refused; markup in a model's description or a node's error message never runs."""

from __future__ import annotations

import pytest
from tests.ui.browser.browsing import dockyard, login_with_password, login_with_token, shoot, wait_run

pytestmark = pytest.mark.slow

POST = """async ([url, fields]) => {
  const r = await fetch(url, {method: 'POST', body: new URLSearchParams(fields), redirect: 'manual',
                              headers: {'Content-Type': 'application/x-www-form-urlencoded'}});
  return r.type === 'opaqueredirect' ? 303 : r.status;
}"""
OWN_CSRF = "() => document.querySelector('form[action=\"/logout\"] input[name=csrf_token]').value"
NO_GLOBAL = "() => typeof window.dockyardXss === 'undefined'"


def run_count(ui_server) -> int:
    with ui_server.app() as app:
        return app.runs.count()


def action_forms(page) -> list[str]:
    return page.locator("main form[method=post]").evaluate_all("fs => fs.map(f => f.getAttribute('action'))")


def assert_read_only(page, ui_server) -> None:
    smoke = ui_server.job_ids["API smoke"]
    for path in ("/", f"/runs/{ui_server.prod_run}", f"/jobs/{smoke}", "/runs"):
        page.goto(path)
        assert page.url.endswith(path), f"{path}: {page.url}"
        assert action_forms(page) == [], f"{path} offers a read-only viewer actions"
    before = run_count(ui_server)
    csrf = page.evaluate(OWN_CSRF)
    assert page.evaluate(POST, [f"/jobs/{smoke}/trigger", {"csrf_token": csrf}]) == 403
    assert page.evaluate(POST, [f"/runs/{ui_server.prod_run}/rerun", {"csrf_token": csrf}]) == 403
    assert run_count(ui_server) == before


def test_read_token_viewer_has_no_buttons_and_its_posts_are_refused(page, ui_server, watch):
    login_with_token(page, ui_server.read_token)
    assert_read_only(page, ui_server)
    assert watch.nothing_ran(), watch


def test_read_user_viewer_has_no_buttons_and_its_posts_are_refused(page, ui_server, read_user, watch):
    login_with_password(page, *read_user)
    assert "(read)" in page.locator("header .who").inner_text()
    assert_read_only(page, ui_server)
    shoot(page, "runs-read-only")
    assert watch.nothing_ran(), watch


def test_a_post_without_the_session_csrf_token_is_refused(browser, admin_page, ui_server):
    page = admin_page
    smoke = ui_server.job_ids["API smoke"]
    page.goto(f"/jobs/{smoke}")
    own = page.evaluate(OWN_CSRF)
    other = browser.new_context(base_url=ui_server.url)  # another session: its token is "stolen"
    try:
        thief = other.new_page()
        login_with_token(thief, ui_server.read_token)
        stolen = thief.evaluate(OWN_CSRF)
    finally:
        other.close()
    assert stolen != own
    before = run_count(ui_server)
    url = f"/jobs/{smoke}/trigger"
    assert page.evaluate(POST, [url, {}]) == 403
    assert page.evaluate(POST, [url, {"csrf_token": ""}]) == 403
    assert page.evaluate(POST, [url, {"csrf_token": stolen}]) == 403
    assert page.evaluate(POST, [url, {"csrf_token": own[:-1] + ("A" if own[-1] != "A" else "B")}]) == 403
    assert run_count(ui_server) == before
    # the same request with the session's own token does trigger (the refusals were the token's)
    assert page.evaluate(POST, [url, {"csrf_token": own, "cause": "csrf control"}]) == 303
    with ui_server.app() as app:
        newest = app.runs.list(limit=1)[0]
    assert newest.cause == "csrf control" and run_count(ui_server) == before + 1
    wait_run(ui_server, newest.id)


@pytest.fixture(scope="module")
def xss_run(ui_server):
    """A foreground run of "UI xss": its model fails with markup in dbt's error message."""
    proc = dockyard(ui_server.env, ui_server.shop, "run", "UI xss", "--quiet", "--json")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    with ui_server.app() as app:
        return app.runs.list(job="UI xss", limit=1)[0].id


def test_markup_in_an_error_message_is_shown_as_text(admin_page, ui_server, xss_run, watch):
    page = admin_page
    page.goto(f"/runs/{xss_run}")
    message = page.locator(".failed-node .error-message").first
    assert "<script>alert('message')</script>" in message.inner_text()
    assert page.locator("main img, main script:not([type='application/json'])").count() == 0
    page.goto(f"/runs?job={ui_server.job_ids['UI xss']}")
    page.goto("/models/dev/model.shop.ui_xss")
    assert watch.nothing_ran(), watch
    assert page.evaluate(NO_GLOBAL)


def test_a_description_with_script_does_not_run_on_our_pages(admin_page, ui_server, watch):
    page = admin_page
    for path in ("/lineage?env=prod&select=stg_customers", "/models/prod/model.shop.stg_customers"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate(NO_GLOBAL), path
    page.goto("/lineage?env=prod")
    page.wait_for_function("() => window.dockyardReady === true")
    assert page.evaluate(NO_GLOBAL)
    assert watch.clean(), watch


def test_a_description_with_script_does_not_run_in_the_hosted_docs(admin_page, ui_server, watch):
    page = admin_page
    response = page.goto("/docs/prod/")
    assert response.status == 200
    policy = dict(
        (d.split(" ", 1) + [""])[:2]
        for d in (x.strip() for x in response.headers["content-security-policy"].split(";"))
        if d
    )
    assert "sandbox" in policy and "allow-same-origin" not in policy["sandbox"], policy
    connect = policy.get("connect-src", policy.get("default-src", ""))
    assert set(connect.split()) <= {"'self'", "'none'"}, policy
    page.goto("/docs/prod/#!/model/model.shop.stg_customers")
    # dbt's docs render the description (its markup shown or dropped by their sanitiser)
    page.wait_for_function("() => document.body && /Customers/.test(document.body.innerText)", timeout=30_000)
    page.wait_for_timeout(1000)  # give an injected handler its chance
    for frame in page.frames:
        assert frame.evaluate(NO_GLOBAL), frame.url
    shoot(page, "docs")
    assert watch.dialogs == [], watch

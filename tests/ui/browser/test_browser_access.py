"""Usable on a phone and with a keyboard: at 390 x 844 the dashboard and the run page do not
scroll sideways; Tab reaches a table's sort buttons and Enter sorts."""

from __future__ import annotations

import pytest
from tests.ui.browser.browsing import login_with_token, shoot

pytestmark = pytest.mark.slow

PHONE = {"width": 390, "height": 844}
OVERFLOW = """() => {
  const doc = document.documentElement;
  const clipped = e => { for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
    if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(a).overflowX)) return true; } return false; };
  const wide = [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.right > doc.clientWidth + 1 && !clipped(e);
  }).slice(0, 5).map(e => e.tagName + '.' + e.getAttribute('class') + ' ' + e.getBoundingClientRect().right);
  return {scroll: doc.scrollWidth, client: doc.clientWidth, wide};
}"""


@pytest.mark.parametrize("where", ["dashboard", "run"])
def test_phone_viewport_has_no_horizontal_overflow(browser, ui_server, where):
    context = browser.new_context(base_url=ui_server.url, viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        login_with_token(page, ui_server.admin_token)
        page.goto("/" if where == "dashboard" else f"/runs/{ui_server.prod_run}")
        page.wait_for_load_state("networkidle")
        found = page.evaluate(OVERFLOW)
        shoot(page, f"{where}-phone")
        assert found["scroll"] <= found["client"], found
        assert not found["wide"], found
    finally:
        context.close()


def test_tab_reaches_the_sort_buttons_and_enter_sorts(admin_page, ui_server, watch):
    page = admin_page
    page.goto(f"/runs/{ui_server.prod_run}")
    page.locator("table#nodes thead a.sort").first.wait_for()
    page.locator("body").focus()
    reached = None
    for _ in range(120):
        page.keyboard.press("Tab")
        reached = page.evaluate(
            "() => { const a = document.activeElement;"
            " return a && a.matches('table thead a.sort, table.sortable thead button')"
            " ? a.closest('table').id + ':' + a.textContent : null; }"
        )
        if reached and reached.startswith("nodes:"):
            break
    assert reached and reached.startswith("nodes:"), f"Tab never reached the nodes table's sort buttons ({reached})"
    # move to the "Time" column's button with Tab, then sort with Enter
    for _ in range(10):
        if page.evaluate("document.activeElement.textContent.trim()") == "Time":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Time"
    cells = "() => [...document.querySelectorAll('#nodes tbody tr td:nth-child(6)')].map(td => Number(td.dataset.sort))"
    # the table is sorted on the server (it is paged): Enter on the link swaps the sorted
    # table in, focus stays on the link, Enter again reverses
    page.keyboard.press("Enter")
    th = page.locator("table#nodes thead th[aria-sort]", has_text="Time")
    th.wait_for()
    first = th.get_attribute("aria-sort")
    values = page.evaluate(cells)
    assert first in ("ascending", "descending")
    assert values == sorted(values, reverse=first == "descending")
    assert page.evaluate("document.activeElement.textContent.trim()").startswith("Time")
    page.keyboard.press("Enter")
    other = "ascending" if first == "descending" else "descending"
    page.locator(f"table#nodes thead th[aria-sort={other}]", has_text="Time").wait_for()
    values = page.evaluate(cells)
    assert values == sorted(values, reverse=first != "descending")
    assert watch.clean(), watch

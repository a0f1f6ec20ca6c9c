import pytest
from tests.ui.browser.browsing import shoot

pytestmark = pytest.mark.slow


def test_dashboard(admin_page, watch):
    shoot(admin_page, "dashboard")
    assert watch.clean(), watch

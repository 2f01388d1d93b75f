"""The example site in a real browser: headless Chromium (Debian's package, driven by
Selenium through the system chromedriver) against pytest-django's live server on real nodes.

Skipped, with a notice saying why, only when chromium or chromedriver is not installed (as
root, `make test` installs them with apt-get first). Saves the dashboard's screenshot; with
RB_DASHBOARD_SCREENSHOT=1 as docs/dashboard.png (the README's picture).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from example_project.events import series
from example_project.events.management.commands.simulate_traffic import random_event
from example_project.events.models import Project

from .example_support import example_site_fixture  # noqa: F401  (the example_site fixture)

#: Set to refresh the committed screenshot; otherwise it goes to the test's tmp_path, so a
#: test run leaves no changed file in the worktree.
SCREENSHOT_ENV = "RB_DASHBOARD_SCREENSHOT"
COMMITTED_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "dashboard.png"
BROWSER_MISSING = (
    "NOTICE: chromium and chromedriver are not installed; skipping the browser test "
    "(as root, `make test` installs them: apt-get install chromium chromium-driver)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip(BROWSER_MISSING)
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1100,1500",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver_path))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def history(project_ids: list[int], minutes: int = 60) -> None:
    """An hour of past events, so the charts have a shape (written through the site's own
    counting function, with past timestamps)."""
    rng = random.Random(7)
    now = time.time()
    for pid in project_ids:
        for minute in range(minutes):
            for _ in range(rng.randrange(1, 4 + pid % 3)):
                when = now - minute * 60 - rng.random() * 60
                series.record_event(pid, random_event(rng), timestamp=when)


def svg_sizes(driver: Any, selector: str) -> list[tuple[float, float]]:
    rects = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; });",
        selector,
    )
    return [(float(w), float(h)) for w, h in rects]


def figure(driver: Any, name: str) -> int:
    return int(driver.find_element("id", name).text)


def post_events(driver: Any, url: str, count: int) -> list[int]:
    """POST ``count`` events from the page with fetch(); the statuses, in order."""
    return list(
        driver.execute_async_script(
            """
            const [url, count, done] = arguments;
            const statuses = [];
            (async () => {
              for (let i = 0; i < count; i++) {
                const body = JSON.stringify({message: "Clicked in the browser", level: "warning",
                                             release: "2.0", user: "browser-" + i});
                const r = await fetch(url, {method: "POST", body,
                                             headers: {"Content-Type": "application/json"}});
                statuses.push(r.status);
              }
              done(statuses);
            })();
            """,
            url,
            count,
        )
    )


def test_dashboards_draw_and_counts_move(
    browser: Any,
    live_server: Any,
    transactional_db: Any,
    example_site: Any,
    rb_nodes: list[Any],
    tmp_path: Path,
) -> None:
    ids = list(Project.objects.values_list("pk", flat=True))
    history(ids)

    browser.get(f"{live_server.url}/")
    sparklines = svg_sizes(browser, "svg.sparkline")
    assert len(sparklines) == len(ids)
    assert all(w > 0 and h > 0 for w, h in sparklines)
    vertices = browser.execute_script(
        "return [...document.querySelectorAll('svg.sparkline polyline')]"
        ".map(p => p.points.numberOfItems);"
    )
    assert vertices == [series.HOUR_POINTS] * len(ids)

    pid = ids[0]
    browser.get(f"{live_server.url}/projects/{pid}/")
    assert all(w > 0 and h > 0 for w, h in svg_sizes(browser, "svg.chart"))
    assert len(svg_sizes(browser, "svg.chart")) == 3
    assert len(svg_sizes(browser, "#hour circle.point")) == series.HOUR_POINTS
    bars = svg_sizes(browser, "#day rect.bar")
    assert len(bars) == series.DAY_POINTS and all(w > 0 and h > 0 for w, h in bars)
    assert len(svg_sizes(browser, "#levels rect.bar")) == len(series.LEVEL_NAMES)
    accepted, users = figure(browser, "accepted"), figure(browser, "users")
    assert accepted > 0

    statuses = post_events(browser, f"/api/{pid}/events/", 5)
    assert statuses == [202] * 5
    browser.refresh()
    assert figure(browser, "accepted") == accepted + 5
    assert figure(browser, "users") > users
    assert "Clicked in the browser" in browser.find_element("id", "messages").text

    browser.get(f"{live_server.url}/cluster/")
    states = [cell.text for cell in browser.find_elements("css selector", "#nodes td.status")]
    assert states == ["up"] * len(rb_nodes)

    browser.get(f"{live_server.url}/projects/{pid}/")
    shot = COMMITTED_SCREENSHOT if os.environ.get(SCREENSHOT_ENV) else tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

"""Browser fixtures: a real daphne server (forked, on an ephemeral port) over the test database,
the mock HWA in this process on its own port, and headless Debian Chromium driven by Playwright.

Never downloads a browser: Playwright launches /usr/bin/chromium (installed by .ci/system-packages).
Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def pytest_collection_modifyitems(items: list[Any]) -> None:
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


def _application() -> Any:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from resync_site.asgi import application

    return ASGIStaticFilesHandler(application)


def _fresh_after_fork() -> None:
    """Runs in the forked server before it serves. Earlier tests in this process may have started
    asgiref's single sync thread and channel layers on their own event loops: a fork copies those
    objects but not their threads or loops, so the server would queue work nobody runs."""
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import SyncToAsync
    from channels.layers import channel_layers

    SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)
    channel_layers.backends.clear()


@pytest.fixture
def hwa(transactional_db: Any, settings: Any) -> Iterator[Any]:
    """The mock HWA (demo night, clock frozen) polled into the snapshot, before the server forks."""
    from jobs.poll import plan_poll
    from jobs.tws.mock.auth import MOCK_PASSWORD, MOCK_USERNAME
    from jobs.tws.mock.server import MockHwaServer

    server = MockHwaServer(scenario="demo", port=0, speed=0.0).start()
    settings.TWS_URL = server.url
    settings.TWS_USERNAME = MOCK_USERNAME
    settings.TWS_PASSWORD = MOCK_PASSWORD
    settings.TWS_API_KEY = ""
    settings.TWS_TIMEOUT_SECONDS = 2.0
    from browser.helpers import off_loop

    assert off_loop(plan_poll).ok
    yield server
    server.stop()


@pytest.fixture
def ui_server(hwa: Any, transactional_db: Any) -> Iterator[str]:
    from channels.layers import channel_layers
    from daphne.testing import DaphneProcess

    connections.close_all()  # the forked server opens its own connections to the test database
    # A channel layer built by earlier tests holds locks bound to their (closed) event loops.
    channel_layers.backends.clear()
    process = DaphneProcess("127.0.0.1", _application, setup=_fresh_after_fork)
    process.start()
    if not process.ready.wait(timeout=30):
        process.terminate()
        raise RuntimeError("daphne did not start")
    yield f"http://127.0.0.1:{process.port.value}"
    process.terminate()
    process.join(timeout=10)


@pytest.fixture(scope="module")
def browser(django_db_setup: Any) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: run `bash .ci/system-packages`")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, which makes Django refuse
    # ORM calls; the tests' own ORM calls are plain synchronous ones, so lift the check while the
    # browser is up (module scope: it never leaks into other test modules).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any, ui_server: str) -> Iterator[Any]:
    context = browser.new_context(base_url=ui_server, locale="en-US", viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Failed requests are caught from responses (a favicon 404 is not the page's fault).
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "Failed to load resource" not in msg.text else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    page.js_errors = errors
    yield page
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def sign_in() -> Any:
    """Signs `user` in through the real sign-in form."""
    return _sign_in


def _sign_in(page: Any, user: Any, password: str) -> None:
    page.goto("/account/signin/")
    page.fill("input[name=username]", user.get_username())
    page.fill("input[name=password]", password)
    page.click("form button[type=submit].primary")
    page.wait_for_url(lambda url: "/account/signin/" not in url)

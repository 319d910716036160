"""The console as the tests use it: a logged-in client in process, and, for the browser tests, a real
``courseinfra serve`` with a headless chromium whose every page is kept as a screenshot.

The browser fixtures (``console_server``, ``browser``, ``artifacts``) are a plugin of the suite
(``pytest_plugins`` in the conftest); Playwright is imported by them only, when a browser test runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from courseinfra.bootstrap import App
from courseinfra.entrypoints.api import create_app
from courseinfra.services import access
from courseinfra.settings import Settings
from tests.support.cli import COURSEINFRA, Cli, answers_health, free_port
from tests.support.servers import REPO

#: Debian's chromium: Playwright launches it (its own browser download cannot work on a closed network).
CHROMIUM = Path("/usr/bin/chromium")
#: Without the networking flags chromium waits on the closed network at start-up.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Where the screenshots land: ``$COURSEINFRA_TEST_ARTIFACTS``, else ``.artifacts/console/`` in the
#: repository; a folder per test below it.
ARTIFACTS = Path(os.environ.get("COURSEINFRA_TEST_ARTIFACTS") or REPO / ".artifacts" / "console")

CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_in(html: str) -> str:
    """The CSRF token of a page's first form."""
    found = CSRF.search(html)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)


def login(client: TestClient, secret: str) -> Any:
    """Log ``client`` in to the console with ``secret`` through the login form; the answer."""
    form = client.get("/console/login")
    assert form.status_code == 200, form.text
    return client.post(
        "/console/login",
        data={"csrf_token": csrf_in(form.text), "token": secret, "next": "/console/"},
        follow_redirects=False,
    )


def new_secret(app: App, role: str, *, pii: bool = False, scope: str | None = None) -> str:
    _, secret = access.create_token(f"console {role}", role, app.uow_factory(), pii=pii, scope=scope)
    return secret


def console_client(
    app: App, role: str = "operator", *, pii: bool = True, scope: str | None = None
) -> TestClient:
    """A client of the console serving ``app``, logged in with a new token of ``role``; it does not
    follow redirects (a test reads them)."""
    client = TestClient(create_app(app), follow_redirects=False)
    answer = login(client, new_secret(app, role, pii=pii, scope=scope))
    assert answer.status_code == 303, answer.text
    return client


def message_of(html: str) -> str:
    """The message an error page (or a form's error) shows."""
    found = re.search(r'role="alert">([^<]*)<', html)
    assert found, html
    return found.group(1)


# The browser harness.


@dataclass
class Served:
    """A ``courseinfra serve`` process: its address and the CLI on its database."""

    base: str
    cli: Cli

    def token(self, role: str, *options: str) -> str:
        """The secret of a new token of ``role`` (``tokens create``)."""
        done = self.cli("tokens", "create", "--name", f"browser {role}", "--role", role, *options)
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout)["secret"])


@pytest.fixture
def console_server(settings: Settings, tmp_path: Path) -> Iterator[Served]:
    """``courseinfra serve`` on a free loopback port, on the test's fresh database, until the test ends."""
    cli = Cli(settings)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [*COURSEINFRA, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=cli.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            assert answers_health(base, server), log.read_text()
            yield Served(base, cli)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright: one browser for the session. Fails (never
    skips) where it is missing: ``scripts/ensure-chromium.sh`` installs it (``make test`` runs it)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """The test's screenshot folder (emptied first): ``ARTIFACTS/<test name>/``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder = ARTIFACTS / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


@dataclass
class ConsoleBrowser:
    """A browser tab on the console: every page it lands on is screenshot into ``folder`` (numbered,
    named after the page's path), so that a run leaves a picture of each page visited."""

    page: Any
    base: str
    folder: Path
    shots: list[Path] = field(default_factory=list)

    def open(self, path: str) -> Any:
        """Go to a console path; the answer."""
        answer = self.page.goto(self.base + path)
        self.shoot()
        return answer

    def click(self, selector: str) -> None:
        """Click a link or button that loads a page, wait for it, and screenshot it."""
        with self.page.expect_navigation():
            self.page.click(selector)
        self.shoot()

    def shoot(self) -> Path:
        path = self.page.url.removeprefix(self.base).split("?")[0].strip("/") or "root"
        shot = self.folder / f"{len(self.shots) + 1:02d}-{re.sub(r'[^A-Za-z0-9]+', '-', path)}.png"
        self.page.screenshot(path=str(shot), full_page=True)
        self.shots.append(shot)
        return shot

    def log_in(self, secret: str) -> None:
        self.open("/console/login")
        self.page.fill("#token", secret)
        self.click("button[type=submit]")

    def text(self, selector: str) -> str:
        return str(self.page.inner_text(selector))


@pytest.fixture
def browser(chromium: Any, console_server: Served, artifacts: Path) -> Iterator[ConsoleBrowser]:
    """A fresh browser context (no cookies) on the served console, at a laptop's screen size."""
    context = chromium.new_context(viewport={"width": 1366, "height": 768})
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)  # a missing element fails the test in seconds, not minutes
        yield ConsoleBrowser(page, console_server.base, artifacts)
    finally:
        context.close()

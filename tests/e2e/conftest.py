"""Real-browser tests: Debian's Chromium driven by Playwright against the app on a real server.

Chromium is installed with apt-get when it is missing and we run as root (never `playwright
install`). The app runs in a thread behind werkzeug's threaded server on a free port; screenshots
go to test-artifacts/e2e/ (gitignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
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


CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium, plus a CJK font so screenshots show Chinese rather than boxes."""
    missing = [
        pkg
        for pkg, path in (("chromium", Path(CHROMIUM)), ("fonts-wqy-zenhei", CJK_FONT))
        if not path.exists()
    ]
    if missing:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            if "chromium" in missing:
                pytest.skip(
                    "Chromium is missing and cannot be installed here (needs root and apt-get)"
                )
            return CHROMIUM
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, timeout=900)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", *missing], check=True, env=env, timeout=1800
        )
    return CHROMIUM


@pytest.fixture
def e2e_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str, redis_url: str
) -> Iterator[Any]:
    """The app's environment on SQLite (the default deployment) and the test Redis."""
    from intake.config import get_settings

    for key, value in {
        "DATABASE_URL": sqlite_url,
        "REDIS_URL": redis_url,
        "HOTLINE_DATA_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "e2e-secret-key",
        "PUBLIC_BASE_URL": "http://127.0.0.1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HOTLINE_CONFIG", raising=False)
    get_settings.cache_clear()
    settings = get_settings()
    from intake.db import session_factory
    from intake.demo import seed_demo

    sessions = session_factory(settings.database_url)
    with sessions() as session:
        seed_demo(session, settings.config)
        session.commit()
    yield settings
    get_settings.cache_clear()


class LiveServer:
    def __init__(self, app: Any) -> None:
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(e2e_env: Any) -> Iterator[LiveServer]:
    from web import create_app

    server = LiveServer(create_app({"CONSOLE_POLL_SECONDS": 1}, settings=e2e_env))
    yield server
    server.stop()


@pytest.fixture
def browser_context(chromium_path: str, tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
            locale="zh-TW",
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any) -> Any:
    return browser_context.pages[0] if browser_context.pages else browser_context.new_page()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

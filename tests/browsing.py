"""What the browser tests share: Debian's Chromium under Playwright, a
navigating click, screenshots kept as test artefacts, and the accessibility
check (axe-core, from the axe-playwright-python package: nothing downloads)."""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots of every page the tests visit (gitignored; CI may keep them).
ARTIFACTS = Path(
    os.environ.get("CARELOOP_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)
PHONE = {"width": 390, "height": 844}


# The admin stand-in has a public origin (https://admin.shopify.com, routed to
# loopback) and frames the app on loopback: Chromium's Local Network Access
# checks would refuse that, as they would a real admin framing a developer's
# laptop. The app in production is on a public address too.
EMBEDDING_ARGS = [
    "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,"
    "PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults"
]


@contextmanager
def chromium(extra_args: list[str] | None = None):
    """A headless Chromium, or a skip (a failure under CI) saying what is missing."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "playwright is not installed (make test installs it)"
    if problem is None and not os.path.exists(CHROMIUM):
        problem = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem + " (required under CI)")
        pytest.skip(problem)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS + (extra_args or [])
        )
        try:
            yield browser
        finally:
            browser.close()


def follow(page, selector: str) -> None:
    """Click a link or a submit button and wait for the page it leads to:
    reading the page before it has loaded sees the old one, or nothing."""
    with page.expect_navigation():
        page.click(selector)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _axe_source() -> str:
    return resources.files("axe_playwright_python").joinpath("axe.min.js").read_text()


def accessibility_violations(frame) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page or frame, one line each.
    The script is evaluated through the DevTools protocol, which the page's
    Content-Security-Policy does not govern."""
    frame.evaluate(_axe_source())
    result = frame.evaluate(
        """() => axe.run(document, {runOnly: {type: 'tag',
             values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"""
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
    ]


def overflowing_tables(frame) -> list[str]:
    """Tables (and the page) wider than the viewport."""
    return frame.evaluate(
        """() => {
          const width = document.documentElement.clientWidth, wide = [];
          if (document.documentElement.scrollWidth > width) wide.push('the page');
          document.querySelectorAll('table').forEach(t => {
            if (t.getBoundingClientRect().right > width + 1) wide.push('table#' + t.id);
          });
          return wide;
        }"""
    )

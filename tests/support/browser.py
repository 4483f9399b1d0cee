"""A real headless Chromium for browser tests, driven by selenium.

``chrome_driver`` is one WebDriver for the whole session: Debian's ``chromium`` and
``chromedriver`` (``scripts/chromium-local install`` puts them in /usr/bin; override
with ``LINELOSS_CHROMIUM`` / ``LINELOSS_CHROMEDRIVER``), headless, with a fresh
profile and a phone-sized screen. If either binary is missing or the browser does
not start, the test fails: browser tests are never skipped.

The phone is emulated (chromedriver's ``mobileEmulation``): a 390x844 CSS-pixel
screen at device pixel ratio 3, touch events, mobile viewport rules. A plain
``--window-size=390,844`` does not work: headless Chromium never makes a window
narrower than 500 px. As on a real phone, a page gets a 390 px wide viewport only
if it declares ``<meta name="viewport" content="width=device-width">``; without it
the page is laid out 980 px wide and scaled down.

Selenium Manager is never used: the driver path is given to ``Service``, which makes
selenium skip it, and ``SE_OFFLINE=true`` keeps it off the network should anything
call it anyway (this machine has no internet).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

DEFAULT_CHROMIUM = "/usr/bin/chromium"
DEFAULT_CHROMEDRIVER = "/usr/bin/chromedriver"
# An iPhone 12-15 class screen, in CSS pixels.
PHONE_METRICS = {"width": 390, "height": 844, "pixelRatio": 3.0, "mobile": True, "touch": True}

# --no-sandbox: Chromium refuses to start as root with its sandbox on (CI runs as
# root). The rest keep it from calling Google services, which cannot be reached
# here and would only slow it down or log errors.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_paths() -> tuple[str, str]:
    return (
        os.environ.get("LINELOSS_CHROMIUM", DEFAULT_CHROMIUM),
        os.environ.get("LINELOSS_CHROMEDRIVER", DEFAULT_CHROMEDRIVER),
    )


def chrome_options(
    binary: str, user_data_dir: Path, device_metrics: dict[str, object] | None = None
) -> webdriver.ChromeOptions:
    """Headless options; ``device_metrics`` None means the phone, {} no emulation."""
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    metrics = PHONE_METRICS if device_metrics is None else device_metrics
    if metrics:
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    return options


@pytest.fixture(scope="session")
def chrome_driver() -> Iterator[webdriver.Chrome]:
    os.environ.setdefault("SE_OFFLINE", "true")
    binary, driver_path = chromium_paths()
    for what, path, var in (
        ("chromium", binary, "LINELOSS_CHROMIUM"),
        ("chromedriver", driver_path, "LINELOSS_CHROMEDRIVER"),
    ):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            pytest.fail(
                f"{what} not found at {path} ({var}). Browser tests need Debian's chromium "
                "and chromium-driver: run them through scripts/test, which installs them "
                "with scripts/chromium-local install.",
                pytrace=False,
            )
    profile = Path(tempfile.mkdtemp(prefix="lineloss-chromium-"))
    try:
        try:
            driver = webdriver.Chrome(
                service=Service(executable_path=driver_path),
                options=chrome_options(binary, profile),
            )
        except Exception as exc:
            pytest.fail(
                f"headless chromium ({binary}, driver {driver_path}) did not start: {exc}",
                pytrace=False,
            )
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)

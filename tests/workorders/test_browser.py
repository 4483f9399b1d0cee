"""The inspectors' phone page in a real headless Chromium, against a real server.

A replayed synthetic grid (thefts that lower the recorded consumption) is ingested
into the work-order service; a supervisor hands two orders to the inspector li and
one to a colleague; the app is served by uvicorn on a free loopback port and the
page is driven through a 390x844 phone screen (tests/support/browser.py): li's
ranked list, an order's detail with the real evidence plot, starting the visit,
closing it with an outcome, and the sign-in form when the token is refused.

The phone is set to China Standard Time, as an inspector's would be: due dates are
shown in the phone's time zone.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest
import uvicorn
from browser import chrome_driver
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait
from workorder_factories import THEFT_GRID

from lineloss.config import EngineConfig
from loaders.synthetic import generate_grid, write_grid
from streams.replay import read_suspicions, run_replay
from workorders.api import TokenBook, create_app
from workorders.model import Action, OrderState, Outcome, Role, WorkOrder
from workorders.packs import EvidenceProvider
from workorders.policy import Directory
from workorders.service import Principal, WorkOrderService
from workorders.store import WorkOrderStore

__all__ = ["chrome_driver"]

pytestmark = pytest.mark.integration

GRID = THEFT_GRID
PHONE_TZ = "Asia/Shanghai"
PHONE_WIDTH = 390  # CSS px, browser.PHONE_METRICS
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WAIT_S = 15

LI, WANG, CHEN, ZHANG = "t-li", "t-wang", "t-chen", "t-zhang"
TOKENS = TokenBook.from_dict(
    {
        "tokens": {
            LI: {"name": "li", "role": "inspector", "team": "north"},
            WANG: {"name": "wang", "role": "inspector", "team": "north"},
            CHEN: {"name": "chen", "role": "inspector", "team": "south"},
            ZHANG: {"name": "zhang", "role": "supervisor", "team": "north"},
        }
    }
)
LI_WHO = Principal("li", Role.INSPECTOR, "north")
SUPERVISOR = Principal("zhang", Role.SUPERVISOR, "north")

T = TypeVar("T")


@dataclass(frozen=True)
class Replayed:
    out: Path
    suspicions_csv: Path
    team_by_area: dict[str, str]
    end_s: int  # end of the data [s since epoch]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    root = tmp_path_factory.mktemp("browser")
    write_grid(generate_grid(GRID), root / "data", fmt="csv")
    run_replay(root / "data", root / "out", EngineConfig(tz=GRID.tz))
    topology = pd.read_csv(root / "data" / "topology.csv", keep_default_na=False)
    north, south = sorted(a for a in topology["area_id"].unique() if a)
    end_s = int(pd.Timestamp(GRID.start, tz=GRID.tz).timestamp()) + GRID.days * 86400
    return Replayed(
        out=root / "out",
        suspicions_csv=root / "out" / "suspicions.csv",
        team_by_area={north: "north", south: "south"},
        end_s=end_s,
    )


@dataclass(frozen=True)
class Site:
    base: str
    service: WorkOrderService
    li_orders: list[str]  # li's order ids, the more valuable first
    others: list[WorkOrder]  # every other order: the colleague's, unassigned, other team's

    def url(self, path: str) -> str:
        return self.base + path

    def order(self, order_id: str) -> WorkOrder:
        o = self.service.store.get(order_id)
        assert o is not None
        return o


@pytest.fixture
def site(replayed: Replayed, tmp_path: Path) -> Iterator[Site]:
    """A fresh store, li's two orders assigned, the real app served on loopback."""
    store = WorkOrderStore(f"sqlite:///{tmp_path / 'o.db'}")
    service = WorkOrderService(store, directory=Directory(team_by_area=replayed.team_by_area))
    service.ingest(read_suspicions(replayed.suspicions_csv), now_s=replayed.end_s)
    north = [v.order for v in service.plan(SUPERVISOR)]  # ranked, the supervisor's team
    assert len(north) >= 4, "the grid must give the north team at least four orders"
    assert {o.team for o in north} == {"north"}
    # The team's most valuable order goes to wang, the next two to li: li's cards
    # show the team's ranks 2 and 3, and one of li's team's orders stays unassigned.
    assign_at = replayed.end_s + 600
    service.assign(SUPERVISOR, north[0].order_id, "wang", now_s=assign_at)
    for o in north[1:3]:
        service.assign(SUPERVISOR, o.order_id, "li", now_s=assign_at)
    li_orders = [o.order_id for o in north[1:3]]
    others = [o for o in store.find() if o.order_id not in li_orders]
    assert {o.team for o in others} == {"north", "south"}

    app = create_app(
        service,
        TOKENS,
        evidence=EvidenceProvider.for_replay(replayed.out),
        clock=lambda: replayed.end_s + 3600,
        tz=PHONE_TZ,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield Site(f"http://127.0.0.1:{port}", service, li_orders, others)
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT_S)
        sock.close()
        store.close()
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def browser(chrome_driver: webdriver.Chrome) -> Iterator[webdriver.Chrome]:
    """The session's phone, in China Standard Time; left on a blank page."""
    chrome_driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": PHONE_TZ})
    try:
        yield chrome_driver
    finally:
        chrome_driver.get("about:blank")
        chrome_driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})


# ------------------------------------------------------------------ helpers


def wait_for(driver: webdriver.Chrome, what: str, check: Callable[[], T]) -> T:
    """Wait until ``check()`` is truthy and return it; a timeout names ``what``."""
    result: T = WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(
        lambda _: check(), message=f"waited {WAIT_S} s for {what}"
    )
    return result


def by_id(driver: webdriver.Chrome, element_id: str) -> WebElement:
    return driver.find_element(By.ID, element_id)


def cards(driver: webdriver.Chrome) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "#orders .order")


def card_ids(driver: webdriver.Chrome) -> list[str]:
    """The listed order ids, read in one go: the list may be re-rendering."""
    script = "return [...document.querySelectorAll('#orders .order')].map(c => c.dataset.orderId)"
    return list(driver.execute_script(script))


def open_list(driver: webdriver.Chrome, site: Site, token: str, n: int) -> list[WebElement]:
    driver.get(site.url(f"/?token={token}"))
    wait_for(driver, f"{n} order cards", lambda: len(cards(driver)) == n)
    return cards(driver)


def open_detail(driver: webdriver.Chrome, card: WebElement) -> None:
    card.click()
    wait_for(driver, "the order's detail", lambda: by_id(driver, "detail").is_displayed())


def wait_for_plot(driver: webdriver.Chrome) -> dict[str, Any]:
    """Wait until the evidence image has loaded; its natural and rendered sizes."""
    script = (
        "const i = document.getElementById('d-plot');"
        "return i.complete && i.naturalWidth > 0 ? {natural: i.naturalWidth, "
        "width: i.getBoundingClientRect().width, right: i.getBoundingClientRect().right} "
        ": null;"
    )
    size: dict[str, Any] = wait_for(
        driver, "the evidence plot to load", lambda: driver.execute_script(script)
    )
    return size


def in_viewport(driver: webdriver.Chrome, element: WebElement) -> bool:
    script = (
        "const r = arguments[0].getBoundingClientRect();"
        "return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight;"
    )
    return bool(driver.execute_script(script, element))


def png_width(png: bytes) -> int:
    assert png[:8] == PNG_MAGIC and png[12:16] == b"IHDR"
    return int(struct.unpack(">I", png[16:20])[0])


def screenshot(driver: webdriver.Chrome, path: Path) -> None:
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and png_width(data) > 0 and len(data) > 1000


def due_text(o: WorkOrder) -> str:
    """The due date as the phone shows it: date and time in the phone's zone."""
    return datetime.fromtimestamp(o.due_s, ZoneInfo(PHONE_TZ)).strftime("%Y-%m-%d %H:%M")


def api_get(site: Site, path: str, token: str) -> httpx.Response:
    r = httpx.get(site.url(path), headers={"Authorization": f"Bearer {token}"}, timeout=WAIT_S)
    r.raise_for_status()
    return r


# -------------------------------------------------------------------- tests


def test_list_shows_my_orders_ranked(site: Site, browser: webdriver.Chrome, tmp_path: Path) -> None:
    found = open_list(browser, site, LI, 2)
    assert by_id(browser, "who").text == "li · inspector · team north"
    assert browser.execute_script("return window.innerWidth") == PHONE_WIDTH
    # The token does not stay in the address bar (history, screenshots, shoulders).
    assert "token" not in browser.current_url

    plan = api_get(site, "/api/v1/plan?mine=true", LI).json()
    assert [v["order"]["order_id"] for v in plan] == site.li_orders
    mine = [v for v in site.service.plan(LI_WHO) if v.order.assignee == "li"]
    assert [v.order.order_id for v in mine] == site.li_orders
    first, second = (v.order for v in mine)
    assert first.evidence.priority > second.evidence.priority  # the more valuable first

    assert card_ids(browser) == site.li_orders
    for card, visit in zip(found, mine, strict=True):
        text = card.text
        assert visit.order.target_id in text
        assert f"#{visit.rank}" in text
        assert f"due {due_text(visit.order)}" in text
        assert card.rect["x"] >= 0 and card.rect["x"] + card.rect["width"] <= PHONE_WIDTH
    assert [v.rank for v in mine] == [2, 3]  # team ranks: wang has the team's first

    page = by_id(browser, "list").text
    for other in site.others:  # wang's, the unassigned one, the south team's
        assert other.target_id not in page
    assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE_WIDTH
    screenshot(browser, tmp_path / "list.png")


def test_detail_shows_the_evidence_plot_on_the_phone(
    site: Site, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    found = open_list(browser, site, LI, 2)
    order = site.order(site.li_orders[0])
    open_detail(browser, found[0])

    assert order.target_id in by_id(browser, "d-target").text
    assert f"due {due_text(order)}" in by_id(browser, "d-numbers").text
    assert by_id(browser, "d-reason").text == order.evidence.reason
    scores = by_id(browser, "d-scores").text
    assert order.evidence.detector_scores
    for detector, score in order.evidence.detector_scores:
        assert f"{detector} {score:.2f}" in scores

    size = wait_for_plot(browser)
    png = api_get(site, f"/api/v1/orders/{order.order_id}/evidence.png", LI).content
    assert size["natural"] == png_width(png)  # the real pack's plot, not a placeholder
    assert 0 < size["width"] <= PHONE_WIDTH and size["right"] <= PHONE_WIDTH
    assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE_WIDTH
    assert by_id(browser, "start").is_displayed() and by_id(browser, "close-form").is_displayed()
    screenshot(browser, tmp_path / "detail.png")
    browser.execute_script("document.getElementById('close-form').scrollIntoView()")
    screenshot(browser, tmp_path / "detail-form.png")


def test_start_the_visit_then_close_with_an_outcome(
    site: Site, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    order_id, remaining = site.li_orders
    found = open_list(browser, site, LI, 2)
    open_detail(browser, found[0])
    assert site.order(order_id).state == OrderState.ASSIGNED

    by_id(browser, "start").click()
    wait_for(
        browser, "the start button to hide", lambda: not by_id(browser, "start").is_displayed()
    )
    assert site.order(order_id).state == OrderState.IN_PROGRESS
    assert by_id(browser, "close-form").is_displayed()

    # No outcome chosen: an error on the page, nothing closed.
    by_id(browser, "close").click()
    message = by_id(browser, "message")
    wait_for(
        browser, "the missing-outcome error", lambda: message.get_attribute("class") == "error"
    )
    assert message.is_displayed() and "outcome" in message.text.lower()
    assert in_viewport(browser, message)  # seen at the bottom of the page, where one taps
    screenshot(browser, tmp_path / "close-error.png")
    assert by_id(browser, "detail").is_displayed()
    assert site.order(order_id).state == OrderState.IN_PROGRESS

    Select(by_id(browser, "outcome")).select_by_visible_text("Theft confirmed")
    by_id(browser, "recovered").send_keys("84.5")
    by_id(browser, "notes").send_keys("bypass cable behind the meter box, removed")
    by_id(browser, "close").click()
    wait_for(
        browser,
        "the list with the one remaining order",
        lambda: by_id(browser, "list").is_displayed() and card_ids(browser) == [remaining],
    )
    assert "closed" in by_id(browser, "message").text

    closed = site.order(order_id)
    assert closed.state == OrderState.CLOSED
    assert closed.outcome == Outcome.THEFT_CONFIRMED
    assert closed.recovered_kwh == 84.5
    assert closed.notes.endswith("li: bypass cable behind the meter box, removed")
    last = site.service.store.audit(order_id)[-1]
    assert (last.action, last.actor, last.from_state, last.to_state) == (
        Action.CLOSE,
        "li",
        OrderState.IN_PROGRESS,
        OrderState.CLOSED,
    )
    assert last.detail_dict()["outcome"] == "theft_confirmed"
    assert last.detail_dict()["recovered_kwh"] == 84.5
    assert site.order(remaining).state == OrderState.ASSIGNED


def test_a_refused_token_asks_to_sign_in(
    site: Site, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.get(site.url("/?token=not-a-token"))
    message = by_id(browser, "message")
    wait_for(
        browser,
        "the sign-in form and why",
        lambda: (
            by_id(browser, "login").is_displayed() and message.get_attribute("class") == "error"
        ),
    )
    assert not by_id(browser, "list").is_displayed() and cards(browser) == []
    assert by_id(browser, "who").text == "not signed in"
    assert "sign in" in message.text.lower()
    assert "token" not in browser.current_url
    screenshot(browser, tmp_path / "sign-in.png")

    by_id(browser, "token").send_keys(LI)
    by_id(browser, "sign-in").click()
    wait_for(browser, "li's orders", lambda: card_ids(browser) == site.li_orders)
    assert by_id(browser, "who").text == "li · inspector · team north"
    assert not by_id(browser, "login").is_displayed()
    assert not message.is_displayed()  # the old error is gone

    # The phone remembers the sign-in: the bare page opens on li's list.
    browser.get(site.url("/"))
    wait_for(browser, "li's orders again", lambda: card_ids(browser) == site.li_orders)

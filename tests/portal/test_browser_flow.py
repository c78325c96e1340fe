"""Acceptance in headless Chromium (Debian's `chromium` + `chromium-driver`, driven by Selenium; `make browser-deps`):
sign up → add an account → copy the key from the page → the reference EA connects with it → the status turns online
without a reload → the balance chart shows the EA's data → a signal shows as executed after the EA fills it.

The server is daphne in a subprocess on the test database (as tests/gateway/test_simulated_ea.py does); the EA runs in
a thread with its own event loop. Screenshots of each page go to artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from accounts.models import MT5Account
from eaclient.simulated import SimulatedEA, SimulatorConfig
from signals.delivery import signal_publish_on_commit
from signals.models import TradingSignal
from suho.routers import operator_path
from suho.tenancy import tenant_context
from tests.portal.chromium import CHROMIUM, By, WebDriverWait, chromium
from tests.portal.conftest import PASSWORD
from tests.servers import daphne_serving
from trading.services import balance_rollup_refresh

SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
WAIT_S = 20


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    """daphne on the test database; yields the base URL (localhost: Chromium sends Secure cookies there)."""
    test_database = connections["default"].settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": urlsplit(settings.DATABASE_URL)._replace(path=f"/{test_database}").geturl(),
        "REDIS_URL": settings.REDIS_URL, "NATS_URL": settings.NATS_URL,
        "DJANGO_SETTINGS_MODULE": "suho.test_settings", "SUHO_TESTING": "1",
    }  # fmt: skip
    with daphne_serving(env, tmp_path_factory.mktemp("daphne") / "daphne.log") as port:
        yield f"http://localhost:{port}"


@pytest.fixture
def browser():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium(window_size="1280,1000", page_load_timeout_s=WAIT_S) as driver:
        yield driver


class EAThread:
    """The reference EA in its own thread and event loop (the browser test itself is synchronous)."""

    def __init__(self, config: SimulatorConfig):
        self.ea = SimulatedEA(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.ea.run(),), daemon=True)

    def __enter__(self) -> SimulatedEA:
        self.thread.start()
        return self.ea

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.ea.stop)
        self.thread.join(timeout=15)


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def wait_for(driver, condition, what: str):
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(condition, message=f"waiting for {what}")


def fill(driver, values: dict) -> None:
    for name, value in values.items():
        field = driver.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)


def eventually(check, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
    return result


def _balances(account_id) -> int:
    with connections["operator"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM mt5_account_balance_history WHERE account_id = %s", [account_id])
        return cursor.fetchone()[0]


def _signal_for(account: MT5Account, ask: float) -> UUID:
    with tenant_context(account.tenant_id):
        now = timezone.now()
        signal = TradingSignal.objects.create(
            time=now, tenant_id=account.tenant_id, account=account, symbol="EURUSD", action="BUY",
            entry_price=round(ask, 5), entry_price_min=round(ask - 0.005, 5), entry_price_max=round(ask + 0.005, 5),
            stop_loss=round(ask - 0.05, 5), take_profit=round(ask + 0.05, 5), volume=0.1,
            valid_until=now + timedelta(minutes=5),
        )  # fmt: skip
        signal_publish_on_commit(signal)
    return signal.signal_id


def test_sign_up_to_an_executed_signal_in_a_real_browser(server, browser, committed):
    driver = browser
    driver.get(f"{server}/portal/signup/")
    shot(driver, "01_signup")
    fill(driver, {"organisation": "Browser Trading", "username": "browser", "email": "b@example.com",
                  "password1": PASSWORD, "password2": PASSWORD})  # fmt: skip
    driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    wait_for(driver, lambda d: "You have no MT5 account yet" in d.page_source, "the empty account list")
    shot(driver, "02_accounts_empty")

    driver.find_element(By.LINK_TEXT, "Add an account").click()
    fill(driver, {"name": "Browser demo", "broker": "Sim Broker"})
    shot(driver, "03_account_add")
    driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    wait_for(driver, lambda d: d.find_elements(By.ID, "generate-key"), "the account page")
    shot(driver, "04_account_new")

    driver.find_element(By.ID, "generate-key").click()
    key = wait_for(driver, lambda d: d.find_element(By.ID, "api-key").text.strip(), "the API key").strip()
    account_id = UUID(driver.find_element(By.ID, "account-id").text.strip())
    driver.find_element(By.CSS_SELECTOR, "button[data-copy=api-key]").click()
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, "button[data-copy=api-key]").text == "Copied", "copy")
    shot(driver, "05_api_key")
    assert key.startswith("suho_ea_")

    driver.get(f"{server}/portal/")
    badge = f'[data-status-for="{account_id}"]'
    assert driver.find_element(By.CSS_SELECTOR, badge).text == "offline"
    ws_url = server.replace("http://", "ws://") + "/ws/ea/"
    config = SimulatorConfig(url=ws_url, account_id=account_id, api_key=key, ticks_per_second=10.0,
                             balance_interval_s=0.3, heartbeat_interval_s=0.5, seed=11)  # fmt: skip
    with EAThread(config) as ea:
        wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, badge).text == "online", "online, no reload")
        shot(driver, "06_accounts_online")

        eventually(lambda: _balances(account_id) >= 3, "3 balance rows from the EA")
        now = timezone.now()
        balance_rollup_refresh(start=now - timedelta(hours=1), end=now + timedelta(minutes=10))
        driver.get(f"{server}/portal/accounts/{account_id}/")
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#balance-chart .uplot canvas"), "the chart")
        assert int(driver.find_element(By.ID, "balance-chart").get_attribute("data-points")) >= 1
        shot(driver, "07_account_chart")

        with operator_path():
            account = MT5Account.objects.get(account_id=account_id)
        signal_id = _signal_for(account, ea.walk.quotes["EURUSD"].ask)
        row = f'[data-signal="{signal_id}"] .signal-status'

        def executed(d):
            d.refresh()
            shown = d.find_elements(By.CSS_SELECTOR, row)
            return shown and shown[0].text == "executed" and d.find_elements(By.CSS_SELECTOR, "#trades tbody tr")

        wait_for(driver, executed, "the signal shown as executed, its trade in the history")
        driver.find_element(By.ID, "h-signals").location_once_scrolled_into_view  # noqa: B018
        shot(driver, "08_signal_executed")

    for path, name in ((f"/portal/accounts/{account_id}/risk/", "09_risk_form"),
                       (f"/portal/accounts/{account_id}/settings/", "10_settings_form"),
                       ("/portal/privacy/", "11_privacy"), ("/portal/signals/", "13_signals")):  # fmt: skip
        driver.get(server + path)
        shot(driver, name)
    driver.set_window_size(390, 844)  # a phone
    driver.get(f"{server}/portal/accounts/{account_id}/")
    shot(driver, "12_account_phone")
    width, page_width = driver.execute_script("return [innerWidth, document.documentElement.scrollWidth]")
    assert page_width <= width  # no sideways page scroll on a phone (wide tables scroll inside their own box)


def test_chromium_is_the_system_one():
    assert shutil.which("chromium") == str(CHROMIUM)

"""Acceptance of issue 20 in headless Chromium (Debian's `chromium` + `chromium-driver`; `make browser-deps`):
`SUHO_DEMO_EA=1 make run` on an empty database shows the whole loop on the account page within DEMO_DEADLINE_S,
and leaving and reloading portal pages logs no server error. It also takes the README's screenshots
(docs/screenshots/ under `make screenshots`, artifacts/screenshots/ otherwise), so they show what the code shows.

`python -m suho.supervise` runs for real in a process group of its own, as `make run` runs it (DEBUG on, the demo
EA, the demo market and the reference feed), on a database of its own that db_setup creates empty, with this
session's Redis (its own key prefix) and NATS. The demo's own parameters make the loop quick, and nothing else
does: the reference strategy runs every 10 s (its bars stay one minute), the demo market turned 45 s before the
feed started (so the first crossover is on the next bar), and the demo EA closes a position after
DEMO_MAX_HOLD_S (suho/supervise.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connections

from accounts.totp import totp_code
from suho.dbsetup import database_drop
from tests.portal.chromium import By, WebDriverWait, chromium
from tests.portal.conftest import PASSWORD
from tests.servers import free_port, http

DEMO_DEADLINE_S = 150  # from starting `make run` to the account page showing the loop
PAGE_STAY_S = 6  # between reloads while waiting: longer than the channel layer's 5 s receive (the old error)
LEAVE_AND_RELOAD = 20
ADMIN_PASSWORD = "demo operator " + "x" * 12
# `make screenshots` refreshes the README's (docs/screenshots/); any other run writes to artifacts/, so the test
# never leaves committed files modified.
SCREENSHOTS = (
    Path(settings.BASE_DIR) / ("docs" if os.environ.get("SUHO_SCREENSHOTS_TO_DOCS") else "artifacts") / "screenshots"
)
SERVER_ERROR = re.compile(r"\bERROR\b|Traceback|Exception inside application")


@dataclass
class Demo:
    base: str
    started: float  # time.monotonic() when `make run` started
    log: Path
    state: Path


@pytest.fixture(scope="module")
def demo(django_db_setup, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    database = f"{connections['default'].settings_dict['NAME']}_demo"  # the session's test database name + _demo
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k not in {"SUHO_TESTING", "DJANGO_SETTINGS_MODULE"}}
    env = {
        **environ,
        "DJANGO_SETTINGS_MODULE": "suho.settings", "DEBUG": "1", "SUHO_DEMO_EA": "1", "PORT": str(port),
        "DATABASE_URL": urlsplit(settings.DATABASE_URL)._replace(path=f"/{database}").geturl(),
        "DATABASE_ADMIN_URL": settings.DATABASE_ADMIN_URL, "REDIS_URL": settings.REDIS_URL,
        "NATS_URL": settings.NATS_URL, "SUHO_STATE_DIR": str(tmp / "state"),
        "DEMO_PASSWORD": PASSWORD, "DEMO_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }  # fmt: skip
    log = tmp / "make-run.log"
    database_drop(admin_url=settings.DATABASE_ADMIN_URL, database=database)  # empty: as a fresh clone's
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "suho.supervise"], env=env, cwd=settings.BASE_DIR,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        yield Demo(f"http://127.0.0.1:{port}", started, log, tmp / "state")
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # as Ctrl-C: the supervisor stops every child
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        database_drop(admin_url=settings.DATABASE_ADMIN_URL, database=database)


@pytest.fixture(scope="module")
def browser():
    with chromium(window_size="1280,2000", page_load_timeout_s=30) as driver:
        yield driver


def _serving(demo: Demo) -> bool:
    try:
        return http(f"{demo.base}/healthz")[0] == 200
    except OSError:  # not listening yet
        return False


def _log_tail(demo: Demo) -> str:
    return demo.log.read_text(errors="replace")[-4000:]


def _texts(driver, selector: str) -> list[str]:
    return [element.text.strip() for element in driver.find_elements(By.CSS_SELECTOR, selector)]


def loop_shown(driver) -> dict:
    """What the account page shows of the loop, read from the page as a trader sees it."""
    executed = [
        row for row in driver.find_elements(By.CSS_SELECTOR, "#signals tbody tr")
        if row.find_element(By.CSS_SELECTOR, ".signal-status").text in {"executed", "closed"}  # closed: its trade
        and "—" not in (row.find_element(By.CSS_SELECTOR, ".slippage").text,
                        row.find_element(By.CSS_SELECTOR, ".latency").text)
    ]  # fmt: skip
    chart = driver.find_elements(By.CSS_SELECTOR, "#balance-chart .uplot canvas")
    return {
        "chart_points": int(driver.find_element(By.ID, "balance-chart").get_attribute("data-points") or 0)
        if chart
        else 0,
        "executed_signals": len(executed),
        "closed_trades": _texts(driver, "#trades .trade-status").count("closed"),
        "open_risk_events": _texts(driver, "#risk-events .risk-status").count("open"),
    }


def test_the_demo_shows_the_whole_loop_and_leaving_pages_logs_no_error(demo, browser):
    driver = browser
    deadline = demo.started + DEMO_DEADLINE_S
    while not _serving(demo):
        assert time.monotonic() < deadline, f"make run did not come up:\n{_log_tail(demo)}"
        time.sleep(0.5)
    account_id = (demo.state / "demo_ea.txt").read_text().split()[0]
    driver.get(f"{demo.base}/accounts/login/")
    driver.find_element(By.NAME, "username").send_keys("demo")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit], form input[type=submit]").click()
    WebDriverWait(driver, 20).until(lambda d: "/portal/" in d.current_url, "the portal after logging in")

    account_page = f"{demo.base}/portal/accounts/{account_id}/"
    driver.get(account_page)
    rendered = driver.find_element(By.ID, "quotes-body").text
    WebDriverWait(driver, 20).until(  # the EA quotes twice a second: the socket brings new ones, no reload
        lambda d: d.find_element(By.ID, "quotes-body").text not in ("", rendered), "quotes updated without a reload"
    )
    shown, open_positions_seen = {}, 0
    while True:  # reloaded every PAGE_STAY_S until it shows the loop, or the deadline
        shown = loop_shown(driver)
        if shown["chart_points"] and shown["executed_signals"] and shown["closed_trades"]:
            break
        assert time.monotonic() < deadline, f"after {DEMO_DEADLINE_S} s the page shows {shown}\n{_log_tail(demo)}"
        stay_until = time.monotonic() + PAGE_STAY_S
        while time.monotonic() < stay_until:  # meanwhile the socket fills the open positions in while they live
            rows = driver.find_elements(By.CSS_SELECTOR, "#positions-body tr")
            open_positions_seen = max(open_positions_seen, len(rows))
            time.sleep(0.5)
        driver.get(account_page)
    elapsed = time.monotonic() - demo.started
    assert shown["open_risk_events"] == 0, f"{shown}: the demo raised a risk event\n{_log_tail(demo)}"
    assert open_positions_seen, "the open position was never shown while it lived"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / "account.png"))  # the page as the loop left it, quotes streaming
    print(f"demo loop shown {elapsed:.0f} s after make run started: {shown}, open positions seen {open_positions_seen}")

    pages = ["/portal/", f"/portal/accounts/{account_id}/", "/portal/signals/"]
    for number in range(LEAVE_AND_RELOAD):
        driver.get(demo.base + pages[number % len(pages)])
        WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.readyState") == "complete")
        time.sleep(0.5)  # the page's socket opens; the next get leaves it
        if number % len(pages) == 0:
            driver.refresh()

    _admin_screenshot(driver, demo)
    time.sleep(1)  # a socket closed by the last navigation is logged within this
    errors = [line for line in demo.log.read_text(errors="replace").splitlines() if SERVER_ERROR.search(line)]
    assert not errors, "\n".join(errors[:20])


def _admin_screenshot(driver, demo: Demo) -> None:
    """The admin index as the demo operator sees it after logging in (user, password, two-factor code)."""
    secret = re.search(r"otpauth://\S*[?&]secret=([A-Z2-7]+)", demo.log.read_text(errors="replace")).group(1)
    driver.get(f"{demo.base}/admin/login/?next=/admin/")
    for name, value in (("username", "admin"), ("password", ADMIN_PASSWORD), ("otp_code", totp_code(secret))):
        driver.find_element(By.NAME, name).send_keys(value)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "user-tools"), "the admin after logging in")
    driver.save_screenshot(str(SCREENSHOTS / "operator.png"))

"""The office console in a real browser: Debian's headless Chromium driven by Selenium.

Sign in, filter the 台账, open a case, act on it, export, see the trend chart drawn. Screenshots of
the main pages go to artifacts/screenshots/ (gitignored). `scripts/test` installs chromium,
chromium-driver and fonts-noto-cjk from Debian's packages when they are missing.
"""
from __future__ import annotations

import shutil
import tempfile

import pytest

from liaison import demo_history
from liaison.core import db
from tests.conftest import ROOT, wait_for

SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1366,768", "--lang=zh-CN"]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("chromium and chromedriver are missing: scripts/test installs them from Debian's packages")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="console-chromium-", dir=tmp_path)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.implicitly_wait(0)
    chrome.downloads = downloads
    yield chrome
    chrome.quit()


@pytest.fixture
def history(demo_county):
    with db.session_scope() as session:
        return demo_history.seed_history(session, cases_count=80, months=4)


INKED_PIXELS = """
    var canvas = document.querySelector('#trend canvas');
    if (!canvas || !canvas.width) { return 0; }
    var data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    var inked = 0;
    for (var i = 3; i < data.length; i += 4) { if (data[i] > 0) inked++; }
    return inked;"""


def _console_log(browser) -> str:
    try:
        return "; ".join(entry["message"] for entry in browser.get_log("browser"))[:500]
    except Exception:  # the log is a diagnostic only; some driver builds do not keep it
        return "unavailable"


def _shot(browser, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


def _wait_css(browser, css: str):
    from selenium.webdriver.common.by import By

    return wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, css), timeout=30, message=css)[0]


def _wait_text(browser, css: str, expected: str) -> None:
    """Wait until the element shows `expected`; a page that is still being replaced (the element
    found on the old page, gone when read) is "not yet", whatever the machine's speed."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def shown():
        try:
            return any(expected in e.text for e in browser.find_elements(By.CSS_SELECTOR, css))
        except StaleElementReferenceException:
            return False

    wait_for(shown, timeout=30, message=f"{expected} in {css}")


def _shown_total(browser) -> int:
    """The ledger's 共 N 件, once the page has fetched its count (the rows come first)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def shown():
        try:
            text = browser.find_element(By.CSS_SELECTOR, "#total b").text
        except StaleElementReferenceException:
            return None
        return (int(text),) if text.isdigit() else None  # a tuple: a count of 0 is shown too

    return wait_for(shown, timeout=30, message="the ledger's count")[0]


def test_a_staff_member_works_the_ledger_in_a_browser(browser, live_server, history):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    assert history == 80
    browser.get(live_server.url + "/console/")
    _wait_css(browser, "#sign-in")
    _shot(browser, "01-login")
    browser.find_element(By.NAME, "login").send_keys("county")
    browser.find_element(By.NAME, "password").send_keys(demo_history.DEMO_PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    _wait_css(browser, "#ledger")
    assert "县人大工委" in browser.find_element(By.ID, "whoami").text
    everything = _shown_total(browser)
    assert everything == 80
    _shot(browser, "02-ledger")

    Select(browser.find_element(By.ID, "f-status")).select_by_value("open")
    browser.find_element(By.ID, "apply-filters").click()
    wait_for(lambda: "status=open" in browser.current_url, message="the filtered ledger")
    filtered = _shown_total(browser)
    assert 0 < filtered < everything

    browser.find_elements(By.CSS_SELECTOR, "a.case-link")[0].click()
    _wait_css(browser, "#timeline")
    number = browser.find_element(By.ID, "case-number").text
    _shot(browser, "03-case")
    form = _wait_css(browser, "#form-reassign")
    Select(form.find_element(By.NAME, "reassign-department")).select_by_value("jiaotong")
    form.find_element(By.NAME, "reassign-reason").send_keys("属交通部门职责")
    form.find_element(By.CSS_SELECTOR, "button").click()
    wait_for(lambda: "已改派" in browser.page_source, message="the reassignment")
    assert "县交通运输局" in browser.find_element(By.ID, "case-handler").text
    assert number == browser.find_element(By.ID, "case-number").text

    browser.get(live_server.url + "/console/cases?status=open")
    _wait_css(browser, "#export").click()
    saved = wait_for(lambda: [p for p in browser.downloads.glob("*.xlsx")], timeout=30,
                     message="the downloaded export")
    from openpyxl import load_workbook

    rows = list(load_workbook(saved[0]).active.iter_rows(values_only=True))
    assert len(rows) - 1 == filtered

    browser.get(live_server.url + "/console/stats?by=month")
    _wait_css(browser, "#trend canvas")
    # The chart drew bars, lines and axes: many painted pixels, not a blank canvas.
    painted = wait_for(lambda: browser.execute_script(INKED_PIXELS) > 1000, timeout=30,
                       message=f"the trend chart to be drawn (console: {_console_log(browser)})")
    assert painted
    _shot(browser, "04-stats")

    browser.find_element(By.ID, "sign-out").click()
    _wait_css(browser, "#sign-in")
    browser.get(live_server.url + "/console/cases")
    _wait_css(browser, "#sign-in")


def test_a_staff_member_generates_and_publishes_a_bulletin_in_a_browser(browser, live_server, history):
    from selenium.webdriver.common.by import By
    from sqlalchemy import select

    from liaison.bulletin.models import Bulletin
    from liaison.case import access
    from liaison.console import ledger
    from liaison.console import service as figures
    from liaison.people.models import Account
    from liaison.people.service import Principal

    browser.get(live_server.url + "/console/login")
    _wait_css(browser, "#sign-in")
    browser.find_element(By.NAME, "login").send_keys("county")
    browser.find_element(By.NAME, "password").send_keys(demo_history.DEMO_PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    _wait_css(browser, "#ledger")
    browser.find_element(By.LINK_TEXT, "通报").click()
    period = _wait_css(browser, "#f-period")
    month = period.get_attribute("value")  # last month, prefilled
    _wait_css(browser, "#generate").click()
    title = _wait_css(browser, "#bulletin-title").text
    assert title.startswith("全县") and "通报" in title
    # The page shows the office's figures for that month: the same 受理量 the statistics count.
    with db.session_scope() as session:
        bulletin = session.scalar(select(Bulletin).order_by(Bulletin.id.desc()))
        assert bulletin.period == month
        account = session.get(Account, bulletin.created_by_id)
        scope = access.scope_of(session, Principal(account.role, account=account))
        where = ledger.conditions(session, scope, {"since": bulletin.since.isoformat(),
                                                   "until": bulletin.until.isoformat()})
        received = figures.statistics(session, scope, where, None)[0].figures["received"]
    shown = browser.find_elements(By.CSS_SELECTOR, "#bulletin-total td")[0].text
    assert int(shown) == received > 0
    _shot(browser, "05-bulletin")
    _wait_css(browser, "#publish").click()
    _wait_text(browser, "#bulletin-state", "已发布")
    _wait_css(browser, "#bulletin-items")
    browser.find_element(By.LINK_TEXT, "整改").click()
    _wait_css(browser, "#rectifications")
    _shot(browser, "06-rectifications")


def _reviewing_suggestion() -> str:
    """A suggestion led by D001, submitted: at its first review step (联络站初审)."""
    from sqlalchemy import select

    from liaison.people.models import Account, Deputy
    from liaison.people.service import Principal
    from liaison.suggestion import service as suggestions

    with db.session_scope() as session:
        deputy = session.scalar(select(Deputy).where(Deputy.code == "D001"))
        account = Account(role="deputy", name=deputy.name, deputy_id=deputy.id)
        session.add(account)
        session.flush()
        lead = Principal("deputy", account=account)
        suggestion = suggestions.draft(session, lead, title="关于幸福里小区路灯改造的建议",
                                       problems="小区路灯老化，多处不亮。", proposals="请统一更换路灯。")
        suggestions.submit(session, lead, suggestion)
        return suggestion.public_id


def _finish_review_and_assign(public_id: str) -> None:
    from sqlalchemy import select

    from liaison.people.models import Account
    from liaison.people.service import Principal
    from liaison.suggestion import access
    from liaison.suggestion import service as suggestions

    with db.session_scope() as session:
        staff = session.scalar(select(Account).where(Account.role == "staff", Account.station_id.is_(None)))
        principal = Principal("staff", account=staff)
        suggestion = access.get(session, principal, public_id)
        suggestions.review(session, principal, suggestion, "pass")
        suggestions.review(session, principal, suggestion, "pass")
        suggestions.assign(session, principal, suggestion, lead_code="zhujian", co_codes=["jiaotong"])


def _sign_in(browser, live_server, login: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(live_server.url + "/console/login")
    _wait_css(browser, "#sign-in")
    browser.find_element(By.NAME, "login").send_keys(login)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.ID, "sign-in").click()


def test_a_suggestion_is_reviewed_and_answered_in_a_browser(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.console_fixtures import PASSWORD, make_account, make_department_account

    make_account("staff", "县人大工委 王主任", login="county")
    make_department_account("住建局 李科长", "zhujian", login="zhujian")
    public_id = _reviewing_suggestion()

    # County staff decide the first review step from the suggestion's page.
    _sign_in(browser, live_server, "county", PASSWORD)
    _wait_css(browser, "#ledger")
    browser.find_element(By.LINK_TEXT, "建议").click()
    _wait_css(browser, "#suggestion-figures")
    browser.get(live_server.url + f"/console/suggestions/{public_id}")
    _wait_text(browser, "#suggestion-status", "联络站初审")
    form = _wait_css(browser, "#form-review")
    Select(form.find_element(By.NAME, "review-decision")).select_by_value("pass")
    form.find_element(By.NAME, "review-note").send_keys("情况属实，同意报送")
    form.find_element(By.CSS_SELECTOR, "button").click()
    _wait_text(browser, ".flash.info", "已记录审查意见")
    _wait_text(browser, "#suggestion-status", "代表工委审核")
    assert "情况属实，同意报送" in browser.find_element(By.ID, "timeline").text
    _shot(browser, "07-suggestion-review")
    browser.find_element(By.ID, "sign-out").click()
    _wait_css(browser, "#sign-in")

    # The other two steps and 交办 happen elsewhere; the lead department answers in its desk.
    _finish_review_and_assign(public_id)
    _sign_in(browser, live_server, "zhujian", PASSWORD)
    _wait_css(browser, "#suggestion-ledger")
    assert "住房和城乡建设局" in browser.find_element(By.ID, "whoami").text
    browser.find_element(By.CSS_SELECTOR, "a.suggestion-link").click()
    form = _wait_css(browser, "#form-answer")
    Select(form.find_element(By.NAME, "answer-category")).select_by_value("B")
    form.find_element(By.NAME, "answer-text").send_keys("已列入2026年老旧小区改造计划，年内完成。")
    form.find_element(By.CSS_SELECTOR, "button").click()
    _wait_text(browser, "#suggestion-status", "已答复待测评")
    assert "B 类" in browser.find_element(By.ID, "answer-category").text
    assert not browser.find_elements(By.ID, "form-answer")
    _shot(browser, "08-suggestion-answered")

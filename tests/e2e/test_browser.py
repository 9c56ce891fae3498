"""The demo chat in a real browser (Debian's chromium, driven by Selenium) on a real daphne.

alice writes to bob while he is away, and while the API cannot be reached; her pages are
reloaded; bob comes, reads, reloads. What each sees is what a user of the demo would: the
conversation kept over reloads, unread counts, pending messages that survive a reload and
go once the API answers, ticks from "sent · waiting" to ✓✓, and no console error.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.daphne_server import DaphneServer, serve

pytest_plugins = ["tests.e2e.daphne_server"]

WAIT = 10


@pytest.fixture(scope="module")
def daphne() -> Iterator[DaphneServer]:
    yield from serve({"alice": False, "bob": False})


def browser(server: DaphneServer, name: str) -> WebDriver:
    """A headless chromium logged in as ``name`` (its session cookie), on the chat page."""
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    driver.execute_cdp_cmd("Network.setCookie", {"name": "sessionid", "value": server.sessions[name],
                                                 "url": f"{server.base}/"})
    driver.get(f"{server.base}/")
    online(driver)
    return driver


def online(driver: WebDriver) -> None:
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "status").text == "online")


def open_conversation(driver: WebDriver, name: str) -> None:
    WebDriverWait(driver, WAIT).until(lambda d: badge(d, name) != "?")
    driver.execute_script("""for (const li of document.querySelectorAll("#users li")) {
        if (li.querySelector(".name").textContent === arguments[0]) li.click();
      }""", name)


def say(driver: WebDriver, text: str) -> None:
    box = driver.find_element(By.ID, "say")
    box.send_keys(text, Keys.ENTER)


def log(driver: WebDriver) -> list[tuple[str, str]]:
    """The open conversation: (text, tick) per entry, read in one go (the page redraws it on every event)."""
    rows = driver.execute_script("""return Array.from(document.querySelectorAll("#log li"), (li) => [
        li.querySelector(".text").textContent, (li.querySelector(".tick") || {textContent: ""}).textContent]);""")
    return [tuple(row) for row in rows]


def until_log(driver: WebDriver, expected: list[tuple[str, str]]) -> None:
    try:
        WebDriverWait(driver, WAIT).until(lambda d: log(d) == expected)
    except Exception:
        raise AssertionError(f"log is {log(driver)!r}, not {expected!r}") from None


def badge(driver: WebDriver, name: str) -> str:
    """The unread badge beside ``name`` in the user list ("" for none, "?" if ``name`` is not listed)."""
    return driver.execute_script("""for (const li of document.querySelectorAll("#users li")) {
        if (li.querySelector(".name").textContent === arguments[0]) {
          return (li.querySelector(".badge") || {textContent: ""}).textContent;
        }
      }
      return "?";""", name)


def console_errors(driver: WebDriver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_a_conversation_survives_reloads_absence_and_an_unreachable_api(daphne: DaphneServer) -> None:
    alice = browser(daphne, "alice")
    bob = None
    try:
        open_conversation(alice, "bob")
        say(alice, "are you there?")
        until_log(alice, [("are you there?", "sent · waiting")])  # bob has no socket: it waits in his inbox

        alice.execute_cdp_cmd("Network.enable", {})
        alice.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/im/messages/"]})  # sends fail, reads work
        say(alice, "written while the API is unreachable")
        until_log(alice, [("are you there?", "sent · waiting"), ("written while the API is unreachable",
                                                                 "◷ pending")])
        alice.refresh()
        online(alice)
        open_conversation(alice, "bob")
        until_log(alice, [("are you there?", "sent"), ("written while the API is unreachable", "◷ pending")])
        alice.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        until_log(alice, [("are you there?", "sent"), ("written while the API is unreachable", "sent · waiting")])

        bob = browser(daphne, "bob")
        WebDriverWait(bob, WAIT).until(lambda d: badge(d, "alice") == "2")
        open_conversation(bob, "alice")
        until_log(bob, [("are you there?", ""), ("written while the API is unreachable", "")])
        until_log(alice, [("are you there?", "✓✓"), ("written while the API is unreachable", "✓✓")])

        bob.refresh()
        online(bob)
        assert badge(bob, "alice") == ""  # read before the reload: the history says so
        open_conversation(bob, "alice")
        until_log(bob, [("are you there?", ""), ("written while the API is unreachable", "")])
        say(bob, "here now")
        until_log(alice, [("are you there?", "✓✓"), ("written while the API is unreachable", "✓✓"),
                          ("here now", "")])
        until_log(bob, [("are you there?", ""), ("written while the API is unreachable", ""), ("here now", "✓✓")])
        # The blocked POSTs are the only console errors: each failed fetch is logged by the browser.
        assert [m for m in console_errors(alice) if "net::ERR_BLOCKED_BY_CLIENT" not in m] == []
        assert console_errors(bob) == []
    finally:
        for driver in (alice, bob):
            if driver is not None:
                driver.quit()

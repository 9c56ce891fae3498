"""The demo chat in a real browser (Debian's chromium, driven by Selenium) on real daphne processes.

Embedded: alice writes to bob while he is away, and while the API cannot be reached; her pages
are reloaded; bob comes, reads, reloads. Cluster: bob's node is killed with ``kill -9`` while alice
writes. What each sees is what a user of the demo would: the conversation kept over reloads,
unread counts, pending messages that survive a reload and go once the API answers, ticks from
"sent · waiting" to ✓ to ✓✓, every message once and in order, and no console error.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from django.test import override_settings
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from demo_project.cluster import ROOT, daphne_command, free_port
from freeim import im
from tests.e2e.cluster import Cluster
from tests.e2e.daphne_server import CREATE_USERS, PASSWORD, DaphneServer, serve
from tests.e2e.processes import answers, spawn, stop, wait_until

pytest_plugins = ["tests.e2e.daphne_server", "tests.e2e.cluster"]

WAIT = 10


@pytest.fixture(scope="module")
def daphne() -> Iterator[DaphneServer]:
    yield from serve({"alice": False, "bob": False})


class ClusterDemo:
    """The demo as a 3-node cluster: the nodes, and a business process serving the page and the API."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        log = cluster.directory / "business.log"
        spec = json.dumps({"password": PASSWORD, "users": {"alice": False, "bob": False}})
        made = subprocess.run([sys.executable, "manage.py", "shell", "-c", CREATE_USERS], cwd=ROOT,
                              env=cluster.env(FREEIM_TEST_USERS=spec), capture_output=True, text=True, timeout=60)
        made.check_returncode()
        users = json.loads(made.stdout.splitlines()[-1])
        self.ids, self.sessions = users["ids"], users["sessions"]
        self.process = spawn(daphne_command(self.port), cluster.env(), log)
        wait_until(lambda: answers(self.port), self.process, log, "the business process")

    def nodes_of(self, name: str) -> set[int]:
        """The indexes of the nodes ``name``'s pages are connected to, as presence says."""
        with override_settings(FREEIM=self.cluster.business_settings()):
            nodes = im.get_client_nodes(self.ids[name]).get(self.ids[name], {})
        return {self.cluster.servers.index(node) for node in nodes}


@pytest.fixture(scope="module")
def cluster_demo() -> Iterator[ClusterDemo]:
    cluster = Cluster()
    try:
        cluster.boot()
        demo = ClusterDemo(cluster)
        try:
            yield demo
        finally:
            stop(demo.process, signal.SIGTERM)
    finally:
        cluster.stop_all()


def browser(server: DaphneServer | ClusterDemo, name: str) -> WebDriver:
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


#: The entry named ``arguments[1]`` in the side list ``arguments[0]`` ("users", "chans"): with ``arguments[2]``
#: it is clicked; its unread badge is returned ("" for none, "?" if the list has no such entry).
LIST_ENTRY = """for (const li of document.querySelectorAll("#" + arguments[0] + " li")) {
    if (li.querySelector(".name").textContent === arguments[1]) {
      if (arguments[2]) li.click();
      return (li.querySelector(".badge") || {textContent: ""}).textContent;
    }
  }
  return "?";"""


def badge(driver: WebDriver, name: str, side_list: str = "users") -> str:
    """The unread badge beside ``name`` in a side list ("" for none, "?" if it is not listed)."""
    return str(driver.execute_script(LIST_ENTRY, side_list, name, False))


def open_conversation(driver: WebDriver, name: str, side_list: str = "users") -> None:
    WebDriverWait(driver, WAIT).until(lambda d: badge(d, name, side_list) != "?")
    driver.execute_script(LIST_ENTRY, side_list, name, True)


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



def join_chan(driver: WebDriver, chan: str) -> None:
    box = driver.find_element(By.ID, "join-name")
    box.send_keys(chan, Keys.ENTER)
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "title").text == f"#{chan}")


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


def test_a_page_that_comes_back_is_in_its_chans_again_with_what_was_said_meanwhile(daphne: DaphneServer) -> None:
    alice, bob = browser(daphne, "alice"), None
    try:
        bob = browser(daphne, "bob")
        for driver in (alice, bob):
            join_chan(driver, "lobby")
        say(alice, "hello lobby")
        until_log(bob, [("hello lobby", "")])
        alice.get("about:blank")  # alice leaves the page: her only socket closes, and the chan with it
        say(bob, "said while you were away")
        say(bob, "and this too")
        alice.get(f"{daphne.base}/")
        online(alice)
        WebDriverWait(alice, WAIT).until(lambda d: badge(d, "#lobby", "chans") == "2")  # caught up, not from history
        open_conversation(alice, "#lobby", "chans")
        until_log(alice, [("hello lobby", ""), ("said while you were away", ""), ("and this too", "")])
        say(bob, "welcome back")  # she is in the chan again
        until_log(alice, [("hello lobby", ""), ("said while you were away", ""), ("and this too", ""),
                          ("welcome back", "")])
        assert console_errors(alice) == [] and console_errors(bob) == []
    finally:
        for driver in (alice, bob):
            if driver is not None:
                driver.quit()


def test_a_reader_whose_node_is_killed_gets_every_message_once_and_the_writer_sees_ticks(cluster_demo) -> None:
    alice = browser(cluster_demo, "alice")
    bob = None
    try:
        bob = browser(cluster_demo, "bob")
        open_conversation(alice, "bob")
        for n in (1, 2):
            say(alice, f"m{n}")
        until_log(alice, [("m1", "✓"), ("m2", "✓")])  # delivered to bob's page, not read: he has not opened it
        [dead] = cluster_demo.nodes_of("bob")
        cluster_demo.cluster.kill(dead)
        killed = time.monotonic()
        for n in range(3, 7):
            say(alice, f"m{n}")
        WebDriverWait(bob, WAIT, poll_frequency=0.05).until(lambda d: cluster_demo.nodes_of("bob") - {dead})
        online(bob)
        print(f"\nfreeim browser: kill -9 of bob's node -> his page online again: {time.monotonic() - killed:.2f} s")
        expected = [(f"m{n}", "✓") for n in range(1, 7)]
        until_log(alice, expected)  # the ones sent while he was away: delivered by his catch-up
        WebDriverWait(bob, WAIT).until(lambda d: badge(d, "alice") == "6")
        open_conversation(bob, "alice")
        until_log(bob, [(f"m{n}", "") for n in range(1, 7)])  # each once, in order
        until_log(alice, [(f"m{n}", "✓✓") for n in range(1, 7)])
        assert console_errors(alice) == []
        assert console_errors(bob) == []
    finally:
        for driver in (alice, bob):
            if driver is not None:
                driver.quit()

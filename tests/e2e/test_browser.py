"""The demo chat in a real browser (Debian's chromium, driven by Selenium) on real daphne processes.

Two users in two tabs of one browser, on the embedded demo and on the 3-node cluster demo: each tab
logs in on its own, private messages go each way, a chan message reaches the other, presence notices
come and go. Embedded: alice writes to bob while he is away, and while the API cannot be reached; her
pages are reloaded; bob comes, reads, reloads. Cluster: bob's node is killed with ``kill -9`` while alice
writes. What each sees is what a user of the demo would: the conversation kept over reloads, unread
counts, pending messages that survive a reload and go once the API answers, ticks from "sent · waiting"
to ✓ to ✓✓, every message once and in order, and no console error.

Screenshots of every page, at the steps named in the tests and at the end of each test (also a failed
one), go to ``$FREEIM_ARTIFACTS/browser/`` (default ``.artifacts/browser/`` in the repository); the
run prints where.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import websockets.sync.client
from django.test import override_settings
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
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
#: Seconds between two looks at the page while waiting (selenium's default, half a second, adds up).
POLL = 0.05


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
        spec = json.dumps({"password": PASSWORD, "users": dict.fromkeys(("alice", "bob", "ivan", "judy"), False)})
        # Side by side: the users, the business process, and the events worker (where the presence signals run,
        # so the chat's notices come from there, as in demo_project/cluster.py).
        making = subprocess.Popen([sys.executable, "manage.py", "shell", "-c", CREATE_USERS], cwd=ROOT,
                                  env=cluster.env(FREEIM_TEST_USERS=spec), stdout=subprocess.PIPE, text=True)
        self.process = spawn(daphne_command(self.port), cluster.env(), log)
        cluster.start_worker()
        made, _ = making.communicate(timeout=60)
        if making.returncode:
            raise RuntimeError(f"making the users failed:\n{made}")
        users = json.loads(made.splitlines()[-1])
        self.ids, self.sessions = users["ids"], users["sessions"]
        wait_until(lambda: answers(self.port), self.process, log, "the business process")

    def nodes_of(self, client_id: int) -> set[int]:
        """The indexes of the nodes the client's pages are connected to, as presence says."""
        with override_settings(FREEIM=self.cluster.business_settings()):
            nodes = im.get_client_nodes(client_id).get(client_id, {})
        return {self.cluster.servers.index(node) for node in nodes}


def demo_on(cluster: Cluster) -> Iterator[ClusterDemo]:
    """The demo on ``cluster``, booted; everything stopped after."""
    with cluster:
        demo = ClusterDemo(cluster)
        try:
            yield demo
        finally:
            stop(demo.process, signal.SIGTERM)


@pytest.fixture(scope="module")
def cluster_demo() -> Iterator[ClusterDemo]:
    yield from demo_on(Cluster())


@pytest.fixture(scope="module")
def slow_cluster_demo() -> Iterator[ClusterDemo]:
    """The cluster demo with states that last longer than the live-ops page's 2 s between refreshes: a killed node is
    late for 3 s (half its heartbeat TTL of 6 s) and dead for up to a fifth of it; a stopped node drains for 4 s."""
    yield from demo_on(Cluster(drain_grace=4, heartbeat_ttl=6))


ARTIFACTS = Path(os.environ.get("FREEIM_ARTIFACTS") or ROOT / ".artifacts") / "browser"


@pytest.fixture(scope="module")
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Where the screenshots go, emptied of an earlier run's, and said on the terminal."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"freeim browser: screenshots in {ARTIFACTS}")
    return ARTIFACTS


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver]:
    """One headless chromium for the module: every user is a window or a tab of it (they share its cookies,
    as the tabs of anyone's browser do; each has its own login)."""
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1200,700"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


class Tab:
    """One page of the browser (a window, or a tab beside another); ``page`` switches the browser to it."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver
        self.handle = driver.current_window_handle

    @property
    def page(self) -> WebDriver:
        self.driver.switch_to.window(self.handle)
        return self.driver

    @property
    def user_id(self) -> int:
        """Who the tab is logged in as, by the login it keeps."""
        return int(self.page.execute_script('return JSON.parse(sessionStorage.getItem("demo.user")).id'))


class Pages:
    """The pages a test opens in the module's browser; each is photographed and closed when the test ends."""

    def __init__(self, driver: WebDriver, directory: Path, test: str) -> None:
        self.driver = driver
        self.home = driver.current_window_handle  # kept open: the browser ends with its last window
        self.directory = directory
        self.test = test
        self.opened: list[Tab] = []
        driver.get_log("browser")  # what earlier tests left in the console is theirs

    def new(self, kind: str = "window") -> Tab:
        """A new window, or a new tab (``kind="tab"``) in the window of the page open last."""
        if self.opened:
            self.opened[-1].page  # noqa: B018 (switches to it)
        self.driver.switch_to.new_window(kind)
        tab = Tab(self.driver)
        self.opened.append(tab)
        return tab

    def screenshot(self, tab: Tab, step: str) -> None:
        tab.page.save_screenshot(str(self.directory / f"{self.test}-{step}.png"))

    def console_errors(self) -> list[str]:
        """The console errors of every page since the last call (the browser hands each out once)."""
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def close(self) -> None:
        """Photograph and close every page, also after a failure: a page left open would keep its user online
        in the next test."""
        for number, tab in enumerate(self.opened, 1):
            with contextlib.suppress(WebDriverException):
                self.screenshot(tab, f"end-page{number}")
            with contextlib.suppress(WebDriverException):
                tab.page.close()
        self.driver.switch_to.window(self.home)


@pytest.fixture
def pages(chromium: WebDriver, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Pages]:
    opened = Pages(chromium, artifacts, re.sub(r"\W+", "-", request.node.name.removeprefix("test_")).strip("-"))
    try:
        yield opened
    finally:
        opened.close()


def log_in(driver: WebDriver, base: str, name: str, password: str = "") -> None:
    """Open the chat page in the driver's current tab and log in through its form, as a person would."""
    driver.get(f"{base}/")
    WebDriverWait(driver, WAIT, poll_frequency=POLL).until(lambda d: d.find_element(By.ID, "id_name").is_displayed())
    if password:
        driver.find_element(By.CSS_SELECTOR, "#login-form summary").click()
        driver.find_element(By.ID, "id_password").send_keys(password)
    driver.find_element(By.ID, "id_name").send_keys(name, Keys.ENTER)
    online(driver)


def user(pages: Pages, server: DaphneServer | ClusterDemo, name: str) -> Tab:
    """A new window, logged in as ``name`` (one of the server's users) with its password."""
    tab = pages.new()
    log_in(tab.page, server.base, name, PASSWORD)
    return tab


def online(driver: WebDriver) -> None:
    WebDriverWait(driver, WAIT, poll_frequency=POLL).until(lambda d: d.find_element(By.ID, "status").text == "online")


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
    WebDriverWait(driver, WAIT, poll_frequency=POLL).until(lambda d: badge(d, name, side_list) != "?")
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
        WebDriverWait(driver, WAIT, poll_frequency=POLL).until(lambda d: log(d) == expected)
    except Exception:
        raise AssertionError(f"log is {log(driver)!r}, not {expected!r}") from None



def join_chan(driver: WebDriver, chan: str) -> None:
    box = driver.find_element(By.ID, "join-name")
    box.send_keys(chan, Keys.ENTER)
    WebDriverWait(driver, WAIT, poll_frequency=POLL).until(lambda d: d.find_element(By.ID, "title").text == f"#{chan}")


def said(driver: WebDriver) -> list[tuple[str, str]]:
    """The open conversation: (who, text) per entry; "me" for the tab's own."""
    rows = driver.execute_script("""return Array.from(document.querySelectorAll("#log li"), (li) => [
        li.querySelector("strong").textContent, li.querySelector(".text").textContent]);""")
    return [tuple(row) for row in rows]


def until_said(driver: WebDriver, expected: list[tuple[str, str]]) -> None:
    try:
        WebDriverWait(driver, WAIT, poll_frequency=POLL).until(lambda d: said(d) == expected)
    except Exception:
        raise AssertionError(f"the conversation is {said(driver)!r}, not {expected!r}") from None


def notices(driver: WebDriver) -> list[str]:
    """The activity list, its times left out."""
    return list(driver.execute_script(
        'return Array.from(document.querySelectorAll("#notices li"), (li) => li.childNodes[1].textContent.trim());'))


def until_notice(driver: WebDriver, text: str) -> None:
    """Until the activity list has ``text``."""
    try:
        WebDriverWait(driver, WAIT, poll_frequency=POLL).until(lambda d: text in notices(d))
    except Exception:
        raise AssertionError(f"no notice {text!r} in {notices(driver)!r}") from None


def styled(driver: WebDriver) -> bool:
    """Every stylesheet of the page loaded (a 404 leaves one without rules), and there is one."""
    return bool(driver.execute_script("""const sheets = Array.from(document.styleSheets);
        return sheets.length > 0 && sheets.every((sheet) => sheet.cssRules.length > 0);"""))


@pytest.mark.parametrize("demo", ["daphne", "cluster_demo"], ids=["embedded", "cluster"])
def test_two_tabs_of_one_browser_are_two_users_who_chat(demo: str, pages: Pages,
                                                        request: pytest.FixtureRequest) -> None:
    """Each tab logs in on its own (tabs share the browser's cookies: with a session, the second login switched
    the first tab to the second user). Private messages each way, a chan message each way, presence notices."""
    server: DaphneServer | ClusterDemo = request.getfixturevalue(demo)
    carol = pages.new()
    log_in(carol.page, server.base, "carol")
    dave = pages.new("tab")
    log_in(dave.page, server.base, "dave")
    assert styled(dave.page), "the chat page's stylesheet did not load"
    until_notice(carol.page, "dave is online")
    assert carol.page.find_element(By.ID, "me-name").text == "carol"  # not switched by dave's login
    if isinstance(server, ClusterDemo):  # each tab's socket is on a node, not on the business process
        ids = {tab.user_id for tab in (carol, dave)}
        assert all(server.nodes_of(client_id) for client_id in ids) and len(ids) == 2

    open_conversation(carol.page, "dave")
    say(carol.page, "hello dave, carol here")
    WebDriverWait(dave.page, WAIT, poll_frequency=POLL).until(lambda d: badge(d, "carol") == "1")
    open_conversation(dave.page, "carol")
    until_said(dave.page, [("carol", "hello dave, carol here")])
    say(dave.page, "hi carol")
    until_said(carol.page, [("me", "hello dave, carol here"), ("dave", "hi carol")])
    until_said(dave.page, [("carol", "hello dave, carol here"), ("me", "hi carol")])

    join_chan(carol.page, "kitchen")
    join_chan(dave.page, "kitchen")
    say(carol.page, "hello kitchen")
    until_said(dave.page, [("carol", "hello kitchen")])
    say(dave.page, "hello from dave")
    until_said(carol.page, [("me", "hello kitchen"), ("dave", "hello from dave")])
    pages.screenshot(carol, "carol")
    pages.screenshot(dave, "dave")

    dave.page.find_element(By.ID, "logout").click()  # his tab shows the name form; carol is told
    WebDriverWait(dave.page, WAIT, poll_frequency=POLL).until(lambda d: d.find_element(By.ID, "id_name").is_displayed())
    until_notice(carol.page, "dave is offline")
    pages.screenshot(carol, "carol-after-dave-left")
    log_in(dave.page, server.base, "erin")  # another user on dave's tab starts afresh: not in his chans
    WebDriverWait(dave.page, WAIT, poll_frequency=POLL).until(lambda d: badge(d, "#kitchen", "chans") != "?")
    assert dave.page.execute_script('return document.querySelector("#chans li.active")') is None
    assert pages.console_errors() == []

    admin = pages.new("tab")  # the admin's pages come with their stylesheets too
    admin.page.get(f"{server.base}/admin/login/")
    assert styled(admin.page), "the admin's stylesheets did not load"


def test_a_conversation_survives_reloads_absence_and_an_unreachable_api(daphne: DaphneServer, pages: Pages) -> None:
    alice = user(pages, daphne, "alice")
    open_conversation(alice.page, "bob")
    say(alice.page, "are you there?")
    until_log(alice.page, [("are you there?", "sent · waiting")])  # bob has no socket: it waits in his inbox

    alice.page.execute_cdp_cmd("Network.enable", {})
    alice.page.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/im/messages/"]})  # sends fail, reads work
    say(alice.page, "written while the API is unreachable")
    until_log(alice.page, [("are you there?", "sent · waiting"), ("written while the API is unreachable",
                                                                  "◷ pending")])
    alice.page.refresh()
    online(alice.page)
    open_conversation(alice.page, "bob")
    until_log(alice.page, [("are you there?", "sent"), ("written while the API is unreachable", "◷ pending")])
    alice.page.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    until_log(alice.page, [("are you there?", "sent"), ("written while the API is unreachable", "sent · waiting")])
    # The blocked POSTs are the only console errors: each failed fetch is logged by the browser.
    assert [m for m in pages.console_errors() if "net::ERR_BLOCKED_BY_CLIENT" not in m] == []

    bob = user(pages, daphne, "bob")
    WebDriverWait(bob.page, WAIT, poll_frequency=POLL).until(lambda d: badge(d, "alice") == "2")
    open_conversation(bob.page, "alice")
    until_log(bob.page, [("are you there?", ""), ("written while the API is unreachable", "")])
    until_log(alice.page, [("are you there?", "✓✓"), ("written while the API is unreachable", "✓✓")])

    bob.page.refresh()
    online(bob.page)
    assert badge(bob.page, "alice") == ""  # read before the reload: the history says so
    open_conversation(bob.page, "alice")
    until_log(bob.page, [("are you there?", ""), ("written while the API is unreachable", "")])
    say(bob.page, "here now")
    until_log(alice.page, [("are you there?", "✓✓"), ("written while the API is unreachable", "✓✓"),
                           ("here now", "")])
    until_log(bob.page, [("are you there?", ""), ("written while the API is unreachable", ""), ("here now", "✓✓")])
    assert pages.console_errors() == []


def test_a_page_that_comes_back_is_in_its_chans_again_with_what_was_said_meanwhile(daphne: DaphneServer,
                                                                                  pages: Pages) -> None:
    alice, bob = user(pages, daphne, "alice"), user(pages, daphne, "bob")
    for tab in (alice, bob):
        join_chan(tab.page, "lobby")
    say(alice.page, "hello lobby")
    until_log(bob.page, [("hello lobby", "")])
    alice.page.get("about:blank")  # alice leaves the page: her only socket closes, and the chan with it
    say(bob.page, "said while you were away")
    say(bob.page, "and this too")
    alice.page.get(f"{daphne.base}/")  # the same tab: its login is kept
    online(alice.page)
    # caught up, not from history:
    WebDriverWait(alice.page, WAIT, poll_frequency=POLL).until(lambda d: badge(d, "#lobby", "chans") == "2")
    open_conversation(alice.page, "#lobby", "chans")
    until_log(alice.page, [("hello lobby", ""), ("said while you were away", ""), ("and this too", "")])
    say(bob.page, "welcome back")  # she is in the chan again
    until_log(alice.page, [("hello lobby", ""), ("said while you were away", ""), ("and this too", ""),
                           ("welcome back", "")])
    assert pages.console_errors() == []


def test_a_reader_whose_node_is_restarted_moves_at_once_and_no_one_sees_him_go_offline(
        cluster_demo: ClusterDemo, pages: Pages) -> None:
    """A deploy: judy's node gets SIGTERM while ivan writes to her. Her page moves to another node at once, gets
    every message once, and ivan's page never says she went offline (the drain keeps her presence)."""
    ivan, judy = user(pages, cluster_demo, "ivan"), user(pages, cluster_demo, "judy")  # a conversation of their own
    open_conversation(ivan.page, "judy")
    say(ivan.page, "m1")
    until_log(ivan.page, [("m1", "✓")])
    judy_id, cluster = cluster_demo.ids["judy"], cluster_demo.cluster
    [draining] = cluster_demo.nodes_of(judy_id)
    seen_before = notices(ivan.page)
    stopping = threading.Thread(target=cluster.terminate, args=(draining,))
    began = time.monotonic()
    stopping.start()
    for n in (2, 3, 4):
        say(ivan.page, f"m{n}")
    WebDriverWait(judy.page, WAIT, poll_frequency=POLL).until(
        lambda d: cluster_demo.nodes_of(judy_id) and draining not in cluster_demo.nodes_of(judy_id))
    online(judy.page)
    moved = time.monotonic() - began
    stopping.join()
    print(f"\nfreeim browser: SIGTERM of judy's node -> her page online on another node: {moved:.2f} s; "
          f"the node exited after {time.monotonic() - began:.2f} s")
    cluster.start(draining)
    until_log(ivan.page, [(f"m{n}", "✓") for n in range(1, 5)])
    open_conversation(judy.page, "ivan")
    until_log(judy.page, [(f"m{n}", "") for n in range(1, 5)])  # each once, in order
    assert notices(ivan.page) == seen_before  # no "judy is offline", no "judy is online" again
    assert pages.console_errors() == []


def test_a_reader_whose_node_is_killed_gets_every_message_once_and_the_writer_sees_ticks(
        cluster_demo: ClusterDemo, pages: Pages) -> None:
    alice, bob = user(pages, cluster_demo, "alice"), user(pages, cluster_demo, "bob")
    open_conversation(alice.page, "bob")
    for n in (1, 2):
        say(alice.page, f"m{n}")
    until_log(alice.page, [("m1", "✓"), ("m2", "✓")])  # delivered to bob's page, not read: he has not opened it
    bob_id = cluster_demo.ids["bob"]
    [dead] = cluster_demo.nodes_of(bob_id)
    cluster_demo.cluster.kill(dead)
    killed = time.monotonic()
    for n in range(3, 7):
        say(alice.page, f"m{n}")
    WebDriverWait(bob.page, WAIT, poll_frequency=POLL).until(lambda d: cluster_demo.nodes_of(bob_id) - {dead})
    online(bob.page)
    print(f"\nfreeim browser: kill -9 of bob's node -> his page online again: {time.monotonic() - killed:.2f} s")
    expected = [(f"m{n}", "✓") for n in range(1, 7)]
    until_log(alice.page, expected)  # the ones sent while he was away: delivered by his catch-up
    WebDriverWait(bob.page, WAIT, poll_frequency=POLL).until(lambda d: badge(d, "alice") == "6")
    open_conversation(bob.page, "alice")
    until_log(bob.page, [(f"m{n}", "") for n in range(1, 7)])  # each once, in order
    until_log(alice.page, [(f"m{n}", "✓✓") for n in range(1, 7)])
    assert pages.console_errors() == []


#: A superuser for the admin's pages (its password is hashed once: a third of a second).
MAKE_OPERATOR = f"""
from django.contrib.auth.models import User
User.objects.create_superuser("ops", password="{PASSWORD}")
"""
#: Each row of the live-ops page's nodes table: its cells' text, by node name.
NODE_ROWS = """return Array.from(document.querySelectorAll("#liveops-nodes tbody tr"),
    (tr) => Array.from(tr.cells, (td) => td.textContent));"""


def live_nodes(driver: WebDriver) -> dict[str, list[str]]:
    """The live-ops page's nodes: node -> [state, ready, last heartbeat, loop lag, sockets, clients, why not ready]."""
    return {row[0]: row[1:] for row in driver.execute_script(NODE_ROWS)}


def until_nodes(driver: WebDriver, what: str, condition: Callable[[dict[str, list[str]]], bool],
                wait: float = WAIT) -> None:
    try:
        WebDriverWait(driver, wait, poll_frequency=POLL).until(lambda d: condition(live_nodes(d)))
    except Exception:
        raise AssertionError(f"the page never showed {what}: {live_nodes(driver)!r}") from None


def notice(driver: WebDriver) -> str:
    """The live-ops page's notice ("" when hidden)."""
    return str(driver.execute_script('const n = document.getElementById("liveops-notice"); '
                                     'return n.hidden ? "" : n.textContent;'))


def test_the_live_ops_page_follows_a_drain_a_kill_and_a_redis_outage_without_a_reload(
        slow_cluster_demo: ClusterDemo, pages: Pages) -> None:
    """The admin's live-ops page of a real 3-node cluster, refreshing itself every 2 s: one node is stopped (SIGTERM)
    while a terminal that never comes back holds a socket there, so it drains for the whole grace; another is killed
    (SIGKILL); Redis stops and starts again; the nodes are started again. The page follows each step in place."""
    cluster, demo = slow_cluster_demo.cluster, slow_cluster_demo
    made = subprocess.run([sys.executable, "manage.py", "shell", "-c", MAKE_OPERATOR], cwd=ROOT, env=cluster.env(),
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    ops = pages.new()
    ops.page.get(f"{demo.base}/admin/login/?next=/admin/freeim_groups/group/liveops/")
    ops.page.find_element(By.ID, "id_username").send_keys("ops")
    ops.page.find_element(By.ID, "id_password").send_keys(PASSWORD, Keys.ENTER)
    until_nodes(ops.page, "three nodes ready", lambda nodes: sorted(nodes) == sorted(cluster.servers) and all(
        cells[:2] == ["alive", "yes"] for cells in nodes.values()))
    assert styled(ops.page), "the live-ops page's stylesheets did not load"
    ops.page.execute_script("window.notReloaded = true;")  # gone with a reload
    pages.screenshot(ops, "live-ops-1-three-nodes")

    with override_settings(FREEIM=cluster.business_settings()):
        url = im.prev_connect_server("ops-terminal")
    stopping = cluster.index_of_url(url)
    with websockets.sync.client.connect(url, proxy=None):  # it never reconnects: the drain lasts its grace
        drain = threading.Thread(target=cluster.terminate, args=(stopping,))
        drain.start()
        until_nodes(ops.page, "the node draining", lambda nodes: nodes.get(cluster.servers[stopping], [])[:2] == [
            "draining", "no"])
        assert live_nodes(ops.page)[cluster.servers[stopping]][-1] == "the node is draining"
        pages.screenshot(ops, "live-ops-2-draining")
        until_nodes(ops.page, "the drained node gone", lambda nodes: cluster.servers[stopping] not in nodes)
        drain.join()

    killed = (stopping + 1) % len(cluster.servers)
    cluster.kill(killed)
    until_nodes(ops.page, "the killed node late", lambda nodes: nodes.get(cluster.servers[killed], [""])[0] == "late")
    pages.screenshot(ops, "live-ops-3-late")
    until_nodes(ops.page, "the killed node reaped", lambda nodes: list(nodes) == [
        server for index, server in enumerate(cluster.servers) if index not in (stopping, killed)])

    cluster.redis.stop()
    try:
        WebDriverWait(ops.page, WAIT, poll_frequency=POLL).until(lambda d: notice(d).startswith("Redis is unavailable"))
        pages.screenshot(ops, "live-ops-4-redis-down")
    finally:
        cluster.redis.start()
    WebDriverWait(ops.page, WAIT, poll_frequency=POLL).until(lambda d: notice(d) == "")
    cluster.start(stopping, killed)
    until_nodes(ops.page, "three nodes ready again", lambda nodes: sorted(nodes) == sorted(cluster.servers) and all(
        cells[:2] == ["alive", "yes"] for cells in nodes.values()), wait=WAIT * 2)
    pages.screenshot(ops, "live-ops-5-back")
    assert ops.page.execute_script("return window.notReloaded === true;")
    # The browser logs each answer that was not a 2xx: the 503s of the outage, and the admin's missing favicon.
    errors = [error for error in pages.console_errors() if "/favicon.ico " not in error]
    assert errors and all("/liveops/status/ " in error and " 503 " in error for error in errors), errors
    ops.page.delete_all_cookies()  # the admin's session: the chat pages of the other tests use none

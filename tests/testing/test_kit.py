"""freeim.testing as a project uses it: its pytest plugin and its TestCase mixin, run in a pytest of their own
(pytester) over this suite's settings, with freeim.groups installed."""

import os
from pathlib import Path

import pytest

from tests import readme

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]

PROJECT_TESTS = '''
import pytest
from django.test import SimpleTestCase, TestCase

from freeim import im
from freeim.messaging.operations import SentBroadcast, SentChanMessage, SentMessage
from freeim.signals import client_offline, client_online
from freeim.testing import FreeIMTestMixin


@pytest.mark.asyncio
async def test_a_terminal_gets_what_is_sent_and_the_outbox_keeps_it(freeim_terminal, freeim_outbox):
    async with freeim_terminal(1, join=["lobby"]) as alice:
        sent = await im.asend_message(2, [1], {"text": "hi"})
        assert (await alice.receive_frame())["data"] == {"text": "hi"}
        chan = await im.asend_chan_message(2, "lobby", "all")
        assert (await alice.receive_frame())["chan"] == "lobby"
        await im.asend_broadcast_message("notice")
        assert (await alice.receive_frame())["type"] == "broadcast"
    assert freeim_outbox == [SentMessage(sent, 2, [1], {"text": "hi"}), SentChanMessage(chan, 2, "lobby", "all"),
                             SentBroadcast("notice")]


def test_sync_sends_are_captured_without_anyone_online(freeim_outbox):
    im.send_message(1, [2, 3], "waits in their inboxes")
    assert [(sent.sender, sent.receivers) for sent in freeim_outbox] == [(1, [2, 3])]


@pytest.mark.asyncio
async def test_signals_are_waited_for(freeim_terminal, freeim_signals):
    async with freeim_terminal(7, meta="web"):
        assert (await freeim_signals.wait(client_online, client_id=7))["meta"] == "web"
    await freeim_signals.wait(client_offline, client_id=7)


def test_each_test_starts_on_a_fresh_node():
    assert im.get_client_list_by_online() == [] and im.get_chan_list() == []


@pytest.mark.asyncio
async def test_groups_installed_and_no_database_access(freeim_terminal, caplog):
    async with freeim_terminal(3, join=["team"]) as carol:
        await im.asend_chan_message(1, "team", "no database needed")
        assert (await carol.receive_frame())["data"] == "no database needed"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.django_db
def test_with_database_access_groups_auto_join_works(freeim_outbox):
    from asgiref.sync import async_to_sync
    from freeim.groups.models import Group, Membership
    from freeim.testing import terminal

    group = Group.objects.create(slug="crew", title="Crew")
    Membership.objects.create(group=group, client_id="5")

    async def connect_and_read():
        async with terminal(5) as member:
            await im.asend_chan_message(1, "crew", "to the crew")
            return await member.receive_frame()

    assert async_to_sync(connect_and_read)()["data"] == "to the crew"


async def connect_status(authorization=None):
    """The status of a POST to connect/ through the project's ASGI application (freeim.asgi.wrap's)."""
    from asgiref.testing import ApplicationCommunicator
    from django.utils.module_loading import import_string
    from django.conf import settings

    headers = [(b"authorization", authorization)] if authorization else []
    request = ApplicationCommunicator(import_string(settings.ASGI_APPLICATION), {
        "type": "http", "method": "POST", "path": "/im/connect/", "query_string": b"", "headers": headers,
        "http_version": "1.1", "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 1)})
    await request.send_input({"type": "http.request", "body": b""})
    status = (await request.receive_output(5))["status"]
    await request.receive_output(5)
    return status


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_request_that_reads_the_database():
    assert await connect_status(b"Basic bm9ib2R5OnB3") == 401  # nobody:pw, looked up


@pytest.mark.asyncio
async def test_a_later_request_without_database_access():
    """A thread kept for HTTP requests keeps the database connections a request opened on it: a later test's
    request on it met pytest-django's block in Django's request_started receiver (a 500)."""
    assert await connect_status() == 401


class MixinWithoutDatabase(FreeIMTestMixin, SimpleTestCase):
    def test_outbox(self):
        im.send_broadcast_message("hello")
        self.assertEqual(self.freeim_outbox, [SentBroadcast("hello")])

    async def test_signals_in_an_async_test(self):
        from freeim.testing import terminal

        async with terminal(4):
            await self.freeim_signals.wait(client_online, client_id=4)


class MixinWithDatabase(FreeIMTestMixin, TestCase):
    def setUp(self):  # without super().setUp(): the mixin did nothing, and helpers raised NoEmbeddedNode
        self.user_id = 1

    def test_a_fresh_outbox_per_test(self):
        self.assertEqual(self.freeim_outbox, [])
        im.send_message(1, [2], "x")
        self.assertEqual(len(self.freeim_outbox), 1)
'''


def test_plugin_and_mixin_in_a_projects_own_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    pytester.makepyfile(test_project=PROJECT_TESTS)
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    # As an installed django-freeim's entry point would load it (the checkout is not installed).
    result = pytester.runpytest_subprocess("-p", "freeim.testing.pytest_plugin", "-p", "no:cacheprovider",
                                           "-W", "error::pytest.PytestUnraisableExceptionWarning")
    result.assert_outcomes(passed=11)


def test_the_readmes_testing_snippets_pass_as_written(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    snippets = readme.snippets("Testing your project")
    assert len(snippets) == 2
    pytester.makepyfile(test_readme_pytest=snippets[0], test_readme_testcase=snippets[1])
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = pytester.runpytest_subprocess("-p", "freeim.testing.pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


async def test_a_frame_that_never_comes_is_a_timeout_not_a_cancellation():
    """The terminal's exit disconnected an application the timeout had cancelled: the test ended in a bare
    CancelledError, the TimeoutError only in its chain."""
    from freeim.testing import terminal

    with pytest.raises(TimeoutError):
        async with terminal(1) as alice:
            await alice.receive_frame(timeout=0.1)

"""The database history: what one send, one chan message and one read leave in its tables."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from freeim.history import SentChanMessage, SentMessage
from freeim.history.models import ChanMessage, Copy, PrivateMessage
from freeim.history.store import ModelHistory

pytestmark = pytest.mark.django_db


def copies():
    return sorted(Copy.objects.values_list("owner", "peer", "outgoing", "message_id"))


def test_a_private_message_is_kept_once_with_a_copy_per_participant():
    """It was kept whole per participant: a message of 8 KB to 1,000 made 16 MB of rows."""
    with CaptureQueriesContext(connection) as queries:
        ModelHistory().keep_messages([SentMessage("m1", 1, [2, "bot"], {"text": "hi"}),
                                      SentMessage("m2", 2, [2], None)])
    assert [q["sql"].split()[0] for q in queries if "SAVEPOINT" not in q["sql"]] == ["INSERT", "INSERT"]
    assert sorted(PrivateMessage.objects.values_list("message_id", "sender", "data")) == [
        ("m1", "1", {"text": "hi"}), ("m2", "2", None)]
    assert copies() == [("1", "2", True, "m1"), ("1", "bot", True, "m1"), ("2", "1", False, "m1"),
                        ("2", "2", False, "m2"),  # a note to oneself: one copy
                        ("bot", "1", False, "m1")]
    assert Copy.objects.get(owner="2", peer="2").read_at is not None  # and never unread


def test_a_message_kept_again_stays_as_it_was():
    history = ModelHistory()
    history.keep_messages([SentMessage("m1", 1, [2], "first")])
    history.keep_messages([SentMessage("m1", 1, [2], "first"), SentMessage("m2", 1, [2], "second")])
    history.keep_chan_message(SentChanMessage("c1", 1, "room", "x"))
    history.keep_chan_message(SentChanMessage("c1", 1, "room", "x"))
    assert [row[3] for row in copies()] == ["m1", "m2", "m1", "m2"] and PrivateMessage.objects.count() == 2
    assert list(ChanMessage.objects.values_list("chan", "sender", "message_id", "data")) == [("room", "1", "c1", "x")]


def test_a_read_marks_both_copies_of_what_the_reader_received_and_nothing_else():
    history = ModelHistory()
    history.keep_messages([SentMessage("m1", 1, [2, 3], "hi"), SentMessage("m2", 2, [1], "yo")])
    history.mark_read(2, ["m1", "m2", "unknown"])  # m2 is 2's own message: 2 cannot read it for 1
    read = sorted(Copy.objects.exclude(read_at=None).values_list("owner", "peer", "message_id"))
    assert read == [("1", "2", "m1"), ("2", "1", "m1")]  # not 3's copy, nor 1's copy to 3


def test_the_admin_shows_kept_messages_read_only(admin_client):
    ModelHistory().keep_messages([SentMessage("m1", 1, [2], {"text": "hi"})])
    ModelHistory().keep_chan_message(SentChanMessage("c1", 1, "room", "x"))
    for model in ("privatemessage", "chanmessage"):
        assert admin_client.get(f"/admin/freeim_history/{model}/").status_code == 200
        assert admin_client.get(f"/admin/freeim_history/{model}/add/").status_code == 403
    row = PrivateMessage.objects.first()
    page = admin_client.get(f"/admin/freeim_history/privatemessage/{row.pk}/change/")
    assert page.status_code == 200 and b"Save" not in page.content and b"/delete/" not in page.content
    assert admin_client.post(f"/admin/freeim_history/privatemessage/{row.pk}/delete/", {"post": "yes"}).status_code \
        == 403
    bulk = admin_client.post("/admin/freeim_history/chanmessage/", {"action": "delete_selected", "post": "yes",
                                                                    "_selected_action": [1]})
    assert bulk.status_code in (200, 302) and ChanMessage.objects.count() == 1  # no such action: nothing deleted

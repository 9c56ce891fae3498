"""Messages are encoded as Django's own JSON responses are (FREEIM['JSON_ENCODER']): datetimes, decimals, UUIDs
and lazy strings reach terminals and the history as text, where plain json refused them (InvalidMessage)."""

import datetime
import decimal
import json
import uuid

import pytest
from django.test import override_settings
from django.utils.translation import gettext_lazy

from freeim import im
from freeim.exceptions import InvalidMessage
from freeim.history.models import ChanMessage, PrivateMessage
from freeim.testing import terminal

RICH = {"at": datetime.datetime(2026, 12, 2, 8, 30, tzinfo=datetime.UTC), "price": decimal.Decimal("9.90"),
        "order": uuid.UUID("12345678-1234-5678-1234-567812345678"), "label": gettext_lazy("Shipped")}
AS_TEXT = {"at": "2026-12-02T08:30:00Z", "price": "9.90", "order": "12345678-1234-5678-1234-567812345678",
           "label": "Shipped"}


async def test_a_terminal_gets_rich_values_as_text():
    async with terminal(1, join=["lobby"]) as alice:
        await im.asend_message(2, [1], RICH)
        assert (await alice.receive_frame())["data"] == AS_TEXT
        await im.asend_chan_message(2, "lobby", RICH)
        assert (await alice.receive_frame())["data"] == AS_TEXT


@pytest.mark.django_db(transaction=True)
def test_the_history_keeps_them_as_the_terminal_got_them(settings):
    settings.FREEIM = {"HISTORY": "freeim.history.store.ModelHistory"}
    im.send_message(2, [1], RICH)
    im.send_chan_message(2, "lobby", RICH)
    assert PrivateMessage.objects.get().data == AS_TEXT and ChanMessage.objects.get().data == AS_TEXT


class Tagged(json.JSONEncoder):
    def default(self, o):
        return {"tagged": repr(o)} if isinstance(o, set) else super().default(o)


async def test_the_encoder_is_a_setting():
    with override_settings(FREEIM={"JSON_ENCODER": "tests.messaging.test_encoding.Tagged"}):
        async with terminal(1) as alice:
            await im.asend_message(2, [1], {"s": {7}})
            assert (await alice.receive_frame())["data"] == {"s": {"tagged": "{7}"}}
            with pytest.raises(InvalidMessage, match="not JSON-serialisable"):
                await im.asend_message(2, [1], {"at": RICH["at"]})  # Django's types are not its business
    async with terminal(1) as alice:  # and the default is back
        await im.asend_message(2, [1], {"at": RICH["at"]})
        assert (await alice.receive_frame())["data"] == {"at": AS_TEXT["at"]}


def test_what_no_encoder_takes_is_still_refused():
    with pytest.raises(InvalidMessage):
        im.send_message(2, [1], {"x": object()})

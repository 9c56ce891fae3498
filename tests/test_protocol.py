import json
import struct

import pytest

from freeim import protocol
from freeim.exceptions import InvalidMessage, NestingTooDeep
from freeim.protocol import CloseCode


def test_frames_are_compact_json_with_unicode_kept():
    frame = protocol.message_frame("m1", 1, {"t": "héllo"})
    assert json.loads(frame) == {"type": "message", "id": "m1", "from": 1, "data": {"t": "héllo"}}
    assert "héllo" in protocol.broadcast_frame("héllo")
    assert json.loads(protocol.chan_frame("c1", "room", "bob", [1])) == {"type": "chan", "id": "c1", "chan": "room",
                                                                         "from": "bob", "data": [1]}
    assert json.loads(protocol.receipt_frame("m1", 2, "offline")) == {"type": "receipt", "id": "m1", "to": 2,
                                                                      "status": "offline"}
    assert json.loads(protocol.left_frame("room")) == {"type": "left", "chan": "room"}


def test_unserialisable_data_is_a_clear_error():
    with pytest.raises(InvalidMessage):
        protocol.broadcast_frame({"when": object()})


def nested_list(depth):
    data = []
    for _ in range(depth - 1):
        data = [data]
    return data


@pytest.mark.parametrize("data", [
    "\ud800",  # a lone surrogate has no UTF-8 form: no terminal could read the frame
    {"x": ["ok", "\udfff"]},
    float("nan"),  # NaN and Infinity are not JSON: JSON.parse fails on them
    float("inf"),
    nested_list(100_000),  # json's encoder recurses once per level
], ids=["surrogate", "nested surrogate", "nan", "infinity", "deep"])
def test_data_no_terminal_could_read_is_invalid(data):
    with pytest.raises(InvalidMessage):
        protocol.message_frame("m1", 1, data)


@pytest.mark.parametrize(("text", "binary", "expected"), [
    ('{"type":"ping"}', None, "ping"),
    ('{"type":"hello"}', None, None),
    ("{}", None, None),
])
def test_parse_inbound_accepts(text, binary, expected):
    assert protocol.parse_inbound(text, binary) == expected


@pytest.mark.parametrize(("text", "binary", "code"), [
    (None, b"\x00", CloseCode.PROTOCOL_ERROR),
    ("not json", None, CloseCode.PROTOCOL_ERROR),
    ("[1, 2]", None, CloseCode.PROTOCOL_ERROR),
    ('"ping"', None, CloseCode.PROTOCOL_ERROR),
    ("{" + " " * 5000 + "}", None, CloseCode.MESSAGE_TOO_BIG),
    ('{"t":"' + "é" * 2100 + '"}', None, CloseCode.MESSAGE_TOO_BIG),  # 2,108 characters, but 4,208 bytes
    ("[" * 2000 + "]" * 2000, None, CloseCode.PROTOCOL_ERROR),  # past the recursion limit of json's parser
    ('{"a":' * 65 + "1" + "}" * 65, None, CloseCode.PROTOCOL_ERROR),  # past MAX_JSON_DEPTH
])
def test_parse_inbound_rejects_with_close_code(text, binary, code):
    with pytest.raises(ValueError) as error:
        protocol.parse_inbound(text, binary)
    assert error.value.args[0] == code


def test_decode_refuses_nesting_past_the_limit_before_parsing():
    assert protocol.decode("[" * protocol.MAX_JSON_DEPTH + "]" * protocol.MAX_JSON_DEPTH) == nested_list(64)
    with pytest.raises(NestingTooDeep):
        protocol.decode("[" * 100_000 + "]" * 100_000)
    with pytest.raises(NestingTooDeep):
        protocol.decode('{"a": ' * 65 + "1" + "}" * 65)


#: Enough brackets to get past the quick count of openings to the scan.
MANY = "[" * 100


@pytest.mark.parametrize("text", [f'["{MANY}", "{{{MANY}"]', f'"\\"{MANY}"', f'{{"k\\"{MANY}": "]]"}}'],
                         ids=["in strings", "after an escaped quote", "in a key"])
def test_decode_does_not_count_brackets_in_strings(text):
    assert protocol.decode(text) == json.loads(text)


# A pattern that backtracks would take minutes on the first (quadratic: 5 s for 20,000 escaped quotes).
@pytest.mark.parametrize("text", [MANY + '"' + '\\"' * 200_000, MANY + '"' * 200_001, MANY + '[1, "\\'],
                         ids=["unterminated, escaped quotes", "quotes", "trailing backslash"])
def test_decode_refuses_broken_strings_in_linear_time(text):
    with pytest.raises(ValueError):
        protocol.decode(text)


@pytest.mark.parametrize(("size", "header"), [(5, b"\x81\x05"), (200, b"\x81\x7e" + struct.pack("!H", 200)),
                                              (70_000, b"\x81\x7f" + struct.pack("!Q", 70_000))])
def test_ws_text_frame_header_lengths(size, header):
    frame = protocol.ws_text_frame(b"x" * size)
    assert frame.startswith(header) and len(frame) == len(header) + size


def test_positions_name_a_place_in_an_inbox_and_nothing_else_parses_as_one():
    at = protocol.position("9e718890", 17)
    assert at == "9e718890.17" and protocol.parse_position(at) == ("9e718890", 17)
    for bad in ("", "*", "9e718890", "9e718890.", ".17", "XYZ.1", "9e718890.-1", "9e718890.1.2", 17, None):
        assert protocol.parse_position(bad) is None
    framed = protocol.with_position(protocol.message_frame("m1", 1, {"t": "x"}), at)
    assert json.loads(framed) == {"type": "message", "id": "m1", "from": 1, "data": {"t": "x"}, "pos": at}
    assert json.loads(protocol.gap_frame(at)) == {"type": "gap", "since": at}


def test_a_position_is_the_whole_text_or_none():
    """``$`` let a final newline through: "e.1\\n" was a position."""
    assert protocol.parse_position("0123abcd.1") == ("0123abcd", 1)
    assert protocol.parse_position("0123abcd.1\n") is None

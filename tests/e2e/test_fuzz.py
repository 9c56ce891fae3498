"""Generated bad input against a real server: the demo under daphne, every endpoint of the REST
API (freeim.urls and freeim.groups.urls), and text frames on real WebSockets.

Whatever a client sends, the server answers: never a 5xx, and every 4xx with a JSON body (not
Django's HTML pages). Whatever a terminal sends, its socket answers with a pong, ignores the
frame, or closes with a documented code: never 1011. One daphne process serves the module; when
it has stopped, its log must hold no traceback.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

import freeim.groups.urls
import freeim.history.urls
import freeim.urls
from freeim import ids
from freeim.protocol import CloseCode, parse_inbound
from tests.e2e.daphne_server import DaphneServer, User, serving_a_group

pytest_plugins = ["tests.e2e.daphne_server"]  # daphne's log tail in the report of a failing test

USERS = {"alice": False, "bob": False, "carol": False, "staff": True}
CHAN, GROUP = "room", "crew"
FRAME_TIMEOUT = 5.0

# CI-sized: about 1,100 requests and 40 sockets in all, ~20 s. deadline=None: a request's time depends on
# the machine. The autouse fixtures of tests/conftest.py reset this process's backend, not the server's.
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

#: Every endpoint: method, route as in its urls.py (under ``im/``, ``im/groups/``, ``im/history/``), and the user who
#: calls it, chosen so that the request gets past the permission checks to the body: alice is in chan
#: ``room`` and group ``crew``; bob has no socket; staff may do anything.
ENDPOINTS = [
    ("POST", "im/", "connect/", "alice"),
    ("POST", "im/", "messages/", "alice"),
    ("POST", "im/", "messages/read/", "alice"),
    ("GET", "im/", "online/", "staff"),
    ("GET", "im/", "online/<str:client_id>/", "alice"),
    ("POST", "im/", "online/<str:client_id>/offline/", "staff"),
    ("GET", "im/", "chans/", "alice"),
    ("POST", "im/", "chans/<str:chan>/join/", "bob"),
    ("POST", "im/", "chans/<str:chan>/leave/", "bob"),
    ("GET", "im/", "chans/<str:chan>/members/", "alice"),
    ("POST", "im/", "chans/<str:chan>/messages/", "alice"),
    ("POST", "im/", "broadcast/", "staff"),
    ("POST", "im/", "", "alice"),  # the catch-all: any other path under im/ is a JSON 404
    ("GET", "im/groups/", "", "alice"),
    ("GET", "im/groups/", "<str:slug>/", "alice"),
    ("POST", "im/groups/", "<str:slug>/members/", "staff"),
    ("DELETE", "im/groups/", "<str:slug>/members/<str:client_id>/", "staff"),
    ("GET", "im/groups/", "<str:slug>/messages/", "alice"),
    ("POST", "im/groups/", "<str:slug>/messages/", "alice"),
    ("GET", "im/history/", "conversations/", "alice"),
    ("GET", "im/history/", "conversations/<str:client_id>/", "alice"),
    ("GET", "im/history/", "chans/<str:chan>/", "alice"),
]
ENDPOINT_IDS = [f"{method} {prefix}{route}" for method, prefix, route, _user in ENDPOINTS]
PARAMETER = re.compile(r"<str:(\w+)>")


# --- the server -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daphne() -> Iterator[DaphneServer]:
    with serving_a_group(USERS, GROUP, "alice") as server:
        yield server


@pytest.fixture(scope="module")
def users(daphne: DaphneServer) -> dict[str, User]:
    logged_in = {name: User(daphne, name) for name in USERS}
    for user in logged_in.values():
        user.log_in()
    return logged_in


def drain(ws: ClientConnection) -> None:
    """Read and drop every frame until the socket closes (so the node never closes it as a slow reader)."""
    try:
        for _frame in ws:
            pass
    except ConnectionClosed:
        pass


@pytest.fixture(scope="module")
def alice_in_chan(users: dict[str, User]) -> Iterator[None]:
    """alice online and in chan ``room`` for the module; her socket gets every message and broadcast."""
    alice = users["alice"]
    with connect(alice.request("POST", "/im/connect/", b"{}")[1]["url"], proxy=None) as ws:
        reader = threading.Thread(target=drain, args=(ws,), daemon=True)
        reader.start()
        status, body = alice.request("POST", f"/im/chans/{CHAN}/join/")
        assert status == 200, body
        yield
    reader.join(FRAME_TIMEOUT)


# --- what a client sends ----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20)
#: Values for the fields freeim's bodies have, of every type, and ids that are almost right.
fields = st.fixed_dictionaries({}, optional={
    "to": json_values | st.lists(st.integers() | st.text(max_size=200), max_size=20),
    "data": json_values, "receipt": json_values, "meta": json_values, "user": json_values,
    "client_id": json_values, "role": st.sampled_from(["owner", "admin", "member", "nobody"]) | json_values,
    "key": json_values, "join": json_values | st.lists(st.text(max_size=120), max_size=120),
    "since": json_values | st.sampled_from(["*", "0123abcd.1", "0123abcd.999999999999999999", "x.-1"]),
    "chans_since": json_values, "avoid": json_values, "ids": json_values | st.lists(st.text(), max_size=50),
})


def deep(depth: int) -> str:
    """A message body whose data is ``depth`` arrays deep."""
    return '{"to": [2], "data": ' + "[" * depth + "]" * depth + "}"


json_bodies = st.one_of(
    json_values.map(json.dumps),  # json.dumps writes lone surrogates as "\ud800": valid JSON, invalid UTF-8
    fields.map(json.dumps),
    (st.integers(1, 3000) | st.sampled_from([64, 65, 1000, 100_000])).map(deep),
    st.integers(1, 6000).map(lambda digits: '{"to": [' + "9" * digits + '], "data": 1}'),
    st.sampled_from(['{"data": NaN}', '{"data": Infinity}', '{"to": [2], "data": "\\ud800"}', "", "{", "null"]),
).map(str.encode)
bodies = json_bodies | st.binary(max_size=300)
content_types = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/json; charset=latin-1",
    "application/json; charset=utf-16", "application/json; charset=bz2_codec", "application/json; charset=nope",
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "multipart/form-data",
    "", "*/*",
])
#: A path segment: anything without a slash (a slash would make it another route, or none), sent
#: percent-encoded; lone surrogates go as the bytes UTF-8 would give them, which are not UTF-8.
segments = st.text(min_size=1, max_size=150).filter(lambda text: "/" not in text) | st.sampled_from(
    ["room", "crew", "0", "-1", "9" * 200, "9" * 5000, "%", ".", "..", " ", "\x00", "a" * 129])


def check(user: User, method: str, path: str, body: bytes | None, content_type: str = "application/json") -> None:
    """The server answers below 500, and with a JSON object or list when it refuses (4xx)."""
    answer = user.answer(method, path, body, content_type)
    assert answer.status < 500, (answer.status, answer.body[:300])
    if answer == (400, "", b"") and method == "POST" and content_type.startswith("multipart/form-data"):
        return  # Twisted's own answer to a multipart body it cannot parse: daphne never hands it on
    if answer.status >= 400:
        assert answer.content_type.startswith("application/json"), (answer.status, answer.body[:300])
        assert isinstance(json.loads(answer.body), (dict, list)), answer.body


def is_client(text: str, client: ids.ClientId) -> bool:
    try:
        return ids.client_id(text) == client
    except ids.InvalidClientId:
        return False


def filled(prefix: str, route: str, value: str) -> str:
    """The URL path of ``route`` with every parameter set to ``value`` (percent-encoded)."""
    quoted = urllib.parse.quote(value, safe="", errors="surrogatepass")
    return "/" + prefix + PARAMETER.sub(lambda _match: quoted, route)


def path_for(server: DaphneServer, prefix: str, route: str) -> str:
    """The URL path of ``route`` with parameters its caller may use; bob's id, so nobody online is touched."""
    values = {"chan": CHAN, "slug": GROUP, "client_id": str(server.ids["bob"])}
    return "/" + prefix + PARAMETER.sub(lambda match: values[match[1]], route)


# --- REST -------------------------------------------------------------------------------------------------------


def test_every_endpoint_is_fuzzed():
    """Fails when an endpoint is added to freeim's urls.py without being added here."""
    routes = {(prefix, route) for _method, prefix, route, _user in ENDPOINTS}
    assert routes == {("im/", str(p.pattern)) for p in freeim.urls.urlpatterns} | {
        ("im/groups/", str(p.pattern)) for p in freeim.groups.urls.urlpatterns} | {
        ("im/history/", str(p.pattern)) for p in freeim.history.urls.urlpatterns}


@pytest.mark.parametrize(("method", "prefix", "route", "caller"), ENDPOINTS, ids=ENDPOINT_IDS)
@FUZZ
@given(body=bodies, content_type=content_types)
def test_any_body_gets_a_json_answer(users, alice_in_chan, daphne, method, prefix, route, caller, body,
                                     content_type):
    check(users[caller], method, path_for(daphne, prefix, route), body, content_type)


@pytest.mark.parametrize(("method", "prefix", "route", "caller"), [e for e in ENDPOINTS if "<" in e[2]],
                         ids=[i for i, e in zip(ENDPOINT_IDS, ENDPOINTS, strict=True) if "<" in e[2]])
@FUZZ
@given(segment=segments)
def test_any_path_segment_gets_a_json_answer(users, alice_in_chan, daphne, method, prefix, route, caller, segment):
    if "client_id" in route and method != "GET":  # never force alice offline or out of her group
        assume(not is_client(segment, daphne.ids["alice"]))
    check(users[caller], method, filled(prefix, route, segment), b'{"data": 1}')


@pytest.mark.parametrize("route", [route for _m, prefix, route, _u in ENDPOINTS if prefix == "im/history/"])
@FUZZ
@given(query=st.dictionaries(st.sampled_from(["cursor", "limit", "page", "ordering"]),
                             st.text(max_size=60) | st.binary(max_size=40).map(base64.b64encode).map(bytes.decode)
                             | st.text(max_size=20).map(lambda p: base64.b64encode(f"p={p}".encode()).decode()),
                             max_size=3))
def test_any_history_query_gets_a_json_answer(users, alice_in_chan, daphne, route, query):
    """Cursors and page sizes made by hand (a cursor is base64 of a query string, ``p=<id>``)."""
    path = path_for(daphne, "im/history/", route)
    check(users["alice"], "GET", f"{path}?{urllib.parse.urlencode(query, errors='surrogatepass')}", None)


# --- WebSocket --------------------------------------------------------------------------------------------------

#: The close codes a text frame may bring: 4001 (not a JSON object, or too deep) and 4003 (too big).
TEXT_CLOSE_CODES = {4001, 4003}
PONG, IGNORED = "pong", "ignored"
#: A binary frame is a protocol error; a text frame that is not UTF-8 never reaches freeim: the
#: WebSocket layer (autobahn, under daphne) drops the connection (1006 in a browser).
BINARY, NOT_UTF8 = "binary", "not UTF-8"
DROPPED = "dropped without a close frame"
PING = '{"type": "ping"}'

#: Around the limit (64) and past the recursion limit of json's parser (~1,000), up to what fits in 4096.
depths = st.integers(1, 2048) | st.sampled_from([64, 65, 1000, 2048])
texts = st.one_of(
    json_values.map(json.dumps),
    st.fixed_dictionaries({"type": st.sampled_from(["ping", "PING", "pong", ""]) | json_values},
                          optional={"data": json_values}).map(json.dumps),
    depths.map(lambda depth: "[" * depth + "]" * depth),
    depths.map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    st.integers(1, 4090).map(lambda digits: '{"type": "ping", "n": ' + "9" * digits + "}"),
    st.integers(4000, 4200).map(lambda size: " " * size + PING),
    st.sampled_from([PING, '{"type": "ping"', "NaN", '{"type": NaN}', '{"t": "\\ud800"}', "", "null"]),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=300),
)
frames = st.one_of(
    texts.map(lambda text: ("text", text)),
    st.binary(max_size=100).map(lambda data: (BINARY, data)),
    st.sampled_from([b"\xff", b"\xed\xa0\x80", b'{"type": "\xc3"}']).map(lambda data: (NOT_UTF8, data)),
)


def expected(kind: str, frame: str | bytes) -> str | int:
    """What the node does with a frame: PONG, IGNORED or a close code (:func:`freeim.protocol.parse_inbound`)."""
    if kind == BINARY:
        return CloseCode.PROTOCOL_ERROR
    if kind == NOT_UTF8:
        return DROPPED
    try:
        return PONG if parse_inbound(frame, None) == "ping" else IGNORED
    except ValueError as error:
        assert error.args[0] in TEXT_CLOSE_CODES, f"{frame!r:.200} would close with {error.args[0]}"
        return error.args[0]


def reaction(ws: ClientConnection, kind: str, frame: str | bytes, wanted: str | int) -> str | int:
    """What the node did with ``frame``. An ignored frame is followed by a ping, whose pong shows that
    nothing else came; and nothing is sent after a frame meant to close the socket, nor does the
    client close while a pong is due (a pong sent to a closed socket is another matter)."""
    try:
        ws.send(frame, text=kind == NOT_UTF8 or None)
        if wanted == IGNORED:
            ws.send(PING)
        if wanted in (PONG, IGNORED):
            reply = ws.recv(timeout=FRAME_TIMEOUT)
            assert json.loads(reply) == {"type": "pong"}, reply
            return wanted
        ws.recv(timeout=FRAME_TIMEOUT)
        pytest.fail(f"{kind} frame {frame!r:.200} got an answer instead of closing with {wanted}")
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else DROPPED


@FUZZ
@given(sent=st.lists(frames, min_size=1, max_size=4))
def test_any_frame_gets_a_pong_silence_or_a_documented_close_code(users, sent):
    carol = users["carol"]
    with connect(carol.request("POST", "/im/connect/", b"{}")[1]["url"], proxy=None) as ws:
        for kind, frame in sent:
            wanted = expected(kind, frame)
            assert reaction(ws, kind, frame, wanted) == wanted, f"{kind} frame {frame!r:.200}"
            if wanted not in (PONG, IGNORED):
                return


@FUZZ
@given(segment=segments)
def test_any_other_websocket_path_closes_with_4004(daphne, segment):
    path = "/" + urllib.parse.quote(segment, safe="", errors="surrogatepass")
    assume(path != "/ws")  # freeim's own: refused (HTTP 403) without a token
    with connect(f"ws://127.0.0.1:{daphne.port}{path}", proxy=None) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=FRAME_TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.UNKNOWN_PATH

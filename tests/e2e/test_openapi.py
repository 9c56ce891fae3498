"""The REST API held to its own OpenAPI schema (freeim's ``openapi`` extra), on a real daphne process of the demo.

schemathesis reads the schema the demo serves at ``im/schema/`` and sends what it generates from it, valid
input and invalid, to every operation, as a user and as staff. Every answer is below 500 and conforms to the
schema: a status code it lists, JSON, and a body of the schema's shape. The Swagger UI at ``im/schema/ui/``
loads its scripts from the server's own static files. One daphne process serves the module; its log must
hold no traceback.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from websockets.sync.client import connect

from tests.e2e.daphne_server import DaphneServer, serving_a_group
from tests.e2e.test_fuzz import drain

pytest_plugins = ["tests.e2e.daphne_server"]  # daphne's log tail in the report of a failing test

USERS = {"alice": False, "bob": False, "staff": True}
CHAN, GROUP = "room", "crew"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
#: CI-sized: 20 operations x this many cases x 2 callers, ~30 s. deadline=None: a request's time depends on the
#: machine.
EXAMPLES = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.filter_too_much])
#: Every operation of the schema, by its operationId.
OPERATIONS = [
    "connect", "send_message", "mark_read", "list_online", "get_online", "force_offline", "list_chans", "join_chan",
    "leave_chan", "list_chan_members", "send_chan_message", "broadcast",
    "list_my_groups", "get_group", "add_group_member", "remove_group_member", "send_group_message",
    "list_conversations", "get_conversation", "get_chan_history",
]


@pytest.fixture(scope="module")
def daphne() -> Iterator[DaphneServer]:
    with serving_a_group(USERS, GROUP, "alice") as server:
        yield server


@pytest.fixture(scope="module")
def alice_online(daphne: DaphneServer) -> Iterator[None]:
    """alice online and in chan ``room`` (until a generated force-offline closes her socket), so that joins,
    chan messages and the chan's history get past their checks."""
    alice = session_of(daphne, "alice")
    # No keepalive pings: websockets draws their payloads from the random module, which Hypothesis, drawing
    # cases meanwhile, would warn about.
    url = alice.post(f"{daphne.base}/im/connect/", json={}).json()["url"]
    with connect(url, proxy=None, ping_interval=None) as ws:
        reader = threading.Thread(target=drain, args=(ws,), daemon=True)
        reader.start()
        assert alice.post(f"{daphne.base}/im/chans/{CHAN}/join/").status_code == 200
        yield
    reader.join(5)


def session_of(server: DaphneServer, name: str) -> requests.Session:
    """A requests session logged in as ``name``, with the CSRF token its writes need (no Basic auth: the server
    would hash the password on every call)."""
    session = requests.Session()
    session.trust_env = False  # the server is on loopback: no proxy from the environment
    session.cookies.set("sessionid", server.sessions[name], domain="127.0.0.1", path="/")
    session.get(f"{server.base}/").raise_for_status()  # the chat page sets the CSRF cookie
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session


@pytest.fixture(scope="module")
def api_schema(daphne: DaphneServer) -> schemathesis.BaseSchema:
    # No generated credentials: the callers' sessions authenticate (a Basic header would be checked first).
    config = {"base-url": daphne.base, "generation": {"with-security-parameters": False}}
    return schemathesis.openapi.from_url(f"{daphne.base}/im/schema/", config=schemathesis.Config.from_dict(config))


@pytest.fixture(scope="module")
def callers(daphne: DaphneServer, alice_online: None) -> list[requests.Session]:
    return [session_of(daphne, "alice"), session_of(daphne, "staff")]


def test_every_operation_is_run(api_schema):
    """Fails when the schema gains an operation of freeim's that is not in OPERATIONS (the demo's own, under
    /demo/, are not freeim's)."""
    served = {operation["operationId"] for route, path in api_schema.raw_schema["paths"].items()
              if route.startswith("/im/") for operation in path.values()}
    assert served == set(OPERATIONS)


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_answers_conform_to_the_schema(api_schema, callers, daphne, operation_id):
    """Cases of valid and of invalid input, each sent as a user and as staff. Half of them name the chan, the
    group and a client that exist, so that answers past the 404s and 403s are checked too."""
    operation = api_schema.find_operation_by_id(operation_id)
    cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)
    known = {"chan": CHAN, "slug": GROUP, "client_id": str(daphne.ids["bob"])}

    @EXAMPLES
    @given(case=cases, name_known_ones=st.booleans())
    def answers_conform(case, name_known_ones):
        if name_known_ones and case.path_parameters:
            case.path_parameters = {name: known[name] for name in case.path_parameters}
        for caller in callers:
            case.call_and_validate(session=caller, checks=CHECKS)

    answers_conform()


def test_the_swagger_ui_comes_from_local_static_files(daphne):
    """drf-spectacular-sidecar's copy of Swagger UI, never a CDN's."""
    browser = requests.Session()
    browser.trust_env = False
    page = browser.get(f"{daphne.base}/im/schema/ui/")
    assert page.status_code == 200, page.text
    assert "://" not in page.text  # no other site's script, style or schema
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in assets
    for url in assets:
        assert browser.get(f"{daphne.base}{url}").status_code == 200, url

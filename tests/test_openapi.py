"""freeim's OpenAPI description (freeim/openapi.py and the apps' ``openapi`` modules): drf-spectacular describes
every endpoint without a warning, with the status codes the README gives it and the error bodies
``freeim_exception_handler`` returns; freeim runs as well without drf-spectacular installed.

The schema is made as CI would make it, ``manage.py spectacular --fail-on-warn --validate``, for the demo's
settings and the suite's. tests/e2e/test_openapi.py holds a real server to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated, ParseError, PermissionDenied, UnsupportedMediaType
from rest_framework.renderers import JSONRenderer

import freeim.groups.urls
import freeim.history.urls
import freeim.urls
from freeim import exceptions
from freeim.rest.serializers import MessageSerializer
from freeim.rest.views import freeim_exception_handler

ROOT = Path(__file__).resolve().parent.parent
MOUNTS = {"/im/": freeim.urls, "/im/groups/": freeim.groups.urls, "/im/history/": freeim.history.urls}
#: Every operation and its statuses, as the README's REST tables give them; 401 and 403 everywhere (not
#: authenticated, not allowed), 400 where there is input, 413 and 415 (not JSON) where there is a body, 503 where
#: Redis is asked.
STATUSES = {
    ("post", "/im/connect/"): {200, 400, 401, 403, 413, 415, 503},
    ("post", "/im/messages/"): {202, 400, 401, 403, 413, 415, 503},
    ("post", "/im/messages/read/"): {200, 400, 401, 403, 413, 415, 503},
    ("get", "/im/online/"): {200, 400, 401, 403, 503},
    ("get", "/im/online/{client_id}/"): {200, 400, 401, 403, 503},
    ("post", "/im/online/{client_id}/offline/"): {202, 400, 401, 403, 503},
    ("get", "/im/chans/"): {200, 400, 401, 403, 503},
    ("post", "/im/chans/{chan}/join/"): {200, 400, 401, 403, 409, 503},
    ("post", "/im/chans/{chan}/leave/"): {200, 400, 401, 403, 503},
    ("get", "/im/chans/{chan}/members/"): {200, 400, 401, 403, 503},
    ("post", "/im/chans/{chan}/messages/"): {202, 400, 401, 403, 413, 415, 503},
    ("post", "/im/broadcast/"): {202, 400, 401, 403, 413, 415, 503},
    ("get", "/im/groups/"): {200, 401, 403, 503},
    ("get", "/im/groups/{slug}/"): {200, 401, 403, 404, 503},
    ("post", "/im/groups/{slug}/members/"): {201, 400, 401, 403, 404, 413, 415, 503},
    ("delete", "/im/groups/{slug}/members/{client_id}/"): {204, 400, 401, 403, 404},
    ("post", "/im/groups/{slug}/messages/"): {202, 400, 401, 403, 404, 413, 415, 503},
    ("get", "/im/history/conversations/"): {200, 401, 403},
    ("get", "/im/history/conversations/{client_id}/"): {200, 400, 401, 403, 404},
    ("get", "/im/history/chans/{chan}/"): {200, 400, 401, 403, 404, 503},
}


def spectacular(settings_module: str, schema_file: Path) -> subprocess.CompletedProcess[str]:
    """``manage.py spectacular --fail-on-warn --validate`` with ``settings_module``, into ``schema_file``."""
    return subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--fail-on-warn", "--validate", "--format", "openapi-json",
         "--file", str(schema_file)],
        cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE": settings_module}, capture_output=True, text=True,
        timeout=120)


@pytest.fixture(scope="module", params=["demo_project.settings", "tests.settings"])
def schema(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    schema_file = tmp_path_factory.mktemp("schema") / "schema.json"
    done = spectacular(request.param, schema_file)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stderr and "Error" not in done.stderr, done.stderr
    loaded: dict[str, Any] = json.loads(schema_file.read_text())
    return loaded


def operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """freeim's operations (the demo's own, under /demo/, are its business)."""
    return {(method, path): operation for path, methods in schema["paths"].items() if path.startswith("/im/")
            for method, operation in methods.items()}


def test_every_route_is_an_operation_with_its_statuses(schema):
    assert {path for _method, path in STATUSES} == {
        prefix + str(pattern.pattern).replace("<str:", "{").replace(">", "}")
        for prefix, urls in MOUNTS.items() for pattern in urls.urlpatterns if pattern.name != "unknown"}
    assert {key: {int(status) for status in operation["responses"]}
            for key, operation in operations(schema).items()} == STATUSES


def test_each_operation_has_a_description_and_an_id_of_its_own(schema):
    described = operations(schema).values()
    assert len({operation["description"] for operation in described}) == len(STATUSES)
    assert len({operation["summary"] for operation in described}) == len(STATUSES)
    assert len({operation["operationId"] for operation in described}) == len(STATUSES)


def test_every_error_has_a_json_body_and_says_what_it_means(schema):
    for operation in operations(schema).values():
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["description"], (operation["operationId"], status)
                body = response["content"]["application/json"]["schema"]["$ref"]
                assert body.endswith("/BadRequest" if status == "400" else "/Error"), (operation["operationId"], status)


def error_body(exc: Exception) -> Any:
    """The JSON freeim's views answer ``exc`` with."""
    response = freeim_exception_handler(exc, {})
    assert response is not None
    return response.status_code, json.loads(JSONRenderer().render(response.data))


def subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in [direct, *subclasses(direct)]]


def validates(schema: dict[str, Any], component: str, body: Any) -> None:
    jsonschema.validate(body, schema["components"]["schemas"][component])


def test_freeims_errors_have_the_bodies_the_schema_gives(schema):
    for error in subclasses(exceptions.FreeIMError):
        status, body = error_body(error())
        assert body == {"detail": error.default_message, "code": error.code}
        validates(schema, "BadRequest" if status == 400 else "Error", body)
    for drf_error in (NotAuthenticated(), PermissionDenied(), UnsupportedMediaType("text/plain")):
        validates(schema, "Error", error_body(drf_error)[1])


def test_bad_input_has_the_body_the_schema_gives(schema):
    validates(schema, "BadRequest", error_body(ParseError("JSON parse error - Expecting value"))[1])
    fields = MessageSerializer(data={"to": [1, "", None], "data": 1, "receipt": "maybe"})
    assert not fields.is_valid()
    status, body = error_body(serializers.ValidationError(fields.errors))
    assert status == 400 and set(body) == {"to", "receipt"} and set(body["to"]) == {"1", "2"}
    validates(schema, "BadRequest", body)
    with pytest.raises(jsonschema.ValidationError):
        validates(schema, "BadRequest", {"to": "not a list of messages"})


WITHOUT_SPECTACULAR = """
import sys
sys.modules["drf_spectacular"] = None  # as if it were not installed: importing it fails
import django
from django.conf import settings
from tests import settings as suite
settings.configure(**{**{name: getattr(suite, name) for name in dir(suite) if name.isupper()},
                      "INSTALLED_APPS": [app for app in suite.INSTALLED_APPS if not app.startswith("drf_spectacular")],
                      "REST_FRAMEWORK": {key: value for key, value in suite.REST_FRAMEWORK.items()
                                         if key != "DEFAULT_SCHEMA_CLASS"}})
django.setup()
from django.core.management import call_command
from django.test import Client
call_command("check")
answer = Client().post("/im/messages/", {}, content_type="application/json")
described = sorted(name for name in sys.modules if name.startswith("freeim") and "openapi" in name)
print(answer.status_code, answer.json(), described)
"""


def test_freeim_runs_without_drf_spectacular():
    done = subprocess.run([sys.executable, "-c", WITHOUT_SPECTACULAR], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={key: value for key, value in os.environ.items()
                                            if key != "DJANGO_SETTINGS_MODULE"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == ("401 {'detail': 'Authentication credentials were not provided.'} []"), \
        done.stdout

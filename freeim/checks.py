"""System checks for the ``FREEIM`` setting. They never touch Redis or the database."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.utils.module_loading import import_string

from . import redis_url
from .conf import DATABASE_HISTORY, DEFAULTS, REDIS_BACKEND, conf

_POSITIVE_INTS = ("TOKEN_TTL", "MAX_MESSAGE_BYTES", "MAX_BACKLOG_BYTES", "MAX_CHANS_PER_CLIENT",
                  "MAX_CONNECTIONS_PER_CLIENT", "MAX_FANOUT_BYTES", "TRANSPORT_MAX_BYTES", "MAX_INBOUND_RATE",
                  "INBOX_MAX_MESSAGES", "INBOX_MAX_BYTES", "INBOX_MAX_AGE")


def check_settings(**kwargs: Any) -> list[CheckMessage]:
    """Validate ``settings.FREEIM``; one message per problem, ids ``freeim.E0NN``/``W0NN``."""
    raw = getattr(settings, "FREEIM", {})
    if not isinstance(raw, dict):
        return [Error("FREEIM must be a dict.", hint="FREEIM = {'SERVERS': [...], ...}", id="freeim.E001")]
    errors: list[CheckMessage] = []
    unknown = sorted(set(raw) - set(DEFAULTS) - {"CHAN_MESSAGE_STORE"})  # E018 says what replaced it
    if unknown:
        errors.append(Warning(f"FREEIM has unknown keys: {', '.join(unknown)}.",
                              hint=f"Known keys: {', '.join(DEFAULTS)}.", id="freeim.W001"))
    errors += _check_servers(raw)
    path = raw.get("PATH", DEFAULTS["PATH"])
    if not isinstance(path, str) or not path.startswith("/"):
        errors.append(Error("FREEIM['PATH'] must be a URL path starting with '/'.", hint="e.g. '/ws'",
                            id="freeim.E004"))
    for key in _POSITIVE_INTS:
        value = raw.get(key, DEFAULTS[key])
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            errors.append(Error(f"FREEIM['{key}'] must be a positive int, not {value!r}.", id="freeim.E005"))
    errors += _check_redis_url(raw.get("REDIS_URL"))
    replicas = raw.get("REDIS_WAIT_REPLICAS", DEFAULTS["REDIS_WAIT_REPLICAS"])
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0):
        errors.append(Error(f"FREEIM['REDIS_WAIT_REPLICAS'] must be an int >= 0 or None, not {replicas!r}.",
                            hint="How many Redis replicas must have a send before it returns; 0: none; None: 1 "
                                 "with a Sentinel URL, else 0.", id="freeim.E021"))
    ttl = raw.get("HEARTBEAT_TTL", DEFAULTS["HEARTBEAT_TTL"])
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 1 <= ttl <= 300:
        errors.append(Error(f"FREEIM['HEARTBEAT_TTL'] must be 1-300 seconds, not {ttl!r}.", id="freeim.E010"))
    grace = raw.get("DRAIN_GRACE", DEFAULTS["DRAIN_GRACE"])
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace <= 300:
        errors.append(Error(f"FREEIM['DRAIN_GRACE'] must be 0-300 seconds, not {grace!r}.",
                            hint="0 stops a node at once; its clients go offline with it.", id="freeim.E022"))
    prefix = raw.get("REDIS_PREFIX", DEFAULTS["REDIS_PREFIX"])
    if not isinstance(prefix, str) or not prefix or any(ch.isspace() or ch in "{}" for ch in prefix):
        errors.append(Error("FREEIM['REDIS_PREFIX'] must be a non-empty string without spaces or braces.",
                            hint="Braces would become the Redis Cluster hash tag of every key.", id="freeim.E011"))
    if raw.get("ROUTING", DEFAULTS["ROUTING"]) not in ("modulo", "rendezvous"):
        errors.append(Error("FREEIM['ROUTING'] must be 'modulo' or 'rendezvous'.", id="freeim.E007"))
    errors += _check_import("CLIENT_ID_RESOLVER", callable, "a callable taking a user", "freeim.E008")
    errors += _check_import("JSON_ENCODER", _is_encoder, "a json.JSONEncoder subclass", "freeim.E019")
    errors += _check_history(raw)
    errors += _check_backend(raw)
    errors += _check_fanout(raw)
    length = raw.get("MAX_CLIENT_ID_LENGTH", DEFAULTS["MAX_CLIENT_ID_LENGTH"])
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 128:
        errors.append(Error(f"FREEIM['MAX_CLIENT_ID_LENGTH'] must be 1-128, not {length!r}.",
                            hint="freeim.groups stores client ids in a 128-character column.", id="freeim.E014"))
    timeout = raw.get("HANDSHAKE_TIMEOUT", DEFAULTS["HANDSHAKE_TIMEOUT"])
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 1 <= timeout <= 300:
        errors.append(Error(f"FREEIM['HANDSHAKE_TIMEOUT'] must be 1-300 seconds, not {timeout!r}.",
                            id="freeim.E015"))
    for key in ("HEALTH_PATH", "METRICS_PATH"):
        path = raw.get(key, DEFAULTS[key])
        if path is not None and not (isinstance(path, str) and path.startswith("/") and not path.endswith("/")
                                     and " " not in path):
            errors.append(Error(f"FREEIM['{key}'] must be a path like {DEFAULTS[key]!r}, or None, not {path!r}.",
                                hint="The probes are <HEALTH_PATH>/live and /ready; scrapes go to METRICS_PATH.",
                                id="freeim.E020"))
    token = raw.get("METRICS_TOKEN")
    if token is not None and not (isinstance(token, str) and len(token) >= 16 and token.isprintable()
                                  and " " not in token):
        errors.append(Error("FREEIM['METRICS_TOKEN'] must be a string of at least 16 printable characters without "
                            "spaces, or None.", hint="For example secrets.token_urlsafe(); a scrape sends it as "
                            "'Authorization: Bearer <token>'.", id="freeim.E020"))
    lag = raw.get("HEALTH_MAX_LOOP_LAG", DEFAULTS["HEALTH_MAX_LOOP_LAG"])
    if isinstance(lag, bool) or not isinstance(lag, (int, float)) or not lag > 0:
        errors.append(Error(f"FREEIM['HEALTH_MAX_LOOP_LAG'] must be a positive number of seconds, not {lag!r}.",
                            id="freeim.E020"))
    if not isinstance(raw.get("GC_FREEZE", DEFAULTS["GC_FREEZE"]), bool):
        errors.append(Error("FREEIM['GC_FREEZE'] must be True or False.", id="freeim.E013"))
    return errors


def _check_redis_url(url: object) -> list[CheckMessage]:
    """One Redis server's URL, a Sentinel one or a cluster one (:mod:`freeim.redis_url`), that parses: redis-py would
    raise ``ValueError`` only at the first call, for a port out of range or a broken IPv6 address."""
    if url is None:
        return []
    try:
        redis_url.parse(url)
    except ValueError as error:
        return [Error(f"FREEIM['REDIS_URL'] is not a Redis URL ({error}): {url!r}.", hint=redis_url.FORMS,
                      id="freeim.E006")]
    return []


def _check_import(key: str, fits: Callable[[Any], bool], what: str, check_id: str) -> list[CheckMessage]:
    """``FREEIM[key]`` is a dotted path to ``what`` (its default is one)."""
    path = getattr(conf, key)
    hint = f"A dotted path to {what}, such as {DEFAULTS[key]!r}."
    try:
        found = import_string(path) if isinstance(path, str) else None
    except ImportError as exc:
        return [Error(f"FREEIM['{key}'] cannot be imported: {exc}.", hint=hint, id=check_id)]
    if found is None or not fits(found):
        return [Error(f"FREEIM['{key}'] is not {what}: {path!r}.", hint=hint, id=check_id)]
    return []


def _is_encoder(found: object) -> bool:
    return isinstance(found, type) and issubclass(found, json.JSONEncoder)


def _check_fanout(raw: dict[str, Any]) -> list[CheckMessage]:
    fanout = raw.get("MAX_FANOUT_BYTES", DEFAULTS["MAX_FANOUT_BYTES"])
    message = raw.get("MAX_MESSAGE_BYTES", DEFAULTS["MAX_MESSAGE_BYTES"])
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (fanout, message)):
        return []  # E005 says what is wrong with them
    if fanout < message:
        return [Warning(f"FREEIM['MAX_FANOUT_BYTES'] ({fanout}) is below MAX_MESSAGE_BYTES ({message}): a message "
                        "that may be sent may still be refused for one receiver.",
                        hint="MAX_FANOUT_BYTES bounds a message times its receivers; make it a multiple of "
                             "MAX_MESSAGE_BYTES.", id="freeim.W002")]
    return []


def _check_history(raw: dict[str, Any]) -> list[CheckMessage]:
    if "CHAN_MESSAGE_STORE" in raw:
        return [Error("FREEIM['CHAN_MESSAGE_STORE'] is gone: freeim.history keeps chan and private messages.",
                      hint=f"Remove CHAN_MESSAGE_STORE, add 'freeim.history' to INSTALLED_APPS and set "
                           f"FREEIM['HISTORY'] = '{DATABASE_HISTORY}' (or your own history class).",
                      id="freeim.E018")]
    path = raw.get("HISTORY")
    if path is None:
        if "HISTORY" not in raw and apps.is_installed("freeim.history"):  # an explicit None says: on purpose
            return [Warning("freeim.history is installed but FREEIM['HISTORY'] is not set: no message is kept.",
                            hint=f"Set FREEIM['HISTORY'] = '{DATABASE_HISTORY}'.", id="freeim.W003")]
        return []
    hint = ("A dotted path to a class with keep_messages, keep_chan_message, mark_read and forget_chan "
            "(freeim.history.History).")
    try:
        history = import_string(path) if isinstance(path, str) else None
    except ImportError as exc:
        return [Error(f"FREEIM['HISTORY'] cannot be imported: {exc}.", hint=hint, id="freeim.E012")]
    if not inspect.isclass(history) or not all(callable(getattr(history, method, None)) for method in
                                               ("keep_messages", "keep_chan_message", "mark_read", "forget_chan")):
        return [Error(f"FREEIM['HISTORY'] is not a history class: {path!r}.", hint=hint, id="freeim.E012")]
    if path == DATABASE_HISTORY and not apps.is_installed("freeim.history"):
        return [Error("FREEIM['HISTORY'] is the database history, but freeim.history is not installed.",
                      hint="Add 'freeim.history' to INSTALLED_APPS and migrate.", id="freeim.E012")]
    return []


def _check_backend(raw: dict[str, Any]) -> list[CheckMessage]:
    """``BACKEND`` names a :class:`~freeim.backends.contract.Backend` subclass (imported, never built: no
    connection is made here) and ``BACKEND_OPTIONS`` are keyword arguments its constructor takes."""
    from .backends.contract import Backend

    options = raw.get("BACKEND_OPTIONS", {})
    if not isinstance(options, dict) or not all(isinstance(key, str) for key in options):
        return [Error("FREEIM['BACKEND_OPTIONS'] must be a dict of keyword arguments for the BACKEND class.",
                      id="freeim.E017")]
    path = conf.BACKEND
    hint = "A dotted path to a freeim Backend class, e.g. 'freeim.backends.redis.RedisBackend'."
    try:
        found = import_string(path) if isinstance(path, str) else None
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == "redis":
            hint = "Install the Redis extra: pip install 'django-freeim[redis]' (redis-py and hiredis)."
        return [Error(f"FREEIM['BACKEND'] cannot be imported: {exc}.", hint=hint, id="freeim.E016")]
    if not (isinstance(found, type) and issubclass(found, Backend) and found is not Backend):
        return [Error(f"FREEIM['BACKEND'] is not a freeim Backend class: {path!r}.", hint=hint, id="freeim.E016")]
    try:
        inspect.signature(found).bind(**options)
    except TypeError as exc:
        return [Error(f"FREEIM['BACKEND_OPTIONS'] do not fit {path}: {exc}.", id="freeim.E017")]
    if path == REDIS_BACKEND and not raw.get("REDIS_URL") and not options.get("url"):
        return [Error("FREEIM['BACKEND'] is the Redis backend, but no Redis URL is set.",
                      hint="Set FREEIM['REDIS_URL'].", id="freeim.E016")]
    return []


def _check_servers(raw: dict[str, Any]) -> list[CheckMessage]:
    servers = raw.get("SERVERS", [])
    if not isinstance(servers, (list, tuple)) or not all(isinstance(s, str) and s for s in servers):
        return [Error("FREEIM['SERVERS'] must be a list of 'host:port' or 'ws(s)://host[:port]' strings.",
                      id="freeim.E002")]
    errors: list[CheckMessage] = []
    for entry in servers:
        if not _valid_server(entry):
            errors.append(Error(f"FREEIM['SERVERS'] entry {entry!r} is not 'host:port' or 'ws(s)://host[:port]'.",
                                id="freeim.E002"))
    if len(set(servers)) != len(servers):
        errors.append(Error("FREEIM['SERVERS'] lists a node twice.", id="freeim.E002"))
    explicit = raw.get("SERVER") or os.environ.get("FREEIM_SERVER")
    if servers and explicit and explicit not in servers:
        errors.append(Error(f"FREEIM['SERVER'] ({explicit!r}) is not in FREEIM['SERVERS'].",
                            hint="Set FREEIM_SERVER to this node's entry in SERVERS, or leave it unset "
                                 "in business processes.", id="freeim.E003"))
    if len(servers) > 1 and conf.EMBEDDED:
        errors.append(Error("Several FREEIM['SERVERS'] need FREEIM['REDIS_URL']: the embedded store is one process.",
                            hint="Set REDIS_URL (or a shared BACKEND), or list only this process's node.",
                            id="freeim.E009"))
    return errors


def _valid_server(entry: str) -> bool:
    parts = urlsplit(entry if "://" in entry else f"ws://{entry}")
    try:
        port = parts.port
    except ValueError:
        return False
    return parts.scheme in ("ws", "wss") and bool(parts.hostname) and parts.path in ("", "/") \
        and not parts.query and (port is not None or "://" in entry)

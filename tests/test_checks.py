import pytest
from django.test import override_settings

from freeim.checks import check_settings
from freeim.conf import conf


def ids_for(freeim_setting):
    """The check ids for ``freeim_setting`` (the suite installs freeim.history: ``HISTORY`` is off unless given)."""
    if isinstance(freeim_setting, dict):
        freeim_setting = {"HISTORY": None, **freeim_setting}
    with override_settings(FREEIM=freeim_setting):
        return [message.id for message in check_settings()]


def test_default_settings_pass():
    assert ids_for({}) == []


@pytest.mark.parametrize(("setting", "expected"), [
    ([], ["freeim.E001"]),
    ({"SERVRES": []}, ["freeim.W001"]),
    ({"SERVERS": "a:1"}, ["freeim.E002"]),
    ({"SERVERS": ["no-port"]}, ["freeim.E002"]),
    ({"SERVERS": ["http://a:1"]}, ["freeim.E002"]),
    ({"SERVERS": ["a:1", "a:1"], "REDIS_URL": "redis://x"}, ["freeim.E002"]),
    ({"SERVERS": ["a:1"], "SERVER": "b:2"}, ["freeim.E003"]),
    ({"PATH": "ws"}, ["freeim.E004"]),
    ({"TOKEN_TTL": 0}, ["freeim.E005"]),
    ({"TOKEN_TTL": "10"}, ["freeim.E005"]),
    ({"REDIS_URL": "http://x"}, ["freeim.E006"]),
    ({"REDIS_URL": "redis://127.0.0.1:99999/0"}, ["freeim.E006"]),  # a ValueError at the first call
    ({"REDIS_URL": "redis://[::1/0"}, ["freeim.E006"]),  # crashed `check` itself
    ({"REDIS_URL": "redis+sentinel://s1:26379,s2:26379/freeim/0"}, []),
    ({"REDIS_URL": "redis+sentinel://s1:26379"}, ["freeim.E006"]),  # no service name
    ({"REDIS_URL": "redis+cluster://n1:7000,n2:7000"}, []),
    ({"REDIS_URL": "redis+cluster://n1:7000/1"}, ["freeim.E006"]),  # a cluster has database 0 only
    ({"REDIS_WAIT_REPLICAS": 1}, []), ({"REDIS_WAIT_REPLICAS": None}, []),
    ({"REDIS_WAIT_REPLICAS": -1}, ["freeim.E021"]),
    ({"REDIS_WAIT_REPLICAS": True}, ["freeim.E021"]),
    ({"ROUTING": "random"}, ["freeim.E007"]),
    ({"CLIENT_ID_RESOLVER": "no.such.thing"}, ["freeim.E008"]),
    ({"CLIENT_ID_RESOLVER": "os.sep"}, ["freeim.E008"]),  # imports, but is not callable
    ({"CLIENT_ID_RESOLVER": 42}, ["freeim.E008"]),
    ({"JSON_ENCODER": "no.such.Encoder"}, ["freeim.E019"]),
    ({"HEALTH_PATH": "health"}, ["freeim.E020"]), ({"HEALTH_PATH": "/health/"}, ["freeim.E020"]),
    ({"METRICS_PATH": "metrics"}, ["freeim.E020"]), ({"HEALTH_MAX_LOOP_LAG": 0}, ["freeim.E020"]),
    ({"HEALTH_MAX_LOOP_LAG": "1"}, ["freeim.E020"]),
    ({"DRAIN_GRACE": -1}, ["freeim.E022"]), ({"DRAIN_GRACE": 301}, ["freeim.E022"]),
    ({"DRAIN_GRACE": "5"}, ["freeim.E022"]),
    ({"METRICS_TOKEN": "short"}, ["freeim.E020"]), ({"METRICS_TOKEN": "sixteen chars ok"}, ["freeim.E020"]),
    ({"METRICS_TOKEN": 1234567890123456}, ["freeim.E020"]), ({"METRICS_TOKEN": "x" * 16}, []),
    ({"JSON_ENCODER": "json.dumps"}, ["freeim.E019"]),
    ({"SERVERS": ["a:1", "b:2"]}, ["freeim.E009"]),
    ({"HISTORY": "no.such.thing"}, ["freeim.E012"]),
    ({"HISTORY": "freeim.conf.DEFAULTS"}, ["freeim.E012"]),
    ({"HISTORY": "freeim.conf.Settings"}, ["freeim.E012"]),
    ({"HISTORY": 42}, ["freeim.E012"]),
    ({"CHAN_MESSAGE_STORE": "freeim.groups.history.store"}, ["freeim.E018"]),
    ({"GC_FREEZE": "yes"}, ["freeim.E013"]),
    ({"REDIS_PREFIX": "a{b}"}, ["freeim.E011"]),
    ({"MAX_CHANS_PER_CLIENT": 0}, ["freeim.E005"]),
    ({"MAX_CONNECTIONS_PER_CLIENT": -1}, ["freeim.E005"]),
    ({"MAX_FANOUT_BYTES": 1.5}, ["freeim.E005"]),
    ({"TRANSPORT_MAX_BYTES": None}, ["freeim.E005"]),
    ({"MAX_INBOUND_RATE": True}, ["freeim.E005"]),
    ({"MAX_CLIENT_ID_LENGTH": 129}, ["freeim.E014"]),
    ({"MAX_CLIENT_ID_LENGTH": 0}, ["freeim.E014"]),
    ({"HANDSHAKE_TIMEOUT": 0}, ["freeim.E015"]),
    ({"HANDSHAKE_TIMEOUT": "10"}, ["freeim.E015"]),
    ({"BACKEND": "no.such.Backend"}, ["freeim.E016"]),
    ({"BACKEND": "freeim.conf.DEFAULTS"}, ["freeim.E016"]),
    ({"BACKEND": "freeim.backends.redis.RedisBackend"}, ["freeim.E016"]),  # and no Redis URL
    ({"BACKEND": "freeim.backends.redis.RedisBackend", "REDIS_URL": "redis://x"}, []),
    ({"BACKEND_OPTIONS": ["url"]}, ["freeim.E017"]),
    ({"BACKEND_OPTIONS": {"bogus": 1}}, ["freeim.E017"]),  # the memory backend takes no options
    ({"REDIS_URL": "redis://x", "BACKEND_OPTIONS": {"nope": 1}}, ["freeim.E017"]),
    ({"REDIS_URL": "redis://x", "BACKEND_OPTIONS": {"prefix": "p"}}, []),
    ({"BACKEND": "freeim.backends.contract.Backend"}, ["freeim.E016"]),  # the contract, not a backend
    ({"MAX_FANOUT_BYTES": 1000}, ["freeim.W002"]),
    ({"MAX_FANOUT_BYTES": 1000, "MAX_MESSAGE_BYTES": 1000}, []),
])
def test_each_problem_has_its_id(setting, expected):
    assert ids_for(setting) == expected


def test_tls_bases_are_valid_servers():
    assert ids_for({"SERVERS": ["wss://im.example.com", "ws://10.0.0.2:6001"], "REDIS_URL": "redis://r:6379/0",
                    "SERVER": "wss://im.example.com"}) == []


def test_server_defaults(monkeypatch):
    monkeypatch.delenv("FREEIM_SERVER", raising=False)
    with override_settings(FREEIM={}):
        assert conf.SERVER == "local"
    with override_settings(FREEIM={"SERVERS": ["a:1"]}):
        assert conf.SERVER == "a:1" and conf.IS_NODE
    with override_settings(FREEIM={"SERVERS": ["a:1"], "REDIS_URL": "redis://r:6379/0"}):
        assert not conf.IS_NODE  # a one-node cluster's business process is no node
    monkeypatch.setenv("FREEIM_SERVER", "b:2")
    with override_settings(FREEIM={"SERVERS": ["a:1", "b:2"]}):
        assert conf.SERVER == "b:2"


def test_the_database_history_needs_its_app(settings):
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "freeim.history"]
    assert ids_for({"HISTORY": "freeim.history.store.ModelHistory"}) == ["freeim.E012"]


def test_the_history_app_without_a_history_warns_that_nothing_is_kept():
    with override_settings(FREEIM={}):
        assert [message.id for message in check_settings()] == ["freeim.W003"]


def test_a_redis_url_without_redis_py_installed_says_which_extra_to_install(monkeypatch):
    """With REDIS_URL set and redis missing, check passed and the first helper call raised ModuleNotFoundError."""
    import sys

    loaded = [name for name in sys.modules if name == "redis" or name.startswith(("redis.", "freeim.backends.redis"))]
    for name in loaded:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)  # as if it were not installed
    with override_settings(FREEIM={"HISTORY": None, "REDIS_URL": "redis://127.0.0.1:6379/0"}):
        [error] = check_settings()
    assert error.id == "freeim.E016" and "django-freeim[redis]" in error.hint

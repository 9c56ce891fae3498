"""The forms of REDIS_URL: one Redis server, a Sentinel-watched master, or a Redis Cluster."""

import pytest

from freeim.redis_url import ClusterTarget, SentinelTarget, channels_redis_host, parse


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://:pw@redis.example.com:6380/1",
                                 "unix:///run/redis.sock?db=2", "redis://[::1]:6379"])
def test_one_server_urls_are_left_to_redis_py(url):
    assert parse(url) == url


@pytest.mark.parametrize(("url", "expected"), [
    ("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,10.0.0.3/freeim",
     SentinelTarget((("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379)), "freeim")),
    ("redis+sentinel://:s%40cret@s1:5000/main/3", SentinelTarget((("s1", 5000),), "main", 3, None, "s@cret")),
    ("redis+sentinel://app:pw@[::1]:26379,s2/main?sentinel_password=pw2",
     SentinelTarget((("::1", 26379), ("s2", 26379)), "main", 0, "app", "pw", "pw2")),
])
def test_sentinel_urls_name_the_sentinels_the_service_and_the_database(url, expected):
    assert parse(url) == expected


@pytest.mark.parametrize(("url", "expected"), [
    ("redis+cluster://10.0.0.1:7000,10.0.0.2,[::1]:7002",
     ClusterTarget((("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002)))),
    ("redis+cluster://app:p%40ss@n1:7000", ClusterTarget((("n1", 7000),), "app", "p@ss")),
    ("rediss+cluster://:pw@n1", ClusterTarget((("n1", 6379),), None, "pw", tls=True)),
])
def test_cluster_urls_name_some_nodes_and_the_credentials_of_all(url, expected):
    assert parse(url) == expected


@pytest.mark.parametrize(("url", "says"), [
    ("http://x", "scheme 'http'"),
    ("redis://127.0.0.1:99999/0", "does not parse"),
    ("redis+sentinel://s1:26379", "service name"),
    ("redis+sentinel://s1:26379/", "service name"),
    ("redis+sentinel://s1:26379/main/x", "database 'x'"),
    ("redis+sentinel://s1:26379/main/0/more", "service name"),
    ("redis+sentinel://s1:263790/main", "port 263790"),
    ("redis+sentinel://s1:2a/main", "sentinel 's1:2a'"),
    ("redis+sentinel://s1,,s2/main", "sentinel ''"),
    ("redis+sentinel://s1/main?ssl=true", "unknown option ssl"),
    ("redis+cluster://n1:7000/0", "without a database"),
    ("redis+cluster://n1:7000?ssl=true", "without a database"),
    ("redis+cluster://n1:70000", "node port 70000"),
    ("redis+cluster://n1,,n2", "node ''"),
    ("redis+cluster://", "node ''"),
    (42, "URL string"),
])
def test_a_bad_url_says_what_is_wrong(url, says):
    with pytest.raises(ValueError, match=says):
        parse(url)


def test_channels_redis_gets_the_same_target():
    assert channels_redis_host("redis://r:6379/0") == {"address": "redis://r:6379/0", "socket_timeout": None}
    assert channels_redis_host("redis+sentinel://:pw@s1,s2:5000/main/2") == {
        "sentinels": [("s1", 26379), ("s2", 5000)], "master_name": "main", "db": 2, "sentinel_kwargs": {},
        "socket_timeout": None, "password": "pw"}


def test_channels_redis_is_refused_a_cluster():
    with pytest.raises(ValueError, match="does not run on Redis Cluster"):
        channels_redis_host("redis+cluster://n1:7000")

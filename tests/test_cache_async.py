"""RBCache's async methods: native on the asyncio engine (no thread hop), the same results as
their sync twins, one round per *_many call, SCAN, a dead node under IGNORE_EXCEPTIONS, async
views; each test on asyncio's loop and on uvloop's."""

from __future__ import annotations

import asyncio
import json

import asgiref.sync
import pytest
import redis
from django.http import JsonResponse
from django.test import AsyncClient, override_settings
from django.urls import path

from django_rb.cache import RBCache
from django_rb.testing import healthy, keys_per_host


def make_cache(nodes, **params):
    return RBCache([node.url(0) for node in nodes], params)


@pytest.fixture
def nodes(rb_nodes):
    with healthy(rb_nodes):
        yield rb_nodes


@pytest.fixture
def cache(nodes):
    return make_cache(nodes)


@pytest.fixture
def no_thread_hops(monkeypatch):
    """A sync_to_async call into django_rb fails the test: the async methods must not hop to
    a thread (Django's own hops, e.g. the ASGI handler's signals, go on as usual)."""
    original = asgiref.sync.SyncToAsync.__call__

    def refuse(self, *args, **kwargs):
        func = getattr(self.func, "__func__", self.func)
        if getattr(func, "__module__", "").startswith("django_rb"):
            raise AssertionError(f"thread hop to {self.func!r}")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(asgiref.sync.SyncToAsync, "__call__", refuse)


def scenario(cache, prefix, sync, arun):
    """The same operations, as a list of results, through the sync or the async methods."""

    async def run():
        results = []

        async def call(name, *args, **kwargs):
            try:
                if sync:
                    value = getattr(cache, name)(*args, **kwargs)
                else:
                    value = await getattr(cache, f"a{name}")(*args, **kwargs)
            except Exception as exc:  # the same error type on both sides
                value = type(exc).__name__
            results.append((name, value))

        await call("set", f"{prefix}a", {"x": [1, 2]}, 60)
        await call("get", f"{prefix}a")
        await call("get", f"{prefix}missing", "dflt")
        await call("add", f"{prefix}a", "no", 60)
        await call("add", f"{prefix}b", 10, None)
        await call("incr", f"{prefix}b", 5)
        await call("decr", f"{prefix}b", 3)
        await call("incr", f"{prefix}nope")
        await call("has_key", f"{prefix}b")
        await call("touch", f"{prefix}b", 100)
        await call("ttl", f"{prefix}b")
        await call("persist", f"{prefix}b")
        await call("ttl", f"{prefix}b")
        await call("expire", f"{prefix}b", 50)
        await call("pttl", f"{prefix}missing")
        await call("touch", f"{prefix}b", None)
        await call("ttl", f"{prefix}b")
        await call("set_many", {f"{prefix}m{i}": i for i in range(30)}, 60)
        await call("get_many", [f"{prefix}m{i}" for i in range(35)])
        await call("delete_many", [f"{prefix}m{i}" for i in range(10)])
        await call("get_many", [f"{prefix}m{i}" for i in range(12)])
        await call("get_or_set", f"{prefix}g", lambda: "made", 60)
        await call("get_or_set", f"{prefix}g", "other", 60)
        await call("incr_version", f"{prefix}g")
        await call("get", f"{prefix}g", version=2)
        await call("delete", f"{prefix}a")
        await call("delete", f"{prefix}a")
        await call("set", f"{prefix}z", "gone", 0)
        await call("get", f"{prefix}z")
        return results

    return arun(run())


def test_async_methods_give_the_sync_results(cache, no_thread_hops, arun):
    sync_results = scenario(cache, "s:", sync=True, arun=arun)
    cache.clear()
    async_results = scenario(cache, "s:", sync=False, arun=arun)
    assert async_results == sync_results
    assert ("incr", "ValueError") in async_results  # a missing key, in Django's words
    assert dict(async_results)["ttl"] is None  # after the persists, no expiry


def test_aget_many_is_one_round_per_node(cache, nodes, no_thread_hops, arun):
    owners = keys_per_host(cache.cluster, 5, stored=cache.make_key)
    keys = [key for ks in owners.values() for key in ks]
    for node in nodes:
        redis.Redis(port=node.port).config_resetstat()

    async def run():
        assert await cache.aset_many({key: key for key in keys}, timeout=None) == []
        return await cache.aget_many(keys)

    assert arun(run()) == {key: key for key in keys}
    for node in nodes:
        stats = redis.Redis(port=node.port).info("commandstats")
        assert stats["cmdstat_mget"]["calls"] == 1 and stats["cmdstat_mset"]["calls"] == 1


def test_two_hundred_concurrent_calls(cache, no_thread_hops, arun):
    cache.set_many({f"c{i}": i for i in range(40)})

    async def one(n):
        got = await cache.aget_many([f"c{(n + i) % 40}" for i in range(20)])
        await cache.aincr(f"c{n % 40}", 0)
        return got

    async def run():
        return await asyncio.gather(*(one(n) for n in range(200)))

    for n, got in enumerate(arun(run())):
        assert got == {f"c{(n + i) % 40}": (n + i) % 40 for i in range(20)}


def test_scan_methods_run_natively_with_the_sync_results(cache, nodes, no_thread_hops, arun):
    owners = keys_per_host(cache.cluster, 40, stored=lambda k: cache.make_key(f"u:{k}"))
    users = [f"u:{key}" for ks in owners.values() for key in ks]
    cache.set_many({key: 1 for key in users})
    cache.set_many({"other:1": 1, "u*[x]": 1})
    cache.set("u:old", 1, version=7)
    for node in nodes:
        redis.Redis(port=node.port).config_resetstat()

    async def run():
        listed = await cache.akeys("u:*")
        walked = [key async for key in cache.aiter_keys("u:*", itersize=7)]
        glob = await cache.akeys("u\\*\\[x]")
        versioned = await cache.akeys("u:*", version=7)
        deleted = await cache.adelete_pattern("u:*", itersize=5)
        return listed, walked, glob, versioned, deleted, await cache.akeys("u:*")

    sync = sorted(cache.keys("u:*")), sorted(cache.iter_keys("u:*", itersize=7))
    listed, walked, glob, versioned, deleted, after = arun(run())
    assert sorted(listed) == sorted(walked) == sync[0] == sync[1] == sorted(users)
    assert glob == ["u*[x]"] and versioned == ["u:old"]
    assert deleted == len(users) and after == []
    assert cache.get("other:1") == 1 and cache.get("u:old", version=7) == 1
    scans = [redis.Redis(port=n.port).info("commandstats")["cmdstat_scan"]["calls"] for n in nodes]
    assert min(scans) >= 6  # itersize 7 over 40 keys a node: several SCAN steps on every node


def test_scan_methods_with_a_dead_node(nodes, no_thread_hops, arun):
    ignoring = make_cache(
        nodes, OPTIONS={"IGNORE_EXCEPTIONS": True, "LOG_IGNORED_EXCEPTIONS": False}
    )
    owners = keys_per_host(ignoring.cluster, 4, stored=ignoring.make_key)
    ignoring.set_many({key: 1 for ks in owners.values() for key in ks})
    nodes[1].stop()
    alive = sorted(key for host, ks in owners.items() if host != 1 for key in ks)
    assert sorted(arun(ignoring.akeys("*"))) == sorted(ignoring.keys("*")) == alive
    assert arun(ignoring.adelete_pattern("*")) == len(alive)
    with pytest.raises(redis.ConnectionError):
        arun(make_cache(nodes).akeys("*"))


def test_aclear_and_a_dead_node_with_ignore_exceptions(nodes, no_thread_hops, arun):
    cache = make_cache(nodes, OPTIONS={"IGNORE_EXCEPTIONS": True, "LOG_IGNORED_EXCEPTIONS": False})
    owners = keys_per_host(cache.cluster, 3, stored=cache.make_key)
    keys = [key for ks in owners.values() for key in ks]
    cache.set_many({key: 1 for key in keys})
    nodes[2].stop()

    async def run():
        found = await cache.aget_many(keys)
        failed = await cache.aset_many({key: 2 for key in keys})
        return found, failed, await cache.aget(owners[2][0], "d"), await cache.aset(owners[2][0], 1)

    found, failed, missing, stored = arun(run())
    assert set(found) == set(keys) - set(owners[2])
    assert sorted(failed) == sorted(owners[2])
    assert missing == "d" and stored is False
    assert arun(cache.aclear()) is False  # a node could not be flushed


def test_a_dead_node_without_ignore_exceptions_raises(cache, nodes, arun):
    nodes[1].stop()
    owners = keys_per_host(cache.cluster, 1, stored=cache.make_key)
    with pytest.raises(redis.ConnectionError):
        arun(cache.aget(owners[1][0]))
    assert arun(cache.aget(owners[0][0], "ok")) == "ok"


# -- async views ------------------------------------------------------------------------------


async def hits_view(request, page):
    from django.core.cache import caches

    cache = caches["rb"]
    await cache.aadd(f"hits:{page}", 0)
    hits = await cache.aincr(f"hits:{page}")
    pages = await cache.aget_many([f"hits:{p}" for p in ("a", "b", "c")])
    return JsonResponse({"hits": hits, "pages": pages})


urlpatterns = [path("hits/<str:page>", hits_view)]


def test_async_views_with_async_client(nodes, no_thread_hops, arun):
    caches_setting = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "rb": {
            "BACKEND": "django_rb.cache.RBCache",
            "LOCATION": [node.url(0) for node in nodes],
        },
    }

    async def run():
        client = AsyncClient()
        bodies = []
        for page in ("a", "a", "b"):
            response = await client.get(f"/hits/{page}")
            assert response.status_code == 200
            bodies.append(json.loads(response.content))
        together = await asyncio.gather(*(client.get("/hits/c") for _ in range(20)))
        return bodies, sorted(json.loads(r.content)["hits"] for r in together)

    with override_settings(CACHES=caches_setting, ROOT_URLCONF=__name__):
        bodies, concurrent_hits = arun(run())
    assert [b["hits"] for b in bodies] == [1, 2, 1]
    assert bodies[-1]["pages"] == {"hits:a": 2, "hits:b": 1}
    assert concurrent_hits == list(range(1, 21))  # atomic on the node, no lost update

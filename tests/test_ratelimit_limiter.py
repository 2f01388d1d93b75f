"""RateLimiter on real nodes: GCRA buckets, peek/reset, consume_many rounds, failures."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from django_rb.cluster import Cluster
from django_rb.ratelimit import BadRate, LimiterUnavailable, RateLimiter
from django_rb.testing import cluster_hosts

from .ratelimit_support import delta, keys_on, script_calls

T0 = 1_700_000_000.0  # the script's clock, driven by the tests


@pytest.fixture
def limiter(rb_cluster: Cluster) -> RateLimiter:
    return RateLimiter(rb_cluster)


def test_burst_then_steady_refill(limiter: RateLimiter) -> None:
    answers = [limiter.consume("k", "10/s", now=T0) for _ in range(11)]
    assert [a.allowed for a in answers] == [True] * 10 + [False]
    assert [a.remaining for a in answers[:10]] == list(range(9, -1, -1))
    blocked = answers[10]
    assert blocked.retry_after == pytest.approx(0.1)
    assert blocked.reset_after == pytest.approx(1.0)
    assert blocked.limit == 10
    # one token every 100 ms
    assert not limiter.consume("k", "10/s", now=T0 + 0.05).allowed
    assert limiter.consume("k", "10/s", now=T0 + 0.1).allowed
    assert not limiter.consume("k", "10/s", now=T0 + 0.15).allowed
    later = [limiter.consume("k", "10/s", now=T0 + 0.5).allowed for _ in range(5)]
    assert later == [True, True, True, True, False]


def test_burst_larger_than_count(limiter: RateLimiter) -> None:
    answers = [limiter.consume("k", "1/s", burst=3, now=T0) for _ in range(4)]
    assert [a.allowed for a in answers] == [True, True, True, False]
    assert answers[3].retry_after == pytest.approx(1.0)
    assert answers[2].reset_after == pytest.approx(3.0)


def test_cost_spends_several_tokens(limiter: RateLimiter) -> None:
    first = limiter.consume("k", "10/m", cost=4, now=T0)
    assert (first.allowed, first.remaining) == (True, 6)
    second = limiter.consume("k", "10/m", cost=7, now=T0)
    assert not second.allowed
    assert second.remaining == 6  # a blocked request spends nothing
    assert second.retry_after == pytest.approx(6.0)  # one token every 6 s
    with pytest.raises(BadRate, match="could never be allowed"):
        limiter.consume("k", "10/m", cost=11)


def test_peek_spends_nothing(limiter: RateLimiter) -> None:
    limiter.consume("k", "2/s", now=T0)
    looked = limiter.peek("k", "2/s", now=T0)
    assert (looked.allowed, looked.remaining) == (True, 1)
    assert limiter.peek("k", "2/s", now=T0).remaining == 1
    limiter.consume("k", "2/s", now=T0)
    empty = limiter.peek("k", "2/s", now=T0)
    assert (empty.allowed, empty.remaining) == (False, 0)
    assert empty.retry_after == pytest.approx(0.5)


def test_reset_forgets_the_bucket(limiter: RateLimiter) -> None:
    for _ in range(3):
        limiter.consume("k", "3/h")
    assert not limiter.consume("k", "3/h").allowed
    limiter.reset("k")
    assert limiter.consume("k", "3/h").remaining == 2


def test_key_expires_when_full_again(limiter: RateLimiter, rb_cluster: Cluster) -> None:
    limiter.consume("k", "2/m")
    local = rb_cluster.get_local_client_for_key("rl:k")
    assert 29_000 < local.pttl("rl:k") <= 30_000  # one token refills in 30 s
    limiter.consume("k", "100/s")
    limiter.consume("short", "1000/s")
    time.sleep(0.05)
    assert rb_cluster.get_local_client_for_key("rl:short").exists("rl:short") == 0


def test_server_clock_without_now(limiter: RateLimiter) -> None:
    assert [limiter.consume("k", "2/s").allowed for _ in range(3)] == [True, True, False]
    time.sleep(0.55)
    assert limiter.consume("k", "2/s").allowed


def test_rates_none_and_zero(limiter: RateLimiter, rb_cluster: Cluster) -> None:
    free = limiter.consume("k", None)
    assert free.allowed and free.unlimited and free.limit is None
    zero = limiter.consume("k", "0/s")
    assert not zero.allowed and zero.limit == 0
    assert rb_cluster.get_local_client_for_key("rl:k").exists("rl:k") == 0


def test_bad_input_is_refused_before_sending(limiter: RateLimiter) -> None:
    with pytest.raises(BadRate):
        limiter.consume("k", "10/x")
    with pytest.raises(ValueError, match="non-empty string"):
        limiter.consume("", "1/s")
    with pytest.raises(ValueError, match=r"\(key, rate"):
        limiter.consume_many([("k",)])
    with pytest.raises(BadRate, match="cost"):
        limiter.consume("k", "1/s", cost=-1)


def test_consume_many_is_one_round_with_one_script_call_per_node(
    limiter: RateLimiter, rb_cluster: Cluster, rb_nodes: list[Any]
) -> None:
    limits = [(key, "5/s") for host in range(4) for key in keys_on(rb_cluster, host, 3, "m")]
    before = script_calls(rb_nodes)
    decisions = limiter.consume_many(limits, now=T0)
    assert delta(before, script_calls(rb_nodes)) == [1, 1, 1, 1]
    assert [d.key for d in decisions] == [key for key, _ in limits]
    assert all(d.allowed and d.remaining == 4 for d in decisions)


def test_a_block_on_one_node_spends_none_of_that_nodes_other_limits(
    limiter: RateLimiter, rb_cluster: Cluster
) -> None:
    tight, loose = keys_on(rb_cluster, 0, 2, "same")
    (elsewhere,) = keys_on(rb_cluster, 1, 1, "other")
    limiter.consume(tight, "1/h", now=T0)
    decisions = limiter.consume_many([(tight, "1/h"), (loose, "5/h"), (elsewhere, "5/h")], now=T0)
    assert [d.allowed for d in decisions] == [False, True, True]
    assert limiter.peek(loose, "5/h", now=T0).remaining == 5  # same node: untouched
    assert limiter.peek(elsewhere, "5/h", now=T0).remaining == 4  # other node: decided alone


def test_a_zero_rate_in_a_batch_spends_nobody(limiter: RateLimiter) -> None:
    decisions = limiter.consume_many([("a", "5/h"), ("z", "0/s"), ("b", "5/h")], now=T0)
    assert [d.allowed for d in decisions] == [True, False, True]
    assert limiter.peek("a", "5/h", now=T0).remaining == 5
    assert limiter.peek("b", "5/h", now=T0).remaining == 5


def test_same_key_twice_is_charged_twice(limiter: RateLimiter) -> None:
    decisions = limiter.consume_many([("k", "3/h"), ("k", "3/h")], now=T0)
    assert all(d.allowed for d in decisions)
    assert limiter.peek("k", "3/h", now=T0).remaining == 1
    again = limiter.consume_many([("k", "3/h"), ("k", "3/h")], now=T0)
    assert [d.allowed for d in again] == [True, False]
    assert limiter.peek("k", "3/h", now=T0).remaining == 1  # blocked: nothing spent


def test_prefix_names_the_keys(rb_cluster: Cluster) -> None:
    RateLimiter(rb_cluster, prefix="api").consume("k", "1/s")
    assert rb_cluster.get_local_client_for_key("api:k").exists("api:k") == 1


def test_a_dead_node_fails_only_its_limits(rb_nodes: list[Any], rb_cluster: Cluster) -> None:
    dead_keys = keys_on(rb_cluster, 2, 1, "d")
    live_keys = keys_on(rb_cluster, 0, 1, "l")
    rb_nodes[2].stop()
    limiter = RateLimiter(rb_cluster)
    with pytest.raises(LimiterUnavailable) as caught:
        limiter.consume_many([(live_keys[0], "1/s"), (dead_keys[0], "1/s")])
    partial = caught.value.decisions
    assert partial[0] is not None and partial[0].allowed
    assert partial[1] is None
    assert isinstance(caught.value.errors[0], redis.ConnectionError)
    assert "1 of 2 rate limits undecided" in str(caught.value)
    with pytest.raises(LimiterUnavailable) as alone:  # a lone limit: its own short path
        limiter.consume(dead_keys[0], "1/s")
    assert alone.value.decisions == [None]
    assert isinstance(alone.value.errors[0], redis.ConnectionError)
    assert "1 of 1 rate limits undecided" in str(alone.value)


def test_a_stalled_node_is_bounded_by_the_timeout(rb_nodes: list[Any]) -> None:
    cluster = Cluster(cluster_hosts(rb_nodes))
    key = keys_on(cluster, 1, 1, "s")[0]
    limiter = RateLimiter(cluster, timeout=0.3)
    limiter.consume(key, "1/s")  # connect first, then stall
    rb_nodes[1].pause()
    try:
        started = time.monotonic()
        with pytest.raises(LimiterUnavailable):
            limiter.consume(key, "1/s")
        assert time.monotonic() - started < 2.0
    finally:
        rb_nodes[1].resume()
        cluster.disconnect_pools()


def test_without_a_timeout_a_stall_is_bounded_by_the_socket_timeout(
    rb_nodes: list[Any],
) -> None:
    cluster = Cluster(cluster_hosts(rb_nodes), pool_options={"socket_timeout": 0.3})
    key = keys_on(cluster, 3, 1, "s")[0]
    limiter = RateLimiter(cluster)  # one node per call: the routing client's path
    assert limiter.consume(key, "1/s").allowed
    rb_nodes[3].pause()
    try:
        started = time.monotonic()
        with pytest.raises(LimiterUnavailable) as caught:
            limiter.consume(key, "1/s")
        assert time.monotonic() - started < 2.0
        assert isinstance(caught.value.errors[0], redis.TimeoutError)
    finally:
        rb_nodes[3].resume()
        cluster.disconnect_pools()


def test_one_node_and_many_nodes_answer_alike(limiter: RateLimiter, rb_cluster: Cluster) -> None:
    (key,) = keys_on(rb_cluster, 0, 1, "alike")
    (other,) = keys_on(rb_cluster, 1, 1, "alike")
    alone = [limiter.consume(key, "2/m", now=T0) for _ in range(3)]  # routing client
    bounded = RateLimiter(rb_cluster, timeout=5.0)  # map() even for one node
    mapped = [bounded.consume(other, "2/m", now=T0) for _ in range(3)]
    assert [(d.allowed, d.remaining, d.retry_after) for d in alone] == [
        (d.allowed, d.remaining, d.retry_after) for d in mapped
    ]


def test_password_never_shows_in_errors(redis_nodes: Any) -> None:
    (node,) = redis_nodes(1, password="s3cret-pw")
    cluster = Cluster([node.url()])
    limiter = RateLimiter(cluster)
    assert limiter.consume("k", "1/s").allowed
    node.stop()
    try:
        with pytest.raises(LimiterUnavailable) as caught:
            limiter.consume("k", "1/s")
        assert "s3cret-pw" not in str(caught.value)
        assert "s3cret-pw" not in repr(caught.value.errors)
    finally:
        cluster.disconnect_pools()


def test_async_twins_share_the_buckets(
    limiter: RateLimiter, rb_cluster: Cluster, arun: Any
) -> None:
    limits = [(key, "3/m") for host in range(4) for key in keys_on(rb_cluster, host, 1, "as")]

    async def run() -> tuple[Any, ...]:
        first = await limiter.aconsume_many(limits, now=T0)
        one = await limiter.aconsume(limits[0][0], "3/m", now=T0)
        looked = await limiter.apeek(limits[0][0], "3/m", now=T0)
        await limiter.areset(limits[0][0])
        return first, one, looked

    first, one, looked = arun(run())
    assert all(d.allowed and d.remaining == 2 for d in first)
    assert (one.remaining, looked.remaining) == (1, 1)
    assert limiter.peek(limits[0][0], "3/m", now=T0).remaining == 3  # reset
    assert limiter.peek(limits[1][0], "3/m", now=T0).remaining == 2  # sync sees async's spend


def test_async_dead_node_fails_only_its_limits(
    rb_nodes: list[Any], rb_cluster: Cluster, arun: Any
) -> None:
    (dead,) = keys_on(rb_cluster, 1, 1, "ad")
    (live,) = keys_on(rb_cluster, 2, 1, "al")
    rb_nodes[1].stop()
    limiter = RateLimiter(rb_cluster)

    async def run() -> Any:
        with pytest.raises(LimiterUnavailable) as caught:
            await limiter.aconsume_many([(live, "1/s"), (dead, "1/s")])
        with pytest.raises(LimiterUnavailable) as alone:
            await limiter.aconsume(dead, "1/s")
        return caught.value, alone.value

    failure, alone = arun(run())
    assert failure.decisions[0] is not None and failure.decisions[0].allowed
    assert failure.decisions[1] is None
    assert alone.decisions == [None] and isinstance(alone.errors[0], redis.ConnectionError)

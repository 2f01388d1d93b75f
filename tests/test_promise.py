"""Promise: rb's ES6-like surface, chaining, and settlement rules."""

import pytest

from django_rb.cluster import (
    Promise,
)


def test_resolve_sets_value_and_state():
    p = Promise()
    assert p.is_pending and not p.is_resolved and not p.is_rejected
    p.resolve(42)
    assert p.is_resolved and p.value == 42 and p.reason is None
    with pytest.raises(RuntimeError):
        p.resolve(1)


def test_reject_sets_reason():
    p = Promise()
    err = ValueError("x")
    p.reject(err)
    assert p.is_rejected and p.reason is err and p.value is None
    with pytest.raises(RuntimeError):
        p.reject(err)


def test_resolved_and_rejected_constructors():
    assert Promise.resolved(3).value == 3
    r = Promise.rejected(KeyError("k"))
    assert r.is_rejected and isinstance(r.reason, KeyError)


def test_done_runs_callbacks_now_or_later():
    seen = []
    p = Promise()
    assert p.done(seen.append, seen.append) is p
    p.resolve("later")
    Promise.resolved("now").done(seen.append)
    Promise.rejected("bad").done(None, seen.append)
    assert seen == ["later", "now", "bad"]


def test_then_chains_and_catches():
    p = Promise()
    doubled = p.then(lambda v: v * 2)
    failed = doubled.then(lambda v: 1 / 0)
    recovered = failed.then(None, lambda e: type(e).__name__)
    p.resolve(21)
    assert doubled.value == 42
    assert isinstance(failed.reason, ZeroDivisionError)
    assert recovered.value == "ZeroDivisionError"


def test_then_without_handlers_passes_through():
    p = Promise()
    chained = p.then()
    p.reject(KeyError("k"))
    assert isinstance(chained.reason, KeyError)


def test_resolve_with_promise_follows_it():
    inner, outer = Promise(), Promise()
    outer.resolve(inner)
    assert outer.is_pending
    inner.resolve("v")
    assert outer.value == "v"
    with pytest.raises(TypeError):
        outer_self = Promise()
        outer_self.resolve(outer_self)


def test_all_list_and_dict():
    a, b = Promise(), Promise()
    both = Promise.all([a, b, 3])
    by_name = Promise.all({"a": a, "b": b})
    a.resolve(1)
    assert both.is_pending
    b.resolve(2)
    assert both.value == [1, 2, 3]
    assert by_name.value == {"a": 1, "b": 2}
    assert Promise.all([]).value == []
    assert Promise.all({}).value == {}


def test_all_rejects_on_first_failure():
    a, b = Promise(), Promise()
    both = Promise.all([a, b])
    b.reject(ValueError("b"))
    a.reject(ValueError("a"))
    assert str(both.reason) == "b"


def test_repr_shows_state():
    assert repr(Promise()) == "<Promise (pending)>"
    assert repr(Promise.resolved(b"x")) == "<Promise b'x'>"
    assert "(rejected)" in repr(Promise.rejected(ValueError("v")))


def test_promise_all_over_two_map_blocks(rb_cluster):
    with rb_cluster.map() as client:
        a = client.set("pa", "1")
    with rb_cluster.map() as client:
        b = client.get("pa")
        both = Promise.all([a, b])
        assert both.is_pending
    assert both.value == [True, b"1"]

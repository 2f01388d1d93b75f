"""The suite's fixtures come from django_rb.testing (the pytest11 plugin users get too)."""

import asyncio

import pytest

try:
    import uvloop
except ImportError:  # only the standard loop then
    uvloop = None

LOOPS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])


@pytest.fixture(params=LOOPS)
def arun(request):
    """Run a coroutine to completion on a fresh event loop: asyncio's, and uvloop's if installed."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def run(coro):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)

    return run


@pytest.fixture
def nodes(rb_nodes):
    """The four shared nodes, running and empty (a module may define its own ``nodes``)."""
    from django_rb.testing import healthy

    with healthy(rb_nodes):
        yield rb_nodes


@pytest.fixture(scope="module")
def witness_node(redis_nodes):
    """A node of its own for a one-node backend (Django's RedisCache, django-redis) that
    RBCache's answers are compared with."""
    return redis_nodes(1)[0]

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

"""RateLimitMiddleware: the RateLimit fields on every response of a limited view, and a 429
for ``Ratelimited`` raised anywhere (the ``RAISE`` setting, or your own code)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .headers import add_fields
from .verdicts import Ratelimited, render_blocked


class RateLimitMiddleware:
    """Add to MIDDLEWARE (sync and async); it only reads what the decorators recorded."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self._acall(request)
        return self._finish(request, self.get_response(request))

    async def _acall(self, request: Any) -> Any:
        return self._finish(request, await self.get_response(request))

    def _finish(self, request: Any, response: Any) -> Any:
        decisions = getattr(request, "ratelimit", None)
        if decisions:
            add_fields(response, decisions)
        return response

    def process_exception(self, request: Any, exception: Exception) -> Any:
        """``Ratelimited`` becomes the blocked response instead of Django's 403."""
        if isinstance(exception, Ratelimited):
            return render_blocked(request, exception)
        return None

"""The ingest endpoint's rules: what a valid event is, and the limits stacked on the view.

The limits are ``django_rb.ratelimit``'s stacked ``@ratelimit``s: one per project, one per
client address, both decided in one round. Their rates are read from settings per request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings

from django_rb.ratelimit import ratelimit

from .series import LEVEL_NAMES

#: Fields every event must carry, all strings.
REQUIRED_FIELDS = ("message", "level", "release", "user")
MAX_FIELD_LENGTH = 1000


class BadEvent(ValueError):
    """The request body is not an event the site accepts; the message says why."""


def parse_event(body: bytes) -> dict[str, str]:
    """The event in a request body, or ``BadEvent`` saying what is wrong with it."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadEvent(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadEvent("the body must be a JSON object")
    missing = [name for name in REQUIRED_FIELDS if name not in data]
    if missing:
        raise BadEvent(f"missing field(s): {', '.join(missing)}")
    event = {}
    for name in REQUIRED_FIELDS:
        value = data[name]
        if not isinstance(value, str) or not value or len(value) > MAX_FIELD_LENGTH:
            raise BadEvent(
                f"{name!r} must be a non-empty string of at most {MAX_FIELD_LENGTH} characters"
            )
        event[name] = value
    if event["level"] not in LEVEL_NAMES:
        raise BadEvent(f"level must be one of {', '.join(LEVEL_NAMES)}")
    return event


def project_key(group: str, request: Any) -> str:
    """The per-project limit's key: the project id from the URL."""
    return str(request.resolver_match.kwargs["project_id"])


def project_rate(group: str, request: Any) -> str:
    return str(settings.EXAMPLE_PROJECT_RATE)


def ip_rate(group: str, request: Any) -> str:
    return str(settings.EXAMPLE_IP_RATE)


View = Callable[..., Any]


def limited_ingest(view: View) -> View:
    """Stack the per-project and per-address limits on ``view`` (decided in one round)."""
    view = ratelimit(key=project_key, rate=project_rate, group="ingest.project")(view)
    return ratelimit(key="ip", rate=ip_rate, group="ingest.ip")(view)

"""Serializers turn cache values into bytes and back.

The interface is django-redis's (``Serializer(options)`` with ``dumps``/``loads``), so a dotted
path to one of its serializers works in ``OPTIONS["SERIALIZER"]`` as well as ours. Integers
never reach a serializer: the client stores them raw so that INCR works on them.
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder

from .loading import load_codec


class Serializer(Protocol):
    """What the client needs from a serializer."""

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class PickleSerializer:
    """The default: any picklable value, newest protocol unless ``PICKLE_VERSION`` says otherwise.

    ``PICKLE_VERSION`` (django-redis's name) lets a fleet on mixed Python versions agree.
    """

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        protocol = (options or {}).get("PICKLE_VERSION", pickle.HIGHEST_PROTOCOL)
        try:
            protocol = int(protocol)
        except (TypeError, ValueError):
            raise ImproperlyConfigured("PICKLE_VERSION must be an integer.") from None
        if protocol > pickle.HIGHEST_PROTOCOL:
            raise ImproperlyConfigured(
                f"PICKLE_VERSION {protocol} is above this Python's highest ({pickle.HIGHEST_PROTOCOL})."
            )
        self.protocol = protocol

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, self.protocol)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


class JSONSerializer:
    """JSON through Django's encoder (dates, decimals, UUIDs); readable by non-Python clients.

    Tuples come back as lists and dates as strings: JSON has nothing else.
    """

    encoder_class: type[json.JSONEncoder] = DjangoJSONEncoder

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        pass

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, cls=self.encoder_class, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        # what dumps() wrote is UTF-8: saying so skips json's encoding detection on bytes
        return json.loads(data.decode())


class MSGPackSerializer:
    """msgpack: compact and fast, for values made of plain types (needs the msgpack package)."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        try:
            import msgpack
        except ImportError:
            raise ImproperlyConfigured(
                'SERIALIZER "msgpack" needs the msgpack package: pip install msgpack'
            ) from None
        self._msgpack = msgpack

    def dumps(self, value: Any) -> bytes:
        return self._msgpack.packb(value, use_bin_type=True)

    def loads(self, data: bytes) -> Any:
        return self._msgpack.unpackb(data, raw=False)


SERIALIZERS: dict[str, type] = {
    "pickle": PickleSerializer,
    "json": JSONSerializer,
    "msgpack": MSGPackSerializer,
}


def get_serializer(spec: Any, options: dict[str, Any]) -> Serializer:
    """A serializer from a short name, a dotted path, a class or an instance.

    Classes (ours, django-redis's, anyone's with the same shape) are built with the OPTIONS dict.
    """
    if spec is None:
        spec = "pickle"
    return load_codec("SERIALIZER", spec, SERIALIZERS, ("dumps", "loads"), options)

"""Compressors shrink serialized values before they go over the wire.

Same interface as django-redis (``Compressor(options)`` with ``compress``/``decompress``), so its
classes work here too. Which values get compressed is the client's call (only those longer
than ``COMPRESS_MIN_LENGTH``, and only when that makes them shorter); the client marks them so
reads know to decompress. A compressor therefore never has to guess.
"""

from __future__ import annotations

import threading
import zlib
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured

from .loading import load_codec


class Compressor(Protocol):
    """What the client needs from a compressor."""

    def compress(self, data: bytes) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


def _level(options: dict[str, Any], default: int) -> int:
    level = options.get("COMPRESS_LEVEL", default)
    try:
        return int(level)
    except (TypeError, ValueError):
        raise ImproperlyConfigured("COMPRESS_LEVEL must be an integer.") from None


class ZlibCompressor:
    """zlib from the standard library; ``COMPRESS_LEVEL`` 1 (fast) to 9 (small), default 6."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.level = _level(options or {}, 6)

    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data, self.level)

    def decompress(self, data: bytes) -> bytes:
        return zlib.decompress(data)


class ZstdCompressor:
    """Zstandard (the zstandard package): faster than zlib at a better ratio; default level 3.

    zstandard's (de)compressor objects must not be shared between threads, so each thread
    keeps its own.
    """

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        try:
            import zstandard
        except ImportError:
            raise ImproperlyConfigured(
                'COMPRESSOR "zstd" needs the zstandard package: pip install zstandard'
            ) from None
        self._zstd = zstandard
        self.level = _level(options or {}, 3)
        self._local = threading.local()

    def compress(self, data: bytes) -> bytes:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = self._zstd.ZstdCompressor(level=self.level)
        return compressor.compress(data)

    def decompress(self, data: bytes) -> bytes:
        decompressor = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = self._local.decompressor = self._zstd.ZstdDecompressor()
        return decompressor.decompress(data)


COMPRESSORS: dict[str, type] = {
    "zlib": ZlibCompressor,
    "zstd": ZstdCompressor,
}


def get_compressor(spec: Any, options: dict[str, Any]) -> Compressor | None:
    """A compressor from a short name, a dotted path, a class or an instance; None for none.

    django-redis's IdentityCompressor means "no compression" and is treated as None.
    """
    if spec is None or spec == "django_redis.compressors.identity.IdentityCompressor":
        return None
    return load_codec(
        "COMPRESSOR", spec, COMPRESSORS, ("compress", "decompress"), options, also="None, "
    )

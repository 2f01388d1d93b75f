"""One way to turn an OPTIONS entry (short name, dotted path, class or instance) into a codec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string


def load_codec(
    option: str,
    spec: Any,
    registry: Mapping[str, Any],
    methods: tuple[str, str],
    options: dict[str, Any],
    also: str = "",
) -> Any:
    """Resolve ``spec`` for OPTIONS[``option``]; classes are built with the OPTIONS dict, the
    way django-redis builds its serializers and compressors, so theirs work here too."""
    if isinstance(spec, str):
        if spec in registry:
            spec = registry[spec]
        elif "." in spec:
            try:
                spec = import_string(spec)
            except ImportError as exc:
                raise ImproperlyConfigured(f"{option} {spec!r} cannot be imported: {exc}") from exc
        else:
            names = ", ".join(f'"{name}"' for name in registry)
            raise ImproperlyConfigured(
                f"Unknown {option} {spec!r}: use {also}{names} or a dotted path to a class."
            )
    if isinstance(spec, type):
        spec = spec(options)
    if not all(callable(getattr(spec, method, None)) for method in methods):
        raise ImproperlyConfigured(f"{option} {spec!r} has no {methods[0]}()/{methods[1]}().")
    return spec

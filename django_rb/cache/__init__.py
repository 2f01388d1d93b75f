"""Django cache backend over a django_rb cluster: ``"BACKEND": "django_rb.cache.RBCache"``."""

from .backend import RBCache

__all__ = ["RBCache"]

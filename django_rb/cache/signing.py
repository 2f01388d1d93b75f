"""RBCache OPTIONS SIGNING_KEY: an HMAC over every stored value, checked before decoding.

The pickle serializer runs code chosen by whoever wrote the bytes it loads, so anyone who can
write to a cache node could run code in every process that reads it. With a signing key, a
value whose HMAC-SHA256 does not match is never unpickled: it reads as a miss, with a warning.
(Integers are stored as their digits, unsigned, so that INCR works; reading digits runs no
code.) The "json" serializer, which runs no code at all, is one setting away.
"""

from __future__ import annotations

import hashlib
import hmac

MAC_SIZE = hashlib.sha256().digest_size


class BadSignature(ValueError):
    """A stored value's HMAC does not match this cache's SIGNING_KEY."""


class Signer:
    """Signs and checks values with one key (text is taken as UTF-8)."""

    def __init__(self, key: str | bytes) -> None:
        self._key = key.encode() if isinstance(key, str) else bytes(key)

    def __repr__(self) -> str:
        return "<Signer key=***>"

    def mac(self, tag: bytes, body: bytes) -> bytes:
        return hmac.new(self._key, tag + body, hashlib.sha256).digest()

    def sign(self, tag: bytes, body: bytes) -> bytes:
        """``tag + mac + body``: the tag stays first, so the format is still recognised."""
        return tag + self.mac(tag, body) + body

    def verify(self, tag: bytes, signed: bytes) -> bytes:
        """The body after ``tag`` once its MAC is checked; ``BadSignature`` otherwise."""
        mac, body = signed[:MAC_SIZE], signed[MAC_SIZE:]
        if len(mac) != MAC_SIZE or not hmac.compare_digest(mac, self.mac(tag, body)):
            raise BadSignature("A cached value's signature does not match SIGNING_KEY.")
        return body

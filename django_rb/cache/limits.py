"""The largest value Redis takes, checked before anything is sent.

Redis refuses a bulk string over ``proto-max-bulk-len`` (512 MB by default) only after the whole
value has crossed the network, and then as a bare protocol error. The cache checks an encoded
value's size first and raises ``ValueTooLarge``, so a batch with one such value sends nothing.
"""

from __future__ import annotations

#: Redis's default ``proto-max-bulk-len``: 512 MB. Read at each check, so a test (or a server
#: configured with a lower limit) can lower it.
MAX_VALUE_BYTES = 512 * 1024 * 1024


class ValueTooLarge(ValueError):
    """An encoded cache value is over ``MAX_VALUE_BYTES``; nothing of the call was sent."""


def checked_size(data: bytes) -> bytes:
    """``data`` itself, if Redis can store it."""
    if len(data) > MAX_VALUE_BYTES:
        raise ValueTooLarge(
            f"A cache value of {len(data):,} bytes (encoded) is over Redis's limit of "
            f"{MAX_VALUE_BYTES:,} bytes (proto-max-bulk-len); nothing was sent."
        )
    return data

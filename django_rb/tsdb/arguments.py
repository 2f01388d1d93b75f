"""Turning a call's arguments into validated values, before any command is built or sent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .counters import Increment
from .distinct import Record, member_values
from .errors import TSDBArgumentError
from .frequency import Frequencies, member_scores
from .keys import model_name, series_token
from .rollups import to_epoch


def series_keys(keys: Any) -> list[Any]:
    """A read's series keys, each validated, duplicates dropped (first occurrence kept)."""
    if isinstance(keys, (str, bytes, int)) or not isinstance(keys, Iterable):
        raise TSDBArgumentError(
            f"keys is a list of series keys (strings or ints), not a single {type(keys).__name__}."
        )
    out = list(dict.fromkeys(keys))
    for key in out:
        series_token(key)
    return out


def write_envs(environment_id: Any) -> tuple[str, ...]:
    """A write counts the all-environments series and, when given, the environment's."""
    if environment_id is None:
        return ("",)
    return ("", series_token(environment_id, "environment id"))


def read_envs(environment_ids: Any) -> tuple[str, ...]:
    """The environments a read adds up: None means all (the all-environments series)."""
    if environment_ids is None:
        return ("",)
    if isinstance(environment_ids, (str, bytes, int)) or not isinstance(environment_ids, Iterable):
        raise TSDBArgumentError(
            "environment_ids is a list of environment ids (or None for all environments), "
            f"not a single {type(environment_ids).__name__}."
        )
    envs = tuple(
        dict.fromkeys(
            "" if env is None else series_token(env, "environment id") for env in environment_ids
        )
    )
    if not envs:
        raise TSDBArgumentError("environment_ids is empty; pass None to read all environments.")
    return envs


def count_of(count: Any) -> int:
    """An increment's count: an int."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise TSDBArgumentError(f"A count is an int, not {type(count).__name__}.")
    return count


def increments(items: Any, timestamp: Any, count: Any, now: float) -> list[Increment]:
    """``incr_multi``'s items: ``(model, key)``, ``(model, key, count)`` or Sentry's
    ``(model, key, {"timestamp": ..., "count": ...})``."""
    default_epoch, default_count = to_epoch(timestamp, now), count_of(count)
    out = []
    models: dict[Any, str] = {}  # each distinct model validated once
    for item in _items(items, "incr_multi"):
        size = len(item) if isinstance(item, (tuple, list)) else 0
        if size == 2:
            model, key = item
            epoch, n = default_epoch, default_count
        elif size == 3:
            model, key, extra = item
            epoch, n = _item_options(extra, default_epoch, default_count, now)
        else:
            raise TSDBArgumentError(
                f"An incr_multi item is (model, key), (model, key, count) or "
                f"(model, key, {{'timestamp': ..., 'count': ...}}), not {item!r}."
            )
        if type(key) is not int:
            series_token(key)
        name = models.get(model) if type(model) is str else None
        if name is None:
            name = models[model] = model_name(model)
        out.append(Increment(name, key, epoch, n))
    return out


_ITEM_OPTIONS = frozenset(("timestamp", "count"))


def _item_options(extra: Any, epoch: float, count: int, now: float) -> tuple[float, int]:
    """The third part of an incr_multi item: a count, or ``{"timestamp": ..., "count": ...}``."""
    if type(extra) is not dict and not isinstance(extra, Mapping):
        return epoch, count_of(extra)
    if not extra.keys() <= _ITEM_OPTIONS:
        unknown = sorted(map(str, extra.keys() - _ITEM_OPTIONS))
        raise TSDBArgumentError(
            f"An incr_multi item's options are 'timestamp' and 'count', not {unknown!r}."
        )
    moment = extra.get("timestamp")
    if moment is not None:
        epoch = to_epoch(moment, now)
    amount = extra.get("count")
    return epoch, count if amount is None else count_of(amount)


def records(items: Any, timestamp: Any, now: float) -> list[Record]:
    """``record_multi``'s items: ``(model, key, values)``."""
    epoch = to_epoch(timestamp, now)
    out = []
    for item in _items(items, "record_multi"):
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise TSDBArgumentError(f"A record_multi item is (model, key, values), not {item!r}.")
        series_token(item[1])
        out.append(Record(model_name(item[0]), item[1], epoch, member_values(item[2])))
    return out


def frequencies(requests: Any, timestamp: Any, now: float) -> list[Frequencies]:
    """``record_frequency_multi``'s requests: ``[(model, {key: {member: score}})]``."""
    epoch = to_epoch(timestamp, now)
    out = []
    for request in _items(requests, "record_frequency_multi"):
        if not isinstance(request, (tuple, list)) or len(request) != 2:
            raise TSDBArgumentError(
                f"A frequency request is (model, {{key: {{member: score}}}}), not {request!r}."
            )
        model, by_key = model_name(request[0]), request[1]
        if not isinstance(by_key, Mapping):
            raise TSDBArgumentError(
                f"A frequency request's second half is {{key: {{member: score}}}}, not {by_key!r}."
            )
        for key, scores in by_key.items():
            series_token(key)
            out.append(Frequencies(model, key, epoch, member_scores(scores)))
    return out


def members_by_key(items: Any) -> dict[Any, list[str]]:
    """``{key: [member, ...]}`` for the frequency reads of given members."""
    if not isinstance(items, Mapping):
        raise TSDBArgumentError(
            f"Members to read are given as {{key: [member, ...]}}, not {type(items).__name__}."
        )
    out = {}
    for key, members in items.items():
        series_token(key)
        if isinstance(members, (str, bytes)) or not isinstance(members, Iterable):
            raise TSDBArgumentError(f"The members of {key!r} are a list, not {members!r}.")
        out[key] = list(dict.fromkeys(str(m) for m in member_scores(dict.fromkeys(members, 0))))
    return out


def limit_of(limit: Any) -> int | None:
    """A top-N limit: None or a positive int."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise TSDBArgumentError(f"limit is a positive int or None, not {limit!r}.")
    return limit


def _items(items: Any, call: str) -> list[Any]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TSDBArgumentError(f"{call} takes a list of items, not {type(items).__name__}.")
    return list(items)

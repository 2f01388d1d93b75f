"""``manage.py rb_migrate --from default --to events``: copy every key from one cluster to
another (rb-style nodes to a Redis Cluster, typically), never deleting anything.

Each step is one parallel round: SCAN on every source node, then DUMP + PTTL of the keys found
(routed by key through ``map()``), then RESTORE with their remaining TTL on the target (also
``map()``). A key that already exists on the target is left alone (``--replace`` overwrites it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from redis.exceptions import ResponseError

from django_rb.management import cluster_for


@dataclass
class Counts:
    """What the copy did, key by key."""

    scanned: int = 0
    copied: int = 0
    existing: int = 0
    vanished: int = 0
    failed: int = 0


class Command(BaseCommand):
    help = (
        "Copy every key of one RB_CLUSTERS entry into another with DUMP/RESTORE, keeping TTLs: "
        "SCAN-based (never KEYS), batched through map(), with a progress bar and counts. "
        "Source keys are never deleted; keys already on the target are skipped unless "
        "--replace. --dry-run only counts. Exit status 1 when a key or node failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="source", required=True, help="Source cluster name.")
        parser.add_argument("--to", dest="target", required=True, help="Target cluster name.")
        parser.add_argument("--dry-run", action="store_true", help="Scan and count only.")
        parser.add_argument("--replace", action="store_true", help="Overwrite existing keys.")
        parser.add_argument("--match", default=None, help="Only keys matching this SCAN glob.")
        parser.add_argument(
            "--batch", type=int, default=500, help="SCAN COUNT per node and round (default 500)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["source"] == options["target"]:
            raise CommandError("--from and --to name the same cluster; nothing to copy.")
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1.")
        source = cluster_for({"cluster": options["source"]})
        target = cluster_for({"cluster": options["target"]})
        total = _total_keys(source)
        counts = Counts()
        failures: list[str] = []
        for keys in _scan(source, options["batch"], options["match"], failures):
            counts.scanned += len(keys)
            if not options["dry_run"]:
                _copy(source, target, keys, options["replace"], counts, failures)
            self._progress(counts.scanned, total)
        self.stderr.write("")
        verb = "would copy" if options["dry_run"] else "copied"
        summary = (
            f"{options['source']} -> {options['target']}: {counts.scanned} keys scanned, "
            f"{counts.scanned if options['dry_run'] else counts.copied} {verb}, "
            f"{counts.existing} already on the target, {counts.vanished} gone meanwhile, "
            f"{counts.failed} failed; nothing was deleted."
        )
        for failure in failures[:20]:
            self.stderr.write(failure)
        if failures or counts.failed:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))

    def _progress(self, done: int, total: int) -> None:
        width = 30
        filled = width if total <= 0 else min(width, width * done // total)
        self.stderr.write(f"\r[{'#' * filled}{' ' * (width - filled)}] {done}/{total} keys",
                          ending="")  # fmt: skip
        self.stderr.flush()


def _total_keys(cluster: Any) -> int:
    """DBSIZE over every node, for the progress bar (0 when a node does not answer)."""
    try:
        with cluster.all() as client:
            sizes = client.dbsize()
    except Exception:  # noqa: BLE001  (the scan reports the node; the bar just stays vague)
        return 0
    return sum(sizes.value.values())


def _scan(cluster: Any, count: int, match: str | None, failures: list[str]) -> Any:
    """Batches of keys: one SCAN step on every source node per round, until all are done."""
    cursors: dict[Any, int] = dict.fromkeys(cluster.hosts, 0)
    while cursors:
        promises = {}
        try:
            with cluster.fanout(hosts=list(cursors)) as client:
                for host_id, cursor in cursors.items():
                    step = client.target([host_id]).scan(cursor=cursor, match=match, count=count)
                    promises[host_id] = step
        except Exception:  # noqa: BLE001  (each node's promise says how it went)
            pass
        keys: list[bytes] = []
        for host_id, promise in promises.items():
            if not promise.is_resolved:
                failures.append(f"node {host_id}: scan failed: {promise.reason}")
                del cursors[host_id]
                continue
            cursor, found = promise.value[host_id]
            keys.extend(found)
            if int(cursor) == 0:
                del cursors[host_id]
            else:
                cursors[host_id] = int(cursor)
        if keys:
            yield keys


def _copy(source: Any, target: Any, keys: list[bytes], replace: bool, counts: Counts,
          failures: list[str]) -> None:  # fmt: skip
    """DUMP + PTTL from the source, RESTORE on the target: two parallel rounds per batch."""
    dumped = []
    try:
        with source.map() as client:
            for key in keys:
                dumped.append((key, client.pttl(key), client.dump(key)))
    except Exception:  # noqa: BLE001  (each key's promises say how it went)
        pass
    restored = []
    try:
        with target.map() as client:
            for key, ttl, dump in dumped:
                if not (ttl.is_resolved and dump.is_resolved):
                    counts.failed += 1
                    failures.append(f"{key!r}: read failed: {ttl.reason or dump.reason}")
                elif dump.value is None or ttl.value == -2:
                    counts.vanished += 1
                else:
                    milliseconds = max(int(ttl.value), 0)  # -1: no expiry
                    restored.append(
                        (key, client.restore(key, milliseconds, dump.value, replace=replace))
                    )
    except Exception:  # noqa: BLE001  (each key's promise says how it went)
        pass
    for key, promise in restored:
        if promise.is_resolved:
            counts.copied += 1
        elif isinstance(promise.reason, ResponseError) and "BUSYKEY" in str(promise.reason):
            counts.existing += 1
        else:
            counts.failed += 1
            failures.append(f"{key!r}: restore failed: {promise.reason}")

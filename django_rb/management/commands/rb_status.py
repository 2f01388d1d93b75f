"""``manage.py rb_status``: is every host of a cluster up, and how full is it?"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_rb.management import (
    HostResult,
    add_cluster_arguments,
    cluster_for,
    per_host_round,
    target_label,
)

COLUMNS = ("ID", "ADDRESS", "DB", "STATUS", "RTT MS", "KEYS", "MEMORY", "VERSION", "ERROR")


class Command(BaseCommand):
    help = (
        "Show one row per host of a cluster: id, address, db, up/down, round-trip ms, keys "
        "(DBSIZE), used memory and Redis version, gathered in one parallel round of PING, "
        "DBSIZE and INFO. Round-trip ms is the time from the start of the round to the host's "
        "PONG. Exit status: 0 when every host is up, 1 when any host is down (or the cluster "
        "is not configured)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_cluster_arguments(parser)
        parser.add_argument(
            "--json", action="store_true", help="Print a JSON list with one object per host."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rows = cluster_status(cluster_for(options), timeout=options["timeout"])
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
        else:
            self.write_table(rows)
        down = [row for row in rows if not row["up"]]
        if down:
            ids = ", ".join(str(row["host_id"]) for row in down)
            raise CommandError(
                f"{len(down)} of {len(rows)} hosts of {target_label(options)} "
                f"are down (host {ids})."
            )

    def write_table(self, rows: list[dict[str, Any]]) -> None:
        """An aligned table; the status column is coloured when the terminal allows it."""
        cells = [
            [
                str(row["host_id"]),
                row["address"],
                str(row["db"]),
                "up" if row["up"] else "down",
                _or_dash(row["rtt_ms"], "{:.1f}"),
                _or_dash(row["keys"], "{}"),
                _or_dash(row["used_memory_human"], "{}"),
                _or_dash(row["version"], "{}"),
                row["error"] or "",
            ]
            for row in rows
        ]
        widths = [
            max(len(line[i]) for line in [list(COLUMNS), *cells]) for i in range(len(COLUMNS))
        ]

        def line(values: list[str], styled: bool) -> str:
            padded = [value.ljust(width) for value, width in zip(values, widths, strict=True)]
            if styled:
                style = self.style.SUCCESS if values[3] == "up" else self.style.ERROR
                padded[3] = style(padded[3])
            return "  ".join(padded).rstrip()

        self.stdout.write(line(list(COLUMNS), styled=False))
        for values in cells:
            self.stdout.write(line(values, styled=True))
        up = sum(1 for row in rows if row["up"])
        self.stdout.write(f"{up} of {len(rows)} hosts up.")


def cluster_status(cluster: Any, timeout: float | None = None) -> list[dict[str, Any]]:
    """Every host's ``status_row``, from one parallel round of PING, DBSIZE and INFO (for
    pages that show what this command prints)."""
    results = per_host_round(
        cluster,
        lambda client: {
            "ping": client.ping(),
            "dbsize": client.dbsize(),
            "info": client.info(),
        },
        timeout=timeout,
    )
    return [status_row(result) for result in results.values()]


def status_row(result: HostResult) -> dict[str, Any]:
    """One host's status as plain data (the JSON output and the table are both made of it)."""
    host = result.host
    info = result.values.get("info") or {}
    return {
        "host_id": host.host_id,
        "address": host.endpoint,
        "db": host.db,
        "up": result.ok,
        "rtt_ms": round(result.seconds * 1000, 3) if result.ok and result.seconds else None,
        "keys": result.values.get("dbsize") if result.ok else None,
        "used_memory": info.get("used_memory") if result.ok else None,
        "used_memory_human": info.get("used_memory_human") if result.ok else None,
        "version": _text(info.get("redis_version")) if result.ok else None,
        "error": result.error,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _or_dash(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)

"""``manage.py rb_flushall``: empty every host's db of a cluster, after saying what will go."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_rb.management import (
    add_cluster_arguments,
    cluster_for,
    per_host_round,
    target_label,
)


class Command(BaseCommand):
    help = (
        "Delete every key of a cluster: lists each host and its key count, asks you to type "
        "'yes', then sends FLUSHDB (never FLUSHALL, so other dbs on the same servers survive) "
        "to all hosts in one parallel round. Without a terminal, --noinput is required. Exit "
        "status: 0 when every host was flushed, 1 otherwise."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        add_cluster_arguments(parser)
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Flush without asking (required when stdin is not a terminal).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        label = target_label(options)
        stdin = options.get("stdin") or sys.stdin
        interactive = options["interactive"]
        if interactive and not _is_terminal(stdin):
            raise CommandError(
                "stdin is not a terminal, so nobody can confirm the flush; "
                "pass --noinput to flush without asking."
            )
        cluster = cluster_for(options)

        sizes = per_host_round(
            cluster, lambda client: {"dbsize": client.dbsize()}, timeout=options["timeout"]
        )
        self.stdout.write(f"{label[0].upper()}{label[1:]} has {len(sizes)} hosts:")
        for host_id, result in sizes.items():
            where = f"  host {host_id}  {result.host.endpoint}  db {result.host.db}"
            if result.ok:
                self.stdout.write(f"{where}  {result.values['dbsize']} keys")
            else:
                self.stdout.write(f"{where}  unreachable: {result.error}")
        total = sum(r.values["dbsize"] for r in sizes.values() if r.ok)

        if interactive:
            self.stdout.write(
                f"This deletes all {total} keys of {label} (FLUSHDB on every host). "
                "Type 'yes' to continue: ",
                ending="",
            )
            self.stdout.flush()
            if stdin.readline().strip() != "yes":
                raise CommandError("Flush cancelled; nothing was deleted.")

        flushed = per_host_round(
            cluster, lambda client: {"flushdb": client.flushdb()}, timeout=options["timeout"]
        )
        failed = []
        for host_id, result in flushed.items():
            where = f"host {host_id}  {result.host.endpoint}  db {result.host.db}"
            if result.ok:
                before = sizes[host_id].values.get("dbsize")
                had = f" ({before} keys)" if before is not None else ""
                self.stdout.write(self.style.SUCCESS(f"{where}: flushed{had}"))
            else:
                failed.append(host_id)
                self.stdout.write(self.style.ERROR(f"{where}: FAILED: {result.error}"))
        if failed:
            ids = ", ".join(str(h) for h in failed)
            raise CommandError(
                f"{len(failed)} of {len(flushed)} hosts were not flushed (host {ids})."
            )
        self.stdout.write(f"Flushed {len(flushed)} hosts of {label}.")


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())

"""``manage.py simulate_traffic``: events posted through the real ingest view, at a rate.

By default requests go through Django's test client (in this process, the full view stack
with its rate limits and tsdb writes); ``--url`` posts over HTTP to a running site instead.
Prints a progress bar and, at the end, how many events were accepted and how many limited.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import Client

from example_project.events.models import Project
from example_project.events.series import LEVEL_NAMES

MESSAGES = [
    "KeyError: 'user_id'",
    "TimeoutError: upstream took longer than 5s",
    "ZeroDivisionError: division by zero",
    "ConnectionResetError: [Errno 104]",
    "ValueError: invalid literal for int()",
    "PermissionDenied: not allowed",
    "IntegrityError: duplicate key value",
    "Slow query: 2.3s",
    "Cache miss storm",
    "User signed in",
]
LEVEL_WEIGHTS = (5, 30, 25, 35, 5)
RELEASES = ("1.4.0", "1.4.1", "1.5.0")

Send = Callable[[int, dict[str, str], str], int]


def random_event(rng: random.Random) -> dict[str, str]:
    """An event as a client library would send it."""
    return {
        "message": rng.choice(MESSAGES),
        "level": rng.choices(LEVEL_NAMES, LEVEL_WEIGHTS)[0],
        "release": rng.choice(RELEASES),
        "user": f"user-{rng.randrange(300)}",
    }


def test_client_sender() -> Send:
    """Post through the test client; the client address varies per simulated client."""
    client = Client()

    def send(project_id: int, event: dict[str, str], address: str) -> int:
        response = client.post(
            f"/api/{project_id}/events/",
            data=json.dumps(event),
            content_type="application/json",
            REMOTE_ADDR=address,
        )
        return response.status_code

    return send


def http_sender(base_url: str, timeout: float = 5.0) -> Send:
    """Post over HTTP to a running site."""
    base = base_url.rstrip("/")

    def send(project_id: int, event: dict[str, str], address: str) -> int:
        request = urllib.request.Request(
            f"{base}/api/{project_id}/events/",
            data=json.dumps(event).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, OSError):
            return 0  # no answer at all

    return send


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise ValueError(text)
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


class Command(BaseCommand):
    help = "Post random events to the first --projects projects at --rate per second."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--projects", type=_positive(int), default=5)
        parser.add_argument("--rate", type=_positive(float), default=200.0, help="events/s")
        parser.add_argument("--duration", type=_positive(float), default=30.0, help="seconds")
        parser.add_argument(
            "--clients",
            type=_positive(int),
            default=4,
            help="distinct client addresses (test client only)",
        )
        parser.add_argument("--url", default=None, help="post over HTTP to this site instead")
        parser.add_argument("--seed", type=int, default=None, help="random seed")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        ids = list(Project.objects.values_list("pk", flat=True)[: options["projects"]])
        if not ids:
            raise CommandError("No projects: run `manage.py seed_projects` first.")
        send = http_sender(options["url"]) if options["url"] else test_client_sender()
        rng = random.Random(options["seed"])
        addresses = [f"10.0.0.{i + 1}" for i in range(options["clients"])]
        counts = self.run(send, ids, addresses, rng, options)
        accepted, limited = counts[202], counts[429]
        other = sum(counts.values()) - accepted - limited
        total = sum(counts.values())
        self.stdout.write(
            f"{total} events to {len(ids)} projects: {accepted} accepted, {limited} limited"
            + (f", {other} failed ({dict(counts)})" if other else "")
        )

    def run(
        self,
        send: Send,
        ids: list[int],
        addresses: list[str],
        rng: random.Random,
        options: dict[str, Any],
    ) -> Counter[int]:
        """Send at the rate (never faster; slower if the machine cannot keep up)."""
        rate, duration = options["rate"], options["duration"]
        counts: Counter[int] = Counter()
        started = time.monotonic()
        sent = 0
        last_drawn = 0.0
        while (elapsed := time.monotonic() - started) < duration:
            due = int(elapsed * rate) + 1
            if sent >= due:
                time.sleep(min((sent + 1) / rate - elapsed, duration - elapsed, 0.05))
                continue
            counts[send(rng.choice(ids), random_event(rng), rng.choice(addresses))] += 1
            sent += 1
            if not options["quiet"] and elapsed - last_drawn >= 0.2:
                self._draw(elapsed, duration, counts)
                last_drawn = elapsed
        if not options["quiet"]:
            self._draw(duration, duration, counts)
            self.stderr.write("")
        return counts

    def _draw(self, elapsed: float, duration: float, counts: Counter[int]) -> None:
        width = 30
        filled = int(width * min(elapsed / duration, 1.0))
        sent = sum(counts.values())
        self.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {elapsed:5.1f}/{duration:g}s "
            f"sent {sent} accepted {counts[202]} limited {counts[429]} "
            f"({sent / max(elapsed, 1e-9):.0f}/s)",
            ending="",
        )
        self.stderr.flush()

"""``manage.py seed_projects``: a few demo projects (existing ones are kept)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils.text import slugify

from example_project.events.models import Project

NAMES = [
    ("Storefront", "javascript"),
    ("Checkout API", "python"),
    ("Search", "go"),
    ("Mobile app", "swift"),
    ("Billing worker", "python"),
    ("Notifications", "node"),
    ("Analytics", "rust"),
    ("Admin", "python"),
]


class Command(BaseCommand):
    help = "Create demo projects (up to --count, keeping any that exist)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=5, help="Projects wanted (1-8).")

    def handle(self, *args: Any, **options: Any) -> None:
        count = options["count"]
        if not 1 <= count <= len(NAMES):
            self.stderr.write(f"--count must be between 1 and {len(NAMES)}")
            raise SystemExit(2)
        created = 0
        for name, platform in NAMES[:count]:
            _, made = Project.objects.get_or_create(
                slug=slugify(name), defaults={"name": name, "platform": platform}
            )
            created += made
        self.stdout.write(f"{created} project(s) created, {Project.objects.count()} in all.")

"""The example site's one app: projects, event ingest and the dashboards."""

from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "example_project.events"
    label = "events"
    default_auto_field = "django.db.models.BigAutoField"

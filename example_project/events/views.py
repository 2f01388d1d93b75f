"""Pages (index, project dashboard, cluster) and the rate-limited ingest API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import CommandError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from django_rb import get_cluster
from django_rb.management.commands.rb_status import cluster_status

from . import charts, series
from .ingest import BadEvent, limited_ingest, parse_event
from .projects import all_projects, get_project


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """Every project with its last hour as a sparkline (one get_range for all of them)."""
    projects = all_projects()
    lines = series.sparklines(list(projects)) if projects else {}
    rows = [
        {
            "project": info,
            "sparkline": charts.sparkline(lines[pid]),
            "events": sum(v for _, v in lines[pid]),
        }
        for pid, info in projects.items()
    ]
    return render(request, "events/index.html", {"rows": rows})


@require_GET
def project(request: HttpRequest, project_id: int) -> HttpResponse:
    """One project's dashboard: charts over the hour and the day, levels, users, messages."""
    info = get_project(project_id)
    if info is None:
        raise Http404("No such project.")
    board = series.dashboard(project_id)
    hours = [(datetime.fromtimestamp(t, UTC).strftime("%H"), v) for t, v in board.day]
    context = {
        "project": info,
        "board": board,
        "hour_chart": charts.line_chart(board.hour, "Events per 10 seconds, last hour"),
        "day_chart": charts.bar_chart(hours, "Events per hour, last 24 hours", width=720),
        "level_chart": charts.bar_chart(board.levels, "Events by level, last 24 hours"),
        "ingest_url": request.build_absolute_uri(f"/api/{project_id}/events/"),
    }
    return render(request, "events/project.html", context)


@require_GET
def cluster(request: HttpRequest) -> HttpResponse:
    """Each node up or down, with its keys and memory (what ``rb_status`` shows)."""
    error = None
    try:
        rows = cluster_status(get_cluster(), timeout=1.0)
    except CommandError as exc:
        rows, error = [], str(exc)
    return render(request, "events/cluster.html", {"rows": rows, "error": error})


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
@require_POST
@limited_ingest
def ingest(request: HttpRequest, project_id: int) -> HttpResponse:
    """Accept one JSON event for a project: validate first, count only what is accepted."""
    if get_project(project_id) is None:
        return _error(404, f"no project {project_id}")
    try:
        event = parse_event(request.body)
    except BadEvent as exc:
        return _error(400, str(exc))
    series.record_event(project_id, event)
    return JsonResponse({"accepted": True}, status=202)


def limited(request: HttpRequest, exc: Any) -> HttpResponse:
    """RB_RATELIMIT["VIEW"]: a blocked event is counted, then answered 429 in JSON (the
    limiter adds Retry-After and the RateLimit fields)."""
    match = getattr(request, "resolver_match", None)
    project_id = match.kwargs.get("project_id") if match else None
    if project_id is not None and get_project(project_id) is not None:
        series.record_limited(project_id)
    return _error(429, "rate limit exceeded")

"""Pages (index, project dashboard, cluster) and the rate-limited ingest API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.management.base import CommandError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from redis.exceptions import RedisError

from django_rb import get_cluster
from django_rb.cluster.errors import HostError
from django_rb.management.commands.rb_status import cluster_status

from . import charts, series
from .ingest import BadEvent, limited_ingest, parse_event
from .projects import all_projects, get_project

#: What a node that is down or stalled raises through the core.
NODE_ERRORS = (HostError, RedisError)


def unavailable(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """A page whose data sits partly on a node that did not answer: say so, status 503."""
    response = render(request, "events/unavailable.html", {"error": str(exc)}, status=503)
    response["Retry-After"] = "5"
    return response


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """Every project with its last hour as a sparkline (one get_range for all of them)."""
    try:
        return _index(request)
    except NODE_ERRORS as exc:
        return unavailable(request, exc)


def _index(request: HttpRequest) -> HttpResponse:
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
    try:
        return _project(request, project_id)
    except NODE_ERRORS as exc:
        return unavailable(request, exc)


def _project(request: HttpRequest, project_id: int) -> HttpResponse:
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
    """Accept one JSON event for a project: validate first, count only what is accepted; a
    node that does not answer is a 503 the client can retry, never a 500."""
    try:
        event = parse_event(request.body)
    except BadEvent as exc:
        return _error(400, str(exc))
    except RequestDataTooBig:  # Django refuses to read a body over the limit: say so in JSON
        return _error(413, f"the body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes")
    try:
        if get_project(project_id) is None:
            return _error(404, f"no project {project_id}")
        series.record_event(project_id, event)
    except NODE_ERRORS as exc:
        response = _error(503, f"storage unavailable, retry later ({type(exc).__name__})")
        response["Retry-After"] = "5"
        return response
    return JsonResponse({"accepted": True}, status=202)


def limited(request: HttpRequest, exc: Any) -> HttpResponse:
    """RB_RATELIMIT["VIEW"]: a blocked event is counted, then answered 429 in JSON (the
    limiter adds Retry-After and the RateLimit fields)."""
    match = getattr(request, "resolver_match", None)
    project_id = match.kwargs.get("project_id") if match else None
    try:
        if project_id is not None and get_project(project_id) is not None:
            series.record_limited(project_id)
    except NODE_ERRORS:
        pass  # the 429 matters more than the count
    return _error(429, "rate limit exceeded")

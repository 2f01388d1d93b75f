"""The example site through Django's test client, on real nodes: ingest (accepted, limited,
bad input), the dashboards' SVG, the cluster page and simulate_traffic end to end."""

from __future__ import annotations

import json
import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from example_project.events.models import Project
from example_project.events.series import DAY_POINTS, HOUR_POINTS

from .example_support import example_site_fixture  # noqa: F401  (the example_site fixture)

EVENT = {"message": "KeyError: 'id'", "level": "error", "release": "1.0", "user": "alice"}


def post(client: Client, project_id: int, body: Any, address: str = "10.1.1.1") -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        f"/api/{project_id}/events/",
        data=data,
        content_type="application/json",
        REMOTE_ADDR=address,
    )


def figure(page: str, name: str) -> int:
    """A number the project page shows in ``<b id=name>``."""
    match = re.search(rf'<b id="{name}">(\d+)</b>', page)
    assert match, f"no figure {name!r} on the page"
    return int(match.group(1))


def chart(page: str, section: str) -> str:
    match = re.search(rf'<section id="{section}">(.*?)</section>', page, re.S)
    assert match, f"no chart section {section!r}"
    return match.group(1)


def first_project() -> int:
    return Project.objects.order_by("pk").values_list("pk", flat=True)[0]


def test_accepted_events_show_on_the_dashboard(example_site: Any) -> None:
    client = Client()
    pid = first_project()
    for user in ("alice", "bob", "alice"):
        assert post(client, pid, {**EVENT, "user": user}).status_code == 202
    accepted = post(client, pid, {**EVENT, "level": "info", "message": "hello"})
    assert accepted.status_code == 202 and accepted.json() == {"accepted": True}
    policy = accepted["RateLimit-Policy"]  # the middleware sends the fields on allowed answers
    assert "ingest.project" in policy and "ingest.ip" in policy
    page = client.get(f"/projects/{pid}/").content.decode()
    assert figure(page, "accepted") == 4
    assert figure(page, "users") == 2  # alice twice, bob once, alice again
    assert figure(page, "limited") == 0
    assert 'KeyError: &#x27;id&#x27;</td><td class="num">3' in page  # top message first
    assert page.index("KeyError") < page.index("hello")
    levels = chart(page, "levels")
    assert "<title>error: 3 events</title>" in levels
    assert "<title>info: 1 events</title>" in levels


def test_dashboard_svg_has_a_point_per_bucket(example_site: Any) -> None:
    client = Client()
    pid = first_project()
    post(client, pid, EVENT)
    page = client.get(f"/projects/{pid}/").content.decode()
    hour = chart(page, "hour")
    assert hour.count('<circle class="point"') == HOUR_POINTS
    assert hour.count("<title>") == HOUR_POINTS + 1  # one per point and the chart's own
    assert re.search(r"<title>\d\d:\d\d:\d\d UTC: 1 events</title>", hour)  # the event's bucket
    day = chart(page, "day")
    assert day.count('<rect class="bar"') == DAY_POINTS
    assert chart(page, "levels").count('<rect class="bar"') == 5
    assert '<line class="axis"' in hour and '<text class="tick"' in hour


def test_index_lists_projects_with_a_sparkline_each(example_site: Any) -> None:
    client = Client()
    pid = first_project()
    post(client, pid, EVENT)
    post(client, pid, EVENT)
    page = client.get("/").content.decode()
    rows = re.findall(r'<tr class="project" data-project-id="(\d+)">(.*?)</tr>', page, re.S)
    assert [int(p) for p, _ in rows] == list(Project.objects.values_list("pk", flat=True))
    for project_id, row in rows:
        points = re.search(r'<polyline [^>]*points="([^"]*)"', row)
        assert points and len(points.group(1).split()) == HOUR_POINTS
        events = int(re.search(r'class="num events">(\d+)<', row).group(1))
        assert events == (2 if int(project_id) == pid else 0)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ("{not json", 400, "not JSON"),
        ("[1, 2]", 400, "JSON object"),
        ({"message": "x", "level": "error"}, 400, "missing field(s): release, user"),
        ({**EVENT, "level": "loud"}, 400, "level must be one of"),
        ({**EVENT, "user": 7}, 400, "'user' must be a non-empty string"),
        (b"\xff\xfe", 400, "not JSON"),
    ],
)
def test_bad_input_is_a_json_error_and_counts_nothing(
    example_site: Any, body: Any, status: int, says: str
) -> None:
    client = Client()
    pid = first_project()
    response = post(client, pid, body)
    assert response.status_code == status
    assert says in response.json()["error"]
    page = client.get(f"/projects/{pid}/").content.decode()
    assert figure(page, "accepted") == 0 and figure(page, "users") == 0


def test_oversized_body_is_a_413_json_error_and_loses_nothing(
    example_site: Any, settings: Any
) -> None:
    client = Client()
    pid = first_project()
    assert post(client, pid, EVENT).status_code == 202
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = post(client, pid, {**EVENT, "message": "x" * 20_000})
    assert response.status_code == 413
    assert response.json()["error"] == "the body is over 10000 bytes"
    page = client.get(f"/projects/{pid}/").content.decode()
    assert figure(page, "accepted") == 1 and figure(page, "users") == 1  # the earlier event


def test_unknown_project_is_404_and_counts_nothing(example_site: Any) -> None:
    client = Client()
    missing = Project.objects.order_by("-pk").values_list("pk", flat=True)[0] + 100
    response = post(client, missing, EVENT)
    assert response.status_code == 404
    assert response.json() == {"error": f"no project {missing}"}
    assert client.get(f"/projects/{missing}/").status_code == 404
    assert all(
        int(n) == 0
        for n in re.findall(r'class="num events">(\d+)<', client.get("/").content.decode())
    )


def test_event_text_is_escaped_on_the_page(example_site: Any) -> None:
    client = Client()
    pid = first_project()
    nasty = "<script>alert('x')</script> & <b>"
    assert post(client, pid, {**EVENT, "message": nasty}).status_code == 202
    page = client.get(f"/projects/{pid}/").content.decode()
    assert "<script>alert" not in page and "<b> " not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;" in page


def test_only_post_reaches_ingest(example_site: Any) -> None:
    response = Client().get(f"/api/{first_project()}/events/")
    assert response.status_code == 405


def test_over_the_project_limit_is_429_with_fields_and_counted(example_site: Any) -> None:
    example_site.EXAMPLE_PROJECT_RATE = "3/m"
    client = Client()
    pid, other = Project.objects.order_by("pk").values_list("pk", flat=True)[:2]
    statuses = [post(client, pid, EVENT).status_code for _ in range(5)]
    assert statuses == [202, 202, 202, 429, 429]
    blocked = post(client, pid, EVENT)
    assert blocked.status_code == 429
    assert blocked.json() == {"error": "rate limit exceeded"}
    assert int(blocked["Retry-After"]) >= 1
    assert "ingest.project" in blocked["RateLimit-Policy"]
    assert "ingest.project" in blocked["RateLimit"]
    assert post(client, other, EVENT).status_code == 202  # another project's bucket is its own
    page = client.get(f"/projects/{pid}/").content.decode()
    assert figure(page, "accepted") == 3
    assert figure(page, "limited") == 3


def test_over_the_ip_limit_is_429_for_that_address_only(example_site: Any) -> None:
    example_site.EXAMPLE_IP_RATE = "2/m"
    client = Client()
    pid = first_project()
    assert [post(client, pid, EVENT, "10.9.9.9").status_code for _ in range(3)] == [202, 202, 429]
    assert "ingest.ip" in post(client, pid, EVENT, "10.9.9.9")["RateLimit"]
    assert post(client, pid, EVENT, "10.9.9.8").status_code == 202


def test_cluster_page_shows_every_node(example_site: Any, rb_nodes: list[Any]) -> None:
    page = Client().get("/cluster/").content.decode()
    rows = re.findall(r'<tr class="node (up|down)">(.*?)</tr>', page, re.S)
    assert len(rows) == len(rb_nodes)
    assert all(state == "up" for state, _ in rows)
    for node in rb_nodes:
        assert f"127.0.0.1:{node.port}" in page


def test_cluster_page_shows_a_dead_node_and_the_others(
    example_site: Any, rb_nodes: list[Any]
) -> None:
    rb_nodes[2].stop()
    page = Client().get("/cluster/").content.decode()
    states = re.findall(r'<tr class="node (up|down)">', page)
    assert states == ["up", "up", "down", "up"]


def test_a_dead_node_is_a_503_never_a_500(example_site: Any, rb_nodes: list[Any]) -> None:
    client = Client()
    ids = list(Project.objects.values_list("pk", flat=True))
    for pid in ids:
        assert post(client, pid, EVENT).status_code == 202
    rb_nodes[1].stop()
    answers = [post(client, pid, {**EVENT, "user": f"u{i}"}) for i in range(20) for pid in ids]
    assert {a.status_code for a in answers} <= {202, 503}
    refused = [a for a in answers if a.status_code == 503]
    assert refused, "some of the writes need the stopped node"
    assert refused[0].json()["error"].startswith("storage unavailable")
    assert refused[0]["Retry-After"] == "5"
    pages = [client.get("/"), *(client.get(f"/projects/{pid}/") for pid in ids)]
    for page in pages:
        assert page.status_code in (200, 503)
        if page.status_code == 503:
            assert 'id="unavailable"' in page.content.decode()
    assert client.get("/cluster/").status_code == 200
    rb_nodes[1].start()
    assert client.get("/").status_code == 200  # back once the node is


def simulate(*args: str) -> tuple[int, int, int, str]:
    """Run simulate_traffic; (sent, accepted, limited, what it drew on stderr)."""
    out, err = StringIO(), StringIO()
    call_command("simulate_traffic", *args, stdout=out, stderr=err)
    match = re.search(
        r"(\d+) events to \d+ projects: (\d+) accepted, (\d+) limited", out.getvalue()
    )
    assert match, out.getvalue()
    total, accepted, limited = map(int, match.groups())
    return total, accepted, limited, err.getvalue()


def test_simulate_traffic_over_http(
    live_server: Any, transactional_db: Any, example_site: Any
) -> None:
    total, accepted, limited, _ = simulate(
        "--projects", "1", "--rate", "40", "--duration", "1", "--url", live_server.url, "--quiet"
    )
    assert total >= 5 and accepted == total and limited == 0  # 40/s, fewer on a loaded machine
    page = Client().get(f"/projects/{first_project()}/").content.decode()
    assert figure(page, "accepted") == accepted


def test_simulate_traffic_posts_through_the_views(example_site: Any) -> None:
    total, accepted, limited, drawn = simulate(
        "--projects", "2", "--rate", "100", "--duration", "1", "--seed", "1", "--quiet"
    )
    assert 5 <= total <= 101 and accepted == total and limited == 0  # never above the rate
    assert drawn == ""  # --quiet: no progress bar
    client = Client()
    shown = sum(
        figure(client.get(f"/projects/{pid}/").content.decode(), "accepted")
        for pid in Project.objects.values_list("pk", flat=True)[:2]
    )
    assert shown == accepted


def test_simulate_traffic_reports_limited_events(example_site: Any) -> None:
    example_site.EXAMPLE_PROJECT_RATE = "3/m"
    total, accepted, limited, drawn = simulate("--projects", "1", "--rate", "50", "--duration", "1")
    assert accepted == 3 and limited == total - 3 > 0
    assert "accepted 3 " in drawn and "[####" in drawn  # the progress bar


def test_simulate_traffic_needs_projects(example_site: Any) -> None:
    Project.objects.all().delete()
    with pytest.raises(CommandError, match="seed_projects"):
        call_command("simulate_traffic", "--duration", "1", "--quiet")

"""Planning figures (issue 5, item 7) on a synthetic 200-task tag.

The tag has chained dependencies, subtasks on every third task, and every status and
priority. Pages are rendered through Django's test client (the full middleware stack, no
network), so the figures are server time. Validate and fix run the services the pages and
the API call, including their database reads; fix starts each run from a copy of the tag
with cycles and missing references in it. Parse PRD runs the real job on the default chat
model with an inference worker this section starts itself.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from bench.common import Table, inference_worker, median, p95

TASKS = 200
PAGE_RUNS = 30
DEP_RUNS = 20
FIX_RUNS = 5  # each starts from a fresh import of the broken tag, which takes far longer than the fix
PRD_RUNS = 2
PRD_TASKS = 3
PREFIX = "planbench"
STATUSES = ["pending", "in-progress", "review", "done", "deferred", "cancelled", "blocked"]
PRIORITIES = ["critical", "high", "medium", "low"]
SAMPLE_PRD = """# Invoicing for freelancers

## Accounts
Freelancers sign up with an email address and a password, and set their business name and VAT number.

## Invoices
A freelancer creates an invoice for a client with line items (description, quantity, unit price).
Totals and VAT are computed. Invoices are numbered without gaps and can be downloaded as PDF.

## Reminders
Unpaid invoices past their due date trigger an email reminder to the client every seven days.
"""


def tasks_file(*, broken: bool) -> dict[str, Any]:
    """A Task Master tasks.json with TASKS tasks; ``broken`` adds cycles and missing references."""
    rng = random.Random(7)
    tasks: list[dict[str, Any]] = []
    for n in range(1, TASKS + 1):
        earlier = list(range(max(1, n - 10), n))
        deps: list[int | str] = sorted(rng.sample(earlier, min(len(earlier), rng.choice([0, 1, 2, 2, 3]))))
        task: dict[str, Any] = {
            "id": n,
            "title": f"Task {n}: build part {n} of the product",
            "description": f"Description of task {n}. " * 3,
            "details": f"Implementation notes for task {n}. " * 6,
            "testStrategy": f"Tests for task {n}.",
            "status": STATUSES[n % len(STATUSES)],
            "priority": PRIORITIES[n % len(PRIORITIES)],
            "dependencies": deps,
            "subtasks": [],
        }
        if n % 3 == 0:
            task["subtasks"] = [
                {
                    "id": s,
                    "title": f"Step {s} of task {n}",
                    "description": "",
                    "dependencies": [s - 1] if s > 1 else [],
                    "status": "pending",
                }
                for s in (1, 2, 3)
            ]
        tasks.append(task)
    if broken:
        for a in (20, 60, 100, 140, 180):
            tasks[a - 1]["dependencies"].append(a + 1)  # a → a+1 ...
            if a not in tasks[a]["dependencies"]:
                tasks[a]["dependencies"].append(a)  # ... and a+1 → a: a cycle
            tasks[a + 4]["dependencies"].append(TASKS + 50)  # a task that does not exist
        tasks[2]["subtasks"][0]["dependencies"] = [3]  # 3.1 → 3.3 → 3.2 → 3.1
    return {"master": {"tasks": tasks, "metadata": {"description": "planning bench"}}}


def _cleanup() -> None:
    from django.contrib.auth import get_user_model

    from taskmaster.models import Team

    Team.objects.filter(slug=f"{PREFIX}-team").delete()
    get_user_model().objects.filter(username=f"{PREFIX}-owner").delete()


def _seed() -> tuple[Any, Any, str]:
    from django.contrib.auth import get_user_model

    from planning.models import Tag
    from planning.services import project_create, taskmaster_import
    from taskmaster.api.services import api_token_create, user_api_limit_set
    from taskmaster.models import Membership, Role, Team

    _cleanup()
    user = get_user_model().objects.create_user(f"{PREFIX}-owner", password=None)
    team = Team.objects.create(name="Planning bench", slug=f"{PREFIX}-team")
    Membership.objects.create(user=user, team=team, role=Role.OWNER)
    project = project_create(team=team, name="Planning bench")
    taskmaster_import(project=project, raw=json.dumps(tasks_file(broken=False)), user=user)
    user_api_limit_set(user=user, requests_per_minute=0, daily_token_quota=0)
    _token, secret = api_token_create(user=user, name="planning bench")
    return user, Tag.objects.get(project=project, name="master"), secret


def _ms(fn: Callable[[], Any], runs: int, *, prepare: Callable[[], Any] | None = None) -> list[float]:
    times = []
    for _ in range(runs):
        if prepare is not None:
            prepare()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _get(client: Any, url: str, **headers: Any) -> Callable[[], None]:
    def go() -> None:
        response = client.get(url, **headers)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")

    return go


def _pages(user: Any, tag: Any, secret: str) -> list[tuple[str, list[float]]]:
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(user)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    out = []
    for label, url, headers in (
        ("task list page", reverse("planning:tasks", args=[tag.pk]), {}),
        ("board page", reverse("planning:board", args=[tag.pk]), {}),
        ("API task list (/api/v1/…/tasks)", f"/api/v1/tags/{tag.pk}/tasks", auth),
    ):
        go = _get(client, url, **headers)
        _ms(go, 3)  # warm-up: templates, query plans, connection
        out.append((label, _ms(go, PAGE_RUNS)))
    return out


def _dependencies(user: Any, tag: Any) -> tuple[list[float], list[float], int, int]:
    from planning import selectors
    from planning.services import dependencies_fix, taskmaster_import

    broken = json.dumps(tasks_file(broken=True))

    def reimport() -> None:
        taskmaster_import(project=tag.project, raw=broken, user=user)

    reimport()
    issues = len(selectors.dependency_issues(tag))
    validate = _ms(lambda: selectors.dependency_issues(tag), DEP_RUNS)
    removed: list[int] = []

    def fix() -> None:
        revision, gone = dependencies_fix(tag=tag, user=user)
        if revision is None:
            raise RuntimeError("fix found nothing to remove")
        removed.append(len(gone))

    fixes = _ms(fix, FIX_RUNS, prepare=reimport)
    if selectors.dependency_issues(tag):
        raise RuntimeError("the tag still has dependency issues after fix")
    return validate, fixes, issues, removed[0]


def _parse_prd(user: Any, tag: Any) -> tuple[list[float], list[int]]:
    from planning.models import Task
    from planning.services import prd_create, tag_create
    from planning.tasks import run_workflow
    from taskmaster.llm import CallContext, generate
    from taskmaster.llm.registry import model_for_role
    from taskmaster.models import Job
    from taskmaster.services import job_create

    chat, emb = model_for_role("main"), model_for_role("embedding")
    target = tag_create(project=tag.project, name="prd")
    prd = prd_create(project=tag.project, title="Invoicing", text=SAMPLE_PRD, user=user)
    walls: list[float] = []
    made: list[int] = []
    with inference_worker(f"{chat.queue_name},{emb.queue_name}", name="planbench"):
        generate([{"role": "user", "content": "Hi"}], max_tokens=2, context=CallContext(feature="bench.warmup"))
        for _ in range(PRD_RUNS):
            params = {
                "prd_id": prd.pk,
                "num_tasks": PRD_TASKS,
                "mode": "replace",
                "detail": "short",
                "tag_id": target.pk,
            }
            job = job_create(
                team=tag.project.team, kind="planning.parse_prd", title="bench", created_by=user, params=params
            )
            start = time.perf_counter()
            run_workflow(job.pk)  # the Celery task body, in this process: the same code a jobs worker runs
            walls.append(time.perf_counter() - start)
            job.refresh_from_db()
            if job.status != Job.Status.SUCCEEDED:
                raise RuntimeError(f"parse PRD failed: {job.error}")
            # The merge drops near-duplicate titles, so a small model may yield fewer than asked.
            made.append(Task.objects.filter(tag=target).count())
            if not made[-1]:
                raise RuntimeError("parse PRD created no tasks")
    return walls, made


def run() -> str:
    user, tag, secret = _seed()
    try:
        pages = _pages(user, tag, secret)
        validate, fixes, issues, removed = _dependencies(user, tag)
        prd, made = _parse_prd(user, tag)
    finally:
        _cleanup()
    n_subtasks = sum(len(t["subtasks"]) for t in tasks_file(broken=False)["master"]["tasks"])
    table = Table(
        f"Planning: one tag with {TASKS} tasks and {n_subtasks} subtasks (Django test client, server time)",
        "p50",
        "p95",
    )

    def row(metric: str, values: list[float], target: str = "", fmt: str = "{:.1f}") -> None:
        table.rows.append((metric, fmt.format(median(values)), fmt.format(p95(values)), "", target))

    for label, times in pages:
        row(f"{label}, ms ({PAGE_RUNS} runs)", times, "p95 ≤ 150" if "page" in label else "")
    row(f"validate dependencies ({issues} issues), ms ({DEP_RUNS} runs)", validate, "≤ 50")
    row(f"fix dependencies (removes {removed}, one revision), ms ({len(fixes)} runs)", fixes, "≤ 50")
    row(
        f"parse PRD, {len(SAMPLE_PRD)}-character sample PRD, {PRD_TASKS} tasks asked "
        f"({'/'.join(map(str, made))} kept after de-duplication), default model, s ({PRD_RUNS} runs; p95 = slowest)",
        prd,
        fmt="{:.1f}",
    )
    return table.render()

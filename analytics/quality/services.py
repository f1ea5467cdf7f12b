"""Writes of the evaluation suites: suites, imports, the built-in suite, runs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from analytics.quality import runner
from analytics.quality.importers import ImportProblem, Record, parse_file
from analytics.quality.models import EvalResult, EvalRun, Suite, SuiteItem
from taskmaster.llm import LLMError
from taskmaster.models import Job, Team
from taskmaster.services import job_create, job_fail, job_progress, job_start, job_succeed

log = logging.getLogger(__name__)

RUN_KIND = "analytics.eval_run"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "builtin_suite.json"
BUILTIN_COLLECTION_SLUG = "project-docs"


@transaction.atomic
def suite_create(
    *, team: Team, name: str, kind: str, user: User | None, description: str = "", collection: Any = None
) -> Suite:
    name = name.strip()[:100]
    if not name:
        raise ValidationError("A suite needs a name.")
    if kind not in Suite.Kind.values:
        raise ValidationError(f"Unknown suite kind {kind!r}; use one of {', '.join(Suite.Kind.values)}.")
    if Suite.objects.filter(team=team, name=name).exists():
        raise ValidationError(f"Team {team.slug} already has a suite named {name!r}.")
    if collection is not None and collection.team_id != team.pk:
        raise ValidationError("The collection belongs to another team.")
    return Suite.objects.create(
        team=team, name=name, kind=kind, description=description.strip()[:300], collection=collection, created_by=user
    )


@transaction.atomic
def suite_set_collection(*, suite: Suite, collection: Any) -> Suite:
    if collection is not None and collection.team_id != suite.team_id:
        raise ValidationError("The collection belongs to another team.")
    suite.collection = collection
    suite.save(update_fields=["collection"])
    return suite


def _check_item(suite: Suite, item: SuiteItem, where: str) -> None:
    if not item.text:
        raise ImportProblem(f"{where}: no text (question, PRD or task) and no existing item with this key.")
    if suite.kind == Suite.Kind.COMPLEXITY and runner.reference_score(item) is None:
        raise ImportProblem(f"{where}: a complexity item needs expected_score or a baseline score.")
    if suite.kind == Suite.Kind.PLANNING_PRD and not (item.expected_tasks or item.baseline.get("tasks")):
        raise ImportProblem(f"{where}: a planning item needs expected_tasks or baseline tasks.")
    if suite.kind == Suite.Kind.RESEARCH and not (item.expected_answer or item.expected_sources):
        raise ImportProblem(f"{where}: a research item needs expected_answer or expected_sources.")


@transaction.atomic
def suite_import(*, suite: Suite, records: list[Record]) -> dict[str, int]:
    """Create items, or update the item with the same key; baselines merge. All or nothing."""
    suite = Suite.objects.select_for_update().get(pk=suite.pk)
    existing = {i.key: i for i in suite.items.all()}
    position = max((i.position for i in existing.values()), default=-1) + 1
    created = updated = 0
    for n, rec in enumerate(records, start=1):
        item = existing.get(rec.key)
        if item is None:
            item = SuiteItem(suite=suite, key=rec.key, position=position)
            position += 1
            created += 1
        else:
            updated += 1
        for name in ("title", "text", "expected_answer", "expected_sources", "expected_tasks"):
            value = getattr(rec, name)
            if value:
                setattr(item, name, value)
        if rec.expected_score is not None:
            item.expected_score = rec.expected_score
        if rec.baseline:
            item.baseline = {**item.baseline, **rec.baseline}
        _check_item(suite, item, f"item {n} (key {rec.key!r})")
        item.save()
        existing[rec.key] = item
    return {"created": created, "updated": updated}


def suite_import_file(*, suite: Suite, data: bytes, name: str) -> dict[str, int]:
    return suite_import(suite=suite, records=parse_file(data, name))


# --- the built-in suite ------------------------------------------------------------------


def _first_heading(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def builtin_definition() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


@transaction.atomic
def builtin_install(*, team: Team, user: User | None, ingest: str = "async") -> tuple[list[Suite], Job | None]:
    """Install the built-in suites on the project's own docs; idempotent.

    The research suite needs README.md, CONTRIBUTING.md and docs/deploy.md indexed: they are
    added to the team's "Project documentation" collection and indexed by the research app's
    ingestion job (``ingest="async"``: on Celery; ``"sync"``: right here, for the shell).
    """
    from research.ingest import ingest_run
    from research.models import Collection
    from research.services import INGEST_KIND, collection_create, ingest_start, source_add_text

    spec = builtin_definition()
    root = Path(settings.BASE_DIR)
    titles = {name: _first_heading(root / name) for name in spec["documents"]}
    collection = Collection.objects.filter(team=team, slug=BUILTIN_COLLECTION_SLUG).first()
    job: Job | None = None
    if collection is None:
        collection = collection_create(
            team=team,
            name="Project documentation",
            slug=BUILTIN_COLLECTION_SLUG,
            user=user,
            description="README, CONTRIBUTING and the deployment guide; used by the built-in evaluation suite.",
        )
        for name in spec["documents"]:
            source_add_text(collection=collection, user=user, title=name, text=(root / name).read_text("utf-8"))
        if ingest == "sync":
            job = job_create(
                team=team,
                kind=INGEST_KIND,
                title=f"Index {collection.name}",
                created_by=user,
                params={"collection_id": collection.pk, "source_ids": [], "reindex": False},
            )
            collection.sources.update(job=job)
        else:
            job = ingest_start(collection=collection, user=user)
    suites: list[Suite] = []
    for s in spec["suites"]:
        suite = Suite.objects.filter(team=team, name=s["name"]).first()
        if suite is None:
            suite = Suite.objects.create(
                team=team,
                name=s["name"],
                kind=s["kind"],
                description=s.get("description", ""),
                collection=collection if s["kind"] == Suite.Kind.RESEARCH else None,
                builtin=True,
                created_by=user,
            )
        records = []
        for item in s["items"]:
            sources = [titles.get(x, x) for x in item.get("expected_sources", [])]
            records.append(Record(**{**item, "expected_sources": sources}))
        suite_import(suite=suite, records=records)
        suites.append(suite)
    if job is not None and ingest == "sync":
        job_id = job.pk
        ingest_run(job_id=job_id)
    return suites, job


# --- runs ------------------------------------------------------------------------------------


def _clean_config(suite: Suite, config: dict[str, Any]) -> dict[str, Any]:
    from taskmaster.llm.registry import model_by_name, model_for_role

    clean: dict[str, Any] = {}
    name = str(config.get("model") or "").strip()
    if name:
        try:
            model = model_by_name(name)
        except LLMError as exc:
            raise ValidationError(str(exc)) from None
        if model.kind != "chat":
            raise ValidationError(f"{name} is not a chat model.")
        clean["model"] = name
    else:
        role = "research" if suite.kind == Suite.Kind.RESEARCH else "main"
        try:
            clean["model"] = model_for_role(role).name
        except LLMError as exc:
            raise ValidationError(str(exc)) from None
    for key, low, high in (("max_tokens", 8, 1024), ("k", 1, 20)):
        if config.get(key) not in (None, ""):
            value = int(config[key])
            if not low <= value <= high:
                raise ValidationError(f"{key} must be between {low} and {high}.")
            clean[key] = value
    for key, flow, fhigh in (("temperature", 0.0, 2.0), ("threshold", 0.0, 1.0)):
        if config.get(key) not in (None, ""):
            number = float(config[key])
            if not flow <= number <= fhigh:
                raise ValidationError(f"{key} must be between {flow:g} and {fhigh:g}.")
            clean[key] = number
    return clean


@transaction.atomic
def evalrun_create(*, suite: Suite, user: User | None, config: dict[str, Any], enqueue: bool = True) -> EvalRun:
    if not suite.items.exists():
        raise ValidationError("The suite has no items yet: import some first.")
    if suite.kind == Suite.Kind.RESEARCH and suite.collection_id is None:
        raise ValidationError("A research suite needs a collection to search.")
    clean = _clean_config(suite, config)
    job = job_create(
        team=suite.team,
        kind=RUN_KIND,
        title=f"Evaluate {suite.name} on {clean['model']}",
        created_by=user,
        total=suite.items.count(),
    )
    run = EvalRun.objects.create(suite=suite, model_name=clean["model"], config=clean, job=job, created_by=user)
    job.params = {"run_id": run.pk}
    job.save(update_fields=["params"])
    if enqueue:
        from analytics.quality.tasks import eval_run

        transaction.on_commit(lambda: eval_run.delay(run.pk))
    return run


def evalrun_execute(*, run_id: int) -> EvalRun:
    """Run every item not yet scored, then aggregate. Safe to run again (resumes)."""
    run = EvalRun.objects.select_related("suite", "created_by").get(pk=run_id)
    if run.status in {EvalRun.Status.SUCCEEDED, EvalRun.Status.FAILED}:
        return run
    items = list(run.suite.items.all())
    EvalRun.objects.filter(pk=run.pk).update(status=EvalRun.Status.RUNNING)
    if run.job_id:
        job_start(job_id=run.job_id, total=len(items), message="Evaluating…")
    try:
        user = runner.retrieval_user(run.suite, run.created_by)
        done_ids = set(run.results.values_list("item_id", flat=True))
        for n, item in enumerate(items, start=1):
            if item.pk not in done_ids:
                try:
                    output, scores = runner.run_item(run, item, user)
                    error = ""
                except LLMError as exc:
                    # One bad answer is a wrong answer, not a failed run.
                    output, scores, error = {}, runner.failed_scores(run.suite.kind, item), f"{exc.error_class}: {exc}"
                EvalResult.objects.get_or_create(
                    run=run, item=item, defaults={"output": output, "scores": scores, "error": error[:2000]}
                )
            if run.job_id:
                job_progress(job_id=run.job_id, done=n, total=len(items), message=f"Item {n} of {len(items)}")
        return evalrun_finish(run_id=run.pk)
    except Exception as exc:
        log.exception("evaluation run %s failed", run.pk)
        message = f"{type(exc).__name__}: {exc}"
        EvalRun.objects.filter(pk=run.pk).update(
            status=EvalRun.Status.FAILED, error=message[:4000], finished_at=timezone.now()
        )
        if run.job_id:
            job_fail(job_id=run.job_id, error=message)
        run.refresh_from_db()
        return run


def evalrun_finish(*, run_id: int) -> EvalRun:
    """Aggregate item scores and the baseline's (which may embed, so outside any transaction)."""
    run = EvalRun.objects.select_related("suite").get(pk=run_id)
    kind = run.suite.kind
    results = list(run.results.select_related("item"))
    model = runner.aggregate(kind, [r.scores for r in results])
    base_rows = [b for r in results if (b := runner.baseline_scores(run, r.item)) is not None]
    baseline = runner.aggregate(kind, base_rows) if base_rows else {}
    with transaction.atomic():
        _store_scores(run, kind, model, baseline, results, base_rows)
    return run


def _store_scores(
    run: EvalRun,
    kind: str,
    model: dict[str, float | None],
    baseline: dict[str, float | None],
    results: list[EvalResult],
    base_rows: list[dict[str, float | None]],
) -> None:
    run.scores = {
        "model": model,
        "baseline": baseline,
        "ratio": runner.ratios(kind, model, baseline) if baseline else {},
        "items": len(results),
        "errors": sum(1 for r in results if r.error),
        "baseline_items": len(base_rows),
    }
    run.status, run.finished_at = EvalRun.Status.SUCCEEDED, timezone.now()
    run.save(update_fields=["scores", "status", "finished_at"])
    if run.job_id:
        primary = runner.PRIMARY[kind]
        value = model.get(primary)
        shown = "-" if value is None else f"{value:.3f}"
        job_succeed(
            job_id=run.job_id,
            result={"run_id": run.pk, **run.scores},
            message=f"{runner.LABELS[primary]}: {shown} over {len(results)} items",
            revision_ref=f"analytics.evalrun:{run.pk}",
        )

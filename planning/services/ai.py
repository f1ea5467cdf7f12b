"""AI workflows: each runs as a Job, calls the model with bounded schemas, applies one revision.

Model calls happen outside any transaction (they take seconds); the results are then
applied in one atomic block that records the revision. A re-delivered Celery task
finds the revision linked to its job and does not apply twice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from types import SimpleNamespace
from typing import Annotated, Any, Literal

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from pydantic import AfterValidator, BaseModel, Field, create_model

from planning.models import ComplexityReport, Revision, Status, Subtask, Tag, Task
from planning.services.core import next_number, recording
from planning.services.qa import checked, complexity_shape, merge_subtasks, subtasks_shape, tasks_shape
from planning.snapshot import set_deps, tag_tasks
from taskmaster.llm import CallContext, generate
from taskmaster.models import Job
from taskmaster.services import job_create, job_progress

Score = Literal[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
Prio = Literal["high", "medium", "low"]
SYSTEM = "You are a software project planner. Reply with JSON only."
MAX_PER_SECTION = 8  # "let the model decide": an upper bound keeps a small model from looping
DEFAULT_SUBTASKS = 3
KINDS = {
    "planning.parse_prd": "Parse PRD",
    "planning.expand": "Expand task",
    "planning.expand_all": "Expand all",
    "planning.analyze": "Analyze complexity",
    "planning.add_task": "Add task",
    "planning.update": "Update tasks",
    "planning.scope": "Scope task",
}


# Bounds are tight on purpose: they are what makes a small local model stop, and they
# cap the worst-case generation time of every call. Any character is allowed (task titles
# in French or Japanese are ordinary): the runtime accepts the raw control characters the
# grammar lets into strings, and the validators below turn stray ones into spaces.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _tidy(value: str) -> str:
    return CONTROL.sub(" ", value).strip()


def _one_line(value: str) -> str:
    return " ".join(_tidy(value).split())


def text(high: int, low: int = 0) -> Any:
    return Field(min_length=low, max_length=high)


Text = Annotated[str, AfterValidator(_tidy)]
Title = Annotated[str, AfterValidator(_one_line)]


@lru_cache
def schemas(detail: str = "short") -> SimpleNamespace:
    """The output schemas; "short" shrinks every text bound (much faster on a small CPU model)."""
    k = 0.4 if detail == "short" else 1.0

    def t(high: int, low: int = 0) -> Any:
        return text(max(low + 10, int(high * k)), low)

    deps: Any = (list[int], Field(default_factory=list, max_length=2))
    sub: type[BaseModel] = create_model(
        "GenSubtask", title=(Title, t(50, 3)), description=(Text, t(80)), details=(Text, t(100)), dependencies=deps
    )
    task: type[BaseModel] = create_model(
        "GenTask",
        title=(Title, t(50, 3)),
        description=(Text, t(80)),
        details=(Text, t(100)),
        dependencies=deps,
        test_strategy=(Text, t(60)),
        priority=(Prio, "medium"),
    )
    rewrite: type[BaseModel] = create_model(
        "Rewrite",
        title=(Title, t(50, 3)),
        description=(Text, t(100)),
        details=(Text, t(160)),
        test_strategy=(Text, t(80)),
    )
    note: type[BaseModel] = create_model("Note", note=(Text, t(160, 3)))
    assessment: type[BaseModel] = create_model(
        "Assessment",
        score=(Score, ...),
        recommended_subtasks=(Literal[1, 2, 3, 4, 5, 6, 7, 8], ...),
        expansion_prompt=(Text, t(80)),
        reasoning=(Text, t(80)),
    )
    return SimpleNamespace(GenSubtask=sub, GenTask=task, Rewrite=rewrite, Note=note, Assessment=assessment)


def _list_of(item: type[BaseModel], field: str, low: int, high: int) -> type[BaseModel]:
    fields: dict[str, Any] = {field: (list[item], Field(min_length=low, max_length=high))}  # type: ignore[valid-type]
    model: type[BaseModel] = create_model(f"{item.__name__}List{low}to{high}", **fields)
    return model


def _budget(schema: type[BaseModel]) -> int:
    """max_tokens that cannot cut a valid answer short: bounded lengths / ~2.5 chars per token."""
    chars = 0

    def walk(node: dict[str, Any], defs: dict[str, Any], mult: int) -> None:
        nonlocal chars
        if "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        if node.get("type") == "array":
            walk(node["items"], defs, mult * int(node.get("maxItems", 1)))
            chars += 8 * mult
        for name, sub in (node.get("properties") or {}).items():
            chars += (len(name) + 8) * mult
            walk(sub, defs, mult)
        chars += int(node.get("maxLength", 0)) * mult + (4 * mult if "enum" in node else 0)

    schema_dict = schema.model_json_schema()
    walk(schema_dict, schema_dict.get("$defs", {}), 1)
    return int(chars / 2.5) + 32


# --- starting jobs ----------------------------------------------------------------------------


def workflow_start(*, kind: str, tag: Tag, user: User, params: dict[str, Any], title: str = "") -> Job:
    """Create the job and enqueue it after commit; parameters were validated by the caller."""
    from planning.tasks import run_workflow

    if kind not in KINDS:
        raise ValidationError(f"Unknown planning workflow {kind!r}.")
    job = job_create(
        team=tag.project.team,
        kind=kind,
        title=title or f"{KINDS[kind]} · {tag.project.name}/{tag.name}",
        created_by=user,
        params={**params, "tag_id": tag.pk},
    )  # type: ignore[arg-type]
    transaction.on_commit(lambda: run_workflow.delay(job.pk))
    return job


# --- helpers ------------------------------------------------------------------------------------


@dataclass
class Run:
    job: Job
    tag: Tag
    params: dict[str, Any]
    calls: int = 0
    total: int = 1
    qa_notes: list[str] = field(default_factory=list)

    def ctx(self, feature: str) -> CallContext:
        return CallContext(
            feature=f"planning.{feature}",
            user_id=self.job.created_by_id,
            team_id=self.job.team_id,
            template_version="v1",
        )

    def ask(self, feature: str, prompt: str, schema: type[BaseModel], message: str) -> Any:
        job_progress(job_id=self.job.pk, done=self.calls, total=self.total, message=message)
        completion = generate(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
            schema=schema,
            max_tokens=min(_budget(schema), int(self.params.get("max_tokens") or 10**6)),
            context=self.ctx(feature),
            temperature=0.2,
        )
        self.calls += 1
        job_progress(job_id=self.job.pk, done=self.calls, total=self.total, message=message.rstrip("…") + " ✓")
        return completion.parsed

    def ask_checked(
        self,
        feature: str,
        prompt: str,
        schema: type[BaseModel],
        message: str,
        *,
        kind: str,
        shape: Callable[[Any], Any],
        label: str,
    ) -> Any:
        """``ask`` behind the QA gate for ``kind`` (one retry; see planning.services.qa)."""
        attempts = 0

        def ask(text: str) -> Any:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                self.total += 1
            note = message if attempts == 1 else message.rstrip("…") + ": again, after a QA gate…"
            return self.ask(feature, text, schema, note)

        return checked(kind, ask, prompt, shape, self.qa_notes, label)

    @property
    def s(self) -> SimpleNamespace:
        return schemas(str(self.params.get("detail") or "short"))

    def model_name(self) -> str:
        from taskmaster.llm.registry import model_for_role

        return model_for_role("main").name

    def context_tokens(self) -> int:
        from taskmaster.llm.registry import model_for_role

        return int(model_for_role("main").context_length)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _words(title: str) -> set[str]:
    return set(re.findall(r"\w+", title.casefold()))


def _duplicate(a: str, b: str) -> bool:
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        return a.strip().lower() == b.strip().lower()
    return wa == wb or len(wa & wb) / len(wa | wb) >= 0.8


def split_sections(text: str, max_chars: int) -> list[str]:
    """Markdown sections (or paragraphs), packed greedily into chunks of at most ``max_chars``."""
    parts = re.split(r"(?m)^(?=#{1,6}\s)", text) if re.search(r"(?m)^#{1,6}\s", text) else re.split(r"\n\s*\n", text)
    pieces: list[str] = []
    for part in (p.strip() for p in parts):
        while len(part) > max_chars:
            cut = part.rfind("\n", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            pieces.append(part[:cut].strip())
            part = part[cut:].strip()
        if part:
            pieces.append(part)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + len(piece) + 2 <= max_chars:
            chunks[-1] += "\n\n" + piece
        else:
            chunks.append(piece)
    return chunks or [text[:max_chars]]


def allocate(n: int, sizes: list[int]) -> list[int]:
    """Split n tasks over sections by length (largest remainder); each gets one while n allows."""
    total = sum(sizes) or 1
    base = [1 if n >= len(sizes) else 0 for _ in sizes]
    rest = n - sum(base)
    shares = [rest * s / total for s in sizes]
    counts = [b + math.floor(x) for b, x in zip(base, shares, strict=True)]
    order = sorted(range(len(sizes)), key=lambda i: (-(shares[i] - math.floor(shares[i])), -sizes[i]))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def merge_generated(
    generated: list[tuple[Any, list[int]]], keep: list[int], alias: dict[int, int], start: int = 0
) -> None:
    """Add ``generated[start:]`` to ``keep``, folding near-duplicate titles into ``alias`` (and skipping blanks)."""
    for idx in range(start, len(generated)):
        task = generated[idx][0]
        if not task.title:  # only blanks and control characters: nothing to keep (see planning.services.qa)
            continue
        twin = next((k for k in keep if _duplicate(generated[k][0].title, task.title)), None)
        if twin is None:
            keep.append(idx)
        else:
            alias[idx] = twin


def top_up(
    generated: list[tuple[Any, list[int]]],
    keep: list[int],
    alias: dict[int, int],
    missing: int,
    ask: Callable[[int, list[str]], Any],
) -> int:
    """One more generation round for the tasks that de-duplication removed; how many it added.

    Only one round: a small model that keeps repeating itself gets a shorter plan rather than
    an endless loop. Dependencies of the new tasks point within the new list, backwards.
    """
    before = len(keep)
    answer = ask(missing, [generated[k][0].title for k in keep])
    offset = len(generated)
    for k, task in enumerate(answer.tasks):
        generated.append((task, [offset + d - 1 for d in task.dependencies if 1 <= d <= k]))
    merge_generated(generated, keep, alias, offset)
    return len(keep) - before


def _latest_reports(tasks: list[Task]) -> dict[int, ComplexityReport]:
    latest: dict[int, ComplexityReport] = {}
    for r in ComplexityReport.objects.filter(task__in=tasks).order_by("created_at", "pk"):
        latest[r.task_id] = r
    return latest


# --- workflows ------------------------------------------------------------------------------------


# Research mode gives at most this share of the prompt room to retrieved passages, so the
# PRD section itself always keeps most of the context.
RESEARCH_SHARE = 3
RESEARCH_PASSAGES = 4


def research_context(run: Run, query: str, max_chars: int) -> list[str]:
    """Relevant passages from the chosen collections of the project's team, within ``max_chars``."""
    ids = [int(i) for i in run.params.get("collection_ids") or []]
    user = run.job.created_by
    if not ids or user is None or max_chars < 80:
        return []
    from research.selectors import collections_for, hybrid_search
    from taskmaster.access import Perm

    # Only the project's team: a user in several teams must not pull another team's notes in.
    team_ids = list(
        collections_for(user, Perm.VIEW, team=run.tag.project.team).filter(pk__in=ids).values_list("pk", flat=True)
    )
    if not team_ids:
        return []
    hits = hybrid_search(
        user=user,
        query=_clip(query, 1000),
        collection_ids=team_ids,
        k=RESEARCH_PASSAGES,
        window=0,
        context=run.ctx("parse_prd.research"),
    )
    passages: list[str] = []
    left = max_chars
    for hit in hits:
        if left < 80:  # a shorter scrap would be noise to the model
            break
        if not hit.relevant:
            continue
        piece = _clip(f"[{hit.document_title}] {' '.join(hit.text.split())}", left)
        passages.append(piece)
        left -= len(piece) + 1
    return passages


def prd_prompt(section: str, ask: str, passages: list[str]) -> str:
    background = (
        "Background from the team's knowledge base (use it where it applies):\n" + "\n".join(passages) + "\n\n"
        if passages
        else ""
    )
    return (
        f"{background}Requirements:\n{section}\n\nWrite {ask} development tasks for these requirements, in build "
        "order. dependencies: numbers (1-based) of earlier tasks in your list that must be done first."
    )


def _parse_prd(run: Run) -> tuple[str, dict[str, Any]]:
    from planning.models import PRD

    prd = PRD.objects.get(pk=run.params["prd_id"], project=run.tag.project)
    n = run.params.get("num_tasks")
    per_task = _budget(_list_of(run.s.GenTask, "tasks", 1, 1))
    room = run.context_tokens() - 200 - per_task * min(int(n or MAX_PER_SECTION), MAX_PER_SECTION)
    room_chars = max(400, room * 3)  # ~3 characters per token
    research = bool(run.params.get("collection_ids"))
    research_chars = min(room_chars // RESEARCH_SHARE, max(0, room_chars - 400)) if research else 0
    sections = split_sections(prd.text, room_chars - research_chars)
    counts = allocate(int(n), [len(s) for s in sections]) if n else [0] * len(sections)
    run.total = sum(1 for c, _ in zip(counts, sections, strict=True) if c or not n)
    generated: list[tuple[Any, list[int]]] = []  # task, dependencies as indexes into generated
    used_passages = 0
    for i, (section, count) in enumerate(zip(sections, counts, strict=True)):
        if n and not count:
            continue
        low, high = (count, count) if n else (1, MAX_PER_SECTION)
        passages = research_context(run, section, research_chars)
        used_passages += len(passages)
        prompt = prd_prompt(section, f"exactly {count}" if n else "1 to 8", passages)
        answer = run.ask_checked(
            "parse_prd",
            prompt,
            _list_of(run.s.GenTask, "tasks", low, high),
            f"Section {i + 1} of {len(sections)}: generating tasks…",
            kind="planning.tasks",
            shape=lambda a: tasks_shape(a.tasks),
            label=f"section {i + 1}",
        )
        offset = len(generated)
        for k, task in enumerate(answer.tasks):
            generated.append((task, [offset + d - 1 for d in task.dependencies if 1 <= d <= k]))
    # De-duplicate across sections; dependencies on a dropped task move to the task it duplicated.
    keep: list[int] = []
    alias: dict[int, int] = {}
    merge_generated(generated, keep, alias)
    topped: int | None = None
    if n and len(keep) < int(n):

        def ask_more(missing: int, planned: list[str]) -> Any:
            run.total += 1
            listing = "\n".join(f"- {_clip(t, 80)}" for t in planned)
            prompt = (
                f"Requirements:\n{_clip(prd.text, max(400, room_chars - research_chars - len(listing)))}\n\n"
                f"Already planned:\n{listing}\n\nWrite exactly {missing} more development tasks for these "
                "requirements, each different from the ones already planned. dependencies: numbers (1-based) of "
                "earlier tasks in your new list."
            )
            return run.ask_checked(
                "parse_prd",
                prompt,
                _list_of(run.s.GenTask, "tasks", missing, missing),
                f"Topping up {missing} task(s) lost to de-duplication…",
                kind="planning.tasks",
                shape=lambda a: tasks_shape(a.tasks, existing_titles=planned),
                label="top-up",
            )

        topped = top_up(generated, keep, alias, min(int(n) - len(keep), MAX_PER_SECTION), ask_more)
    if n:
        keep = keep[: int(n)]
    replace = run.params.get("mode") == "replace"
    with transaction.atomic(), recording(tag=run.tag, user=run.job.created_by, workflow="parse-prd", job=run.job) as d:
        if replace:
            Task.objects.filter(tag=run.tag).delete()
        start = next_number(run.tag)
        number = {idx: start + pos for pos, idx in enumerate(keep)}
        existing = list(Task.objects.filter(tag=run.tag).values_list("number", flat=True))
        titles = list(Task.objects.filter(tag=run.tag).values_list("title", flat=True))
        plan: list[dict[str, Any]] = []
        created: dict[int, Task] = {}
        for idx in keep:
            t = generated[idx][0]
            created[number[idx]] = Task.objects.create(
                tag=run.tag,
                number=number[idx],
                title=t.title,
                description=t.description,
                details=t.details,
                test_strategy=t.test_strategy,
                priority=t.priority,
                metadata={"source": f"prd:{prd.pk}"},
            )
        for idx in keep:
            refs = []
            for dep in generated[idx][1]:
                target = alias.get(dep, dep)
                if target in number and number[target] < number[idx]:  # backwards only, and it must exist
                    refs.append(str(number[target]))
            if refs:
                set_deps(created[number[idx]], refs, created)
            plan.append({"number": number[idx], "title": generated[idx][0].title, "dependencies": list(map(int, refs))})
        final_check(
            run, "merged plan", "planning.tasks", {"tasks": plan, "existing": existing, "existing_titles": titles}
        )
        d.summary = f"{'Replaced tasks with' if replace else 'Added'} {len(keep)} tasks from PRD “{prd.title}”"
    result = {"created": sorted(created), "sections": len(sections), "duplicates_dropped": len(alias)}
    if topped is not None:
        result["topped_up"] = topped
    if research:
        result["research"] = {"collections": run.params["collection_ids"], "passages": used_passages}
    return d.summary, result


def _expand_one(run: Run, task: Task, count: int, prompt_extra: str) -> list[Any]:
    prompt = (
        f"Task: {task.title}\nDescription: {_clip(task.description, 400)}\nDetails: {_clip(task.details, 600)}\n"
        + (f"Guidance: {_clip(prompt_extra, 400)}\n" if prompt_extra else "")
        + f"\nBreak this task into exactly {count} subtasks in order. dependencies: numbers of earlier "
        "subtasks in your list."
    )
    answer = run.ask_checked(
        "expand",
        prompt,
        _list_of(run.s.GenSubtask, "subtasks", count, count),
        f"Expanding task {task.number} into {count} subtasks…",
        kind="planning.subtasks",
        shape=lambda a: subtasks_shape(task.number, a.subtasks, count),
        label=f"task {task.number}",
    )
    return merge_subtasks(answer.subtasks)


def _apply_subtasks(task: Task, subs: list[Any], replace: bool) -> int:
    if replace:
        task.subtasks.all().delete()
    start = max([s.number for s in task.subtasks.all()] or [0]) + 1
    made = [
        Subtask.objects.create(
            parent=task,
            number=start + i,
            title=s.title,
            description=s.description,
            details=s.details,
            priority=task.priority,
        )
        for i, s in enumerate(subs)
    ]
    for i, (sub, gen) in enumerate(zip(made, subs, strict=True)):
        refs = [f"{task.number}.{start + d - 1}" for d in gen.dependencies if 1 <= d <= i]
        if refs:
            sub.parent = Task.objects.prefetch_related("subtasks").get(pk=task.pk)
            set_deps(sub, refs, {})
    Task.objects.filter(pk=task.pk).update(version=F("version") + 1)
    return len(made)


def _count_and_prompt(run: Run, task: Task, report: ComplexityReport | None) -> tuple[int, str]:
    count = run.params.get("num_subtasks") or (report.recommended_subtasks if report else 0) or DEFAULT_SUBTASKS
    extra = run.params.get("prompt") or ""
    if report and report.expansion_prompt:
        extra = f"{report.expansion_prompt} {extra}".strip()
    return max(1, min(int(count), 10)), extra


def _expand(run: Run) -> tuple[str, dict[str, Any]]:
    task = Task.objects.get(tag=run.tag, number=run.params["task_number"])
    report = _latest_reports([task]).get(task.pk)
    count, extra = _count_and_prompt(run, task, report)
    subs = _expand_one(run, task, count, extra)
    with transaction.atomic(), recording(tag=run.tag, user=run.job.created_by, workflow="expand", job=run.job) as d:
        task = Task.objects.get(pk=task.pk)
        made = _apply_subtasks(task, subs, bool(run.params.get("replace")))
        d.summary = f"Expanded task {task.number} into {made} subtasks"
    return d.summary, {"task": task.number, "subtasks": made}


def _expand_all(run: Run) -> tuple[str, dict[str, Any]]:
    threshold = int(run.params.get("threshold") or run.tag.project.complexity_threshold)
    tasks = list(Task.objects.filter(tag=run.tag, status=Status.PENDING))
    reports = _latest_reports(tasks)
    chosen = sorted(
        (t for t in tasks if t.pk in reports and reports[t.pk].score >= threshold),
        key=lambda t: (-reports[t.pk].score, t.number),
    )
    if not run.params.get("replace"):
        chosen = [t for t in chosen if not t.subtasks.exists()]
    unanalysed = sum(1 for t in tasks if t.pk not in reports)
    if not chosen:
        raise ValidationError(
            f"No pending task without subtasks has a complexity score of {threshold} or more"
            + (f" ({unanalysed} pending tasks were never analysed: run Analyze complexity)." if unanalysed else ".")
        )
    run.total = len(chosen)
    plans = [(t, _expand_one(run, t, *_count_and_prompt(run, t, reports[t.pk]))) for t in chosen]
    with transaction.atomic(), recording(tag=run.tag, user=run.job.created_by, workflow="expand-all", job=run.job) as d:
        made = sum(
            _apply_subtasks(Task.objects.get(pk=t.pk), subs, bool(run.params.get("replace"))) for t, subs in plans
        )
        d.summary = f"Expanded {len(plans)} tasks (complexity ≥ {threshold}) into {made} subtasks"
    return d.summary, {"tasks": [t.number for t, _ in plans], "subtasks": made, "unanalysed": unanalysed}


def _analyze(run: Run) -> tuple[str, dict[str, Any]]:
    numbers = run.params.get("task_numbers") or []
    qs = Task.objects.filter(tag=run.tag).exclude(status__in=[Status.DONE, Status.CANCELLED])
    tasks = list(qs.filter(number__in=numbers) if numbers else qs)
    if not tasks:
        raise ValidationError("There are no unfinished tasks to analyse.")
    per_out = _budget(_list_of(run.s.Assessment, "tasks", 1, 1))
    per_in = 140  # a task clipped to ~420 characters
    size = max(1, min(6, (run.context_tokens() - 300) // (per_out + per_in)))
    batches = [tasks[i : i + size] for i in range(0, len(tasks), size)]
    run.total = len(batches)
    threshold = int(run.params.get("threshold") or run.tag.project.complexity_threshold)
    results: list[tuple[Task, Any]] = []
    for b, batch in enumerate(batches):
        listing = "\n".join(
            f"{i + 1}. {t.title}: {_clip(t.description or t.details, 300)}" for i, t in enumerate(batch)
        )
        prompt = (
            f"Tasks:\n{listing}\n\nFor each task, in the same order, rate its complexity from 1 (trivial) to "
            "10 (very complex), recommend a number of subtasks and write a short prompt for breaking it down."
        )
        numbers = [t.number for t in batch]
        answer = run.ask_checked(
            "analyze",
            prompt,
            _list_of(run.s.Assessment, "tasks", len(batch), len(batch)),
            f"Batch {b + 1} of {len(batches)}: analysing {len(batch)} tasks…",
            kind="planning.complexity",
            shape=lambda a, numbers=numbers: complexity_shape(numbers, a.tasks),  # type: ignore[misc]
            label=f"batch {b + 1}",
        )
        results.extend(zip(batch, answer.tasks, strict=True))
    model = run.model_name()
    with transaction.atomic(), recording(tag=run.tag, user=run.job.created_by, workflow="analyze", job=run.job) as d:
        for task, a in results:
            ComplexityReport.objects.create(
                task=task,
                score=a.score,
                recommended_subtasks=a.recommended_subtasks,
                expansion_prompt=a.expansion_prompt,
                reasoning=a.reasoning,
                model_name=model,
                threshold=threshold,
            )
        flagged = sum(1 for _, a in results if a.score >= threshold)
        d.summary = f"Analysed {len(results)} tasks; {flagged} need expansion (score ≥ {threshold})"
    return d.summary, {"analysed": [t.number for t, _ in results], "needs_expansion": flagged}


def _add_task(run: Run) -> tuple[str, dict[str, Any]]:
    existing = list(Task.objects.filter(tag=run.tag).order_by("-number")[:20])
    listing = "\n".join(f"{t.number}. {t.title}" for t in reversed(existing)) or "(none yet)"
    prompt = (
        f"Existing tasks:\n{listing}\n\nWrite one new task for: {_clip(run.params['prompt'], 1000)}\n"
        "dependencies: numbers of existing tasks it needs."
    )
    taken = dict(Task.objects.filter(tag=run.tag).values_list("number", "title"))
    answer = run.ask_checked(
        "add_task",
        prompt,
        _list_of(run.s.GenTask, "tasks", 1, 1),
        "Writing the new task…",
        kind="planning.tasks",
        shape=lambda a: {
            "tasks": [{"number": next_number(run.tag), "title": a.tasks[0].title, "dependencies": []}],
            "existing": list(taken),
            "existing_titles": list(taken.values()),
        },
        label="new task",
    )
    gen = answer.tasks[0]
    with transaction.atomic(), recording(tag=run.tag, user=run.job.created_by, workflow="add-task", job=run.job) as d:
        tasks = {t.number: t for t in tag_tasks(run.tag)}
        task = Task.objects.create(
            tag=run.tag,
            number=next_number(run.tag),
            title=gen.title or _clip(run.params["prompt"], 60),
            description=gen.description,
            details=gen.details,
            test_strategy=gen.test_strategy,
            priority=run.params.get("priority") or gen.priority,
        )
        tasks[task.number] = task
        refs = [
            str(x)
            for x in dict.fromkeys([*gen.dependencies, *run.params.get("dependencies", [])])
            if x in tasks and x != task.number
        ]
        if refs:
            set_deps(task, refs, tasks)
        d.summary = f"Added task {task.number}: {task.title}"[:500]
    return d.summary, {"task": task.number}


def _targets(run: Run) -> list[Task]:
    qs = Task.objects.filter(tag=run.tag).exclude(status__in=[Status.DONE, Status.CANCELLED]).order_by("number")
    if run.params.get("from_number"):
        return list(qs.filter(number__gte=run.params["from_number"]))
    return list(qs.filter(number__in=run.params.get("task_numbers") or []))


def _describe(t: Task) -> str:
    return (
        f"Title: {t.title}\nDescription: {_clip(t.description, 300)}\nDetails: {_clip(t.details, 500)}\n"
        f"Test strategy: {_clip(t.test_strategy, 200)}"
    )


def _rewrite(run: Run, workflow: str, instruction: Callable[[Task], str]) -> tuple[str, dict[str, Any]]:
    tasks = _targets(run)
    if not tasks:
        raise ValidationError("No unfinished task matches; done and cancelled tasks are never rewritten.")
    run.total = len(tasks)
    append = run.params.get("mode") == "append"
    answers: list[tuple[Task, Any]] = []
    for t in tasks:
        schema: type[BaseModel] = run.s.Note if append else run.s.Rewrite
        prompt = f"{_describe(t)}\n\n{instruction(t)}"
        answers.append((t, run.ask(workflow, prompt, schema, f"Updating task {t.number}…")))
    stamp = timezone.now().replace(microsecond=0).isoformat()
    with transaction.atomic(), recording(tag=run.tag, user=run.job.created_by, workflow=workflow, job=run.job) as d:
        for t, a in answers:
            task = Task.objects.get(pk=t.pk)
            if append:
                task.details = f"{task.details}\n\n<info added on {stamp}>\n{a.note}\n</info added on {stamp}>".strip()
            else:
                task.title, task.description, task.details, task.test_strategy = (
                    a.title or task.title,
                    a.description,
                    a.details,
                    a.test_strategy,
                )
            task.version += 1
            task.save()
        verb = {"update": "Updated", "scope-up": "Scoped up", "scope-down": "Scoped down"}[workflow]
        d.summary = f"{verb} {len(answers)} task(s): {', '.join(str(t.number) for t, _ in answers)}"[:500]
    return d.summary, {"tasks": [t.number for t, _ in answers]}


def _update(run: Run) -> tuple[str, dict[str, Any]]:
    ask = _clip(run.params["prompt"], 1000)
    if run.params.get("mode") == "append":
        return _rewrite(run, "update", lambda t: f"Write a short note for this task about: {ask}")
    return _rewrite(run, "update", lambda t: f"Rewrite the task to take this change into account: {ask}")


def _scope(run: Run) -> tuple[str, dict[str, Any]]:
    direction, strength = run.params["direction"], run.params.get("strength", "regular")
    goal = (
        "more thorough and complex (more detail, more edge cases)"
        if direction == "up"
        else "simpler and smaller (drop extras, keep the essentials)"
    )
    extra = f" {_clip(run.params.get('prompt') or '', 300)}"
    return _rewrite(run, f"scope-{direction}", lambda t: f"Rewrite the task to be {strength}ly {goal}.{extra}")


RUNNERS: dict[str, Callable[[Run], tuple[str, dict[str, Any]]]] = {
    "planning.parse_prd": _parse_prd,
    "planning.expand": _expand,
    "planning.expand_all": _expand_all,
    "planning.analyze": _analyze,
    "planning.add_task": _add_task,
    "planning.update": _update,
    "planning.scope": _scope,
}


def workflow_run(*, job_id: int) -> tuple[Revision | None, str, dict[str, Any]]:
    """Run one planning job; idempotent (a finished job or an applied revision is not redone)."""
    job = Job.objects.select_related("created_by").get(pk=job_id)
    done = Revision.objects.filter(job=job).first()
    if done is not None:
        return done, done.summary, job.result
    tag = Tag.objects.select_related("project").get(pk=job.params["tag_id"])
    run = Run(job=job, tag=tag, params=job.params)
    summary, result = RUNNERS[job.kind](run)
    if run.qa_notes:
        # Gate failures that were retried or repaired: visible on the job, never a failure.
        summary = f"{summary} · {' · '.join(run.qa_notes)}"
        result = {**result, "qa": run.qa_notes}
    revision = Revision.objects.filter(job=job).first()
    return revision, summary, result


def final_check(run: Run, label: str, kind: str, output: Any) -> None:
    """Gate what is about to be written; a problem left after the repairs is recorded, not fatal."""
    from taskmaster.qa import problems

    found = problems(kind, output)
    if found:
        run.qa_notes.append(f"QA {label}: {'; '.join(found)[:200]}")

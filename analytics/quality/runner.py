"""Executing one suite item against a model configuration, and scoring the baseline.

Model calls go through ``taskmaster.llm`` with bounded schemas. Research items use
the research app's own retrieval (``hybrid_search``) and prompt (``build_messages``),
so a run measures what users get.
"""

from __future__ import annotations

from typing import Any, Literal

from django.contrib.auth.models import User
from pydantic import BaseModel, Field

from analytics.quality import metrics as M
from analytics.quality.models import EvalRun, Suite, SuiteItem
from taskmaster.llm import CallContext, embed, generate

PLANNING_SYSTEM = "You are a software project planner. Reply with JSON only."
DEFAULT_K = 4
DEFAULT_MAX_TOKENS = {"research": 128, "complexity": 48, "planning_prd": 200}
METRICS: dict[str, list[str]] = {
    "research": ["recall_at_k", "mrr", "token_f1", "rouge_l", "citation_precision"],
    "complexity": ["within_20", "mae"],
    "planning_prd": ["coverage"],
}
PRIMARY = {"research": "token_f1", "complexity": "within_20", "planning_prd": "coverage"}
LOWER_IS_BETTER = {"mae"}
LABELS = {
    "recall_at_k": "Recall@k",
    "mrr": "MRR",
    "token_f1": "Token F1",
    "rouge_l": "ROUGE-L",
    "citation_precision": "Citation precision",
    "within_20": "Within ±20 %",
    "mae": "Mean abs. error",
    "coverage": "Task coverage",
}


# Characters that need no JSON escaping: the grammar otherwise lets raw control characters
# into strings, which then fail validation (the planning app found the same).
SAFE = "A-Za-z0-9 ,.;:()'/&+?!%#*=_-"


class ComplexityAnswer(BaseModel):
    score: Literal[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    reasoning: str = Field(max_length=60, pattern=f"^[{SAFE}]{{0,60}}$")


class _Title(BaseModel):
    title: str = Field(min_length=3, max_length=50, pattern=f"^[{SAFE}]{{3,50}}$")


class PlannedTasks(BaseModel):
    tasks: list[_Title] = Field(min_length=1, max_length=6)


def context(run: EvalRun, feature: str) -> CallContext:
    return CallContext(
        feature=f"analytics.eval.{feature}",
        user_id=run.created_by_id,
        team_id=run.suite.team_id,
        template_version="eval-v1",
    )


def _gen_kwargs(run: EvalRun) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if run.config.get("model"):
        kwargs["model"] = run.config["model"]
    if run.config.get("temperature") is not None:
        kwargs["temperature"] = float(run.config["temperature"])
    return kwargs


def _max_tokens(run: EvalRun) -> int:
    return int(run.config.get("max_tokens") or DEFAULT_MAX_TOKENS[run.suite.kind])


def retrieval_user(suite: Suite, run_user: User | None) -> User | None:
    """Whose permissions retrieval runs under: the run's creator, else a team owner."""
    if run_user is not None:
        return run_user
    from taskmaster.models import Role

    return User.objects.filter(memberships__team=suite.team, memberships__role=Role.OWNER).order_by("pk").first()


def run_research(run: EvalRun, item: SuiteItem, user: User | None) -> tuple[dict[str, Any], dict[str, float | None]]:
    from research.answer import ANSWER_ROLE, build_messages, cited_numbers
    from research.selectors import hybrid_search

    suite = run.suite
    if suite.collection_id is None:
        raise ValueError("This research suite has no collection to search; pick one on the suite page.")
    if user is None:
        raise ValueError("Nobody in the team can read the suite's collection.")
    k = int(run.config.get("k") or DEFAULT_K)
    ctx = context(run, "research")
    hits = hybrid_search(user=user, query=item.text, collection_ids=[suite.collection_id], k=k, context=ctx)
    retrieved = [h.document_title for h in hits]
    answer, cited = "", []
    if hits:
        completion = generate(
            build_messages(item.text, hits),
            role=ANSWER_ROLE,
            max_tokens=_max_tokens(run),
            context=ctx,
            **_gen_kwargs(run),
        )
        answer = completion.text.strip()
        cited = [hits[n - 1].document_title for n in sorted(cited_numbers(answer, len(hits)))]
    output = {"answer": answer, "retrieved": retrieved, "cited": cited}
    return output, score_research(item, answer=answer, retrieved=retrieved, cited=cited, k=k)


def score_research(
    item: SuiteItem, *, answer: str, retrieved: list[str], cited: list[str], k: int
) -> dict[str, float | None]:
    has_sources = bool(item.expected_sources)
    has_answer = bool(item.expected_answer)
    return {
        "recall_at_k": M.recall_at_k(retrieved, item.expected_sources, k) if has_sources else None,
        "mrr": M.reciprocal_rank(retrieved, item.expected_sources) if has_sources else None,
        "token_f1": M.token_f1(answer, item.expected_answer) if has_answer else None,
        "rouge_l": M.rouge_l(answer, item.expected_answer) if has_answer else None,
        "citation_precision": M.citation_precision(cited, item.expected_sources) if has_sources else None,
    }


def reference_score(item: SuiteItem) -> float | None:
    if item.expected_score is not None:
        return item.expected_score
    score = item.baseline.get("score")
    return float(score) if score is not None else None


def score_complexity(item: SuiteItem, predicted: float | None) -> dict[str, float | None]:
    reference = reference_score(item)
    if reference is None:
        return {"within_20": None, "mae": None}
    if predicted is None:
        return {"within_20": 0.0, "mae": None}
    return {
        "within_20": float(M.within_tolerance(predicted, reference)),
        "mae": abs(predicted - reference),
    }


def run_complexity(run: EvalRun, item: SuiteItem) -> tuple[dict[str, Any], dict[str, float | None]]:
    title = item.title or item.text[:120]
    description = item.text if item.text != title else ""
    prompt = (
        f"Task: {title}\n{description[:600]}\n\nRate this task's complexity from 1 (trivial) to 10 (very complex) "
        "and give a one-line reason."
    )
    completion = generate(
        [{"role": "system", "content": PLANNING_SYSTEM}, {"role": "user", "content": prompt}],
        schema=ComplexityAnswer,
        max_tokens=_max_tokens(run),
        context=context(run, "complexity"),
        **_gen_kwargs(run),
    )
    parsed = completion.parsed
    assert isinstance(parsed, ComplexityAnswer)
    output = {"score": parsed.score, "reasoning": parsed.reasoning, "call_id": completion.request_id}
    return output, score_complexity(item, float(parsed.score))


def _coverage(run: EvalRun, expected: list[str], produced: list[str]) -> float:
    if not expected:
        return 0.0
    if not produced:
        return 0.0
    ctx = context(run, "coverage")
    vectors = embed(expected + produced, context=ctx)
    threshold = float(run.config.get("threshold") or M.COVERAGE_THRESHOLD)
    return M.task_coverage(vectors[: len(expected)], vectors[len(expected) :], threshold)


def run_planning(run: EvalRun, item: SuiteItem) -> tuple[dict[str, Any], dict[str, float | None]]:
    prompt = f"Requirements:\n{item.text[:3000]}\n\nWrite 1 to 6 development task titles for these requirements."
    completion = generate(
        [{"role": "system", "content": PLANNING_SYSTEM}, {"role": "user", "content": prompt}],
        schema=PlannedTasks,
        max_tokens=_max_tokens(run),
        context=context(run, "planning_prd"),
        **_gen_kwargs(run),
    )
    parsed = completion.parsed
    assert isinstance(parsed, PlannedTasks)
    titles = [t.title for t in parsed.tasks]
    expected = item.expected_tasks or list(item.baseline.get("tasks") or [])
    coverage = _coverage(run, expected, titles) if expected else None
    return {"tasks": titles, "call_id": completion.request_id}, {"coverage": coverage}


def run_item(run: EvalRun, item: SuiteItem, user: User | None) -> tuple[dict[str, Any], dict[str, float | None]]:
    kind = run.suite.kind
    if kind == Suite.Kind.RESEARCH:
        return run_research(run, item, user)
    if kind == Suite.Kind.COMPLEXITY:
        return run_complexity(run, item)
    return run_planning(run, item)


def failed_scores(kind: str, item: SuiteItem) -> dict[str, float | None]:
    """An item the model could not answer scores as a wrong answer, not as a missing one."""
    if kind == Suite.Kind.COMPLEXITY:
        return score_complexity(item, None)
    if kind == Suite.Kind.RESEARCH:
        return score_research(item, answer="", retrieved=[], cited=[], k=1)
    return {"coverage": 0.0 if (item.expected_tasks or item.baseline.get("tasks")) else None}


def baseline_scores(run: EvalRun, item: SuiteItem) -> dict[str, float | None] | None:
    """The baseline's scores on the same references; None when the item has no baseline."""
    base = item.baseline
    kind = run.suite.kind
    k = int(run.config.get("k") or DEFAULT_K)
    if kind == Suite.Kind.RESEARCH:
        if not base.get("answer") and not base.get("sources"):
            return None
        sources = list(base.get("sources") or [])
        return score_research(item, answer=str(base.get("answer") or ""), retrieved=sources, cited=sources, k=k)
    if kind == Suite.Kind.COMPLEXITY:
        if base.get("score") is None:
            return None
        # Without a human score the baseline is the reference, so it scores perfectly against itself.
        return score_complexity(item, float(base["score"]))
    if not base.get("tasks") or not item.expected_tasks:
        return None
    return {"coverage": _coverage(run, item.expected_tasks, list(base["tasks"]))}


def aggregate(kind: str, rows: list[dict[str, float | None]]) -> dict[str, float | None]:
    return {metric: M.mean(r.get(metric) for r in rows) for metric in METRICS[kind]}


def ratios(kind: str, model: dict[str, float | None], baseline: dict[str, float | None]) -> dict[str, float | None]:
    return {
        metric: M.ratio(model.get(metric), baseline.get(metric), lower_is_better=metric in LOWER_IS_BETTER)
        for metric in METRICS[kind]
    }

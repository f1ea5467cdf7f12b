"""Writes of the analytics app: findings, recommendations, settings and revisions."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from analytics import patterns, router
from analytics.models import ConfigRevision, Finding, Recommendation, Setting
from analytics.selectors import Percentile
from analytics.stats import two_proportion_z
from taskmaster.llm.models import LLMCall, LLMModel, ModelKind, RoleDefault
from taskmaster.llm.registry import role_default_set
from taskmaster.models import Feedback, Team
from taskmaster.services import job_progress, job_start, job_succeed

EVALUATION_MIN_CALLS = 20
EVALUATION_MAX_DAYS = 7


# --- recommendations from findings ---------------------------------------------------------


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def _alternative_model(role: str, bad: str, feature: str, since: datetime) -> LLMModel | None:
    """The enabled, available chat model (other than ``bad``) with the lowest recent failure rate."""
    models = list(LLMModel.objects.filter(enabled=True, available=True, kind=ModelKind.CHAT).exclude(name=bad))
    if not models:
        return None
    stats = {
        r["model_name"]: r
        for r in LLMCall.objects.filter(created_at__gte=since, model_name__in=[m.name for m in models])
        .filter(Q(feature=feature) if feature else Q())
        .values("model_name")
        .annotate(n=Count("id"), bad=Count("id", filter=Q(outcome="error")))
    }

    def score(m: LLMModel) -> tuple[float, int, str]:
        s = stats.get(m.name)
        rate = (s["bad"] + 1) / (s["n"] + 2) if s else 0.5  # Laplace: unknown models rank as "average"
        return (rate, 0 if role in m.roles else 1, m.name)

    return min(models, key=score)


def _best_template(feature: str, bad_version: str, since: datetime, team: Team | None) -> str | None:
    qs = LLMCall.objects.filter(created_at__gte=since, feature=feature).exclude(template_version__in=["", bad_version])
    if team is not None:
        qs = qs.filter(team=team)
    rows = [
        r
        for r in qs.values("template_version").annotate(n=Count("id"), bad=Count("id", filter=Q(outcome="error")))
        if r["n"] >= 10
    ]
    return min(rows, key=lambda r: r["bad"] / r["n"])["template_version"] if rows else None


def recommend(draft: patterns.Draft, team: Team | None, since: datetime) -> dict[str, Any]:
    """Map a finding to one concrete recommendation: action, title, rationale and params."""
    dims, ev = draft.dims, draft.evidence
    model, feature = dims.get("model", ""), dims.get("feature", "")
    role = ev.get("role") or "main"
    err = ev.get("error_class", "") if ev.get("error_class_share", 0) >= 0.5 else ""
    team_key = team.pk if team is not None else None
    evidence = draft.summary

    if draft.kind == "ttft_context":
        budget = max(256, int(ev["median_prompt_tokens"] // 128 * 128))
        return {
            "action": Recommendation.Action.LOWER_CONTEXT,
            "title": f"Lower the context for {model} to {budget} prompt tokens",
            "rationale": f"{evidence}. Capping prompts at the median size ({budget} tokens) keeps the predicted "
            f"time to first token near {ev['intercept_ms'] + ev['slope_ms_per_1k_tokens'] * budget / 1000:,.0f} ms.",
            "params": {"setting": {"team": team_key, "key": f"llm.context_budget.{model}", "value": budget}},
        }
    if (
        draft.kind == "failure_rate"
        and "size" in dims
        and err in {"truncated", "schema_validation", "context_overflow"}
        and feature.startswith("planning")
    ):
        tokens = patterns.size_bounds(dims["size"])[0] // 4
        return {
            "action": Recommendation.Action.SPLIT_PRD,
            "title": f"Split PRDs above {tokens:,} tokens",
            "rationale": f"{evidence}. Inputs of this size fail mostly with {err}; parsing them in parts keeps "
            "each call small.",
            "params": {"setting": {"team": team_key, "key": "planning.prd_split_tokens", "value": tokens}},
        }
    if draft.kind == "failure_rate" and err == "truncated" and ev.get("schema"):
        budget = _round_up(max(64, ev.get("max_completion_tokens", 0)) * 2, 64)
        return {
            "action": Recommendation.Action.RAISE_TOKENS,
            "title": f"Raise the token budget for schema {ev['schema']} to {budget}",
            "rationale": f"{evidence}. Outputs were cut off at {ev.get('max_completion_tokens')} tokens.",
            "params": {"setting": {"team": team_key, "key": f"llm.max_tokens.{ev['schema']}", "value": budget}},
        }
    if draft.kind == "failure_rate" and err == "context_overflow" and model:
        budget = max(256, patterns.size_bounds(dims.get("size", "s"))[0] // 4)
        return {
            "action": Recommendation.Action.LOWER_CONTEXT,
            "title": f"Lower the context for {model}",
            "rationale": f"{evidence}. Prompts overflow the model's context window.",
            "params": {"setting": {"team": team_key, "key": f"llm.context_budget.{model}", "value": budget}},
        }
    if "template" in dims:
        better = _best_template(feature, dims["template"], since, team)
        if better:
            return {
                "action": Recommendation.Action.PREFER_TEMPLATE,
                "title": f"Use prompt template {better} for {feature} instead of {dims['template']}",
                "rationale": f"{evidence}. Template {better} did better on the same feature.",
                "params": {"setting": {"team": team_key, "key": f"prompt.template.{feature}", "value": better}},
            }
    if model:
        alt = _alternative_model(role, model, feature, since)
        if alt is not None:
            return {
                "action": Recommendation.Action.SWITCH_ROLE,
                "title": f"Switch role {role} to model {alt.name}",
                "rationale": f"{evidence}. {alt.name} has the lowest recent failure rate of the other models; "
                f"applying sets it as the {role} default and pins routing to it.",
                "params": {"role": role, "model": alt.name, "from_model": model},
            }
        return {
            "action": Recommendation.Action.ADVISORY,
            "title": f"Register another model for role {role}",
            "rationale": f"{evidence}. No other enabled, available chat model exists to switch to.",
            "params": {},
        }
    return {
        "action": Recommendation.Action.ADVISORY,
        "title": f"Investigate {draft.subject}",
        "rationale": f"{evidence}. No automatic change fits this pattern.",
        "params": {},
    }


# --- the pattern run -------------------------------------------------------------------------


@transaction.atomic
def _store(team: Team | None, drafts: list[patterns.Draft], now: datetime, since: datetime) -> list[Finding]:
    stored = []
    for draft in drafts:
        finding, created = Finding.objects.select_for_update().get_or_create(
            team=team,
            kind=draft.kind,
            subject=draft.subject[:300],
            defaults={
                "dims": draft.dims,
                "summary": draft.summary[:500],
                "evidence": draft.evidence,
                "p_value": draft.p_value,
                "effect_size": draft.effect_size,
                "last_seen": now,
            },
        )
        if not created:
            finding.summary, finding.evidence = draft.summary[:500], draft.evidence
            finding.p_value, finding.effect_size, finding.last_seen = draft.p_value, draft.effect_size, now
            if finding.status == Finding.Status.RESOLVED:
                finding.status = Finding.Status.OPEN
            finding.save()
        rec = Recommendation.objects.filter(finding=finding).first()
        if rec is None or rec.status in {Recommendation.Status.OPEN, Recommendation.Status.ROLLED_BACK}:
            spec = recommend(draft, team, since)
            spec["title"] = spec["title"][:300]
            if rec is None:
                Recommendation.objects.create(finding=finding, **spec)
            else:
                for k, v in spec.items():
                    setattr(rec, k, v)
                rec.status = Recommendation.Status.OPEN
                rec.save()
        stored.append(finding)
    # Open findings not seen this time have gone away; applied/dismissed ones keep their state.
    seen = [f.pk for f in stored]
    Finding.objects.filter(team=team, status=Finding.Status.OPEN).exclude(pk__in=seen).update(
        status=Finding.Status.RESOLVED
    )
    return stored


def patterns_run(
    *,
    team: Team | None,
    job_id: int | None = None,
    now: datetime | None = None,
    window_days: int = patterns.WINDOW_DAYS,
) -> list[Finding]:
    """Detect patterns in the window ending ``now`` and store them; safe to run again."""
    now = now or timezone.now()
    since = now - timedelta(days=window_days)
    if job_id is not None:
        job_start(job_id=job_id, total=5, message="Reading the ledger")

    def progress(done: int, message: str) -> None:
        if job_id is not None:
            job_progress(job_id=job_id, done=done, total=5, message=message)

    drafts = patterns.detect(team, until=now, window_days=window_days, progress=progress)
    progress(4, f"Storing {len(drafts)} findings")
    found = _store(team, drafts, now, since)
    if job_id is not None:
        job_succeed(
            job_id=job_id,
            result={"findings": len(found)},
            message=f"{len(found)} finding{'s' if len(found) != 1 else ''} from the last {window_days} days",
        )
    return found


# --- settings, changes, revisions ----------------------------------------------------------------


def _team_q(team_id: int | None) -> Q:
    return Q(team__isnull=True) if team_id is None else Q(team_id=team_id)


def _setting_key(team_id: int | None, key: str) -> str:
    return f"setting:{team_id if team_id is not None else '*'}:{key}"


def _read(change_key: str) -> Any:
    kind, _, rest = change_key.partition(":")
    if kind == "role_default":
        return RoleDefault.objects.filter(role=rest).values_list("model__name", flat=True).first()
    if kind == "setting":
        team_part, _, key = rest.partition(":")
        team_id = None if team_part == "*" else int(team_part)
        row = Setting.objects.filter(_team_q(team_id), key=key).first()
        return None if row is None else row.value
    raise ValueError(f"unknown change {change_key!r}")


def _write(change_key: str, value: Any) -> None:
    kind, _, rest = change_key.partition(":")
    if kind == "role_default":
        if value is None:
            RoleDefault.objects.filter(role=rest).delete()
            return
        model = LLMModel.objects.filter(name=value).first()
        if model is None:
            raise ValidationError(f"Model {value} no longer exists.")
        try:
            role_default_set(role=rest, model=model)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return
    team_part, _, key = rest.partition(":")
    team_id = None if team_part == "*" else int(team_part)
    if value is None:
        Setting.objects.filter(_team_q(team_id), key=key).delete()
    else:
        row = Setting.objects.filter(_team_q(team_id), key=key).first() or Setting(key=key)
        row.team_id, row.value = team_id, value  # type: ignore[assignment]
        row.save()


def _changes_of(rec: Recommendation) -> dict[str, Any]:
    params = rec.params
    if rec.action == Recommendation.Action.SWITCH_ROLE:
        return {
            f"role_default:{params['role']}": params["model"],
            _setting_key(None, router.PIN_PREFIX + params["role"]): params["model"],
        }
    if "setting" in params:
        s = params["setting"]
        return {_setting_key(s["team"], s["key"]): s["value"]}
    raise ValidationError("This recommendation is advisory: there is nothing to apply automatically.")


def changes_are_global(rec: Recommendation) -> bool:
    """Whether applying touches site-wide configuration (then only a site admin may)."""
    try:
        return any(k.startswith("role_default:") or k.startswith("setting:*:") for k in _changes_of(rec))
    except ValidationError:
        return False


@transaction.atomic
def _apply(
    changes: dict[str, Any],
    *,
    team: Team | None,
    description: str,
    user: User | None,
    recommendation: Recommendation | None = None,
) -> ConfigRevision:
    before = {k: _read(k) for k in changes}
    for key, value in changes.items():
        _write(key, value)
    router.clear_cache()
    return ConfigRevision.objects.create(
        team=team,
        recommendation=recommendation,
        description=description[:300],
        before=before,
        after=changes,
        created_by=user,
    )


@transaction.atomic
def recommendation_apply(*, recommendation: Recommendation, user: User) -> ConfigRevision:
    rec = Recommendation.objects.select_for_update().select_related("finding").get(pk=recommendation.pk)
    if rec.status == Recommendation.Status.APPLIED:
        raise ValidationError("This recommendation is already applied.")
    if rec.status == Recommendation.Status.DISMISSED:
        raise ValidationError("This recommendation was dismissed.")
    if rec.action == Recommendation.Action.SWITCH_ROLE:
        target = LLMModel.objects.filter(name=rec.params.get("model", "")).first()
        if target is None or not target.enabled or not target.available:
            raise ValidationError(f"Model {rec.params.get('model')} is not enabled and available; nothing was changed.")
    revision = _apply(
        _changes_of(rec), team=rec.finding.team, description=f"Applied: {rec.title}", user=user, recommendation=rec
    )
    rec.status, rec.decided_by, rec.decided_at = Recommendation.Status.APPLIED, user, timezone.now()
    rec.evaluation, rec.evaluated_at = {}, None
    rec.save()
    Finding.objects.filter(pk=rec.finding_id).update(status=Finding.Status.APPLIED)
    return revision


@transaction.atomic
def recommendation_dismiss(*, recommendation: Recommendation, user: User) -> Recommendation:
    rec = Recommendation.objects.select_for_update().get(pk=recommendation.pk)
    if rec.status == Recommendation.Status.APPLIED:
        raise ValidationError("Roll the applied change back before dismissing it.")
    rec.status, rec.decided_by, rec.decided_at = Recommendation.Status.DISMISSED, user, timezone.now()
    rec.save()
    Finding.objects.filter(pk=rec.finding_id).update(status=Finding.Status.DISMISSED)
    return rec


@transaction.atomic
def revision_rollback(*, revision: ConfigRevision, user: User) -> ConfigRevision:
    """Restore the ``before`` state; refused when something changed the same keys since."""
    rev = ConfigRevision.objects.select_for_update().get(pk=revision.pk)
    if rev.rolled_back_at is not None:
        raise ValidationError("This change was already rolled back.")
    drifted = [k for k, v in rev.after.items() if _read(k) != v]
    if drifted:
        raise ValidationError(
            f"Cannot roll back: {', '.join(drifted)} changed again since; roll back the later change first."
        )
    for key, value in rev.before.items():
        _write(key, value)
    router.clear_cache()
    rev.rolled_back_at, rev.rolled_back_by = timezone.now(), user
    rev.save(update_fields=["rolled_back_at", "rolled_back_by"])
    if rev.recommendation_id is not None:
        Recommendation.objects.filter(pk=rev.recommendation_id).update(status=Recommendation.Status.ROLLED_BACK)
        Finding.objects.filter(recommendation__pk=rev.recommendation_id).update(status=Finding.Status.OPEN)
    return rev


def routing_pin_set(*, role: str, model: LLMModel | None, user: User) -> ConfigRevision:
    """Admin override: always route ``role`` to ``model`` (None: back to adaptive routing)."""
    if model is not None and (role not in model.roles or not model.enabled):
        raise ValidationError(f"{model.name} does not serve the {role} role (or is disabled).")
    change = {_setting_key(None, router.PIN_PREFIX + role): model.name if model else None}
    what = f"Pinned role {role} to {model.name}" if model else f"Unpinned role {role} (adaptive routing)"
    return _apply(change, team=None, description=what, user=user)


# --- did it help? ---------------------------------------------------------------------------------


def _rate(qs: Any, bad: Q) -> tuple[int, int]:
    row = qs.aggregate(n=Count("id"), bad=Count("id", filter=bad))
    return int(row["n"]), int(row["bad"])


def recommendation_evaluate(*, recommendation: Recommendation, now: datetime | None = None) -> dict[str, Any]:
    """Compare the finding's metric before and after the change was applied, from the ledger."""
    rec = Recommendation.objects.select_related("finding", "finding__team").get(pk=recommendation.pk)
    if rec.status != Recommendation.Status.APPLIED or rec.decided_at is None:
        raise ValidationError("Only an applied recommendation can be checked.")
    now = now or timezone.now()
    finding, applied = rec.finding, rec.decided_at
    span = min(now - applied, timedelta(days=EVALUATION_MAX_DAYS))
    dims = dict(finding.dims)
    if rec.action == Recommendation.Action.SWITCH_ROLE:
        dims.pop("model", None)  # the change moves the work to another model: follow the work
    calls = LLMCall.objects.filter(patterns.dims_q(dims)).exclude(outcome="cancelled")
    if finding.team_id is not None:
        calls = calls.filter(team_id=finding.team_id)
    before = calls.filter(created_at__gte=applied - max(span, timedelta(days=1)), created_at__lt=applied)
    after = calls.filter(created_at__gte=applied, created_at__lt=now)
    result: dict[str, Any]
    if finding.kind == Finding.Kind.TTFT_CONTEXT:
        b = before.filter(ttft_ms__isnull=False).aggregate(n=Count("id"), v=Percentile("ttft_ms", 0.5))
        a = after.filter(ttft_ms__isnull=False).aggregate(n=Count("id"), v=Percentile("ttft_ms", 0.5))
        result = {"metric": "median time to first token (ms)", "before": b, "after": a}
        if a["n"] < EVALUATION_MIN_CALLS or b["n"] < EVALUATION_MIN_CALLS:
            result["verdict"] = "too early"
        elif a["v"] < 0.9 * b["v"]:
            result["verdict"] = "helped"
        elif a["v"] > 1.1 * b["v"]:
            result["verdict"] = "worse"
        else:
            result["verdict"] = "no clear change"
    else:
        if finding.kind == Finding.Kind.LOW_RATING:
            fb = Feedback.objects.filter(patterns.dims_q(dims, prefix="call__"))
            if finding.team_id is not None:
                fb = fb.filter(team_id=finding.team_id)
            nb, xb = _rate(fb.filter(call__created_at__lt=applied, call__created_at__gte=applied - span), Q(rating=-1))
            na, xa = _rate(fb.filter(call__created_at__gte=applied), Q(rating=-1))
            metric = "thumbs-down rate"
        else:
            nb, xb = _rate(before, Q(outcome="error"))
            na, xa = _rate(after, Q(outcome="error"))
            metric = "error rate"
        result = {
            "metric": metric,
            "before": {"n": nb, "v": xb / nb if nb else None},
            "after": {"n": na, "v": xa / na if na else None},
        }
        minimum = EVALUATION_MIN_CALLS if finding.kind == Finding.Kind.FAILURE_RATE else 10
        if na < minimum or nb < minimum:
            result["verdict"] = "too early"
        else:
            better = two_proportion_z(xb, nb, xa, na)  # "before was worse than after"
            worse = two_proportion_z(xa, na, xb, nb)
            result["p_value"] = min(better.p_value, worse.p_value)
            result["verdict"] = (
                "helped" if better.p_value < 0.05 else "worse" if worse.p_value < 0.05 else "no clear change"
            )
    result["evaluated_at"] = now.isoformat()
    Recommendation.objects.filter(pk=rec.pk).update(evaluation=result, evaluated_at=now)
    return result

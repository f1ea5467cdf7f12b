"""State changes of the core app: accounts, teams, memberships and invitations."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from taskmaster.models import AuditEvent, Feedback, Invitation, Job, Membership, Role, Team


def _audit(action: str, *, actor: User | None, target: str, team: Team | None = None, **details: object) -> None:
    AuditEvent.objects.create(action=action, actor=actor, team=team, target=target[:200], details=details)


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "team"
    slug, n = base, 2
    while Team.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def team_create(*, name: str, owner: User) -> Team:
    team = Team.objects.create(name=name.strip()[:100], slug=_unique_slug(name))
    Membership.objects.create(user=owner, team=team, role=Role.OWNER)
    _audit("team.create", actor=owner, team=team, target=team.slug)
    return team


@transaction.atomic
def user_signup(*, username: str, email: str, password: str, invitation_token: str = "") -> User:
    """Create an account.

    The first account of a fresh install becomes the site admin and gets a team. Later
    accounts wait for an admin's approval unless a valid invitation brought them.
    """
    # Lock the user table's first row so two simultaneous first sign-ups cannot both
    # become admin.
    list(User.objects.select_for_update().order_by("pk")[:1])
    first = not User.objects.exists()
    invitation = None
    if invitation_token:
        invitation = Invitation.objects.select_for_update().filter(token=invitation_token).first()
        if invitation is None or not invitation.usable:
            raise ValidationError("This invitation link is invalid or has expired.")
    user = User.objects.create_user(username=username, email=email, password=password)
    if first:
        user.is_staff = user.is_superuser = True
    user.is_active = first or invitation is not None
    user.save()
    _audit(
        "user.signup",
        actor=user,
        target=user.username,
        site_admin=first,
        invited=invitation is not None,
        active=user.is_active,
    )
    if first:
        team_create(name=f"{username}'s team", owner=user)
    if invitation is not None:
        invitation_accept(invitation=invitation, user=user)
    return user


@transaction.atomic
def invitation_create(*, team: Team, role: str, created_by: User) -> Invitation:
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}.")
    invitation = Invitation.objects.create(team=team, role=role, created_by=created_by)
    # The token is a secret: the log names the invitation, never its link.
    _audit("invitation.create", actor=created_by, team=team, target=f"invitation {invitation.pk}", role=role)
    return invitation


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.usable:
        raise ValidationError("This invitation link is invalid or has expired.")
    membership, _ = Membership.objects.get_or_create(
        user=user, team=invitation.team, defaults={"role": invitation.role}
    )
    invitation.used_by, invitation.used_at = user, timezone.now()
    invitation.save(update_fields=["used_by", "used_at"])
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
    _audit(
        "membership.join",
        actor=user,
        team=invitation.team,
        target=user.username,
        role=membership.role,
        invitation=invitation.pk,
    )
    return membership


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: User | None = None) -> None:
    _audit("invitation.revoke", actor=actor, team=invitation.team, target=f"invitation {invitation.pk}")
    invitation.delete()


@transaction.atomic
def user_approve(*, user: User, actor: User | None = None) -> User:
    user.is_active = True
    user.save(update_fields=["is_active"])
    _audit("user.approve", actor=actor, target=user.username)
    return user


@transaction.atomic
def membership_set_role(*, membership: Membership, role: str, actor: User | None = None) -> Membership:
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}.")
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == Role.OWNER and role != Role.OWNER:
        _ensure_another_owner(membership)
    _audit(
        "membership.role",
        actor=actor,
        team=membership.team,
        target=membership.user.username,
        before=membership.role,
        after=role,
    )
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User | None = None) -> None:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == Role.OWNER:
        _ensure_another_owner(membership)
    _audit(
        "membership.remove", actor=actor, team=membership.team, target=membership.user.username, role=membership.role
    )
    membership.delete()


def _ensure_another_owner(membership: Membership) -> None:
    others = Membership.objects.filter(team=membership.team, role=Role.OWNER).exclude(pk=membership.pk)
    if not others.exists():
        raise ValidationError("A team needs at least one owner; make someone else owner first.")


# --- jobs ------------------------------------------------------------------------


@transaction.atomic
def job_create(
    *,
    team: Team,
    kind: str,
    title: str,
    created_by: User | None = None,
    params: dict[str, object] | None = None,
    total: int = 0,
) -> Job:
    return Job.objects.create(
        team=team, kind=kind, title=title[:200], created_by=created_by, params=params or {}, total=total
    )


def job_start(*, job_id: int, total: int | None = None, message: str = "") -> Job:
    """Mark running. Idempotent: a re-delivered task restarts a job that is not finished."""
    job = Job.objects.get(pk=job_id)
    fields = {"status": Job.Status.RUNNING, "started_at": job.started_at or timezone.now(), "message": message[:500]}
    if total is not None:
        fields["total"] = total
    Job.objects.filter(pk=job_id).update(**fields)
    job.refresh_from_db()
    return job


def job_progress(*, job_id: int, done: int, total: int | None = None, message: str = "") -> None:
    # Outside any surrounding transaction on purpose: progress must be visible while
    # the job's own work is still uncommitted.
    fields: dict[str, object] = {"done": done, "message": message[:500]}
    if total is not None:
        fields["total"] = total
    Job.objects.filter(pk=job_id).update(**fields)


def job_succeed(
    *, job_id: int, result: dict[str, object] | None = None, message: str = "Done.", revision_ref: str = ""
) -> None:
    Job.objects.filter(pk=job_id).update(
        status=Job.Status.SUCCEEDED,
        result=result or {},
        message=message[:500],
        finished_at=timezone.now(),
        revision_ref=revision_ref,
    )


# Apps that react to failed jobs (recovery) register here; the core never imports them.
_job_failure_hooks: list[Callable[[int], None]] = []


def register_job_failure_hook(hook: Callable[[int], None]) -> None:
    if hook not in _job_failure_hooks:
        _job_failure_hooks.append(hook)


def job_fail(*, job_id: int, error: str, result: dict[str, object] | None = None) -> None:
    fields: dict[str, object] = {
        "status": Job.Status.FAILED,
        "error": error[:4000],
        "finished_at": timezone.now(),
        "message": error.splitlines()[0][:500] if error else "Failed.",
    }
    if result is not None:
        fields["result"] = result
    Job.objects.filter(pk=job_id).update(**fields)
    for hook in _job_failure_hooks:
        transaction.on_commit(lambda hook=hook: hook(job_id))  # type: ignore[misc]


# --- feedback ----------------------------------------------------------------------


@transaction.atomic
def feedback_record(
    *,
    team: Team,
    user: User,
    feature: str,
    target: str,
    rating: int,
    comment: str = "",
    call_id: str | None = None,
) -> Feedback:
    """Store (or replace) ``user``'s rating of one output; one rating per user and target."""
    if rating not in Feedback.Rating.values:
        raise ValidationError("A rating is +1 (thumbs up) or -1 (thumbs down).")
    feedback, _ = Feedback.objects.update_or_create(
        user=user,
        target=target,
        defaults={
            "team": team,
            "feature": feature[:60],
            "rating": rating,
            "comment": comment.strip()[:2000],
            "call_id": call_id,
        },
    )
    return feedback

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from taskmaster import services
from taskmaster.llm.models import LLMCall, LLMModel, ModelKind


@staff_member_required
def playground(request: HttpRequest) -> HttpResponse:
    models = LLMModel.objects.filter(kind=ModelKind.CHAT, enabled=True)
    return render(request, "llm/playground.html", {"models": models})


@staff_member_required
@require_POST
def playground_feedback(request: HttpRequest, call_id: str) -> HttpResponse:
    """Rate one playground answer; the partial replaces the rating form."""
    user = request.user
    assert isinstance(user, User)  # staff_member_required let only signed-in staff through
    call = get_object_or_404(LLMCall, pk=call_id, user=user, feature="playground")
    team = request.team  # type: ignore[attr-defined]
    context: dict[str, object] = {"call_id": call.pk}
    if team is None:
        context["error"] = "Join or create a team first: feedback is kept per team."
        return render(request, "llm/_feedback.html", context, status=400)
    try:
        rating = int(request.POST.get("rating", "0"))
        services.feedback_record(
            team=team,
            user=user,
            feature="playground",
            target=f"llm.call:{call.pk}",
            rating=rating,
            comment=request.POST.get("comment", ""),
            call_id=str(call.pk),
        )
    except (ValueError, ValidationError):
        context["error"] = "A rating is thumbs up or thumbs down."
        return render(request, "llm/_feedback.html", context, status=400)
    context["saved"] = rating
    return render(request, "llm/_feedback.html", context)

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from taskmaster.llm.models import LLMModel, ModelKind


@staff_member_required
def playground(request: HttpRequest) -> HttpResponse:
    models = LLMModel.objects.filter(kind=ModelKind.CHAT, enabled=True)
    return render(request, "llm/playground.html", {"models": models})

"""The planning API's AI workflows: started as jobs (202), followed at ``/api/v1/jobs/<id>``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from planning import api_services, services
from planning.api import _json, _tag, _user, endpoint
from planning.api_schemas import AnalyzeIn, ExpandAllIn, ExpandIn, ParsePrdIn, parse
from planning.api_shapes import WORKFLOWS, job_json
from planning.models import PRD, Tag, Task
from taskmaster.api.errors import ApiError, bad_request
from taskmaster.llm import LLMError
from taskmaster.selectors import job_for


def _workflow_params(request: HttpRequest, tag: Tag, kind: str) -> tuple[dict[str, Any], PRD | None, ParsePrdIn | None]:
    if kind == "parse-prd":
        body = parse(ParsePrdIn, request)
        if (body.prdId is None) == (body.text is None):
            raise bad_request("Send either prdId (a stored PRD) or text (the PRD itself).", param="prdId")
        prd = None
        if body.prdId is not None:
            prd = PRD.objects.filter(pk=body.prdId, project=tag.project).first()
            if prd is None:
                raise ApiError(
                    404, f"Project {tag.project.name} has no PRD {body.prdId}.", param="prdId", code="not_found"
                )
        return {"num_tasks": body.numTasks, "mode": body.mode, "detail": body.detail}, prd, body
    if kind == "expand":
        ex = parse(ExpandIn, request)
        if not Task.objects.filter(tag=tag, number=ex.id).exists():
            raise ApiError(404, f"Tag {tag.name} has no task {ex.id}.", param="id", code="not_found")
        params = {
            "task_number": ex.id,
            "num_subtasks": ex.numSubtasks,
            "prompt": ex.prompt.strip(),
            "replace": ex.force,
        }
        return params | {"detail": ex.detail}, None, None
    if kind == "expand-all":
        ea = parse(ExpandAllIn, request)
        return {"threshold": ea.threshold, "replace": ea.force, "detail": ea.detail}, None, None
    an = parse(AnalyzeIn, request)
    numbers = sorted(set(an.ids))
    known = set(Task.objects.filter(tag=tag, number__in=numbers).values_list("number", flat=True))
    unknown = [n for n in numbers if n not in known]
    if unknown:
        raise ApiError(
            404, f"Tag {tag.name} has no task {', '.join(map(str, unknown))}.", param="ids", code="not_found"
        )
    return {"task_numbers": numbers, "threshold": an.threshold, "detail": an.detail}, None, None


@endpoint("POST")
def workflow(request: HttpRequest, tag_id: int, kind: str) -> HttpResponse:
    """Start Parse PRD, Expand, Expand all or Analyze complexity; answers 202 with the job."""
    tag = _tag(request, tag_id, write=True)
    if kind not in WORKFLOWS:
        raise ApiError(
            404, f"Unknown workflow {kind!r}; use one of {', '.join(WORKFLOWS)}.", param="workflow", code="not_found"
        )
    params, prd, prd_body = _workflow_params(request, tag, kind)
    try:
        from taskmaster.llm.registry import model_for_role

        model_for_role("main")  # a missing model is reported now, not after a queue wait
    except LLMError as exc:
        raise ApiError(503, f"No model is available for planning: {exc}", code="model_unavailable") from None
    user = _user(request)
    if prd_body is not None:
        job = api_services.api_parse_prd_start(
            tag=tag, user=user, prd=prd, text=prd_body.text or "", title=prd_body.title, params=params
        )
    else:
        job = services.workflow_start(kind=WORKFLOWS[kind], tag=tag, user=user, params=params)
    response = _json(job_json(job), status=202)
    response["Location"] = reverse("planning_api:job", args=[job.pk])
    return response


@endpoint("GET")
def job(request: HttpRequest, pk: int) -> HttpResponse:
    found = job_for(_user(request), pk)
    if not found.kind.startswith("planning."):
        raise ApiError(404, f"No planning job {pk}.", code="not_found")
    return _json(job_json(found))

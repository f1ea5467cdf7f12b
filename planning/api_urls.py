"""URLs of the planning API, mounted at ``/api/v1/`` (see docs/planning-api.md)."""

from django.urls import path

from planning import api, api_workflows

app_name = "planning_api"
urlpatterns = [
    path("projects", api.projects, name="projects"),
    path("projects/<int:pk>", api.project, name="project"),
    path("projects/<int:pk>/tags", api.tags, name="tags"),
    path("projects/<int:pk>/prds", api.prds, name="prds"),
    path("projects/<int:pk>/tasks.json", api.tasks_file, name="tasks_file"),
    path("tags/<int:tag_id>", api.tag, name="tag"),
    path("tags/<int:tag_id>/tasks", api.tasks, name="tasks"),
    path("tags/<int:tag_id>/tasks/<str:ref>", api.task, name="task"),
    path("tags/<int:tag_id>/tasks/<str:ref>/status", api.task_status, name="task_status"),
    path("tags/<int:tag_id>/tasks/<str:ref>/subtasks", api.subtasks, name="subtasks"),
    path("tags/<int:tag_id>/tasks/<str:ref>/dependencies", api.dependencies, name="dependencies"),
    path("tags/<int:tag_id>/tasks/<str:ref>/dependencies/<str:dep>", api.dependency, name="dependency"),
    path("tags/<int:tag_id>/dependencies/validate", api.dependencies_validate, name="dependencies_validate"),
    path("tags/<int:tag_id>/dependencies/fix", api.dependencies_fix, name="dependencies_fix"),
    path("tags/<int:tag_id>/next", api.next_task, name="next"),
    path("tags/<int:tag_id>/complexity-report", api.complexity_report, name="complexity_report"),
    path("tags/<int:tag_id>/revisions", api.revisions, name="revisions"),
    path("tags/<int:tag_id>/workflows/<slug:kind>", api_workflows.workflow, name="workflow"),
    path("revisions/<int:pk>/rollback", api.revision_rollback, name="revision_rollback"),
    path("jobs/<int:pk>", api_workflows.job, name="job"),
]

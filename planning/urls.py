from django.urls import path

from planning import views, views_ai, views_io, views_subtasks

app_name = "planning"
urlpatterns = [
    path("", views.index, name="index"),
    path("projects/<int:pk>/", views.project, name="project"),
    path("projects/<int:pk>/settings/", views.project_settings, name="project_settings"),
    path("projects/<int:pk>/tags/new/", views.tag_create, name="tag_create"),
    path("projects/<int:pk>/transfer/", views_io.transfer, name="transfer"),
    path("projects/<int:pk>/tasks.json", views_io.export_tasks, name="export"),
    path("projects/<int:pk>/prds/", views_io.prds, name="prds"),
    path("tags/<int:tag_id>/", views.task_list, name="tasks"),
    path("tags/<int:tag_id>/board/", views.board, name="board"),
    path("tags/<int:tag_id>/graph/", views.graph, name="graph"),
    path("tags/<int:tag_id>/revisions/", views.revisions, name="revisions"),
    path("tags/<int:tag_id>/tasks/new/", views.task_create, name="task_create"),
    path("tags/<int:tag_id>/dependencies/fix/", views.dependencies_fix, name="dependencies_fix"),
    path("tags/<int:tag_id>/move/", views.tasks_move, name="tasks_move"),
    path("tags/<int:tag_id>/copy/", views.tag_copy, name="tag_copy"),
    path("tags/<int:tag_id>/complexity.json", views_io.export_complexity, name="export_complexity"),
    path("tags/<int:tag_id>/ai/<slug:kind>/", views_ai.workflow, name="workflow"),
    path("tags/<int:tag_id>/jobs/<int:pk>/", views_ai.job, name="job"),
    path("revisions/<int:pk>/", views.revision, name="revision"),
    path("revisions/<int:pk>/rollback/", views.revision_rollback, name="revision_rollback"),
    path("tasks/<int:pk>/", views.task_detail, name="task"),
    path("tasks/<int:pk>/edit/", views.task_edit, name="task_edit"),
    path("tasks/<int:pk>/status/", views.task_status, name="task_status"),
    path("tasks/<int:pk>/delete/", views.task_delete, name="task_delete"),
    path("tasks/<int:pk>/dependencies/<str:action>/", views.dependency_change, name="dependency_change"),
    path("tasks/<int:pk>/subtasks/new/", views.subtask_create, name="subtask_create"),
    path("tasks/<int:pk>/notes/", views.task_note_add, name="task_note_add"),
    path("subtasks/<int:pk>/", views_subtasks.subtask_row, name="subtask"),
    path("subtasks/<int:pk>/edit/", views_subtasks.subtask_edit, name="subtask_edit"),
    path("subtasks/<int:pk>/status/", views.subtask_status, name="subtask_status"),
    path("subtasks/<int:pk>/promote/", views.subtask_promote, name="subtask_promote"),
]

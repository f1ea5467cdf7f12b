from django.urls import include, path

from analytics import views

app_name = "analytics"
urlpatterns = [
    path("", views.index, name="index"),
    path("now/", views.now, name="now"),
    path("export/<slug:breakdown>.csv", views.export, name="export"),
    path("calls/<str:pk>/", views.call_detail, name="call_detail"),
    path("feedback/", views.feedback, name="feedback"),
    path("findings/", views.findings, name="findings"),
    path("findings/run/", views.findings_run, name="findings_run"),
    path("recommendations/<int:pk>/apply/", views.recommendation_apply, name="recommendation_apply"),
    path("recommendations/<int:pk>/dismiss/", views.recommendation_dismiss, name="recommendation_dismiss"),
    path("recommendations/<int:pk>/evaluate/", views.recommendation_evaluate, name="recommendation_evaluate"),
    path("revisions/", views.revisions, name="revisions"),
    path("revisions/<int:pk>/rollback/", views.revision_rollback, name="revision_rollback"),
    path("routing/pin/", views.routing_pin, name="routing_pin"),
    path("quality/", include("analytics.quality.urls")),
]

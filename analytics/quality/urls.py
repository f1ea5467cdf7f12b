from django.urls import path

from analytics.quality import views, views_uat

app_name = "quality"
urlpatterns = [
    path("", views.index, name="index"),
    path("suites/new/", views.suite_create, name="suite_create"),
    path("suites/builtin/", views.builtin_install, name="builtin_install"),
    path("suites/<int:pk>/", views.suite_detail, name="suite"),
    path("suites/<int:pk>/import/", views.suite_import, name="suite_import"),
    path("suites/<int:pk>/collection/", views.suite_collection, name="suite_collection"),
    path("suites/<int:pk>/run/", views.run_create, name="run_create"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("compare/", views.compare, name="compare"),
    path("uat/", views_uat.session_list, name="uat_list"),
    path("uat/new/", views_uat.session_create, name="uat_create"),
    path("uat/<int:pk>/", views_uat.session_detail, name="uat"),
    path("uat/<int:pk>/progress/", views_uat.session_progress, name="uat_progress"),
    path("uat/<int:pk>/scenarios/", views_uat.scenario_add, name="uat_scenario_add"),
    path("uat/<int:pk>/testers/", views_uat.testers_set, name="uat_testers"),
    path("uat/<int:pk>/status/", views_uat.session_status, name="uat_status"),
    path("uat/<int:pk>/report.md", views_uat.report_md, name="uat_report_md"),
    path("uat/<int:pk>/report.csv", views_uat.report_csv, name="uat_report_csv"),
    path("uat/scenarios/<int:pk>/verdict/", views_uat.verdict, name="uat_verdict"),
    path("uat/scenarios/<int:pk>/rate/", views_uat.rate, name="uat_rate"),
    path("uat/verdicts/<int:pk>/screenshot/", views_uat.screenshot, name="uat_screenshot"),
]

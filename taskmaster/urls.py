from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from taskmaster import views
from taskmaster.forms import ThrottledAuthenticationForm

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("signup/", views.signup, name="signup"),
    path("login/", auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("teams/new/", views.team_create, name="team_create"),
    path("teams/switch/", views.team_switch, name="team_switch"),
    path("teams/<slug:slug>/", views.team_detail, name="team_detail"),
    path("teams/<slug:slug>/invitations/", views.invitation_create, name="invitation_create"),
    path("teams/<slug:slug>/invitations/<int:pk>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("teams/<slug:slug>/members/<int:pk>/", views.membership_update, name="membership_update"),
    path("invite/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("jobs/<int:pk>/", views.job_status, name="job_status"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    # Feature apps are mounted by dotted path only: the core never imports them.
    path("", include("analytics.metrics_urls")),
    path("llm/", include("taskmaster.llm.urls")),
    path("v1/", include("taskmaster.api.urls")),
    path("api/v1/", include("planning.api_urls")),
    path("settings/tokens/", include("taskmaster.api.settings_urls")),
    path("research/", include("research.urls")),
    path("planning/", include("planning.urls")),
    path("analytics/", include("analytics.urls")),
    path("recovery/", include("recovery.urls")),
    path("admin/", admin.site.urls),
]

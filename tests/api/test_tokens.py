"""Personal tokens: hashed at rest, the command, the settings page, bearer authentication."""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, RequestFactory
from django.urls import reverse

from taskmaster.api.auth import api_view, authenticate_bearer
from taskmaster.api.errors import ApiError
from taskmaster.api.models import ApiToken
from taskmaster.api.services import api_token_create, api_token_revoke
from tests.conftest import Trio


def _client(user: object) -> Client:
    c = Client()
    c.force_login(user)  # type: ignore[arg-type]
    return c


def test_tokens_are_stored_hashed(trio: Trio) -> None:
    token, secret = api_token_create(user=trio.owner, name="laptop")
    assert secret.startswith("tml_") and len(secret) > 40
    row = ApiToken.objects.values().get(pk=token.pk)
    assert row["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert all(secret not in str(value) for value in row.values())
    assert secret.startswith(row["prefix"]) and len(row["prefix"]) == 12


def test_create_api_token_command_prints_the_token_once(trio: Trio) -> None:
    out, err = StringIO(), StringIO()
    call_command("create_api_token", "member", "--name", "ci", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    token = ApiToken.objects.get(user=trio.member)
    assert token.name == "ci" and secret.startswith(token.prefix)
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in err.getvalue()
    request = RequestFactory().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert authenticate_bearer(request).user == trio.member
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_token", "ghost", stdout=StringIO())


@pytest.mark.parametrize("who", ["owner", "member", "outsider"])
def test_settings_page_creates_shows_once_and_revokes(trio: Trio, who: str) -> None:
    user = getattr(trio, who)
    client = _client(user)
    url = reverse("tokens:list")
    assert client.get(url).status_code == 200
    created = client.post(url, {"name": "my cli"})
    assert created.status_code == 201
    token = ApiToken.objects.get(user=user, name="my cli")
    page = created.content.decode()
    secret = page.split('id="new-token-secret" value="')[1].split('"')[0]
    assert secret.startswith(token.prefix) and token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    # Shown once: the list afterwards has the prefix only.
    listing = client.get(url).content.decode()
    assert secret not in listing and token.prefix in listing
    revoked = client.post(reverse("tokens:revoke", args=[token.pk]))
    assert revoked.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_nobody_else_can_revoke_a_token(trio: Trio) -> None:
    token, _ = api_token_create(user=trio.owner, name="owner's")
    for other in (trio.member, trio.outsider):
        assert _client(other).post(reverse("tokens:revoke", args=[token.pk])).status_code == 404
        assert str(token.prefix) not in _client(other).get(reverse("tokens:list")).content.decode()
    token.refresh_from_db()
    assert token.revoked_at is None
    assert Client().get(reverse("tokens:list")).status_code == 302  # signed out: to the login page


def test_settings_page_htmx_partial_and_form_errors(trio: Trio) -> None:
    client = _client(trio.member)
    response = client.post(reverse("tokens:list"), {"name": "  "}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="api-tokens"' in body and "<html" not in body and "errorlist" in body
    token, _ = api_token_create(user=trio.member, name="x")
    swapped = client.post(reverse("tokens:revoke", args=[token.pk]), HTTP_HX_REQUEST="true")
    assert swapped.status_code == 200 and "revoked" in swapped.content.decode()


def test_bearer_auth_and_team_choice(trio: Trio) -> None:
    rf = RequestFactory()
    _, secret = api_token_create(user=trio.member, name="t")

    def auth(**headers: str) -> object:
        return authenticate_bearer(rf.get("/v1/models", **headers))

    with pytest.raises(ApiError) as err:
        auth()
    assert err.value.status == 401
    with pytest.raises(ApiError) as err:
        auth(HTTP_AUTHORIZATION=f"Basic {secret}")
    assert err.value.status == 401
    caller = auth(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert caller.team == trio.team  # type: ignore[attr-defined]
    with pytest.raises(ApiError) as err:
        auth(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_X_TEAM="beta")
    assert err.value.status == 404 and err.value.param == "X-Team"
    trio.member.is_active = False
    trio.member.save()
    with pytest.raises(ApiError) as err:
        auth(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert err.value.status == 401 and "deactivated" in err.value.message


def test_api_view_wraps_sync_views_for_other_apps(trio: Trio) -> None:
    from django.http import Http404, JsonResponse

    @api_view
    def whoami(request):  # type: ignore[no-untyped-def]
        if request.GET.get("missing"):
            raise Http404("No task found")
        return JsonResponse({"user": request.api.user.username, "team": request.api.team.slug})

    token, secret = api_token_create(user=trio.owner, name="t")
    rf = RequestFactory()
    ok = whoami(rf.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {secret}"))
    assert ok.status_code == 200 and b'"alpha"' in ok.content
    missing = whoami(rf.get("/api/v1/me?missing=1", HTTP_AUTHORIZATION=f"Bearer {secret}"))
    assert missing.status_code == 404 and b'"not_found"' in missing.content
    api_token_revoke(token=token)
    assert whoami(rf.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {secret}")).status_code == 401


def test_admin_lists_tokens_and_edits_limits(trio: Trio) -> None:
    from django.contrib.auth import get_user_model

    from taskmaster.api.models import UserApiLimit
    from taskmaster.api.selectors import api_limits_of

    admin_user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    api_token_create(user=trio.owner, name="listed")
    client = _client(admin_user)
    listing = client.get("/admin/taskmaster/apitoken/")
    assert listing.status_code == 200 and "listed" in listing.content.decode()
    assert client.get("/admin/taskmaster/apitoken/add/").status_code == 403
    added = client.post(
        "/admin/taskmaster/userapilimit/add/",
        {"user": trio.member.pk, "requests_per_minute": "5", "daily_token_quota": ""},
    )
    assert added.status_code == 302
    assert UserApiLimit.objects.get(user=trio.member).requests_per_minute == 5
    limits = api_limits_of(trio.member.pk)
    assert limits.requests_per_minute == 5 and limits.daily_token_quota > 0  # the site default
    assert client.get("/admin/taskmaster/userapilimit/").status_code == 200

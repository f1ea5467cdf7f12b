from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache

from taskmaster.models import Role

User = get_user_model()


class SignupForm(forms.Form):
    username = forms.RegexField(
        regex=r"^[\w.@+-]+$",
        max_length=150,
        error_messages={"invalid": "Use letters, digits and @/./+/-/_ only."},
    )
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput, strip=False)
    password_again = forms.CharField(widget=forms.PasswordInput, strip=False, label="Password (again)")

    def clean_username(self) -> str:
        username: str = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("That username is taken.")
        return username

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password") and data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        elif data.get("password"):
            try:
                validate_password(str(data["password"]), User(username=data.get("username", "")))
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return data


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100)


class InvitationForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, initial=Role.EDITOR)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ThrottledAuthenticationForm(AuthenticationForm):
    """Sign-in that locks an account name, and a client address, after repeated failures.

    Counting by name stops guessing one account from many addresses; counting by
    address stops one client trying many accounts. Both windows restart on each failure.
    """

    def _keys(self) -> list[str]:
        name = (self.data.get("username") or "").strip().lower()
        ip = self.request.META.get("REMOTE_ADDR", "") if self.request is not None else ""
        return [f"login-fail:user:{name}", f"login-fail:ip:{ip}"]

    def clean(self) -> dict[str, object]:
        limit = settings.LOGIN_MAX_FAILURES
        if any((cache.get(key) or 0) >= limit for key in self._keys()):
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            raise forms.ValidationError(
                f"Too many failed sign-ins. Wait {minutes} minute{'s' if minutes != 1 else ''} and try again.",
                code="throttled",
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            for key in self._keys():
                cache.add(key, 0, settings.LOGIN_LOCKOUT_SECONDS)
                cache.incr(key)
                cache.touch(key, settings.LOGIN_LOCKOUT_SECONDS)
            raise
        cache.delete(self._keys()[0])
        return cleaned

"""manage.py create_api_token USERNAME [--name N]: issue a personal API token and print it once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from taskmaster.api.services import api_token_create


class Command(BaseCommand):
    help = "Create a personal API token for USERNAME and print it (it cannot be shown again)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="What the token is for (default: command line).")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: options["username"]})
        except User.DoesNotExist:
            raise CommandError(f"No user named {options['username']!r}.") from None
        try:
            token, secret = api_token_create(user=user, name=options["name"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        # The secret alone on stdout, so `TOKEN=$(manage.py create_api_token me)` works.
        self.stdout.write(secret)
        self.stderr.write(
            f"Token “{token.name}” ({token.prefix}…) created for {user}. Store it now: only its hash is kept."
        )

"""Failures that never reach the ledger: an empty retrieval is recorded from research's refusal message."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import post_save

log = logging.getLogger(__name__)


def _refusal_saved(sender: type[Any], instance: Any, created: bool, raw: bool = False, **_: Any) -> None:
    from research.models import Message

    if raw or not created or instance.kind != Message.Kind.REFUSAL:
        return

    def record() -> None:
        from recovery.models import Cause
        from recovery.services import incident_record

        try:
            incident_record(
                cause=Cause.RETRIEVAL_EMPTY,
                team_id=instance.thread.team_id,
                feature="research.answer",
                message=f"No passage passed the relevance threshold for: {instance.standalone_query[:300]}",
            )
        except Exception:
            log.exception("could not record the empty retrieval of message %s", instance.pk)

    transaction.on_commit(record)


def connect() -> None:
    from research.models import Message

    post_save.connect(_refusal_saved, sender=Message, dispatch_uid="recovery_retrieval_empty")

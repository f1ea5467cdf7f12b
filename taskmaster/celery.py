"""The Celery app. Tasks take ids and call services; inference has its own per-model queues."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskmaster.settings")

app = Celery("taskmaster")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

"""Celery autodiscovery entry point of the core app."""

from taskmaster.llm.tasks import llm_run

__all__ = ["llm_run"]

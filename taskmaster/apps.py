from django.apps import AppConfig


class TaskmasterConfig(AppConfig):
    name = "taskmaster"
    verbose_name = "Task Master core"

    def ready(self) -> None:
        from taskmaster import signals  # noqa: F401  (connects audit/ledger hooks)

from django.apps import AppConfig


class RecoveryConfig(AppConfig):
    name = "recovery"
    verbose_name = "Recovery"

    def ready(self) -> None:
        # Registered in every process that loads the apps (web, jobs and inference workers):
        # each files the failures it records itself.
        from recovery import gates, plans, registry_snapshots, signals
        from taskmaster.llm import set_recovery
        from taskmaster.llm.ledger import register_hook
        from taskmaster.services import register_job_failure_hook

        register_hook(plans.on_ledger_call)
        register_job_failure_hook(plans.on_job_failed)
        set_recovery(plans.recover)
        gates.register()
        registry_snapshots.connect()
        signals.connect()

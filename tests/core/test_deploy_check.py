"""`manage.py check --deploy` under production settings is clean."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, subprocess_env


@pytest.mark.django_db
def test_check_deploy_prints_no_warnings_with_production_variables() -> None:
    env = subprocess_env()
    env.update(
        {
            "ENVIRONMENT": "production",
            "DEBUG": "0",
            "SECRET_KEY": "x7!k" * 16 + "-production-secret-that-is-long-and-random-enough",
            "ALLOWED_HOSTS": "taskmaster.example.com",
            "CSRF_TRUSTED_ORIGINS": "https://taskmaster.example.com",
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout

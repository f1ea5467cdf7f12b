"""Test-only environment, loaded with ``-p`` so it is in place before pytest-django loads settings.

Subprocesses (daphne, Celery workers) inherit it, so a password hashed by the test process
verifies in the server process too.
"""

import os

# PBKDF2 costs ~3 s of CPU per three-user fixture on this machine; tests don't need it.
os.environ.setdefault("PASSWORD_HASHERS", "django.contrib.auth.hashers.MD5PasswordHasher")
# A model call that hangs should fail its test well inside pytest-timeout's 300 s, so the
# failure names the call instead of killing the test mid-wait.
os.environ.setdefault("LLM_MAX_WAIT_S", "240")

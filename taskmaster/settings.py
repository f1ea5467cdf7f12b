"""Settings for Task Master Local: one file, every knob read from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url

from taskmaster import embedded
from taskmaster.env import (
    BASE_DIR,
    ConfigError,
    data_dir,
    env_bool,
    env_int,
    env_list,
    env_path,
    env_str,
    secret_key,
)

DATA_DIR: Path = data_dir()
MODELS_DIR: Path = env_path("MODELS_DIR", DATA_DIR / "models")
MEDIA_ROOT: Path = env_path("MEDIA_ROOT", DATA_DIR / "media")
MEDIA_URL = "/media/"

SECRET_KEY = secret_key()
DEBUG = env_bool("DEBUG", False)
# "production" turns on the secure-cookie/HSTS block and forbids test-only switches.
ENVIRONMENT = env_str("ENVIRONMENT", "development")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
# Absolute links in what leaves the app (API citations); make run serves on HOST:PORT.
SITE_URL = env_str("SITE_URL", f"http://{env_str('HOST', '127.0.0.1')}:{env_str('PORT', '8000')}")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "pgvector.django",
    "taskmaster",
    "research",
    "planning",
    "analytics",
    "recovery",
]

MIDDLEWARE = [
    "analytics.metrics.HttpMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "taskmaster.middleware.ContentSecurityPolicyMiddleware",
    "recovery.middleware.RateLimitIncidentMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "taskmaster.middleware.CurrentTeamMiddleware",
]

ROOT_URLCONF = "taskmaster.urls"
ASGI_APPLICATION = "taskmaster.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "taskmaster.context_processors.teams",
            ],
        },
    },
]


def _database() -> dict[str, Any]:
    url = env_str("DATABASE_URL")
    if url:
        try:
            config: dict[str, Any] = dict(dj_database_url.parse(url))
        except ValueError as exc:
            raise ConfigError(f"DATABASE_URL is not a valid database URL: {exc}") from None
        if config.get("ENGINE") != "django.db.backends.postgresql":
            raise ConfigError("DATABASE_URL must point at PostgreSQL (postgres://...); nothing else is supported")
        return config
    return embedded.postgres_settings(DATA_DIR)


DATABASES = {"default": _database()}
# 0 under ASGI: each request's sync code runs on a fresh thread, so a kept-alive connection is
# never reused and 50 browsing users exhausted PostgreSQL's 100 connections in the load bench.
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL") or embedded.redis_url(DATA_DIR)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 defaults socket_timeout to 5 s, the same as channels_redis's blocking
        # pop; a consumer idle for 5 s would then die with "Timeout reading".
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "capacity": 2000, "expiry": 60},
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "tm",
    }
}

# Celery: JSON only, late acks and one message at a time so a killed worker never
# swallows more than the request it was running.
CELERY_BROKER_URL = embedded.celery_url(REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 600)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 660)
CELERY_TASK_DEFAULT_QUEUE = "jobs"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# The test suite sets a fast hasher (tests/env_plugin.py); production leaves this unset.
_hashers = env_list("PASSWORD_HASHERS", [])
if _hashers:
    PASSWORD_HASHERS = _hashers

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Sign-in throttling: this many failures per account name or client address lock it for this long.
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 5)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900)
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
# daphne serves /static/ itself unless a reverse proxy does (production: see deploy/).
SERVE_STATIC = env_bool("SERVE_STATIC", ENVIRONMENT != "production")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 25 * 1024 * 1024)

# Security headers that cost nothing in development.
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# Strict CSP: no inline script or style anywhere (htmx runs without eval, see templates/base.html).
# Django's admin has a few inline styles, so /admin/ alone may use them; its scripts stay strict.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
CONTENT_SECURITY_POLICY_RELAXED = CONTENT_SECURITY_POLICY.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)
CSP_RELAXED_PATHS = ("/admin/",)
if ENVIRONMENT == "production":
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# LLM runtime knobs.
LLM_TOKEN_BATCH_MS = env_int("LLM_TOKEN_BATCH_MS", 50)
LLM_TOKEN_BATCH_SIZE = env_int("LLM_TOKEN_BATCH_SIZE", 16)
# How long a waiting client tolerates silence from a started generation before it
# declares the worker lost. Workers send a heartbeat every second.
LLM_WORKER_SILENCE_S = env_int("LLM_WORKER_SILENCE_S", 5)
LLM_MAX_WAIT_S = env_int("LLM_MAX_WAIT_S", 600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}, "daphne": {"level": "WARNING"}},
}

# OpenAI-compatible API (/v1/): body size limit, per-user defaults (overridable per user in the admin).
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 1024 * 1024)
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 120)  # 0 = unlimited
API_DAILY_TOKEN_QUOTA = env_int("API_DAILY_TOKEN_QUOTA", 1_000_000)  # prompt + completion tokens; 0 = unlimited
# max_tokens when a client sends none (never beyond the model's context).
API_DEFAULT_MAX_TOKENS = env_int("API_DEFAULT_MAX_TOKENS", 1024)

# Analytics: nightly pattern recognition, and who may read /metrics. With METRICS_TOKEN set,
# scrapers send "Authorization: Bearer <token>". METRICS_ALLOWED_IPS (exact REMOTE_ADDRs) is empty
# by default: behind daphne --proxy-headers the address comes from X-Forwarded-For, which a
# client can forge unless a proxy overwrites it. With neither set, /metrics answers 403.
from celery.schedules import crontab  # noqa: E402

METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", [])
CELERY_BEAT_SCHEDULE = {
    "analytics-nightly-patterns": {
        "task": "analytics.patterns_nightly",
        "schedule": crontab(hour=env_int("ANALYTICS_PATTERNS_HOUR", 3), minute=0),
        "options": {"queue": "jobs"},
    },
}

# Recovery: automatic recovery limits, QA bounds, and fault injection (tests only; refused in production).
RECOVERY_MAX_ATTEMPTS = env_int("RECOVERY_MAX_ATTEMPTS", 3)  # automatic retries per model call
RECOVERY_BUDGET_S = env_int("RECOVERY_BUDGET_S", 30)  # from the first failure to giving up
RECOVERY_BACKOFF_S = env_int("RECOVERY_BACKOFF_MS", 1000) / 1000  # first retry delay; doubles
RECOVERY_REROUTE_TIMEOUT_S = env_int("RECOVERY_REROUTE_TIMEOUT_S", 120)  # longest wait of a re-sent request
RECOVERY_INCIDENT_WINDOW_H = env_int("RECOVERY_INCIDENT_WINDOW_H", 24)  # a quiet incident older than this is closed
RECOVERY_QA_MAX_SUBTASKS = env_int("RECOVERY_QA_MAX_SUBTASKS", 20)
FAULT_INJECTION = env_bool("TASKMASTER_FAULTS", False)

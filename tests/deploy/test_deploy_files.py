"""deploy/ stays consistent with the code: parseable files, real settings, real metric names.

Docker, nginx, systemd and Prometheus are not available here, so these are structural checks.
"""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import yaml
from django.conf import settings

from analytics import metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _exported_series() -> set[str]:
    """Every sample name /metrics can expose, from the real registry (needs the database)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    series: set[str] = set()
    for family in metrics.REGISTRY.collect():
        if family.name.startswith("taskmaster_"):
            series |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
    assert "taskmaster_llm_queue_depth" in series and "taskmaster_llm_ttft_seconds_bucket" in series, series
    return series


def _used_series(text: str) -> set[str]:
    return set(re.findall(r"\b(taskmaster_[a-z0-9_]+)\b", text)) - {"taskmaster_web"}


def test_docker_compose_parses_and_runs_every_process() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"db", "redis", "migrate", "web", "inference", "jobs", "beat", "nginx"} <= set(services)
    assert services["db"]["image"].startswith("pgvector/pgvector:")
    web = services["web"]["command"]
    assert web[0] == "daphne" and "--proxy-headers" in web and "taskmaster.asgi:application" in web
    assert services["inference"]["command"][:3] == ["python", "manage.py", "inference_worker"]
    assert "-Q" in services["jobs"]["command"] and "jobs" in services["jobs"]["command"]
    assert services["beat"]["command"][-3:] == ["beat", "-l", "INFO"]
    for name in ("web", "inference", "jobs", "beat"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://")
        assert env["SERVE_STATIC"] == "0"
    build = services["migrate"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    for volume in services["nginx"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).exists() or source == "./certs", volume


def test_env_example_names_only_settings_the_code_reads() -> None:
    keys = [
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (DEPLOY / "taskmaster.env.example").read_text().splitlines()
        if re.match(r"^#? ?[A-Z_]+=", line)
    ]
    required = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "ENVIRONMENT"}
    assert required | {"DEBUG", "SERVE_STATIC", "MODELS_DIR", "METRICS_TOKEN"} <= set(keys)
    code = "".join(p.read_text() for p in [ROOT / "taskmaster" / "settings.py", ROOT / "taskmaster" / "env.py"])
    code += (ROOT / "taskmaster" / "backup.py").read_text()
    deploy_only = {"WEB_BIND"}  # read by the systemd web unit
    for key in set(keys) - deploy_only:
        assert f'"{key}"' in code, f"{key} in the env example is not read by the code"


def test_systemd_units_are_well_formed() -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} >= {
        "taskmaster-web@.service",
        "taskmaster-inference@.service",
        "taskmaster-jobs.service",
        "taskmaster-beat.service",
        "taskmaster-backup.service",
    }
    for unit in units:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(unit.read_text())
        service = parser["Service"]
        assert service["EnvironmentFile"] == "/etc/taskmaster/taskmaster.env", unit.name
        assert service["ExecStart"].startswith("/srv/taskmaster/app/.venv/bin/"), unit.name
    web = (DEPLOY / "systemd" / "taskmaster-web@.service").read_text()
    assert "--proxy-headers" in web and "taskmaster.asgi:application" in web
    inference = (DEPLOY / "systemd" / "taskmaster-inference@.service").read_text()
    assert "inference_worker --queues llm.%i" in inference


def test_nginx_proxies_websockets_streams_and_static_within_the_upload_limit() -> None:
    for name in ("taskmaster.conf", "compose.conf"):
        conf = (DEPLOY / "nginx" / name).read_text()
        assert conf.count("{") == conf.count("}"), name
        ws = conf.split("location /ws/", 1)[1].split("}", 1)[0]
        assert "proxy_set_header Upgrade $http_upgrade" in ws and "proxy_http_version 1.1" in ws
        sse = conf.split("location /v1/chat/completions", 1)[1].split("}", 1)[0]
        assert "proxy_buffering off" in sse
        assert f"client_max_body_size {settings.API_MAX_BODY_BYTES // 2**20}m" in sse
        assert re.search(r"location /static/ \{\s+alias /srv/taskmaster/var/staticfiles/;", conf)
        limit = int(re.search(r"^\s*client_max_body_size (\d+)m;", conf, re.M).group(1))  # type: ignore[union-attr]
        assert settings.MAX_UPLOAD_BYTES <= limit * 2**20 <= settings.MAX_UPLOAD_BYTES + 2 * 2**20, name
        assert "X-Forwarded-Proto $scheme" in conf


def test_prometheus_config_and_alerts_use_real_series(db: None) -> None:
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "taskmaster")
    assert job["metrics_path"] == "/metrics" and job["authorization"]["type"] == "Bearer"
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    rules = {r["alert"]: r for group in alerts["groups"] for r in group["rules"]}
    for wanted in (
        "TaskmasterInferenceWorkerDown",
        "TaskmasterQueueDepthHigh",
        "TaskmasterLLMErrorRateHigh",
        "TaskmasterTTFTp95High",
        "TaskmasterModelsDiskLow",
        "TaskmasterIngestionStuck",
    ):
        assert wanted in rules
    assert "node_filesystem_avail_bytes" in rules["TaskmasterModelsDiskLow"]["expr"]
    exported = _exported_series()
    for name, rule in rules.items():
        assert rule["expr"].count("(") == rule["expr"].count(")"), name
        assert rule["labels"]["severity"] in {"warning", "critical"}
        unknown = _used_series(rule["expr"]) - exported
        assert not unknown, f"{name} uses series analytics/metrics.py does not export: {unknown}"


def test_grafana_dashboard_is_importable_and_uses_real_series(db: None) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "taskmaster.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]
    exported = _exported_series()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            unknown = _used_series(target["expr"]) - exported
            assert not unknown, f"{panel['title']}: {unknown}"

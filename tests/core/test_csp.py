"""The strict Content-Security-Policy: sent on every response, and no template needs it relaxed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from django.conf import settings
from django.test import Client

from tests.conftest import Trio

ROOT = Path(__file__).resolve().parent.parent.parent
STRICT = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def _directives(header: str) -> dict[str, str]:
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in (p.strip() for p in header.split(";")) if part}


def test_every_kind_of_response_carries_the_strict_policy(client: Client, trio: Trio) -> None:
    assert settings.CONTENT_SECURITY_POLICY == STRICT
    anonymous = [client.get("/login/"), client.get("/"), client.get("/no/such/page/"), client.get("/healthz")]
    # /healthz answers 503 here (no workers in this test): error responses need the header too.
    assert [r.status_code for r in anonymous][:3] == [200, 302, 404]
    client.force_login(trio.owner)
    pages = [client.get("/"), client.get("/research/"), client.get("/planning/"), client.get("/v1/models")]
    assert [r.status_code for r in pages][:3] == [200, 200, 200]
    for response in anonymous + pages:
        assert response["Content-Security-Policy"] == STRICT, response


def test_only_the_admin_may_use_inline_styles_and_never_inline_scripts(client: Client, trio: Trio) -> None:
    trio.owner.is_staff = trio.owner.is_superuser = True
    trio.owner.save()
    client.force_login(trio.owner)
    response = client.get("/admin/")
    assert response.status_code == 200
    policy = _directives(response["Content-Security-Policy"])
    assert policy["style-src"] == "'self' 'unsafe-inline'"
    assert policy["script-src"] == "'self'"
    assert _directives(STRICT) == {**policy, "style-src": "'self'"}


def _templates() -> list[Path]:
    dirs = [
        ROOT / "templates",
        *(ROOT / app / "templates" for app in ("research", "planning", "analytics", "recovery")),
    ]
    dirs += [ROOT / "taskmaster" / "templates", ROOT / "taskmaster" / "llm" / "templates"]
    return sorted(p for d in dirs if d.is_dir() for p in d.rglob("*.html"))


def test_no_template_has_inline_script_style_or_event_handlers() -> None:
    templates = _templates()
    assert len(templates) > 30
    problems = []
    for path in templates:
        # Django comments may mention what they forbid; only the markup counts.
        text = re.sub(r"\{#.*?#\}", "", path.read_text(encoding="utf-8"))
        text = re.sub(r"\{% comment %\}.*?\{% endcomment %\}", "", text, flags=re.S)
        for n, line in enumerate(text.splitlines(), start=1):
            where = f"{path.relative_to(ROOT)}:{n}"
            if re.search(r"\sstyle\s*=", line) or re.search(r"<style[\s>]", line):
                problems.append(f"{where}: inline style")
            if re.search(r"<script(?![^>]*\ssrc=)[^>]*>", line):
                problems.append(f"{where}: inline <script>")
            if re.search(r"\son[a-z]+\s*=", line) or re.search(r"\shx-on[:-]", line) or "javascript:" in line:
                problems.append(f"{where}: inline event handler")
    assert problems == []


def test_htmx_is_configured_to_run_without_eval_or_injected_styles() -> None:
    base = (ROOT / "templates" / "base.html").read_text(encoding="utf-8")
    match = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'>', base)
    assert match, "templates/base.html sets htmx's configuration in a meta tag"
    config = json.loads(match.group(1))
    assert config["allowEval"] is False and config["includeIndicatorStyles"] is False
    assert config["allowScriptTags"] is False

"""The real Task Master CLI (`task-master-ai` from npm) against live daphne and the small default model.

The CLI is installed project-locally under var/node/ (no global install); the first run
installs it with npm (from npm's cache when offline). Without Node.js >= 20 and npm the tests
are skipped with that reason, unless REQUIRE_NODE=1 (CI sets it) turns the skip into a failure
so the compatibility claim of docs/api.md is always checked there.
The tiny model writes poor plans, so the assertions are about structure, the HTTP path and
the ledger, never about the wording.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import pytest

from research import services as research_services
from research.answer import REFUSAL
from research.models import Document
from taskmaster.llm.defaults import CHAT_NAME
from taskmaster.models import LLMCall
from tests.conftest import ROOT, Trio, Workers, serve_daphne
from tests.research.helpers import add_texts

pytestmark = pytest.mark.django_db(transaction=True)

TASK_MASTER_VERSION = "0.43.1"
# Task Master's "openai-compatible" provider never sends a JSON schema (only
# json_object), so the tiny model cannot know the task shape. Its "zai" provider is the
# same @ai-sdk/openai-compatible client with structured outputs on and the role's baseURL
# honoured: the schema reaches the server and decoding is constrained to it (docs/api.md).
PROVIDER = "zai"
NODE_PREFIX = ROOT / "var" / "node"
PACKAGE = NODE_PREFIX / "node_modules" / "task-master-ai"
CLI_TIMEOUT_S = 400
# Task Master sends no max_tokens with its structured (json_object) requests, so the
# server's default bounds them; kept small for the tiny model and a two-core CI machine.
SERVER_MAX_TOKENS = 256
MAX_TOKENS = 256
# The research role: the server's `research` model (RAG over the team's collections) through
# the "openai-compatible" provider, which streams plain chat completions and, unlike "zai",
# passes maxTokens on for text calls. (Task Master's "perplexity" provider would post to
# Perplexity's Agent API, <baseURL>/v1/agent, which this server does not serve: docs/api.md.)
RESEARCH_PROVIDER = "openai-compatible"
RESEARCH_MODEL = "research"
RESEARCH_MAX_TOKENS = 64
KNOWLEDGE = {
    "Backups": "Zephyr database backups run nightly at 02:00 UTC and are kept for thirty days.",
    "Cafeteria": "The cafeteria serves soup and sandwiches between noon and two o'clock.",
}
QUESTION = "When do the Zephyr database backups run?"

PRD = """\
# Product: Tiny Notes

A command-line app to keep short notes.

## Features
- Add a note with a title.
- List all notes.
"""


def _no_node(reason: str) -> NoReturn:
    """Skip with the reason shown, or fail when REQUIRE_NODE=1 (CI installs Node and sets it)."""
    if os.environ.get("REQUIRE_NODE") == "1":
        pytest.fail(f"{reason} (REQUIRE_NODE=1)")
    pytest.skip(reason)


def _install_task_master() -> list[str]:
    """[node, cli.js] for the pinned task-master-ai, installing it into var/node/ when missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _no_node(
            "Task Master CLI test needs Node.js >= 20 and npm, not found on PATH "
            "(Debian: apt-get install -y nodejs npm)"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        _no_node(f"task-master-ai {TASK_MASTER_VERSION} needs Node.js >= 20; {node} is {version}")
    manifest = PACKAGE / "package.json"
    installed = json.loads(manifest.read_text())["version"] if manifest.exists() else None
    if installed != TASK_MASTER_VERSION:
        NODE_PREFIX.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(NODE_PREFIX),
                "--no-audit",
                "--no-fund",
                "--prefer-offline",  # npm's cache first: works offline once it has been installed
                f"task-master-ai@{TASK_MASTER_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            pytest.fail(f"npm install task-master-ai@{TASK_MASTER_VERSION} failed:\n{done.stderr[-3000:]}")
    return [node, str(PACKAGE / "dist" / "task-master.js")]


@pytest.fixture(scope="session")
def task_master() -> list[str]:
    return _install_task_master()


def _config(base_url: str, research_url: str) -> dict[str, Any]:
    # What docs/api.md's recipe produces, with small maxTokens for the tiny model.
    role = {"provider": PROVIDER, "modelId": CHAT_NAME, "maxTokens": MAX_TOKENS, "baseURL": base_url}
    research = {
        "provider": RESEARCH_PROVIDER,
        "modelId": RESEARCH_MODEL,
        "maxTokens": RESEARCH_MAX_TOKENS,
        "temperature": 0.1,
        "baseURL": research_url,
    }
    return {
        "models": {
            "main": {**role, "temperature": 0.2},
            "research": research,
            "fallback": {**role, "temperature": 0.2},
        },
        "global": {
            "logLevel": "info",
            "debug": False,
            "defaultNumTasks": 2,
            "defaultSubtasks": 2,
            "defaultPriority": "medium",
            "projectName": "Tiny Notes",
            "responseLanguage": "English",
            "enableCodebaseAnalysis": False,
            "anonymousTelemetry": False,
        },
    }


class Project:
    def __init__(self, root: Path, cli: list[str], secret: str) -> None:
        self.root = root
        self.cli = cli
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(root / "home"),  # keeps the CLI's global state out of the real home
            "ZAI_API_KEY": secret,
            "OPENAI_COMPATIBLE_API_KEY": secret,
            "NO_COLOR": "1",
            "FORCE_COLOR": "0",
            "CI": "true",
        }

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [*self.cli, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"task-master {' '.join(args)} exited {done.returncode}:\n{output[-4000:]}"
        return done.stdout

    def json(self, *args: str) -> Any:
        out = self.run(*args)
        # The CLI prints a status line before the JSON document.
        return json.JSONDecoder().raw_decode(out[out.index("{") :])[0]

    @property
    def tasks(self) -> list[dict[str, Any]]:
        data = json.loads((self.root / ".taskmaster" / "tasks" / "tasks.json").read_text())
        return list(data["master"]["tasks"])


@pytest.fixture(scope="module")
def server_url(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """daphne like `live_url`, but with API_DEFAULT_MAX_TOKENS lowered (see SERVER_MAX_TOKENS)."""
    with serve_daphne(tmp_path_factory.mktemp("daphne-cli"), API_DEFAULT_MAX_TOKENS=str(SERVER_MAX_TOKENS)) as url:
        yield url


class Recorder:
    """A pass-through HTTP proxy in front of daphne that keeps every exchange.

    The research role goes through it: Task Master prints only the answer's text, so this is
    how the test sees the citations our server sent the CLI. Responses are relayed whole (a
    stream arrives at once), which the CLI does not mind.
    """

    def __init__(self, upstream: str) -> None:
        self.exchanges: list[tuple[str, dict[str, Any], int, bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() in {"authorization", "content-type"}}
                forward = urllib.request.Request(upstream + self.path, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(forward, timeout=CLI_TIMEOUT_S) as answer:
                        status, kind, data = answer.status, answer.headers.get("Content-Type", ""), answer.read()
                except urllib.error.HTTPError as exc:
                    status, kind, data = exc.code, exc.headers.get("Content-Type", ""), exc.read()
                recorder.exchanges.append((self.path, json.loads(body or b"{}"), status, data))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder(server_url: str) -> Iterator[Recorder]:
    proxy = Recorder(server_url)
    yield proxy
    proxy.close()


def _sse_events(data: bytes) -> list[dict[str, Any]]:
    lines = [line[len("data: ") :] for line in data.decode().splitlines() if line.startswith("data: ")]
    assert lines and lines[-1] == "[DONE]", data[-500:]
    return [json.loads(line) for line in lines[:-1]]


@pytest.fixture
def project(tmp_path: Path, task_master: list[str], server_url: str, recorder: Recorder, trio: Trio) -> Project:
    from taskmaster.api.services import api_token_create

    secret = api_token_create(user=trio.owner, name="task-master cli")[1]
    (tmp_path / "home").mkdir()
    tm = tmp_path / ".taskmaster"
    (tm / "tasks").mkdir(parents=True)
    (tm / "docs").mkdir()
    (tm / "config.json").write_text(json.dumps(_config(f"{server_url}/v1", f"{recorder.url}/v1"), indent=2))
    (tm / "docs" / "prd.txt").write_text(PRD)
    return Project(tmp_path, task_master, secret)


def _assert_task(task: dict[str, Any]) -> None:
    assert isinstance(task["id"], int) and task["id"] >= 1
    assert isinstance(task["title"], str) and task["title"].strip()
    assert isinstance(task["description"], str)
    assert task["status"] == "pending"
    assert isinstance(task["dependencies"], list)


# Three CLI runs, each with Node start-up and the small model.
@pytest.mark.timeout(1200)
def test_parse_prd_expand_and_list_through_the_cli(llm: Workers, trio: Trio, project: Project) -> None:
    project.run("parse-prd", "--input", ".taskmaster/docs/prd.txt", "--num-tasks", "2", "--force")
    parsed = project.tasks
    assert 1 <= len(parsed) <= 4, parsed
    for task in parsed:
        _assert_task(task)
    assert len({t["id"] for t in parsed}) == len(parsed)

    target = parsed[0]["id"]
    project.run("expand", "--id", str(target), "--num", "2", "--force")
    tasks = project.tasks
    subtasks = next(t for t in tasks if t["id"] == target)["subtasks"]
    assert 1 <= len(subtasks) <= 4, subtasks
    for sub in subtasks:
        assert isinstance(sub["id"], int) and isinstance(sub["title"], str) and sub["title"].strip()
    assert all(not t.get("subtasks") for t in tasks if t["id"] != target)

    listing = project.json("list", "--json")
    assert [(str(t["id"]), t["title"]) for t in tasks] == [(t["id"], t["title"]) for t in listing["tasks"]]

    calls = LLMCall.objects.filter(feature="api", user=trio.owner)
    assert calls.filter(outcome="ok").count() >= 2
    assert all(c.metadata.get("endpoint") == "chat.completions" for c in calls)


@pytest.fixture
def knowledge_base(trio: Trio, llm: Workers) -> Document:
    """The owner's team has a collection with two indexed documents; returns the Backups one."""
    kb = research_services.collection_create(team=trio.team, name="Handbook", slug="handbook")
    add_texts(kb, KNOWLEDGE)
    return Document.objects.get(collection=kb, title="Backups")


@pytest.mark.timeout(600)
def test_research_through_the_cli_answers_from_the_knowledge_base(
    trio: Trio, knowledge_base: Document, project: Project, recorder: Recorder
) -> None:
    # An empty plan: the CLI needs a tasks file, and no tasks keeps the prompt short.
    (project.root / ".taskmaster" / "tasks" / "tasks.json").write_text(json.dumps({"master": {"tasks": []}}))
    out = project.run("research", QUESTION, "--detail", "low")

    # The CLI asked our research model, streamed, with the role's maxTokens.
    [(path, request, status, body)] = recorder.exchanges
    assert (path, status) == ("/v1/chat/completions", 200)
    assert request["model"] == RESEARCH_MODEL and request["stream"] is True
    assert request["max_tokens"] == RESEARCH_MAX_TOKENS
    events = _sse_events(body)
    text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert text.strip() and text != REFUSAL
    # The answer came with citations into the team's knowledge base (on the final chunk).
    citations = next(e["citations"] for e in events if "citations" in e)
    link = f"/research/documents/{knowledge_base.pk}/#passage-0"
    assert any(c.endswith(link) for c in citations), citations
    results = next(e["search_results"] for e in events if "search_results" in e)
    assert any(r["url"].endswith(link) and "02:00 UTC" in r["snippet"] for r in results)
    # The text itself ends with the numbered sources, so the CLI, which prints only the text, shows them.
    assert "Sources:" in text and link in text

    # The CLI shows that answer (it prints the text stream only; see docs/api.md on citations).
    assert "Research Results" in out
    assert " ".join(text.split()) in " ".join(out.split())

    # Ledger: the query embedding and the grounded answer, as API calls of the research model.
    calls = LLMCall.objects.filter(feature="api", user=trio.owner, metadata__virtual_model=RESEARCH_MODEL)
    assert set(calls.values_list("kind", flat=True)) == {"embedding", "chat"}
    assert all(c.team_id == trio.team.pk and c.outcome == "ok" for c in calls)
    assert 0 < calls.get(kind="chat").completion_tokens <= RESEARCH_MAX_TOKENS

"""The real Task Master CLI (`task-master-ai` from npm) against live daphne and the small default model.

The CLI is installed project-locally under var/node/ (no global install); the first run
installs it with npm (from npm's cache when offline). Without Node.js and npm this test
fails on purpose: CI must install Node so the compatibility claim of docs/api.md is checked.
The tiny model writes poor plans, so the assertions are about structure, the HTTP path and
the ledger, never about the wording.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskmaster.llm.defaults import CHAT_NAME
from taskmaster.models import LLMCall
from tests.conftest import ROOT, Trio, Workers, _free_port, subprocess_env

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

PRD = """\
# Product: Tiny Notes

A command-line app to keep short notes.

## Features
- Add a note with a title.
- List all notes.
"""


def _install_task_master() -> list[str]:
    """[node, cli.js] for the pinned task-master-ai, installing it into var/node/ when missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "Node.js and npm are required for the Task Master CLI test (node >= 20). "
            "Install them (Debian: apt-get install -y nodejs npm); CI's .ci/run does."
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.fail(f"task-master-ai {TASK_MASTER_VERSION} needs Node.js >= 20; {node} is {version}")
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


def _config(base_url: str) -> dict[str, Any]:
    # What docs/api.md's recipe produces, with small maxTokens for the tiny model.
    role = {"provider": PROVIDER, "modelId": CHAT_NAME, "maxTokens": MAX_TOKENS, "baseURL": base_url}
    return {
        "models": {
            "main": {**role, "temperature": 0.2},
            "research": {**role, "temperature": 0.1},
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
    port = _free_port()
    env = {**subprocess_env(), "API_DEFAULT_MAX_TOKENS": str(SERVER_MAX_TOKENS)}
    log = open(tmp_path_factory.mktemp("daphne-cli") / "daphne.log", "ab")  # noqa: SIM115
    cmd = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "taskmaster.asgi:application"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("daphne did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture
def project(tmp_path: Path, task_master: list[str], server_url: str, trio: Trio) -> Project:
    from taskmaster.api.services import api_token_create

    secret = api_token_create(user=trio.owner, name="task-master cli")[1]
    (tmp_path / "home").mkdir()
    tm = tmp_path / ".taskmaster"
    (tm / "tasks").mkdir(parents=True)
    (tm / "docs").mkdir()
    (tm / "config.json").write_text(json.dumps(_config(f"{server_url}/v1"), indent=2))
    (tm / "docs" / "prd.txt").write_text(PRD)
    return Project(tmp_path, task_master, secret)


def _assert_task(task: dict[str, Any]) -> None:
    assert isinstance(task["id"], int) and task["id"] >= 1
    assert isinstance(task["title"], str) and task["title"].strip()
    assert isinstance(task["description"], str)
    assert task["status"] == "pending"
    assert isinstance(task["dependencies"], list)


# Three CLI runs, each with Node start-up and up to three roles of the small model.
@pytest.mark.timeout(900)
def test_parse_prd_add_task_and_list_through_the_cli(llm: Workers, trio: Trio, project: Project) -> None:
    project.run("parse-prd", "--input", ".taskmaster/docs/prd.txt", "--num-tasks", "2", "--force")
    parsed = project.tasks
    assert 1 <= len(parsed) <= 4, parsed
    for task in parsed:
        _assert_task(task)
    assert len({t["id"] for t in parsed}) == len(parsed)

    project.run("add-task", "--prompt", "Add a command that deletes a note")
    tasks = project.tasks
    assert len(tasks) == len(parsed) + 1
    added = tasks[-1]
    _assert_task(added)
    assert added["id"] == max(t["id"] for t in parsed) + 1

    listing = project.json("list", "--json")
    assert [(str(t["id"]), t["title"]) for t in tasks] == [(t["id"], t["title"]) for t in listing["tasks"]]

    calls = LLMCall.objects.filter(feature="api", user=trio.owner)
    assert calls.filter(outcome="ok").count() >= 2
    assert all(c.metadata.get("endpoint") == "chat.completions" for c in calls)

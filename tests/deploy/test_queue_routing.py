"""Scaling out: two inference workers on separate queues, each request served by its model's worker."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from taskmaster.llm import CallContext, generate
from taskmaster.llm.defaults import CHAT_NAME, SMOLLM2_FILE, SMOLLM2_SHA256
from taskmaster.llm.models import LLMCall, LLMModel, ModelKind
from taskmaster.llm.registry import model_verify
from tests.conftest import ROOT, Workers, _wait_for_workers, subprocess_env

SECOND = "smollm2-second"
SECOND_QUEUE = "llm.second"


def _pids(proc: subprocess.Popen[bytes]) -> set[int]:
    return {proc.pid} | {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}


@pytest.fixture
def second_worker(llm: Workers, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A second registry row on the same GGUF but its own queue, and a worker consuming only that queue."""
    model = LLMModel.objects.create(
        name=SECOND,
        kind=ModelKind.CHAT,
        file_path=SMOLLM2_FILE,
        sha256=SMOLLM2_SHA256,
        context_length=2048,
        queue=SECOND_QUEUE,
    )
    assert model_verify(model=model).available, model.last_error
    log = open(tmp_path / "second.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "inference_worker",
            "--queues",
            SECOND_QUEUE,
            "--name",
            "second",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_workers(["second"])
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_each_request_runs_on_its_models_queue_worker(llm: Workers, second_worker: subprocess.Popen[bytes]) -> None:
    ask = [{"role": "user", "content": "Say hi."}]
    served: dict[str, set[int]] = {CHAT_NAME: set(), SECOND: set()}
    # Alternate, twice each: a worker that also drained the other queue would show up here.
    for i in range(2):
        for name in (CHAT_NAME, SECOND):
            completion = generate(
                ask, model=name, max_tokens=8, context=CallContext(feature="deploy.routing", conversation=f"{name}-{i}")
            )
            call = LLMCall.objects.get(pk=completion.request_id)
            assert call.model_name == name and call.outcome == "ok"
            host, _, pid = call.worker.rpartition(":")
            assert host and pid.isdigit(), call.worker
            served[name].add(int(pid))

    first_pids = set(llm.child_pids("inference")) | {llm.procs["inference"].pid}
    second_pids = _pids(second_worker)
    assert served[CHAT_NAME] and served[CHAT_NAME] <= first_pids, (served, first_pids)
    assert served[SECOND] and served[SECOND] <= second_pids, (served, second_pids)
    assert not first_pids & second_pids

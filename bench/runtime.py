"""Runtime figures (issue 3): direct llama-cpp-python against the app's queue-and-stream path.

Both sides use the same GGUF, threads, context, prompt and greedy sampling, so they
generate the same tokens; they run alternately, never at the same time.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from bench.common import Table, inference_worker, median

RUNS = 5
MAX_TOKENS = 96


def prompt(run: int) -> list[dict[str, str]]:
    # A different prompt per run, the same on both sides: neither reuses a cached prompt.
    return [{"role": "user", "content": f"Write a long story (number {run}) about a lighthouse keeper and a whale."}]


GREEDY: dict[str, Any] = {"temperature": 0.0, "top_p": 1.0, "top_k": 1, "repeat_penalty": 1.1, "seed": 7}


class BenchTask(BaseModel):
    title: str = Field(max_length=60)
    priority: int = Field(ge=1, le=5)


class BenchTaskList(BaseModel):
    tasks: list[BenchTask] = Field(min_length=1, max_length=4)


def _direct_llama(model: Any) -> Any:
    from llama_cpp import Llama

    from taskmaster.llm.worker import cpu_count

    return Llama(
        model_path=str(model.path),
        n_ctx=model.context_length,
        n_threads=model.n_threads or cpu_count(),
        n_batch=model.n_batch,
        verbose=False,
    )


def _direct_run(llm: Any, run: int) -> tuple[float, float, int]:
    llm.reset()  # no KV reuse between runs: the app side gets none either (different prompts would)
    start = time.perf_counter()
    first = last = 0.0
    n = 0
    for chunk in llm.create_chat_completion(messages=prompt(run), max_tokens=MAX_TOKENS, stream=True, **GREEDY):
        if chunk["choices"][0].get("delta", {}).get("content"):
            n += 1
            last = time.perf_counter()
            first = first or last
    return (first - start) * 1000, (n - 1) / (last - first) if n > 1 else 0.0, n


async def _app_run(conversation: str, run: int) -> tuple[float, float, int]:
    from taskmaster.llm import CallContext, agenerate

    start = time.perf_counter()
    marks: list[float] = []

    async def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "llm.tokens":
            marks.append(time.perf_counter())

    completion = await agenerate(
        prompt(run),
        max_tokens=MAX_TOKENS,
        on_event=on_event,
        context=CallContext(feature="bench.runtime", conversation=conversation),
        **GREEDY,
    )
    n = completion.usage.completion_tokens
    first, last = marks[0], marks[-1]
    return (first - start) * 1000, (n - 1) / (last - first) if n > 1 and last > first else 0.0, n


def _embed_texts() -> list[str]:
    words = [
        "plan",
        "task",
        "research",
        "model",
        "worker",
        "queue",
        "stream",
        "token",
        "vector",
        "index",
        "team",
        "project",
        "budget",
    ]
    return [" ".join(words[(i + j) % len(words)] for j in range(40)) + f" item {i}" for i in range(256)]


def run() -> str:
    from asgiref.sync import async_to_sync

    from taskmaster.llm import CallContext, LLMError, embed, generate
    from taskmaster.llm.registry import model_for_role

    chat = model_for_role("main")
    emb = model_for_role("embedding")
    out: list[str] = []
    with inference_worker(f"{chat.queue_name},{emb.queue_name}"):
        direct = _direct_llama(chat)
        _direct_run(direct, -1)
        async_to_sync(_app_run)("bench-warmup", -2)  # loads the model in the worker
        d_ttft, d_tps, a_ttft, a_tps = [], [], [], []
        for i in range(RUNS):
            t, s, n_direct = _direct_run(direct, i)
            d_ttft.append(t)
            d_tps.append(s)
            t, s, n_app = async_to_sync(_app_run)(f"bench-{i}", i)
            a_ttft.append(t)
            a_tps.append(s)
        direct.close()
        table = Table(
            f"Generation: direct llama-cpp-python (a) vs the app's queue-and-stream path (b), "
            f"{RUNS} runs of {MAX_TOKENS} tokens, medians",
            "direct (a)",
            "app (b)",
        )
        table.add("tokens/s", median(d_tps), median(a_tps), target="b/a ≥ 0.9")
        table.add(
            "time to first token, ms",
            median(d_ttft),
            median(a_ttft),
            fmt="{:.0f}",
            target=f"b - a ≤ 50 ms (here {median(a_ttft) - median(d_ttft):+.0f} ms)",
        )
        table.note("tokens per run (a / b, last run)", f"{n_direct} / {n_app}")
        out.append(table.render())

        # Constrained against unconstrained decoding, same prompt, both through the app.
        ask = [{"role": "user", "content": "List three tasks for launching a small website."}]
        free_tps, schema_tps = [], []
        for _ in range(RUNS):
            free = generate(ask, max_tokens=96, context=CallContext(feature="bench.free"), **GREEDY)
            constrained = generate(
                ask, schema=BenchTaskList, max_tokens=160, context=CallContext(feature="bench.schema"), **GREEDY
            )
            free_tps.append(free.timings.tokens_per_s or 0.0)
            schema_tps.append(constrained.timings.tokens_per_s or 0.0)
        table = Table(
            "Constrained (JSON-schema grammar) vs unconstrained decoding, worker-measured tokens/s, medians",
            "unconstrained",
            "constrained",
        )
        table.add("tokens/s", median(free_tps), median(schema_tps))
        out.append(table.render())

        # 50 runs of a task-list schema on the default model: every one must validate.
        topics = [
            "a blog",
            "a CLI tool",
            "a mobile app",
            "a data pipeline",
            "an API",
            "a game",
            "a website",
            "a chat bot",
            "a compiler",
            "a dashboard",
        ]
        valid = 0
        failures: list[str] = []
        for i in range(50):
            ask = [{"role": "user", "content": f"List tasks for building {topics[i % len(topics)]} (variant {i})."}]
            try:
                generate(ask, schema=BenchTaskList, max_tokens=200, context=CallContext(feature="bench.schema50"))
                valid += 1
            except LLMError as exc:
                failures.append(f"{exc.error_class}: {exc}")
        out.append(
            f"\nSchema validity: {valid}/50 task-list objects valid on the default model"
            + (f" (failures: {failures[:3]})" if failures else "")
            + "\n"
        )

        # Prefix reuse: the second turn of a conversation after its first turn (warm KV
        # prefix) against the same second turn after an unrelated prompt (cold).
        system = {"role": "system", "content": "You are a planning assistant. " + "Be precise and brief. " * 60}
        turn1 = [system, {"role": "user", "content": "Suggest a name for a task tracker."}]
        turn2 = [*turn1, {"role": "assistant", "content": "TaskNest"}, {"role": "user", "content": "Why?"}]
        warm, cold, hits = [], [], 0
        for i in range(RUNS):
            generate(turn1, max_tokens=8, context=CallContext(feature="bench.prefix", conversation=f"p{i}"), **GREEDY)
            second = generate(
                turn2, max_tokens=8, context=CallContext(feature="bench.prefix", conversation=f"p{i}"), **GREEDY
            )
            warm.append(second.timings.ttft_ms or 0.0)
            hits += int(second.cache_hit)
            generate([{"role": "user", "content": f"Unrelated {i}"}], max_tokens=4, **GREEDY)
            again = generate(turn2, max_tokens=8, context=CallContext(feature="bench.prefix"), **GREEDY)
            cold.append(again.timings.ttft_ms or 0.0)
        table = Table("Prefix reuse: second-turn time to first token (worker-measured), medians", "cold", "warm prefix")
        table.add("time to first token, ms", median(cold), median(warm), fmt="{:.0f}")
        table.note("warm second turns that hit the cache", f"{hits}/{RUNS}")
        out.append(table.render())

        # Embedding throughput: embed() against direct llama-cpp-python, same batches.
        from llama_cpp import Llama

        texts = _embed_texts()
        batches = [texts[i : i + 32] for i in range(0, len(texts), 32)]
        embed(batches[0])  # load in the worker
        direct_emb = Llama(
            model_path=str(emb.path),
            embedding=True,
            n_ctx=emb.context_length,
            n_batch=emb.n_batch,
            n_ubatch=emb.n_batch,
            verbose=False,
        )
        d_rates, a_rates = [], []
        for _ in range(3):
            start = time.perf_counter()
            for batch in batches:
                direct_emb.create_embedding(batch)
            d_rates.append(len(texts) / (time.perf_counter() - start))
            start = time.perf_counter()
            for batch in batches:
                embed(batch, context=CallContext(feature="bench.embed"))
            a_rates.append(len(texts) / (time.perf_counter() - start))
        direct_emb.close()
        table = Table(
            "Embeddings: direct llama-cpp-python (a) vs embed() (b), 256 texts in batches of 32, medians",
            "direct (a)",
            "embed() (b)",
        )
        table.add("texts/s", median(d_rates), median(a_rates))
        out.append(table.render())
    return "".join(out)

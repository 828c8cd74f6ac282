"""Text tower: tokenizer, TextEncoder and the contrastive loss."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from spklip.config import TextConfig
from spklip.loss import ClipLoss, LogitScale, clip_loss, contrastive_logits
from spklip.text import TextEncoder
from spklip.tokenizer import EOT_ID, PAD_ID, SOT_ID, UNK_ID, SpikeTextTokenizer
from spklip_energy.errors import ConfigError

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
MOTIONS = [
    "drifts slowly to the left",
    "moves quickly to the right",
    "rises towards the top",
    "falls to the bottom",
    "stays still",
]
PLACES = ["near the top", "near the bottom", "in the centre", "at the left edge", "at the right edge"]


def captions() -> list[str]:
    out = []
    for i in range(50):
        out.append(f"a handwritten {DIGITS[i % 10]} {MOTIONS[(i // 10) % 5]} {PLACES[(3 * i) % 5]}")
    return out + [f"a photo of the digit {d}" for d in DIGITS]


@pytest.fixture
def tokenizer() -> SpikeTextTokenizer:
    return SpikeTextTokenizer.train(captions(), vocab_size=300)


# ---------------------------------------------------------------------------- tokenizer


def test_special_token_ids(tokenizer):
    assert (tokenizer.pad_id, tokenizer.sot_id, tokenizer.eot_id) == (0, SOT_ID, EOT_ID)
    assert PAD_ID == 0
    assert len({PAD_ID, SOT_ID, EOT_ID, UNK_ID}) == 4
    assert 4 < tokenizer.vocab_size <= 300


def test_encode_layout_and_round_trip(tokenizer):
    text = "A handwritten seven drifts slowly to the left near the top"
    ids = tokenizer.encode([text, "one"], context_length=32)
    assert ids.dtype == torch.long and ids.shape == (2, 32)
    for row in ids:
        n = int((row != PAD_ID).sum())
        assert row[0] == SOT_ID
        assert row[n - 1] == EOT_ID, f"expected <eot> at {n - 1}, found {row[n - 1]}"
        assert (row[n:] == PAD_ID).all()
        assert int((row == EOT_ID).sum()) == 1
    assert tokenizer.decode(ids[0]) == text.lower()
    assert tokenizer.decode(ids[1].tolist()) == "one"


def test_unseen_word_is_pieces_not_unk(tokenizer):
    ids = tokenizer.encode(["a zebra"], context_length=32)[0]
    assert UNK_ID not in ids.tolist()
    assert tokenizer.decode(ids) == "a zebra"


def test_truncation_keeps_eot(tokenizer):
    long = " ".join(captions()[:5])
    ids = tokenizer.encode([long, ""], context_length=8)
    assert ids.shape == (2, 8)
    assert ids[0, 0] == SOT_ID and ids[0, -1] == EOT_ID and (ids[0] != PAD_ID).all()
    assert ids[1].tolist() == [SOT_ID, EOT_ID] + [PAD_ID] * 6
    full = tokenizer.encode([long], context_length=200)[0]
    assert ids[0, 1:7].tolist() == full[1:7].tolist()


def test_encode_rejects_bad_arguments(tokenizer):
    with pytest.raises(ConfigError, match="context_length"):
        tokenizer.encode(["a"], context_length=1)
    with pytest.raises(ConfigError, match="list of texts"):
        tokenizer.encode("a handwritten one", context_length=8)
    assert tokenizer.encode([], context_length=8).shape == (0, 8)


def test_training_is_deterministic(tokenizer):
    again = SpikeTextTokenizer.train(captions(), vocab_size=300)
    assert again.to_json() == tokenizer.to_json()
    # another process has other hash seeds (Python's and the Rust trainer's)
    code = (
        "import json, sys; from spklip.tokenizer import SpikeTextTokenizer as T; "
        "sys.stdout.write(T.train(json.load(sys.stdin), 300).to_json())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(captions()),
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert out.stdout == tokenizer.to_json()


def test_vocab_size_is_an_upper_bound():
    tok = SpikeTextTokenizer.train(captions(), vocab_size=80)
    assert tok.vocab_size <= 80
    with pytest.raises(ConfigError, match="vocab_size=10 is too small"):
        SpikeTextTokenizer.train(captions(), vocab_size=10)
    with pytest.raises(ConfigError, match="non-empty"):
        SpikeTextTokenizer.train(["", "  "], vocab_size=100)


def test_json_round_trip(tokenizer):
    again = SpikeTextTokenizer.from_json(tokenizer.to_json())
    texts = captions()[::7] + ["an unseen zebra!", ""]
    assert torch.equal(again.encode(texts, 16), tokenizer.encode(texts, 16))
    assert again.vocab_size == tokenizer.vocab_size


@pytest.mark.parametrize("garbage", ["", "not json", "[1, 2]", "{}", '{"model": 3}', None])
def test_from_json_garbage(garbage):
    with pytest.raises(ConfigError, match="tokenizer"):
        SpikeTextTokenizer.from_json(garbage)


def test_from_json_needs_the_special_tokens():
    from tokenizers import Tokenizer, models

    foreign = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1}, unk_token="<unk>")).to_str()
    with pytest.raises(ConfigError, match="<pad> must have id 0"):
        SpikeTextTokenizer.from_json(foreign)


# ---------------------------------------------------------------------------- text encoder


def small_cfg(**kw) -> TextConfig:
    base = dict(width=32, layers=2, heads=4, context_length=16, vocab_size=64, adapter_width=8)
    base.update(kw)
    return TextConfig(**base)


def random_tokens(batch: int = 3, length: int = 16, lengths=(5, 9, 16), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(batch, length, dtype=torch.long)
    for i, n in enumerate(lengths[:batch]):
        tokens[i, :n] = torch.randint(4, 64, (n,), generator=g)
        tokens[i, 0], tokens[i, n - 1] = SOT_ID, EOT_ID
    return tokens


@pytest.mark.parametrize("style", ["clip", "bert"])
def test_output_shape(style):
    torch.manual_seed(0)
    enc = TextEncoder(small_cfg(style=style), embed_dim=24)
    out = enc(random_tokens())
    assert out.shape == (3, 24) and torch.isfinite(out).all()
    short = enc(random_tokens(length=10, lengths=(5, 9, 10)))
    assert short.shape == (3, 24)


def test_encodes_real_tokenizer_output(tokenizer):
    torch.manual_seed(0)
    enc = TextEncoder(small_cfg(vocab_size=tokenizer.vocab_size), embed_dim=24)
    tokens = tokenizer.encode(captions()[:4], context_length=16)
    assert enc(tokens).shape == (4, 24)


def test_every_parameter_sits_in_a_leaf_module():
    enc = TextEncoder(small_cfg(), embed_dim=24)
    for name, module in enc.named_modules():
        own = list(module.parameters(recurse=False))
        if own and type(module).__name__ != "MultiheadAttention":
            assert not list(module.children()), f"{name} holds parameters and has children"


def test_clip_style_is_causal():
    torch.manual_seed(0)
    enc = TextEncoder(small_cfg(style="clip"), embed_dim=24).eval()
    tokens = random_tokens(lengths=(12, 12, 12))
    changed = tokens.clone()
    changed[:, 6] = (changed[:, 6] + 7) % 60 + 4
    with torch.no_grad():
        a, b = enc.hidden_states(tokens), enc.hidden_states(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert (a[:, 6:12] - b[:, 6:12]).abs().amax() > 1e-4


def test_bert_style_is_not_causal():
    torch.manual_seed(0)
    enc = TextEncoder(small_cfg(style="bert"), embed_dim=24).eval()
    tokens = random_tokens(lengths=(12, 12, 12))
    changed = tokens.clone()
    changed[:, 6] = (changed[:, 6] + 7) % 60 + 4
    with torch.no_grad():
        a, b = enc.hidden_states(tokens), enc.hidden_states(changed)
        assert (a[:, 0] - b[:, 0]).abs().amax() > 1e-4
        # the pooled <sot> feature changes too
        assert (enc(tokens) - enc(changed)).abs().amax() > 1e-4


@pytest.mark.parametrize("style", ["clip", "bert"])
def test_padding_is_ignored(style):
    torch.manual_seed(0)
    enc = TextEncoder(small_cfg(style=style), embed_dim=24).eval()
    tokens = random_tokens(lengths=(5, 9, 12))
    with torch.no_grad():
        torch.testing.assert_close(enc(tokens[:, :12]), enc(tokens))


def test_pooling_positions():
    tokens = random_tokens(lengths=(5, 9, 16))
    tokens[2, 7] = EOT_ID  # the first <eot> wins
    no_eot = torch.tensor([[SOT_ID, 10, 11, PAD_ID] + [PAD_ID] * 12])
    clip = TextEncoder(small_cfg(style="clip"), embed_dim=24)
    assert clip.pool_positions(tokens).tolist() == [4, 8, 7]
    assert clip.pool_positions(no_eot).tolist() == [2]
    bert = TextEncoder(small_cfg(style="bert"), embed_dim=24)
    assert bert.pool_positions(tokens).tolist() == [0, 0, 0]


@pytest.mark.parametrize("style", ["clip", "bert"])
def test_forward_projects_the_pooled_hidden_state(style):
    torch.manual_seed(0)
    enc = TextEncoder(small_cfg(style=style), embed_dim=24).eval()
    tokens = random_tokens()
    with torch.no_grad():
        hidden = enc.hidden_states(tokens)
        picks = [4, 8, 15] if style == "clip" else [0, 0, 0]
        expected = torch.stack([hidden[i, p] for i, p in enumerate(picks)]) @ enc.text_projection.weight
        torch.testing.assert_close(enc(tokens), expected)


def test_adapter_starts_as_identity():
    torch.manual_seed(0)
    plain = TextEncoder(small_cfg(adapter=False), embed_dim=24).eval()
    adapted = TextEncoder(small_cfg(adapter=True), embed_dim=24).eval()
    missing, unexpected = adapted.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".adapter." in k for k in missing)
    for block in adapted.blocks:
        assert not block.adapter.up.weight.any() and not block.adapter.up.bias.any()
        assert block.adapter.down.weight.any()
    tokens = random_tokens()
    with torch.no_grad():
        torch.testing.assert_close(adapted(tokens), plain(tokens))


def test_clip_initialisation_scales():
    torch.manual_seed(0)
    width, layers = 256, 4
    enc = TextEncoder(small_cfg(width=width, layers=layers, heads=4, vocab_size=2000, context_length=64), embed_dim=128)
    block = enc.blocks[0]
    proj_std = width**-0.5 * (2 * layers) ** -0.5
    cases = [
        (enc.token_embedding.weight, 0.02),
        (enc.positional_embedding.weight, 0.01),
        (block.attn.in_proj_weight, width**-0.5),
        (block.attn.out_proj.weight, proj_std),
        (block.mlp.c_fc.weight, (2 * width) ** -0.5),
        (block.mlp.c_proj.weight, proj_std),
        (enc.text_projection.weight, width**-0.5),
    ]
    for param, std in cases:
        assert abs(param.std().item() / std - 1) < 0.05, f"expected std {std}, found {param.std().item()}"


def test_bad_tokens_raise():
    enc = TextEncoder(small_cfg(), embed_dim=24)
    with pytest.raises(ConfigError, match="length 17, expected at most context_length=16"):
        enc(torch.ones(2, 17, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"\[batch, length\]"):
        enc(torch.ones(16, dtype=torch.long))
    with pytest.raises(ConfigError, match="integer ids"):
        enc(torch.ones(2, 16))
    with pytest.raises(ConfigError, match=r"\[0, 64\)"):
        enc(torch.full((2, 16), 64))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    enc = TextEncoder(small_cfg(), embed_dim=24)
    for block in enc.blocks:  # from zero the adapter's down-projection gets no gradient
        torch.nn.init.normal_(block.adapter.up.weight, std=0.1)
    enc(random_tokens()).square().sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for {name}"


# ---------------------------------------------------------------------------- loss


def direct_loss(v: torch.Tensor, t: torch.Tensor, scale: float) -> torch.Tensor:
    """Eq. 6 with explicit loops (halved, as the public code averages the two directions)."""
    b = v.shape[0]
    v = v / v.norm(dim=1, keepdim=True)
    t = t / t.norm(dim=1, keepdim=True)
    total = 0.0
    for i in range(b):
        sims_v = torch.stack([scale * torch.dot(v[i], t[j]) for j in range(b)])
        sims_t = torch.stack([scale * torch.dot(t[i], v[j]) for j in range(b)])
        total = total - torch.log_softmax(sims_v, 0)[i] - torch.log_softmax(sims_t, 0)[i]
    return total / b / 2


def test_loss_matches_the_direct_formula():
    g = torch.Generator().manual_seed(0)
    v, t = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    torch.testing.assert_close(clip_loss(v, t, 3.0), direct_loss(v, t, 3.0))
    torch.testing.assert_close(ClipLoss()(v, t, torch.tensor(3.0)), direct_loss(v, t, 3.0))


def test_logits_are_scaled_cosines():
    g = torch.Generator().manual_seed(1)
    v, t = torch.randn(3, 8, generator=g), torch.randn(4, 8, generator=g)
    per_spike, per_text = contrastive_logits(v, t, 2.0)
    assert per_spike.shape == (3, 4) and per_text.shape == (4, 3)
    torch.testing.assert_close(per_spike[1, 2], 2.0 * F.cosine_similarity(v[1], t[2], dim=0))
    torch.testing.assert_close(per_text, per_spike.T)


def test_loss_is_symmetric_and_scale_invariant_in_feature_norm():
    g = torch.Generator().manual_seed(2)
    v, t = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    torch.testing.assert_close(clip_loss(v, t, 5.0), clip_loss(t, v, 5.0))
    torch.testing.assert_close(clip_loss(3 * v, 0.5 * t, 5.0), clip_loss(v, t, 5.0))


def test_loss_is_minimal_for_aligned_embeddings():
    v = torch.eye(4, 8) * 3
    assert clip_loss(v, v, 100.0) < 1e-6
    assert clip_loss(v, v.roll(1, dims=0), 100.0) > 10
    # uniform logits give log B
    torch.testing.assert_close(clip_loss(v, v, 0.0), torch.tensor(math.log(4)))


def test_soft_targets_share_mass_within_a_class():
    labels = torch.tensor([0, 0, 1, 2])
    apart = torch.eye(4, 8)  # the two class-0 pairs are orthogonal
    together = apart.clone()
    together[1] = together[0]  # the two class-0 pairs coincide
    # hard targets push class-mates apart, soft targets let them share one direction
    assert clip_loss(apart, apart, 50.0) < clip_loss(together, together, 50.0)
    soft_apart = clip_loss(apart, apart, 50.0, labels=labels, soft=True)
    soft_together = clip_loss(together, together, 50.0, labels=labels, soft=True)
    assert soft_together < soft_apart
    # at the collapse only the entropy of the class-0 targets remains: 2 of 4 rows at log 2
    torch.testing.assert_close(soft_together, torch.tensor(math.log(2) / 2), atol=1e-5, rtol=0)
    # distinct labels, or soft off, give the plain loss
    g = torch.Generator().manual_seed(4)
    v, t = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    hard = clip_loss(v, t, 5.0)
    torch.testing.assert_close(clip_loss(v, t, 5.0, labels=torch.arange(4), soft=True), hard)
    torch.testing.assert_close(clip_loss(v, t, 5.0, labels=labels), hard)
    torch.testing.assert_close(ClipLoss(soft=True)(v, t, 5.0, labels), clip_loss(v, t, 5.0, labels=labels, soft=True))
    with pytest.raises(ConfigError, match="labels"):
        clip_loss(v, t, 5.0, soft=True)


def test_loss_shape_errors():
    with pytest.raises(ConfigError, match="as many texts"):
        clip_loss(torch.randn(3, 8), torch.randn(4, 8), 1.0)
    with pytest.raises(ConfigError, match="embed_dim"):
        contrastive_logits(torch.randn(3, 8), torch.randn(3, 6), 1.0)


def test_gradient_flows_to_logit_scale():
    scale = LogitScale(math.log(1 / 0.07), math.log(100.0))
    g = torch.Generator().manual_seed(3)
    v = torch.randn(4, 8, generator=g, requires_grad=True)
    t = torch.randn(4, 8, generator=g, requires_grad=True)
    clip_loss(v, t, scale()).backward()
    assert scale.log_scale.grad is not None and scale.log_scale.grad != 0
    assert v.grad.abs().sum() > 0 and t.grad.abs().sum() > 0


def test_logit_scale_init_and_clamp():
    scale = LogitScale(math.log(1 / 0.07), math.log(100.0))
    torch.testing.assert_close(scale(), torch.tensor(1 / 0.07))
    with torch.no_grad():
        scale.log_scale.fill_(10.0)
    torch.testing.assert_close(scale(), torch.tensor(100.0))
    scale().backward()
    assert scale.log_scale.grad == 0  # clamped: no gradient pushes it further
    unclamped = LogitScale(10.0, None)
    torch.testing.assert_close(unclamped(), torch.tensor(math.exp(10.0)))

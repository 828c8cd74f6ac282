"""Distillation from a trained SPKLIP (train --teacher): the loss terms and the bad teachers."""

from __future__ import annotations

import json
import math

import pytest
import torch
from cli_helpers import check_user_error, run_main
from export_helpers import SMALL, small_checkpoint

from spklip import build_spklip, preset_config
from spklip.distill import embedding_distance, logit_distillation
from spklip.io import save_spklip
from spklip.tokenizer import SpikeTextTokenizer
from spklip_energy.checkpoint import load_checkpoint, save_checkpoint
from spklip_energy.zoo import build_model


def test_loss_terms_match_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    s, t, p = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g), torch.randn(3, 8, generator=g)
    want = 0.0
    for i in range(5):
        dot = sum(float(s[i, d]) * float(t[i, d]) for d in range(8))
        ns, nt = math.sqrt(sum(float(v) ** 2 for v in s[i])), math.sqrt(sum(float(v) ** 2 for v in t[i]))
        want += (1 - dot / (ns * nt)) / 5
    assert float(embedding_distance(s, t)) == pytest.approx(want, rel=1e-5)
    assert float(embedding_distance(t, t)) == pytest.approx(0.0, abs=1e-6)

    scale, tau = 14.0, 2.0

    def probs(x):
        logits = []
        for k in range(3):
            cos = sum(float(x[d]) * float(p[k, d]) for d in range(8))
            cos /= math.sqrt(sum(float(v) ** 2 for v in x)) * math.sqrt(sum(float(v) ** 2 for v in p[k]))
            logits.append(scale * cos / tau)
        z = sum(math.exp(v) for v in logits)
        return [math.exp(v) / z for v in logits]

    kl = 0.0
    for i in range(5):
        ps, pt = probs(s[i]), probs(t[i])
        kl += sum(a * math.log(a / b) for a, b in zip(pt, ps, strict=True)) / 5
    assert float(logit_distillation(s, t, p, scale, tau)) == pytest.approx(tau**2 * kl, rel=1e-4)
    assert float(logit_distillation(t, t, p, scale, tau)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_train_with_a_teacher_and_bad_teachers(tmp_path, data, capsys):
    ann = small_checkpoint(tmp_path, data, "spklip", name="ann")
    sets = sum((["--set", f"{k}={v}"] for k, v in SMALL.items()), [])
    common = [
        "--model",
        "fsve-full",
        "--preset",
        "tiny",
        *sets,
        "--data",
        str(data),
        "--epochs",
        "1",
        "--set",
        "train.pretrain_epochs=1",
        "--set",
        "train.distill_logits=0.5",
    ]
    rc, out, err = run_main(
        capsys,
        "train",
        *common,
        "--init",
        str(ann),
        "--teacher",
        str(ann),
        "--out",
        str(tmp_path / "student"),
        "--json",
    )
    assert rc == 0, err
    card = load_checkpoint(json.loads(out)["checkpoint"]).card
    rec = card["teacher"]
    assert rec["kind"] == "spklip" and rec["distill_weight"] == 1.0 and rec["distill_logits"] == 0.5
    assert all(math.isfinite(h["loss"]) for h in card["pretrain"]["history"])

    # another input geometry: the ANN at 64x64 teaching a 32x32 student
    cfg64 = preset_config("tiny", {"model": "spklip"})
    tok = SpikeTextTokenizer.from_json(card["tokenizer"])
    save_spklip(tmp_path / "ann64.pt", build_spklip(cfg64), tok, {})
    # another tokenizer: same model, a tokenizer trained on other texts
    cfg32 = preset_config("tiny", {**SMALL, "model": "spklip"})
    other = SpikeTextTokenizer.train(["entirely different words here"], cfg32.text.vocab_size)
    save_spklip(tmp_path / "othertok.pt", build_spklip(cfg32), other, {})
    # another kind: a zoo model's checkpoint, and a file that is no checkpoint
    zoo = tmp_path / "zoo.pt"
    save_checkpoint(zoo, build_model("test-ann-cnn"), {"kind": "test-ann-cnn", "config": {}})
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    for teacher, needles in (
        (tmp_path / "ann64.pt", ("--teacher", "64x64", "32x32")),
        (tmp_path / "othertok.pt", ("--teacher", "tokenizer differs")),
        (zoo, ("zoo.pt", "'test-ann-cnn'")),
        (junk, ("junk.pt",)),
    ):
        run = tmp_path / f"bad-{teacher.stem}"
        rc, _, err = run_main(
            capsys, "train", *common, "--init", str(ann), "--teacher", str(teacher), "--out", str(run)
        )
        check_user_error(rc, err, *needles)
        assert not (run / "last.pt").exists()

"""Run under ``torchrun --nproc_per_node 2``: one training step of the visual pre-training and one
contrastive step, distributed (DDP, synchronised BatchNorm, gathered features) against the same steps in
one process on the whole global batch; rank 0 writes the largest differences as JSON to ``argv[2]``.

``argv[1]``: a dataset folder; ``argv[3:]``: the SPKLIP variants to check (spklip, fsve-hybrid, fsve-full).
"""

from __future__ import annotations

import copy
import json
import sys

import torch

from spklip.config import preset_config
from spklip.data import load_splits
from spklip.loss import clip_loss
from spklip.model import build_spklip
from spklip.tokenizer import SpikeTextTokenizer
from spklip.training import _Classifier, _parallel, _Towers
from spklip_energy.distributed import World, close_world, gather_rows, init_world, split_bounds

SIZES = {"height": 32, "width": 32, "hsfe.input_pool": 1}


def grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        n.removeprefix("module."): p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None
    }


def worst(ref: dict, got: dict) -> float:
    """Largest per-tensor relative difference, over tensors whose reference gradient is not ~0."""
    assert ref.keys() == got.keys(), sorted(set(ref) ^ set(got))
    top = max(float(g.norm()) for g in ref.values())
    return max(float((ref[n] - got[n]).norm() / ref[n].norm()) for n in ref if float(ref[n].norm()) > 1e-4 * top)


def check(kind: str, data: str, world: World) -> dict:
    cfg = preset_config("tiny", {"model": kind, **SIZES})
    torch.manual_seed(0)
    model = build_spklip(cfg).train()
    _, splits = load_splits(cfg, data, ("train",))
    ds = splits["train"]
    n = 8
    x = torch.stack([ds[i]["spikes"] for i in range(n)])
    y = torch.tensor([ds[i]["label"] for i in range(n)])
    tok = SpikeTextTokenizer.train(ds.captions + ds.class_prompts, cfg.text.vocab_size)
    tokens = tok.encode([ds[i]["caption"] for i in range(n)], cfg.text.context_length)
    head = torch.nn.Parameter(
        torch.randn(len(ds.classes), cfg.embed_dim, generator=torch.Generator().manual_seed(1)) * 0.1
    )
    lo, hi = split_bounds(n, world)
    out = {}
    # the supervised pre-training step: cosine classifier over the global batch
    one = _Classifier(copy.deepcopy(model.visual), torch.nn.Parameter(head.detach().clone()), World())
    loss1 = torch.nn.functional.cross_entropy(one(x, 1 / 0.07)[1], y)
    loss1.backward()
    two = _parallel(_Classifier(copy.deepcopy(model.visual), head, world), world, torch.device("cpu"))
    loss2 = torch.nn.functional.cross_entropy(two(x[lo:hi], 1 / 0.07)[1], y)
    loss2.backward()
    out["pretrain"] = {
        "loss_one": float(loss1.detach()),
        "loss_dist": float(loss2.detach()),
        "grad_rel_diff": worst(grads(one), grads(two)),
    }
    # the contrastive step: clip and text features of the global batch
    ref = copy.deepcopy(model)
    t1 = _Towers(ref, None, World())
    f, t, s, _ = t1(x, [], tokens, None)
    loss1 = clip_loss(f.float(), t.float(), s, labels=y, soft=True)
    loss1.backward()
    t2 = _parallel(_Towers(model, None, world), world, torch.device("cpu"))
    f, t, s, _ = t2(x[lo:hi], [], tokens[lo:hi], None)
    assert f.shape[0] == n and t.shape[0] == n
    loss2 = clip_loss(f.float(), t.float(), s, labels=y, soft=True)
    loss2.backward()
    out["contrastive"] = {
        "loss_one": float(loss1.detach()),
        "loss_dist": float(loss2.detach()),
        "grad_rel_diff": worst(grads(t1), grads(t2)),
    }
    # BatchNorm running statistics after the step: the global batch's, on every rank
    stats = [b for b in model.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    ref_stats = [b for b in ref.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    out["batchnorm_layers"] = len(stats)
    out["running_mean_max_diff"] = max(
        (float((a.running_mean - b.running_mean).abs().max()) for a, b in zip(stats, ref_stats, strict=True)),
        default=0.0,
    )
    out["rows_gathered"] = int(gather_rows(torch.ones(hi - lo, 1), world, differentiable=False).shape[0])
    return out


def main() -> None:
    world = init_world(torch.device("cpu"))
    try:
        res = {kind: check(kind, sys.argv[1], world) for kind in sys.argv[3:]}
        if world.main:
            with open(sys.argv[2], "w") as fh:
                json.dump({"world": world.size, "results": res}, fh)
    finally:
        close_world(world)


if __name__ == "__main__":
    main()

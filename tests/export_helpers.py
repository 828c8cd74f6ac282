"""Small SPKLIP checkpoints on small built-in data, for the export tests (ONNX, NIR, Lava)."""

from __future__ import annotations

from pathlib import Path

import torch
from spikingjelly.activation_based import functional

from spikedata.digits import DigitsConfig, generate_digits
from spikedata.manifest import load_manifest
from spklip import build_spklip, preset_config
from spklip.io import save_spklip
from spklip.tokenizer import SpikeTextTokenizer

#: 32x32 frames and no input pooling: the tiny preset at a quarter of the pixels
SMALL = {"height": 32, "width": 32, "hsfe.input_pool": 1}


def small_digits(root: Path) -> Path:
    """The built-in digits at 32x32, 3 clips per class and split."""
    return generate_digits(root, DigitsConfig(clips_per_class=3, height=32, width=32, frames=250))


def calibrate_cnn_bn(model, data: Path, clips: int = 4) -> None:
    """BN/tdBN running statistics of the spiking CNN (and of a spiking front end) from one pass over real
    test clips, so every layer
    fires as in a trained model (a freshly initialised CNN is almost silent and would make comparisons
    vacuous). The rest of the model stays in eval mode."""
    from spklip.data import clips_for

    parts = [model.visual.starnet.spatial]
    if model.cfg.front_end == "spiking":  # its spikes are the CNN's input: calibrated too
        parts.append(model.visual.hsfe)
    ds = clips_for(model.cfg, load_manifest(data), "test")
    x = torch.stack([ds[i]["spikes"] for i in range(min(clips, len(ds)))]).float()
    bns = [m for part in parts for m in part.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: the statistics of this pass
    model.eval()
    for part in parts:
        part.train()
    with torch.no_grad():
        functional.reset_net(model)
        model.visual(x)
        functional.reset_net(model)
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


def small_checkpoint(
    tmp: Path, data: Path, model: str, calibrate: bool = False, name: str | None = None, **overrides
) -> Path:
    """A seeded, untrained SMALL tiny checkpoint of ``model`` with a tokenizer trained on ``data``
    (``calibrate``: realistic BN statistics for the spiking CNN)."""
    cfg = preset_config("tiny", {**SMALL, "model": model, **overrides})
    m = build_spklip(cfg, seed=1)
    if calibrate:
        calibrate_cnn_bn(m, data)
    man = load_manifest(data)
    tok = SpikeTextTokenizer.train(
        [c.caption for c in man.clips] + list(man.class_prompts.values()), cfg.text.vocab_size
    )
    path = Path(tmp) / f"{name or model}.pt"
    save_spklip(path, m, tok, {"class_prompts": list(man.class_prompts.values())})
    return path

"""Configuration of the SPKLIP model: nested dataclasses, presets and ``--set`` overrides.

Where the paper and the authors' public code disagree, the ``reference`` preset
follows the public code and ``paper`` the paper (see
``docs/spklip.md``); every such value is a field here. ``small`` and ``tiny``
are sized for training on a 2-core CPU with the built-in 64x64 data.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from spklip_energy.errors import ConfigError, short_repr
from spklip_energy.options import (
    MAX_INT,
    check_float,
    check_fraction,
    check_nonneg_float,
    check_nonneg_int,
    check_positive_float,
    check_positive_int,
    check_seed,
)


@dataclass
class HSFEConfig:
    """Hierarchical Spike Feature Extractor: temporal blocks, MTF branches, SA, trunk."""

    n_blocks: int = 5  # temporally overlapping sub-blocks (paper ablation: 3, 5, 7)
    window_radius: int = 30  # a block spans 2r+1 frames (61)
    window_step: int = 45  # first frame of block i is i*step (public code: 45)
    branches: int = 4  # MTF branches (public code 4; the paper says 5)
    channel_step: int = 1  # branch k sees the central 2r+1 - 2*k*channel_step frames (photon conservation)
    slicing: bool = True  # False: every branch sees all 2r+1 frames (Table 2 ablation)
    temporal_mask: bool = True  # learnable per-frame weight M_i per branch (absent from public code; init 1)
    branch_width: int = 16  # hidden channels of each branch's first convolution
    sa: bool = True  # per-pixel attention over branch outputs (Table 4 ablation)
    sa_hidden: int = 8  # hidden channels of the SA layer
    features: int = 64  # trunk width (HSFE output channels)
    trunk_blocks: int = 6  # residual BasicBlocks in the trunk (public code: 6)
    input_pool: int = 1  # spatial average pooling of the spike frames before the HSFE (1 = none)
    input_scale: float = 1.0  # multiply the 0/1 spikes (about 1 / mean firing rate) so the MTF sees O(1) inputs

    def block_frames(self) -> int:
        return 2 * self.window_radius + 1

    def branch_frames(self, k: int) -> tuple[int, int]:
        """Frame range ``[lo, hi)`` within a block that branch ``k`` sees."""
        n = self.block_frames()
        if not self.slicing:
            return 0, n
        trim = k * self.channel_step
        return trim, n - trim


@dataclass
class StarNetConfig:
    """STAR-Net: attention-pooling ResNet per block, then a Transformer over blocks."""

    enabled: bool = True  # False: global average pooling + linear per block, mean over blocks (Table 4)
    width: int = 64  # planes of the first bottleneck stage (stages: w, 2w, 4w, 8w; expansion 4)
    stem_strides: tuple[int, int, int] = (2, 1, 1)  # public code: only the first conv strides (paper: 2, 2, 2)
    layers: tuple[int, int, int, int] = (2, 2, 2, 2)  # bottlenecks per stage (train.py: 2, 2, 4, 2)
    heads: int = 8  # attention-pool heads (paper 8; public config 4)
    temporal_layers: int = 4  # Transformer encoder layers over the blocks
    temporal_heads: int = 4
    temporal_ffn: int = 1024
    temporal_position: bool = False  # learned block-position embeddings (public code: none, so the
    #                                  Transformer + mean cannot tell block order; small presets use them)
    dropout: float = 0.1  # dropout of the temporal Transformer and the attention pool


@dataclass
class FSVEConfig:
    """The spiking visual encoder (``SPKLIPConfig.model`` = ``fsve-hybrid`` or ``fsve-full``).

    Time axis: each temporal block's HSFE feature map is presented to the spiking
    MS-ResNet for ``time_steps`` SNN steps (direct encoding, as the public code's
    static repeat; it uses 2). The blocks stay tokens: the spiking Transformer
    (``fsve-full``) attends over blocks at every step, and the output is the mean
    over steps and blocks. ``fsve-hybrid`` averages the CNN's per-block output over
    steps and feeds the ANN temporal Transformer of STAR-Net.
    """

    time_steps: int = 2  # SNN steps per block
    cnn: str = "msresnet"  # "msresnet": membrane-shortcut ResNet (paper); "plain": the same stages as a chain (netx-exportable)
    width: int = 64  # MS-ResNet base channels, doubling per stage
    layers: tuple[int, ...] = (2, 2, 2, 2)  # MS-ResNet blocks per stage (3 or 4 stages)
    stem_stride: int = 1  # stride of the 3x3 stem convolution (the stages then halve 4 times)
    neuron: str = "lif"  # the neuron at every spiking site of the CNN and front end (fsve.neurons.FSVE_NEURONS)
    v_threshold: float = 0.5  # LIF firing threshold (public code 0.5)
    decay: float = 0.25  # membrane leak per step: u_t = decay * u_{t-1} * (1 - s_{t-1}) + x_t
    lens: float = 0.5  # half-width of the rectangular surrogate (Eq. 8)
    norm: str = "tdbn"  # "tdbn": threshold-dependent BN (stats over time and batch); "bn": spikingjelly's MS-ResNet BN
    tdbn_alpha: float = 1.0  # tdBN alpha (1/sqrt(2) is used on the two BNs meeting at a residual add)
    attn_layers: int = 2  # E-SDSA blocks of the spiking temporal Transformer (fsve-full)
    attn_heads: int = 4
    mlp_ratio: int = 4
    sn_alpha: float = 1.0  # initial alpha of the SN thresholds alpha * E|x| (Eq. 9)
    attn_threshold: float = 0.5  # V_th of the attention SN; compared with Q K^T as V_th / scale (Eq. 11)
    # the front end: "spiking" (fsve.hsfe: tdBN + LIF everywhere, reading the camera's spikes),
    # "ann" (the ANN HSFE, analog features repeated over the steps), "auto": spiking for fsve-full, ann
    # for fsve-hybrid (cards written before this field existed mean "ann")
    hsfe: str = "auto"
    # how a block's frames become the spiking front end's time_steps steps: "subwindows" (step t sees the
    # t-th of time_steps consecutive slices of the block, the stream's own timing) or "repeat" (every
    # step sees the whole block: the public code's direct encoding). Default from the measurement
    # (docs/fsve.md: distilled, seeds 0-2 on bench, repeat +10.8 [+8.7, +12.8] points over subwindows)
    hsfe_encoding: str = "repeat"


@dataclass
class TextConfig:
    """The text tower."""

    style: str = "clip"  # "clip": causal, pre-LN (public code); "bert": bidirectional (the paper's wording)
    width: int = 128
    layers: int = 4
    heads: int = 4
    context_length: int = 77
    vocab_size: int = 49408  # embedding rows; the trained tokenizer uses at most this many
    adapter: bool = True  # residual TextAdapter (Linear d->64, GELU, Linear 64->d) after each block
    adapter_width: int = 64


@dataclass
class TrainConfig:
    """Optimisation (paper: AdamW, lr 2e-5, batch 8, 30 epochs)."""

    lr: float = 2e-5
    batch_size: int = 8
    epochs: int = 30
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    warmup_epochs: int = 0  # linear warm-up (the paper uses none)
    schedule: str = "constant"  # after warm-up: "constant" (paper) or "cosine" decay to 0
    prompt_mix: float = 0.0  # probability a clip is paired with its class prompt instead of its caption
    augment: str = "none"  # "flip": label-aware mirror flips (spklip.augment); "none"
    pretrain_epochs: int = 0  # supervised pre-training of the visual encoder on the labels first (0: none)
    lock_visual: bool = False  # contrastive stage trains only the text side (LiT); with pretrain_epochs
    contrastive_weight: float = 1.0  # weight of the contrastive loss of Eq. 6
    class_loss: float = 0.0  # weight of a cross-entropy against all class prompts, added to Eq. 6 (paper: 0)
    # distillation from a trained SPKLIP (train --teacher; spklip.distill), unused without one:
    distill_weight: float = 1.0  # weight of 1 - cos(student, teacher) between visual embeddings
    distill_logits: float = 0.0  # weight of tau^2 KL(teacher || student) over the teacher's class prompts
    distill_temperature: float = 2.0  # tau of that KL
    seed: int = 0


@dataclass
class SPKLIPConfig:
    """The whole SPKLIP model and its training."""

    preset: str = "reference"
    model: str = "spklip"  # "spklip" (ANN), "fsve-hybrid" (spiking CNN, ANN Transformer), "fsve-full"
    frames: int = 250  # spike frames per clip
    height: int = 240
    width: int = 320
    embed_dim: int = 256  # joint embedding size
    logit_scale_init: float = math.log(1 / 0.07)  # CLIP's initial temperature
    logit_scale_max: float = math.log(100.0)  # clamp as CLIP does
    few_shot_modules: tuple[str, ...] = ("starnet.temporal.layers.-2", "starnet.temporal.layers.-1")
    hsfe: HSFEConfig = field(default_factory=HSFEConfig)
    starnet: StarNetConfig = field(default_factory=StarNetConfig)
    fsve: FSVEConfig = field(default_factory=FSVEConfig)
    text: TextConfig = field(default_factory=TextConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def front_end(self) -> str:
        """The visual front end this config builds: ``"spiking"`` or ``"ann"`` (``fsve.hsfe`` resolved)."""
        if self.model == "spklip":
            return "ann"
        if self.fsve.hsfe == "auto":
            return "spiking" if self.model == "fsve-full" else "ann"
        return self.fsve.hsfe

    @classmethod
    def from_dict(cls, data: dict) -> SPKLIPConfig:
        return _from_dict(cls, data, "config")


MODELS = ("spklip", "fsve-hybrid", "fsve-full")


def _from_dict(klass, data: Any, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be an object, got {type(data).__name__}")
    known = {f.name: f for f in fields(klass)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown field(s) {', '.join(unknown)} in {where}")
    kwargs = {}
    for name, value in data.items():
        sub = _nested_type(klass, name)
        if sub is not None:
            kwargs[name] = _from_dict(sub, value, f"{where}.{name}")
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    try:
        return klass(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


_NESTED = {"hsfe": HSFEConfig, "starnet": StarNetConfig, "fsve": FSVEConfig, "text": TextConfig, "train": TrainConfig}
_NESTED_NAMES = {klass.__name__: klass for klass in _NESTED.values()}


def _nested_type(klass, name):
    return _NESTED.get(name) if klass is SPKLIPConfig else None


def _positive(cfg: Any, prefix: str, *names: str) -> None:
    """Each of ``names`` (fields of ``cfg``, integers by :func:`_check_types`) is at least 1."""
    for name in names:
        check_positive_int(getattr(cfg, name), f"config field {prefix}{name}")


def _below_one(value: float, name: str) -> None:
    """A probability-like field in [0, 1) (a dropout rate, an Adam beta)."""
    if check_float(value, name, 0.0) >= 1.0:
        raise ConfigError(f"{name} must be below 1, got {value:g}")


def starnet_grid(s: StarNetConfig, height: int, width: int) -> tuple[int, int]:
    """Token grid of STAR-Net's last stage for HSFE features of ``height x width``."""

    def size(n: int) -> int:
        for stride in s.stem_strides:
            n = (n - 1) // stride + 1  # 3x3 convolution, padding 1
        n //= 2  # stem average pooling
        for stride in (1, 2, 2, 2):
            n //= stride
        return n

    return size(height), size(width)


#: Most modules one depth field may ask for (blocks, branches, layers): building a model
#: loops over them in Python, even on the meta device that sizes it before it is built.
MAX_DEPTH = 256


def _type_ok(annotation: str, value: Any) -> bool:
    """Whether ``value`` has the type a field's annotation (``int``, ``tuple[int, ...]``, ...) names."""
    if annotation.startswith("tuple[") and annotation.endswith("]"):
        if not isinstance(value, (tuple, list)):
            return False
        inner = [a.strip() for a in annotation[6:-1].split(",")]
        if inner[-1] == "...":
            return all(_type_ok(inner[0], v) for v in value)
        return len(value) == len(inner) and all(_type_ok(a, v) for a, v in zip(inner, value, strict=True))
    if annotation == "bool":
        return isinstance(value, bool)
    if annotation == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return isinstance(value, int) or math.isfinite(value)
    if annotation == "str":
        return isinstance(value, str)
    return True  # nested dataclasses are checked on their own


_TYPE_WORDS = {"bool": "true or false", "int": "an integer", "float": "a finite number", "str": "a string"}


MAX_CONFIG_INT = MAX_INT  # see spklip_energy.options


def _check_types(obj: Any, prefix: str = "") -> None:
    for f in fields(obj):
        value = getattr(obj, f.name)
        annotation = str(f.type)
        if annotation in _NESTED_NAMES:
            if not isinstance(value, _NESTED_NAMES[annotation]):
                raise ConfigError(f"config field {prefix}{f.name} must be an object, got {short_repr(value)}")
            _check_types(value, f"{prefix}{f.name}.")
        elif annotation == "int" and _type_ok(annotation, value) and abs(value) > MAX_CONFIG_INT:
            raise ConfigError(
                f"config field {prefix}{f.name} is {value:,}, beyond any usable size (at most {MAX_CONFIG_INT:,})"
            )
        elif not _type_ok(annotation, value):
            if annotation.startswith("tuple["):
                inner = annotation[6:-1].split(",")[0].strip()
                count = "" if annotation.endswith("...]") else f"{annotation.count(',') + 1} "
                want = f"a list of {count}{_TYPE_WORDS.get(inner, inner).removeprefix('an ').removeprefix('a ')}s"
            else:
                want = _TYPE_WORDS.get(annotation, annotation)
            raise ConfigError(f"config field {prefix}{f.name} must be {want}, got {short_repr(value)}")


def _check_depth(value: int, name: str) -> None:
    from spklip_energy.limits import check_count

    check_count(
        value,
        MAX_DEPTH,
        "a depth field (blocks, branches, layers)",
        f"config field {name}={value}",
        "deeper models are not supported",
    )


#: the values a string field may take (the field's own comment says what each means)
CHOICES: dict[str, tuple[str, ...]] = {
    "fsve.norm": ("tdbn", "bn"),
    "fsve.cnn": ("msresnet", "plain"),
    "fsve.hsfe": ("auto", "spiking", "ann"),
    "fsve.hsfe_encoding": ("subwindows", "repeat"),
    "text.style": ("clip", "bert"),
    "train.schedule": ("constant", "cosine"),
    "train.augment": ("none", "flip"),
}


def _check_choice(cfg: SPKLIPConfig, field: str) -> None:
    section, name = field.split(".")
    value, allowed = getattr(getattr(cfg, section), name), CHOICES[field]
    if value not in allowed:
        words = ", ".join(repr(a) for a in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise ConfigError(f"{field} must be {words}, got {short_repr(value)}")


def validate(cfg: SPKLIPConfig) -> None:
    """Check every field; raise ConfigError naming the first bad one."""
    _check_types(cfg)  # from here on every field has its annotated type
    _positive(cfg, "", "frames", "height", "width", "embed_dim")
    # CLIP clamps the learned logit scale at log(100); a clamp or start beyond exp() of float32 overflows
    check_float(cfg.logit_scale_init, "config field logit_scale_init", 0.0, 20.0)
    check_float(cfg.logit_scale_max, "config field logit_scale_max", 0.0, 20.0)
    _validate_hsfe(cfg)
    _validate_starnet(cfg)
    if cfg.model not in MODELS:
        raise ConfigError(f"model must be one of {', '.join(MODELS)}, got {cfg.model!r}")
    _validate_fsve(cfg)
    _validate_text(cfg)
    _validate_train(cfg)


def _validate_hsfe(cfg: SPKLIPConfig) -> None:
    h = cfg.hsfe
    _positive(
        h,
        "hsfe.",
        "n_blocks",
        "window_radius",
        "window_step",
        "branches",
        "branch_width",
        "sa_hidden",
        "features",
        "input_pool",
    )
    check_nonneg_int(h.channel_step, "config field hsfe.channel_step")
    check_positive_float(h.input_scale, "config field hsfe.input_scale")
    check_nonneg_int(h.trunk_blocks, "config field hsfe.trunk_blocks")
    last = (h.n_blocks - 1) * h.window_step + h.block_frames()
    if last > cfg.frames:
        raise ConfigError(
            f"hsfe: {h.n_blocks} blocks of {h.block_frames()} frames every {h.window_step} need {last} frames, "
            f"more than the config's frames={cfg.frames} (the frames each clip is cut or padded to; raise "
            f"frames, or lower hsfe.window_step or hsfe.n_blocks)"
        )
    if h.slicing and h.block_frames() - 2 * (h.branches - 1) * h.channel_step < 1:
        raise ConfigError(
            f"hsfe: branch {h.branches - 1} would see no frames (window {h.block_frames()}, "
            f"channel_step {h.channel_step}); lower hsfe.branches or hsfe.channel_step"
        )
    for name in ("n_blocks", "branches", "trunk_blocks"):
        _check_depth(getattr(h, name), f"hsfe.{name}")
    if cfg.height % h.input_pool or cfg.width % h.input_pool:
        raise ConfigError(f"hsfe.input_pool={h.input_pool} must divide the frame size {cfg.height}x{cfg.width}")


def _validate_starnet(cfg: SPKLIPConfig) -> None:
    h, s = cfg.hsfe, cfg.starnet
    _positive(s, "starnet.", "width", "heads", "temporal_layers", "temporal_heads", "temporal_ffn")
    for i, n in enumerate(s.layers):  # four of them (_check_types)
        check_positive_int(n, f"config field starnet.layers[{i}]")
        _check_depth(n, f"starnet.layers[{i}]")
    _check_depth(s.temporal_layers, "starnet.temporal_layers")
    if any(v not in (1, 2) for v in s.stem_strides):
        raise ConfigError(f"starnet.stem_strides must be three strides of 1 or 2, got {list(s.stem_strides)!r}")
    if s.enabled and cfg.model == "spklip":
        gh, gw = starnet_grid(s, cfg.height // h.input_pool, cfg.width // h.input_pool)
        if gh < 1 or gw < 1:
            raise ConfigError(
                f"frames of {cfg.height}x{cfg.width} are too small for STAR-Net's downsampling "
                f"(stem strides {tuple(s.stem_strides)}, input_pool {h.input_pool}); use larger frames, "
                "smaller strides or starnet.enabled=false"
            )
    if (8 * s.width * 4) % s.heads:
        raise ConfigError(f"starnet.heads={s.heads} must divide the pooled width {32 * s.width}")
    if cfg.embed_dim % s.temporal_heads:
        raise ConfigError(f"starnet.temporal_heads={s.temporal_heads} must divide embed_dim={cfg.embed_dim}")
    _below_one(s.dropout, "config field starnet.dropout")


def _validate_fsve(cfg: SPKLIPConfig) -> None:
    h, f = cfg.hsfe, cfg.fsve
    _positive(f, "fsve.", "time_steps", "width", "stem_stride", "attn_layers", "attn_heads", "mlp_ratio")
    if len(f.layers) not in (3, 4):
        raise ConfigError(f"fsve.layers must be three or four positive integers, got {list(f.layers)!r}")
    for i, n in enumerate(f.layers):
        check_positive_int(n, f"config field fsve.layers[{i}]")
        _check_depth(n, f"fsve.layers[{i}]")
    _check_depth(f.attn_layers, "fsve.attn_layers")
    if not 0.0 < f.decay < 1.0:
        raise ConfigError(f"fsve.decay must be in (0, 1), got {f.decay!r}")
    for name in ("v_threshold", "lens", "tdbn_alpha", "attn_threshold"):
        check_positive_float(getattr(f, name), f"config field fsve.{name}")
    from fsve.neurons import FSVE_NEURONS  # lazily: fsve imports this module

    if f.neuron not in FSVE_NEURONS:
        raise ConfigError(f"fsve.neuron must be one of {', '.join(FSVE_NEURONS)}, got {short_repr(f.neuron)}")
    for choice in ("fsve.norm", "fsve.cnn", "fsve.hsfe", "fsve.hsfe_encoding"):
        _check_choice(cfg, choice)
    if cfg.front_end == "spiking" and f.hsfe_encoding == "subwindows" and f.time_steps > h.block_frames():
        raise ConfigError(
            f"fsve.time_steps={f.time_steps} sub-windows need at least as many frames per block ({h.block_frames()})"
        )
    if cfg.embed_dim % f.attn_heads:
        raise ConfigError(f"fsve.attn_heads={f.attn_heads} must divide embed_dim={cfg.embed_dim}")
    if cfg.model != "spklip":
        size = min(cfg.height, cfg.width) // h.input_pool // f.stem_stride
        if size < 2 ** len(f.layers):
            raise ConfigError(
                f"frames of {cfg.height}x{cfg.width} are too small for the spiking MS-ResNet "
                f"({len(f.layers)} stages halving, stem stride {f.stem_stride}, input_pool {h.input_pool})"
            )


def _validate_text(cfg: SPKLIPConfig) -> None:
    t = cfg.text
    _check_choice(cfg, "text.style")
    _positive(t, "text.", "width", "layers", "heads", "context_length", "vocab_size", "adapter_width")
    _check_depth(t.layers, "text.layers")
    if t.width % t.heads:
        raise ConfigError(f"text.heads={t.heads} must divide text.width={t.width}")


def _validate_train(cfg: SPKLIPConfig) -> None:
    tr = cfg.train
    check_positive_float(tr.lr, "config field train.lr")
    _positive(tr, "train.", "batch_size", "epochs")
    _check_choice(cfg, "train.schedule")
    check_fraction(tr.prompt_mix, "config field train.prompt_mix")
    check_nonneg_int(tr.pretrain_epochs, "config field train.pretrain_epochs")
    check_nonneg_int(tr.warmup_epochs, "config field train.warmup_epochs")
    check_nonneg_float(tr.weight_decay, "config field train.weight_decay")
    check_positive_float(tr.grad_clip, "config field train.grad_clip")
    for i, b in enumerate(tr.betas):  # two of them (_check_types)
        _below_one(b, f"config field train.betas[{i}]")
    check_seed(tr.seed, "config field train.seed")
    check_nonneg_float(tr.contrastive_weight, "config field train.contrastive_weight")
    check_nonneg_float(tr.class_loss, "config field train.class_loss")
    check_nonneg_float(tr.distill_weight, "config field train.distill_weight")
    check_nonneg_float(tr.distill_logits, "config field train.distill_logits")
    check_positive_float(tr.distill_temperature, "config field train.distill_temperature")
    _check_choice(cfg, "train.augment")


def _reference() -> SPKLIPConfig:
    return SPKLIPConfig(
        preset="reference",
        starnet=StarNetConfig(heads=4, layers=(2, 2, 4, 2)),
    )


def _paper() -> SPKLIPConfig:
    return SPKLIPConfig(
        preset="paper",
        hsfe=HSFEConfig(branches=5),
        starnet=StarNetConfig(heads=8, layers=(2, 2, 2, 2), stem_strides=(2, 2, 2)),
        text=TextConfig(style="bert"),
    )


def _small() -> SPKLIPConfig:
    return SPKLIPConfig(
        preset="small",
        height=64,
        width=64,
        embed_dim=128,
        hsfe=HSFEConfig(branch_width=8, features=32, trunk_blocks=2, input_scale=20.0),
        starnet=StarNetConfig(
            width=16,
            layers=(1, 1, 1, 1),
            heads=4,
            temporal_layers=2,
            temporal_heads=4,
            temporal_ffn=256,
            temporal_position=True,
        ),
        fsve=FSVEConfig(width=16, layers=(1, 1, 1, 1), attn_layers=2, attn_heads=4),
        text=TextConfig(width=64, layers=2, heads=4, context_length=32, vocab_size=1024, adapter_width=32),
        train=TrainConfig(
            lr=1e-3, batch_size=16, epochs=20, weight_decay=5e-4, warmup_epochs=1, schedule="cosine", prompt_mix=0.5
        ),
    )


def _tiny() -> SPKLIPConfig:
    return SPKLIPConfig(
        preset="tiny",
        height=64,
        width=64,
        embed_dim=64,
        hsfe=HSFEConfig(branch_width=4, sa_hidden=4, features=16, trunk_blocks=1, input_pool=2, input_scale=20.0),
        starnet=StarNetConfig(
            width=8,
            layers=(1, 1, 1, 1),
            stem_strides=(1, 1, 1),
            heads=4,
            temporal_layers=1,
            temporal_heads=2,
            temporal_ffn=128,
            temporal_position=True,
            dropout=0.0,
        ),
        fsve=FSVEConfig(width=8, layers=(1, 1, 1, 1), attn_layers=1, attn_heads=2, mlp_ratio=2),
        text=TextConfig(width=32, layers=1, heads=2, context_length=32, vocab_size=512, adapter_width=16),
        train=TrainConfig(
            lr=2e-3,
            batch_size=16,
            epochs=25,
            weight_decay=5e-4,
            warmup_epochs=1,
            schedule="cosine",
            prompt_mix=0.5,
            augment="flip",
            pretrain_epochs=40,
            lock_visual=True,
            class_loss=1.0,
        ),
    )


PRESETS = {"reference": _reference, "paper": _paper, "small": _small, "tiny": _tiny}


def preset_config(name: str, overrides: dict[str, Any] | None = None) -> SPKLIPConfig:
    """A preset, with ``overrides`` applied (dotted keys, e.g. ``{"hsfe.sa": False}``)."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"unknown preset {short_repr(name)}; choose one of {', '.join(PRESETS)}")
    cfg = PRESETS[name]()
    return apply_overrides(cfg, overrides or {}) if overrides else cfg


def apply_overrides(cfg: SPKLIPConfig, overrides: dict[str, Any]) -> SPKLIPConfig:
    """Return a copy of ``cfg`` with dotted-key overrides; unknown keys are an error."""
    data = cfg.to_dict()
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise ConfigError(f"config keys are dotted names such as 'hsfe.sa', got {short_repr(key)}")
        parts = key.split(".")
        node = data
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"unknown config key {key!r}")
            node = node[p]
        if parts[-1] not in node or isinstance(node[parts[-1]], dict):
            raise ConfigError(f"unknown config key {key!r}")
        current = node[parts[-1]]
        node[parts[-1]] = _coerce(key, value, current)
    return SPKLIPConfig.from_dict(data)


def _coerce(key: str, value: Any, current: Any) -> Any:
    """Parse a ``--set`` value (JSON, or a bare string) to the type of the current value."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} expects true or false, got {short_repr(value)}")
    elif isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r} expects an integer, got {short_repr(value)}")
    elif isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} expects a number, got {short_repr(value)}")
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"config key {key!r} expects a finite number, got {short_repr(value)}") from None
    elif isinstance(current, (tuple, list)):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} expects a list like {list(current)}, got {short_repr(value)}")
        value = list(value)
    elif isinstance(current, str) and not isinstance(value, str):
        raise ConfigError(f"config key {key!r} expects a string, got {short_repr(value)}")
    return value


def flat_config(cfg: SPKLIPConfig | dict) -> dict[str, Any]:
    """``{"hsfe.sa": True, ...}``: every field under its dotted key (tuples as lists)."""
    data = cfg.to_dict() if isinstance(cfg, SPKLIPConfig) else cfg
    out: dict[str, Any] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value

    walk(data, "")
    return out


def config_differences(a: SPKLIPConfig | dict, b: SPKLIPConfig | dict) -> list[tuple[str, Any, Any]]:
    """``(dotted key, value in a, value in b)`` for every field where two configs differ."""
    fa, fb = flat_config(a), flat_config(b)
    missing = object()
    return [
        (k, fa.get(k, missing), fb.get(k, missing))
        for k in list(fa) + [k for k in fb if k not in fa]
        if fa.get(k, missing) != fb.get(k, missing)
    ]


def size_cause(cfg: SPKLIPConfig, limit: int = 4) -> str:
    """The config values behind a model's size, for a resource message: those that differ from its preset
    (training values aside), as :func:`spklip_energy.checkpoint.config_cause` words them."""
    # imported here: the config module stays free of torch; a model build, which this names, loads it anyway
    from spklip_energy.checkpoint import config_cause

    base = PRESETS[cfg.preset]() if cfg.preset in PRESETS else SPKLIPConfig(preset=cfg.preset)
    values = {k: v for k, v in flat_config(cfg).items() if not k.startswith("train.") and k != "preset"}
    return config_cause(values, flat_config(base), f"preset {cfg.preset!r}", limit=limit)


# --------------------------------------------------------------------------- memory of a forward pass

#: copies of a temporal block's frames an MTF branch makes (mask or slice, and its convolution's copies)
BRANCH_COPIES = 3
#: feature maps of the HSFE trunk alive at once (the long skip, a block's input, temporaries)
TRUNK_COPIES = 6
#: outputs of a STAR-Net bottleneck alive at once (main path, shortcut, their sum, its ReLU)
BOTTLENECK_COPIES = 4
#: copies of the spiking CNN's widest activation alive at once per SNN step (input, BN, neuron
#: state, spikes per step and stacked)
SNN_COPIES = 7
#: activations of a rate-coded run's widest layer it holds besides its membranes (drive, accumulated
#: output, the neuron step's stacked input and output)
RUN_COPIES = 8
#: what the count above leaves out (allocator rounding, kernels' scratch space), as a factor
HEADROOM = 1.2


def _conv_out(n: int, stride: int) -> int:
    return (n - 1) // stride + 1  # 3x3 convolution, padding 1


def _starnet_units(cfg: SPKLIPConfig, hp: int, wp: int) -> tuple[int, dict[str, tuple[int, list[int]]]]:
    """STAR-Net's CNN on one clip's HSFE features of ``hp x wp``: the elements of the stem's output, and for
    each unit (``stem``, ``layer1`` .. ``layer4``) the peak elements of its activations while it runs and
    the elements of each of its ReLU outputs."""
    s, n = cfg.starnet, cfg.hsfe.n_blocks
    w = s.width
    sizes = [(hp, wp)]
    for stride in s.stem_strides:
        sizes.append((_conv_out(sizes[-1][0], stride), _conv_out(sizes[-1][1], stride)))
    stem = [n * c * a * b for c, (a, b) in zip((w // 2, w // 2, w), sizes[1:], strict=True)]
    gh, gw = sizes[-1][0] // 2, sizes[-1][1] // 2  # the stem's average pooling
    stem_out = n * w * gh * gw
    units = {"stem": (2 * max(stem) + stem_out, stem)}
    inplanes = w
    for i, (blocks, stride) in enumerate(zip(s.layers, (1, 2, 2, 2), strict=True)):
        planes = w * 2**i
        r_in = n * gh * gw
        gh, gw = gh // stride, gw // stride
        r_out = n * gh * gw
        out = 4 * planes * r_out  # a bottleneck's output
        body = max(2 * planes * r_in, BOTTLENECK_COPIES * out + planes * r_out)
        peak = inplanes * r_in + body + (out if blocks > 1 else 0)
        relus = [planes * r_in, planes * r_in, out] + [planes * r_out, planes * r_out, out] * (blocks - 1)
        units[f"layer{i + 1}"] = (peak, relus)
        inplanes = 4 * planes
    return stem_out, units


def _largest_conv_weight(cfg: SPKLIPConfig) -> int:
    """Elements of the visual encoder's largest convolution weight (a convolution may copy its weight into
    its kernel's layout for the call)."""
    h, s, f = cfg.hsfe, cfg.starnet, cfg.fsve
    sizes = [h.features**2 * 9, h.block_frames() * h.branch_width * 9]
    if cfg.model == "spklip" and s.enabled:
        sizes.append((8 * s.width) ** 2 * 9)  # the last stage's 3x3 convolution
    elif cfg.model != "spklip":
        sizes.append((f.width * 2 ** (len(f.layers) - 1)) ** 2 * 9)
    return max(sizes)


def visual_forward_bytes(cfg: SPKLIPConfig, clips: int = 1, converted: tuple[str, ...] | list[str] = ()) -> int:
    """Peak memory of one forward pass of ``clips`` spike clips through the visual encoder
    (``SPKLIP.visual``, without autograd: evaluation, profiling, calibration, export checks), estimated from
    the config alone before anything is built; it grows linearly with ``clips``.

    Counted per clip, all float32: the clip ``[frames, H, W]`` and its temporal blocks (held for the whole
    pass) and the gather's intermediate; the HSFE's pooled input, its widest MTF branch
    (:data:`BRANCH_COPIES`), spatial attention and the trunk (:data:`TRUNK_COPIES` feature maps); then,
    with the HSFE's output held, STAR-Net's stem at its own ``stem_strides`` and its bottleneck stages
    (:data:`BOTTLENECK_COPIES` outputs, the stage's input and the stem's output), or the spiking CNN's
    ``fsve.time_steps`` steps (:data:`SNN_COPIES`). A spiking front end (``cfg.front_end``) holds its
    pooled blocks ``[n, 2r+1, H/p, W/p]`` (its first convolution reads them once for all steps) and
    :data:`SNN_COPIES` maps of its widest unit per step. A converted model (``converted``: the units of
    :mod:`convert.layers`, ``hsfe``, ``stem``, ``layer1`` ..) also holds, for a whole
    rate-coded run, a membrane per ReLU of its units and :data:`RUN_COPIES` activations. Once per pass: a
    copy of the largest convolution weight. Times :data:`HEADROOM`. The weights themselves are not
    included (``checkpoint.build_on_meta`` sizes those).
    """
    h, n = cfg.hsfe, cfg.hsfe.n_blocks
    hp, wp = cfg.height // h.input_pool, cfg.width // h.input_pool
    area, ap, lb = cfg.height * cfg.width, hp * wp, h.block_frames()
    held = cfg.frames * area + n * lb * area  # the clip and its temporal blocks
    gather = n * lb * area  # the blocks in the input's dtype, before they are made float32
    feat = n * h.features * ap  # the HSFE's output, held while the encoder after it runs
    x_in = n * lb * ap if (h.input_pool > 1 or h.input_scale != 1.0) else 0  # pooled, scaled blocks
    est = n * h.branches * ap
    branch = BRANCH_COPIES * n * lb * ap + 2 * n * h.branch_width * ap + est
    sa = n * (2 * h.sa_hidden + 2 * h.branches) * ap if h.sa else 0
    run = 0  # a converted HSFE: a membrane for the head's ReLU and three per BasicBlock
    if "hsfe" in converted:
        run = (1 + 3 * h.trunk_blocks + RUN_COPIES) * feat
    hsfe = x_in + max(x_in, branch, 2 * est + sa, est + TRUNK_COPIES * feat + run)
    if cfg.front_end == "spiking":  # the pooled blocks (read once by every step), the widest unit over T steps
        t = cfg.fsve.time_steps
        widest_unit = max(h.branch_width, h.features, h.sa_hidden, h.branches)
        hsfe = n * lb * ap + SNN_COPIES * t * n * widest_unit * ap
    after = 0
    if cfg.model != "spklip":  # [T, B * n, ...]: the features repeated, and the CNN at its stem's stride
        f = cfg.fsve
        widest = max(f.width * _conv_out(hp, f.stem_stride) * _conv_out(wp, f.stem_stride), h.features * ap)
        after = f.time_steps * feat + SNN_COPIES * f.time_steps * n * widest
    elif cfg.starnet.enabled:
        stem_out, units = _starnet_units(cfg, hp, wp)
        after = max([units["stem"][0]] + [stem_out + peak for name, (peak, _) in units.items() if name != "stem"])
        relus = [r for name, (_, rs) in units.items() if name in converted for r in rs]
        if relus:  # one run from the HSFE on, when it holds ``stem`` too
            after += sum(relus) + RUN_COPIES * max(relus) + (run if "stem" in converted else 0)
    per_clip = held + max(gather, hsfe, feat + after)
    return math.ceil(HEADROOM * 4 * (clips * per_clip + _largest_conv_weight(cfg)))


__all__ = [
    "HSFEConfig",
    "PRESETS",
    "SPKLIPConfig",
    "StarNetConfig",
    "TextConfig",
    "TrainConfig",
    "apply_overrides",
    "config_differences",
    "flat_config",
    "preset_config",
    "size_cause",
    "validate",
    "visual_forward_bytes",
]

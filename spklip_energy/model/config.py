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

from ..errors import ConfigError
from ..options import SEED_MAX


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
    augment: str = "none"  # "flip": label-aware mirror flips (spklip_energy.model.augment); "none"
    pretrain_epochs: int = 0  # supervised pre-training of the visual encoder on the labels first (0: none)
    lock_visual: bool = False  # contrastive stage trains only the text side (LiT); with pretrain_epochs
    contrastive_weight: float = 1.0  # weight of the contrastive loss of Eq. 6
    class_loss: float = 0.0  # weight of a cross-entropy against all class prompts, added to Eq. 6 (paper: 0)
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


_NESTED = {"hsfe": HSFEConfig, "starnet": StarNetConfig, "fsve": FSVEConfig, "text": TextConfig,
           "train": TrainConfig}
_NESTED_NAMES = {klass.__name__: klass for klass in _NESTED.values()}


def _nested_type(klass, name):
    return _NESTED.get(name) if klass is SPKLIPConfig else None


def _positive(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"config field {name} must be a positive integer, got {value!r}")


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


def _check_types(obj: Any, prefix: str = "") -> None:
    for f in fields(obj):
        value = getattr(obj, f.name)
        annotation = str(f.type)
        if annotation in _NESTED_NAMES:
            if not isinstance(value, _NESTED_NAMES[annotation]):
                raise ConfigError(f"config field {prefix}{f.name} must be an object, got {_short(value)}")
            _check_types(value, f"{prefix}{f.name}.")
        elif not _type_ok(annotation, value):
            if annotation.startswith("tuple["):
                inner = annotation[6:-1].split(",")[0].strip()
                count = "" if annotation.endswith("...]") else f"{annotation.count(',') + 1} "
                want = f"a list of {count}{_TYPE_WORDS.get(inner, inner).removeprefix('an ').removeprefix('a ')}s"
            else:
                want = _TYPE_WORDS.get(annotation, annotation)
            raise ConfigError(f"config field {prefix}{f.name} must be {want}, got {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_depth(value: int, name: str) -> None:
    from ..limits import check_count

    check_count(value, MAX_DEPTH, "a depth field (blocks, branches, layers)", f"config field {name}={value}",
                "deeper models are not supported")


def validate(cfg: SPKLIPConfig) -> None:
    """Check every field; raise ConfigError naming the first bad one."""
    _check_types(cfg)
    for name in ("frames", "height", "width", "embed_dim"):
        _positive(getattr(cfg, name), name)
    h = cfg.hsfe
    for name in ("n_blocks", "window_radius", "window_step", "branches", "branch_width", "sa_hidden",
                 "features", "input_pool"):
        _positive(getattr(h, name), f"hsfe.{name}")
    if h.channel_step < 0:
        raise ConfigError(f"config field hsfe.channel_step must be >= 0, got {h.channel_step!r}")
    if not h.input_scale > 0:
        raise ConfigError(f"hsfe.input_scale must be positive, got {h.input_scale!r}")
    if isinstance(h.trunk_blocks, bool) or not isinstance(h.trunk_blocks, int) or h.trunk_blocks < 0:
        raise ConfigError(f"config field hsfe.trunk_blocks must be >= 0, got {h.trunk_blocks!r}")
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
    s = cfg.starnet
    for name in ("width", "heads", "temporal_layers", "temporal_heads", "temporal_ffn"):
        _positive(getattr(s, name), f"starnet.{name}")
    if len(s.layers) != 4 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in s.layers):
        raise ConfigError(f"starnet.layers must be four positive integers, got {s.layers!r}")
    for i, n in enumerate(s.layers):
        _check_depth(n, f"starnet.layers[{i}]")
    _check_depth(s.temporal_layers, "starnet.temporal_layers")
    if len(s.stem_strides) != 3 or any(v not in (1, 2) for v in s.stem_strides):
        raise ConfigError(f"starnet.stem_strides must be three strides of 1 or 2, got {s.stem_strides!r}")
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
    if not 0.0 <= s.dropout < 1.0:
        raise ConfigError(f"starnet.dropout must be in [0, 1), got {s.dropout!r}")
    if cfg.model not in MODELS:
        raise ConfigError(f"model must be one of {', '.join(MODELS)}, got {cfg.model!r}")
    f = cfg.fsve
    for name in ("time_steps", "width", "stem_stride", "attn_layers", "attn_heads", "mlp_ratio"):
        _positive(getattr(f, name), f"fsve.{name}")
    if len(f.layers) not in (3, 4) or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in f.layers):
        raise ConfigError(f"fsve.layers must be three or four positive integers, got {f.layers!r}")
    for i, n in enumerate(f.layers):
        _check_depth(n, f"fsve.layers[{i}]")
    _check_depth(f.attn_layers, "fsve.attn_layers")
    if not 0.0 < f.decay < 1.0:
        raise ConfigError(f"fsve.decay must be in (0, 1), got {f.decay!r}")
    for name in ("v_threshold", "lens", "tdbn_alpha", "attn_threshold"):
        if not getattr(f, name) > 0:
            raise ConfigError(f"fsve.{name} must be positive, got {getattr(f, name)!r}")
    if f.norm not in ("tdbn", "bn"):
        raise ConfigError(f"fsve.norm must be 'tdbn' or 'bn', got {f.norm!r}")
    if f.cnn not in ("msresnet", "plain"):
        raise ConfigError(f"fsve.cnn must be 'msresnet' or 'plain', got {f.cnn!r}")
    if cfg.embed_dim % f.attn_heads:
        raise ConfigError(f"fsve.attn_heads={f.attn_heads} must divide embed_dim={cfg.embed_dim}")
    if cfg.model != "spklip":
        size = min(cfg.height, cfg.width) // h.input_pool // f.stem_stride
        if size < 2 ** len(f.layers):
            raise ConfigError(
                f"frames of {cfg.height}x{cfg.width} are too small for the spiking MS-ResNet "
                f"({len(f.layers)} stages halving, stem stride {f.stem_stride}, input_pool {h.input_pool})"
            )
    t = cfg.text
    if t.style not in ("clip", "bert"):
        raise ConfigError(f"text.style must be 'clip' or 'bert', got {t.style!r}")
    for name in ("width", "layers", "heads", "context_length", "vocab_size", "adapter_width"):
        _positive(getattr(t, name), f"text.{name}")
    _check_depth(t.layers, "text.layers")
    if t.width % t.heads:
        raise ConfigError(f"text.heads={t.heads} must divide text.width={t.width}")
    tr = cfg.train
    if not tr.lr > 0:
        raise ConfigError(f"train.lr must be positive, got {tr.lr!r}")
    _positive(tr.batch_size, "train.batch_size")
    if tr.schedule not in ("constant", "cosine"):
        raise ConfigError(f"train.schedule must be 'constant' or 'cosine', got {tr.schedule!r}")
    if not 0.0 <= tr.prompt_mix <= 1.0:
        raise ConfigError(f"train.prompt_mix must be in [0, 1], got {tr.prompt_mix!r}")
    _positive(tr.epochs, "train.epochs")
    if isinstance(tr.pretrain_epochs, bool) or not isinstance(tr.pretrain_epochs, int) or tr.pretrain_epochs < 0:
        raise ConfigError(f"train.pretrain_epochs must be >= 0, got {tr.pretrain_epochs!r}")
    if tr.warmup_epochs < 0:
        raise ConfigError(f"train.warmup_epochs must be >= 0, got {tr.warmup_epochs!r}")
    if tr.weight_decay < 0:
        raise ConfigError(f"train.weight_decay must be >= 0, got {tr.weight_decay!r}")
    if not tr.grad_clip > 0:
        raise ConfigError(f"train.grad_clip must be positive, got {tr.grad_clip!r}")
    if not all(0.0 <= b < 1.0 for b in tr.betas):
        raise ConfigError(f"train.betas must be two numbers in [0, 1), got {list(tr.betas)!r}")
    if not 0 <= tr.seed <= SEED_MAX:
        raise ConfigError(f"train.seed must be in [0, {SEED_MAX}], got {tr.seed!r}")
    if not tr.contrastive_weight >= 0:
        raise ConfigError(f"train.contrastive_weight must be >= 0, got {tr.contrastive_weight!r}")
    if not tr.class_loss >= 0:
        raise ConfigError(f"train.class_loss must be >= 0, got {tr.class_loss!r}")
    if tr.augment not in ("none", "flip"):
        raise ConfigError(f"train.augment must be 'none' or 'flip', got {tr.augment!r}")


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
        starnet=StarNetConfig(width=16, layers=(1, 1, 1, 1), heads=4, temporal_layers=2, temporal_heads=4,
                              temporal_ffn=256, temporal_position=True),
        fsve=FSVEConfig(width=16, layers=(1, 1, 1, 1), attn_layers=2, attn_heads=4),
        text=TextConfig(width=64, layers=2, heads=4, context_length=32, vocab_size=1024, adapter_width=32),
        train=TrainConfig(lr=1e-3, batch_size=16, epochs=20, weight_decay=5e-4, warmup_epochs=1,
                          schedule="cosine", prompt_mix=0.5),
    )


def _tiny() -> SPKLIPConfig:
    return SPKLIPConfig(
        preset="tiny",
        height=64,
        width=64,
        embed_dim=64,
        hsfe=HSFEConfig(branch_width=4, sa_hidden=4, features=16, trunk_blocks=1, input_pool=2, input_scale=20.0),
        starnet=StarNetConfig(width=8, layers=(1, 1, 1, 1), stem_strides=(1, 1, 1), heads=4, temporal_layers=1,
                              temporal_heads=2,
                              temporal_ffn=128, temporal_position=True, dropout=0.0),
        fsve=FSVEConfig(width=8, layers=(1, 1, 1, 1), attn_layers=1, attn_heads=2, mlp_ratio=2),
        text=TextConfig(width=32, layers=1, heads=2, context_length=32, vocab_size=512, adapter_width=16),
        train=TrainConfig(lr=2e-3, batch_size=16, epochs=25, weight_decay=5e-4, warmup_epochs=1,
                          schedule="cosine", prompt_mix=0.5, augment="flip", pretrain_epochs=40,
                          lock_visual=True, class_loss=1.0),
    )


PRESETS = {"reference": _reference, "paper": _paper, "small": _small, "tiny": _tiny}


def preset_config(name: str, overrides: dict[str, Any] | None = None) -> SPKLIPConfig:
    """A preset, with ``overrides`` applied (dotted keys, e.g. ``{"hsfe.sa": False}``)."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"unknown preset {_short(name)}; choose one of {', '.join(PRESETS)}")
    cfg = PRESETS[name]()
    return apply_overrides(cfg, overrides or {}) if overrides else cfg


def apply_overrides(cfg: SPKLIPConfig, overrides: dict[str, Any]) -> SPKLIPConfig:
    """Return a copy of ``cfg`` with dotted-key overrides; unknown keys are an error."""
    data = cfg.to_dict()
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise ConfigError(f"config keys are dotted names such as 'hsfe.sa', got {_short(key)}")
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
            raise ConfigError(f"config key {key!r} expects true or false, got {_short(value)}")
    elif isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r} expects an integer, got {_short(value)}")
    elif isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} expects a number, got {_short(value)}")
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"config key {key!r} expects a finite number, got {_short(value)}") from None
    elif isinstance(current, (tuple, list)):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} expects a list like {list(current)}, got {_short(value)}")
        value = list(value)
    elif isinstance(current, str) and not isinstance(value, str):
        raise ConfigError(f"config key {key!r} expects a string, got {_short(value)}")
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
    return [(k, fa.get(k, missing), fb.get(k, missing)) for k in list(fa) + [k for k in fb if k not in fa]
            if fa.get(k, missing) != fb.get(k, missing)]


def size_cause(cfg: SPKLIPConfig, limit: int = 4) -> str:
    """The config values behind a model's size, for a resource message: those that differ from its preset."""
    base = PRESETS[cfg.preset]() if cfg.preset in PRESETS else None
    if base is None:
        return f"config with embed_dim={cfg.embed_dim}, {cfg.height}x{cfg.width} frames"
    diffs = [(k, v) for k, _, v in config_differences(base, cfg) if not k.startswith("train.") and k != "preset"]
    if not diffs:
        return f"preset {cfg.preset!r}"
    shown = ", ".join(f"{k}={_short(v)}" for k, v in diffs[:limit])
    more = f" and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return f"config {shown}{more} (preset {cfg.preset!r})"


__all__ = [
    "HSFEConfig", "PRESETS", "SPKLIPConfig", "StarNetConfig", "TextConfig", "TrainConfig",
    "apply_overrides", "config_differences", "flat_config", "preset_config", "size_cause", "validate",
]

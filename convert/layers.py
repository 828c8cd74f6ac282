"""Which SPKLIP layers can be converted to IF neurons, their names, groups and runs.

Convertible units, in the order data flows through the visual encoder:

* ``hsfe``: the HSFE trunk, ``visual.hsfe.head`` (conv3x3 + ReLU) and
  ``visual.hsfe.trunk`` (residual BasicBlocks) with its long skip;
* ``stem``, ``layer1`` .. ``layer4``: STAR-Net's CNN, ``visual.starnet.spatial.*``
  (conv + BN + ReLU stem and average pooling, bottleneck stages).

Groups: ``cnn`` = stem..layer4, ``all`` = hsfe + cnn. Not convertible: the MTF
branches (their second convolution has no ReLU), spatial attention (sigmoid
gate), attention pooling and the Transformers (softmax attention, LayerNorm,
GELU: rate coding needs non-negative ReLU activations).

A *run* is a maximal sequence of adjacent selected units; each run becomes one
rate-coded wrapper (:mod:`.ratecode`).
"""

from __future__ import annotations

from spklip_energy.errors import ConfigError

#: Convertible units in data-flow order.
UNITS: tuple[str, ...] = ("hsfe", "stem", "layer1", "layer2", "layer3", "layer4")
CNN: tuple[str, ...] = ("stem", "layer1", "layer2", "layer3", "layer4")
GROUPS: dict[str, tuple[str, ...]] = {"cnn": CNN, "all": UNITS}
#: What is not convertible, and why (shown by --help and in errors).
NOT_CONVERTIBLE = (
    "MTF branches (no ReLU after their second convolution), spatial attention (sigmoid gate), "
    "attention pooling and the Transformers (softmax, LayerNorm, GELU): rate coding needs ReLU activations"
)


class ConversionError(ConfigError, ValueError):
    """A conversion request or record is invalid (a user error, and a ValueError for record checks)."""


def valid_names() -> str:
    return ", ".join((*UNITS, *GROUPS))


def parse_layers(spec: str | list[str] | tuple[str, ...], starnet_enabled: bool = True) -> list[str]:
    """Unit names from ``"stem,layer1"``, ``"cnn"``, ``"all"`` or a list; in data-flow order.

    Raises :class:`ConversionError` for an unknown or empty selection, or for STAR-Net units
    of a model whose STAR-Net is disabled (``starnet.enabled=false``: no stem..layer4).
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    if not all(isinstance(i, str) for i in items):
        raise ConversionError(f"layer names must be strings, got {items!r}")
    chosen: set[str] = set()
    explicit: set[str] = set()  # named directly or through 'cnn' (not through 'all')
    for raw in items:
        name = raw.strip()
        if not name:
            continue
        if name in GROUPS:
            chosen.update(GROUPS[name])
            if name != "all":
                explicit.update(GROUPS[name])
        elif name in UNITS:
            chosen.add(name)
            explicit.add(name)
        else:
            raise ConversionError(f"unknown layer {name!r}; valid names: {valid_names()}")
    if not chosen:
        raise ConversionError(f"no layers to convert; valid names: {valid_names()}")
    if not starnet_enabled:
        star = [u for u in CNN if u in explicit]
        if star:
            raise ConversionError(
                f"this model has STAR-Net disabled (starnet.enabled=false), so it has no {', '.join(star)}; "
                "only 'hsfe' can be converted"
            )
        chosen -= set(CNN)  # 'all' of a model without STAR-Net is its HSFE trunk
    return [u for u in UNITS if u in chosen]


def runs(layers: list[str]) -> list[list[str]]:
    """Maximal runs of adjacent units: ``[stem, layer1, layer3]`` -> ``[[stem, layer1], [layer3]]``."""
    out: list[list[str]] = []
    last = -2
    for name in sorted(set(layers), key=UNITS.index):
        i = UNITS.index(name)
        if i == last + 1 and out:
            out[-1].append(name)
        else:
            out.append([name])
        last = i
    return out


__all__ = ["CNN", "GROUPS", "NOT_CONVERTIBLE", "UNITS", "ConversionError", "parse_layers", "runs", "valid_names"]

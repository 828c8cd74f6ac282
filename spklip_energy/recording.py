"""Record what modules compute during a run: the one forward-hook recorder of the exporters' checks.

``with recording({"conv1": m1, "lif1": m2}) as rec: model(x)`` leaves each module's output of its last call
in ``rec.outputs[key]`` (detached; a tuple output's first element), with ``inputs=True`` its first input in
``rec.inputs[key]`` too, and with ``append=True`` every call's output in a list instead (one per step of a
single-step network). The hooks are removed when the block ends, also on an exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn as nn


@dataclass
class Recording:
    outputs: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)


@contextlib.contextmanager
def recording(
    modules: Mapping[Hashable, nn.Module],
    *,
    inputs: bool = False,
    append: bool = False,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[Recording]:
    """Hooks on ``modules`` (key -> module) recording their outputs (``transform`` applied, e.g. ``.float()``)
    while the block runs; see the module docstring."""
    rec = Recording()
    handles = []

    def make_hook(key):
        def hook(_mod, args, out):
            y = (out[0] if isinstance(out, tuple) else out).detach()
            if transform is not None:
                y = transform(y)
            if append:
                rec.outputs.setdefault(key, []).append(y)
            else:
                rec.outputs[key] = y
            if inputs:
                rec.inputs[key] = args[0].detach()

        return hook

    try:
        for key, mod in modules.items():
            handles.append(mod.register_forward_hook(make_hook(key)))
        yield rec
    finally:
        for h in handles:
            h.remove()


__all__ = ["Recording", "recording"]

"""``profile(model, inputs)``: count operations and memory accesses with forward hooks.

The profiler only plans which modules to hook, attaches hooks, runs the model
once on real input, removes the hooks and sums what the rules of
:mod:`energy.rules` return. It never prints.

Which modules are counted: walking the module tree from the root, a module whose
type has a rule is hooked (and, for most rules, its children are covered by it);
a module without a rule is descended into; a leaf without a rule, or a module
whose own parameters are used outside its children, is reported as "not
counted" - never as zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd
import torch
import torch.nn as nn

from spklip_energy.errors import ConfigError

from .counts import Counts, materialise
from .geometry import layer_geometry
from .rules import CallContext, RuleEntry, find_rule

REUSE_MODES = ("layer", "none")

#: Modules that hold no computation of their own (descended into silently).
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@dataclass
class _Site:
    name: str
    module: nn.Module
    entry: RuleEntry | None  # None: not counted
    records: list[Counts] = field(default_factory=list)  # the running sum of its calls (one record)
    calls: int = 0
    reason: str = ""


def _plan(model: nn.Module, extra: dict[type, RuleEntry] | None) -> list[_Site]:
    sites: list[_Site] = []
    seen: set[int] = set()

    def visit(name: str, mod: nn.Module) -> None:
        if id(mod) in seen:  # shared by several parents: one site, one hook
            return
        seen.add(id(mod))
        entry = find_rule(mod, extra)
        children = list(mod.named_children())
        if entry is not None:
            sites.append(_Site(name, mod, entry))
            if entry.covers_children:
                return
        elif not children:
            sites.append(_Site(name, mod, None, reason="no counting rule for this layer type"))
            return
        elif any(True for _ in mod.parameters(recurse=False)) and not isinstance(mod, _CONTAINERS):
            sites.append(_Site(name, mod, None, reason="own parameters used outside its children"))
        for child_name, child in children:
            visit(f"{name}.{child_name}" if name else child_name, child)

    visit("", model)
    return sites


def _time_axis(mod: nn.Module) -> int | None:
    """Axis of T for a container that runs its children once on all steps; None for one that
    calls them once per step (their hooks then fire T times) or is not multi-step."""
    try:
        from spikingjelly.activation_based import base, layer
    except ImportError:  # pragma: no cover
        base = layer = None
    if layer is not None:
        if isinstance(mod, layer.SeqToANNContainer):
            return 0
        if isinstance(mod, layer.TLastSeqToANNContainer):
            return -1
        if isinstance(mod, (layer.MultiStepContainer, layer.TLastMultiStepContainer, base.MemoryModule)):
            return None
    return 0 if getattr(mod, "step_mode", None) == "m" else None


#: count columns of the per-layer table that are 0 (not missing) for layers without a rule
COUNT_COLUMNS = (
    "macs",
    "sops",
    "neuron_updates",
    "mem_reads",
    "mem_writes",
    "mem_accesses",
    "weight_reads",
    "state_reads",
    "state_writes",
    "act_reads",
    "act_writes",
    "mem_bytes_read",
    "mem_bytes_written",
)


@dataclass
class ProfileResult:
    """Per-layer counts of one profiled run, and energy estimates from them.

    ``records`` holds one dict per counted (or not counted) module; :attr:`per_layer` is the same as a
    DataFrame and :attr:`layers` the counted ones as the numpy columns the energy models price. Both are
    built on first use, so that a caller who only prices the counts never pays for pandas.
    """

    records: list[dict]  # one per counted (or not counted) module
    totals: dict  # summed counts
    not_counted: list[dict]  # {"name", "type", "reason", "calls"}
    reuse: str  # weight-reuse mode used for memory counts
    samples: int  # samples in the profiled batch(es)
    notes: list[str]

    @cached_property
    def per_layer(self) -> pd.DataFrame:
        """One row per counted (or not counted) module."""
        df = pd.DataFrame.from_records(self.records)
        for col in COUNT_COLUMNS:
            if col not in df:
                df[col] = 0
        df[list(COUNT_COLUMNS)] = df[list(COUNT_COLUMNS)].fillna(0)
        return df

    @cached_property
    def layers(self):
        """The counted layers as :class:`~energy.models.table.Layers`."""
        from .models.table import Layers

        return Layers.from_records([r for r in self.records if r["counted"]])

    def energy(self, cost="paper") -> dict:
        """Energy under a cost preset name, a CostModel, or a cost-file path (see estimate)."""
        from .estimate import estimate_energy

        return estimate_energy(self, cost)["totals"]

    def energy_report(self, cost="paper") -> dict:
        """Per-layer and total energy with provenance (see :func:`estimate.estimate_energy`)."""
        from .estimate import estimate_energy

        return estimate_energy(self, cost)


class Profiler:
    """Counting hooks on a model, as a context manager.

    ``with Profiler(model) as prof: model(x)`` counts every forward run inside
    the block (several batches accumulate); ``prof.result()`` sums the counts
    into a :class:`ProfileResult` afterwards. Entering plans the hooks, leaving
    removes them; nothing is printed.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        reuse: str = "layer",
        strict: bool = False,
        extra_rules: dict[type, RuleEntry] | None = None,
    ) -> None:
        if reuse not in REUSE_MODES:
            raise ConfigError(f"unknown weight-reuse mode {reuse!r}; choose one of {', '.join(REUSE_MODES)}")
        self.model, self.reuse, self.extra_rules = model, reuse, extra_rules
        # one context per profile: spike marks, caches and the rules' scratch state live exactly as long as it
        self.ctx = CallContext(reuse=reuse)
        self.sites = _plan(model, extra_rules)
        missing = [s for s in self.sites if s.entry is None]
        if strict and missing:
            names = ", ".join(f"{s.name or '<root>'} ({type(s.module).__name__})" for s in missing[:5])
            raise ConfigError(f"no counting rule for {len(missing)} module(s): {names}")
        self._handles: list = []

    def mark_spikes(self, *tensors: torch.Tensor) -> None:
        """Declare model inputs to be spikes (saves the per-layer value check)."""
        for t in tensors:
            self.ctx.mark_spike(t)

    def __enter__(self) -> Profiler:
        ctx = self.ctx

        def make_hook(site: _Site):
            def hook(mod, args, kwargs, output):
                site.calls += 1
                args = tuple(args) + tuple(v for v in kwargs.values() if isinstance(v, torch.Tensor))
                if site.entry is not None:
                    rec = site.entry.fn(mod, args, output, ctx)
                    # folded into one running record per layer: memory does not grow with the clips profiled
                    # (tensor fields stay on the device; the additions are queued, not synchronised)
                    if site.records:
                        site.records[0].add_(rec)
                    else:
                        site.records.append(rec)

            return hook

        def push_steps(mod, args):
            x = next((a for a in args if isinstance(a, torch.Tensor)), None)
            axis = _time_axis(mod)
            ctx.step_stack.append(int(x.shape[axis]) if x is not None and x.dim() >= 3 else 1)

        def pop_steps(mod, args, output):
            if ctx.step_stack:
                ctx.step_stack.pop()

        try:
            for site in self.sites:
                self._handles.append(site.module.register_forward_hook(make_hook(site), with_kwargs=True))
            for mod in self.model.modules():
                if (
                    _time_axis(mod) is not None
                    and find_rule(mod, self.extra_rules) is None
                    and any(True for _ in mod.children())
                ):
                    self._handles.append(mod.register_forward_pre_hook(push_steps))
                    self._handles.append(mod.register_forward_hook(pop_steps))
        except BaseException:
            self._remove()
            raise
        return self

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __exit__(self, *exc) -> None:
        self._remove()

    def result(self, samples: int = 1, world=None) -> ProfileResult:
        """Sum what the hooks counted (one host transfer for all device-side counts).

        ``world`` (:class:`~spklip_energy.distributed.World`): in a distributed run each rank counted its
        own clips; the per-layer sums of every rank are added first, so every rank gets the whole result."""
        if world is not None and world.distributed:
            _merge_ranks(self.sites, world)
        return _summarise(self.sites, self.reuse, samples, self.ctx)


def _merge_ranks(sites: list[_Site], world) -> None:
    """Replace each site's running record and call count with the sums over every rank (exact: the
    counts are integers, the buffer sizes maxima, the spike flags an or)."""
    from spklip_energy.distributed import gather_objects

    mine = [(s.calls, materialise(s.records[:1])[0] if s.records else None) for s in sites]
    for site, parts in zip(sites, zip(*gather_objects(mine, world), strict=True), strict=True):
        total = None
        for _, row in parts:
            if row is not None:
                rec = Counts(**row)
                total = rec if total is None else total.add_(rec)
        site.calls = sum(calls for calls, _ in parts)
        site.records = [total] if total is not None else []


def profile(
    model: nn.Module,
    inputs=None,
    *,
    forward: Callable[[nn.Module], object] | None = None,
    reuse: str = "layer",
    strict: bool = False,
    extra_rules: dict[type, RuleEntry] | None = None,
    samples: int | None = None,
    world=None,
) -> ProfileResult:
    """Run ``model`` once under forward hooks and count what it does.

    Parameters
    ----------
    model : any ``nn.Module`` built from torch, spikingjelly or snnTorch layers
        (or this project's, which register their own rules).
    inputs : a tensor or tuple of tensors passed as ``model(*inputs)``; a binary
        input tensor is treated as spikes. Or give ``forward``.
    forward : ``forward(model)`` runs the model itself (for models with a time
        loop or special input handling, or several batches); spike inputs are
        then decided per layer from their values.
    reuse : ``"layer"`` (weights read once per layer call and time step) or
        ``"none"`` (one weight read per MAC/SOP).
    strict : raise :class:`ConfigError` if any module has no counting rule.
    extra_rules : ``{type: RuleEntry}`` used for this run only.
    samples : number of samples the run covers, for per-sample figures (default:
        the batch dim of the first input: dim 1 of ``[T, B, ...]`` for models with
        multi-step modules, else dim 0); in a distributed run, of all ranks together.
    world : a distributed run's :class:`~spklip_energy.distributed.World`: each rank's ``forward``
        runs its own clips, and every rank gets the counts of all of them.
    """
    if inputs is None and forward is None:
        raise ConfigError("profile needs inputs or a forward function")
    args = () if inputs is None else (inputs if isinstance(inputs, (tuple, list)) else (inputs,))
    with Profiler(model, reuse=reuse, strict=strict, extra_rules=extra_rules) as prof, torch.no_grad():
        if forward is not None:
            forward(model)
        else:
            for a in args:
                if isinstance(a, torch.Tensor) and a.numel() and bool(prof.ctx.is_spike(a)):
                    prof.mark_spikes(a)
            model(*args)
    if samples is None:
        first = args[0] if args else None
        samples = 1
        if isinstance(first, torch.Tensor) and first.dim():
            multi_step = first.dim() >= 3 and any(getattr(m, "step_mode", None) == "m" for m in model.modules())
            samples = int(first.shape[1] if multi_step else first.shape[0])  # [T, B, ...] or [B, ...]
    return prof.result(samples, world)


def _finite(v) -> float:
    """A spike count, 0 where the layer saw no spikes (the counter keeps NaN for real-valued inputs)."""
    return 0 if v != v else v


def _summarise(sites: list[_Site], reuse: str, samples: int, ctx: CallContext) -> ProfileResult:
    counted = [s for s in sites if s.entry is not None and s.calls]
    summed = []
    for s in counted:
        if len(s.records) == 1:  # called once: its record is the sum
            summed.append(s.records[0])
            continue
        total = Counts()
        for rec in s.records:
            total.add_(rec)
        summed.append(total)
    rows = materialise(summed)
    records = []
    notes: list[str] = []
    for site, r in zip(counted, rows, strict=True):
        mem_reads = r["weight_reads"] + r["state_reads"] + r["act_reads"]
        mem_writes = r["state_writes"] + r["act_writes"]
        records.append(
            {
                "name": site.name or "<root>",
                "type": type(site.module).__name__,
                "calls": site.calls,
                "spiking": site.entry.spiking,
                "binary_input": r["binary_input"],
                "macs": r["macs"],
                "sops": r["sops"],
                "neuron_updates": r["neuron_updates"],
                "mem_reads": mem_reads,
                "mem_writes": mem_writes,
                "mem_accesses": mem_reads + mem_writes,
                "weight_reads": r["weight_reads"],
                "state_reads": r["state_reads"],
                "state_writes": r["state_writes"],
                "act_reads": r["act_reads"],
                "act_writes": r["act_writes"],
                "mem_bytes_read": r["weight_read_bytes"] + r["act_read_bytes"] + r["state_bytes"] / 2,
                "mem_bytes_written": r["act_write_bytes"] + r["state_bytes"] / 2,
                "input_rate": r["in_nnz"] / r["in_numel"] if r["in_numel"] else float("nan"),
                "output_rate": r["out_nnz"] / r["out_numel"] if r["out_numel"] else float("nan"),
                "params": ctx.param_stats(site.module)[0],
                "weight_buffer": r["weight_buffer"],
                "state_buffer": r["state_buffer"],
                "act_buffer": r["act_buffer"],
                "in_buffer": r["in_buffer"],
                "out_buffer": r["out_buffer"],
                "in_call": r["in_call"],
                "out_call": r["out_call"],
                "out_call_step": r["out_call_step"],
                "in_spikes": _finite(r["in_nnz"]),
                "in_elems": r["in_numel"],
                "out_spikes": _finite(r["out_nnz"]),
                "out_elems": r["out_numel"],
                "counted": True,
                **layer_geometry(site.module, site.entry.spiking),
            }
        )
        notes.extend(n for n in r["notes"] if n not in notes)
    not_counted = []
    for site in sites:
        if site.entry is None and site.calls:
            not_counted.append(
                {
                    "name": site.name or "<root>",
                    "type": type(site.module).__name__,
                    "reason": site.reason,
                    "calls": site.calls,
                }
            )
            records.append(
                {
                    "name": site.name or "<root>",
                    "type": type(site.module).__name__,
                    "calls": site.calls,
                    "spiking": False,
                    "counted": False,
                    "params": sum(p.numel() for p in site.module.parameters(recurse=False)),
                }
            )
    counted_rows = [r for r in records if r["counted"]]
    totals = {col: float(sum(r[col] for r in counted_rows)) for col in COUNT_COLUMNS}
    for key in ("macs", "sops", "neuron_updates", "mem_reads", "mem_writes", "mem_accesses"):
        totals[key] = int(round(totals[key]))
    totals["not_counted_modules"] = len(not_counted)
    totals["samples"] = samples
    return ProfileResult(
        records=records, totals=totals, not_counted=not_counted, reuse=reuse, samples=samples, notes=notes
    )

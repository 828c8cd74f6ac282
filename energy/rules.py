"""Counting rules: one pure function per layer type, in one registry.

A rule is ``rule(module, inputs, output, ctx) -> Counts`` for one call of the
module. Rules are registered with :func:`register_rule` for one or more types;
lookup walks the module's MRO, so spikingjelly's wrappers (which subclass the
torch layers) use the torch rules. Adding a layer type is one decorated
function, written next to the layer it counts (docs/energy.md, "Writing a
counting rule").

The public API for rule authors is :data:`__all__`: the registry
(:func:`register_rule`, :func:`find_rule`, :class:`RuleEntry`, :data:`RULES`),
the per-profile :class:`CallContext` (spike marks, non-zero counts, cached
coverage maps, time steps, and :attr:`CallContext.scratch` for a rule module's
own state), the building blocks (:func:`base_counts`, :func:`neuron_counts`,
:func:`select`, :func:`record_spike_rate`, :func:`no_reuse_weights`, the
coverage maps and their cache keys, the tensor and shape helpers) and the
built-in rules, which a rule may call to fall back on (``conv_rule``,
``preserving_rule``, ...). Names with a leading underscore are private.

The counting conventions (NB: choices, not facts; reports repeat them) are the
:data:`CONVENTIONS` tuple; they are listed at the end of this docstring.
"""

from __future__ import annotations

import math
import textwrap
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .counts import Counts

#: ``rule(module, inputs, output, ctx) -> Counts``: the counts of one call of ``module`` (``inputs``: its
#: positional arguments plus its tensor keyword arguments; ``output``: what it returned).
Rule = Callable[[nn.Module, tuple, object, "CallContext"], Counts]

#: The counting conventions every report states (choices, not facts), one sentence group each, in plain text.
CONVENTIONS: tuple[str, ...] = (
    "A layer's input counts as binary spikes when its producer is a spiking neuron (or the model input was "
    "binary, or it passed through a spike-preserving layer such as max-pooling or flatten); otherwise it is "
    "decided from the actual tensor, on the device, with no host sync (x*x - x has no non-zero; on the CPU a "
    "strided sample is checked first).",
    "Convolution on spikes: SOPs = sum over input pixels of spike x coverage times C_out / groups, where "
    "coverage[p] is the number of output positions whose receptive field contains p. Coverage is computed once "
    "per geometry as the gradient of a one-channel all-ones convolution, so it is exact at the borders for any "
    "padding (mode included), stride, dilation and groups.",
    "Dense MACs: output elements x fan-in. Bias additions are not counted as operations (their reads are "
    "counted as memory).",
    "Normalisation: BatchNorm one MAC per element (inference: folded scale and shift); LayerNorm/GroupNorm three "
    "per element (mean, variance, affine); Softmax three per element (exp, sum, divide).",
    "Pooling: average pooling accumulates (SOPs on spikes, MACs otherwise); max pooling charges no arithmetic "
    "(comparisons are not counted) and keeps spikes binary.",
    "Neurons: one update per neuron per time step; each update reads and writes its membrane potential (one "
    "word each).",
    "Memory (32-bit words): inputs read once and outputs written once per call; weights read once per call and "
    'time step (reuse="layer", weight-stationary) or once per MAC/SOP (reuse="none", the no-reuse bound).',
    "Element-wise arithmetic written inline in a forward (residual additions, for instance) is not visible to "
    "module hooks and is not counted.",
)


def _render_conventions(items: tuple[str, ...], width: int = 88) -> str:
    """The conventions as a reST bullet list (wrapped only at spaces, so joining a bullet's lines with one
    space gives the sentence back)."""
    lines = ["", "Conventions:", ""]
    for item in items:
        lines += textwrap.wrap(
            item,
            width,
            initial_indent="* ",
            subsequent_indent="  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return "\n".join(lines) + "\n"


if __doc__ is not None:  # None under python -OO
    __doc__ += _render_conventions(CONVENTIONS)


@dataclass(frozen=True)
class RuleEntry:
    """A registered rule and how the profiler treats the modules it counts.

    ``covers_children``: True (the default) when the rule's counts include the work of the module's
    children, which are then not hooked; False when it counts only the module's own work (arithmetic
    written in its ``forward``) and the children are counted by their own rules. ``spiking``: the module is
    a stateful spiking neuron (the per-layer table's ``spiking`` column; the energy models price it as one).
    """

    fn: Rule
    covers_children: bool = True  # False: counts only the module's own work; children hooked too
    spiking: bool = False  # the module is a stateful spiking neuron


RULES: dict[type, RuleEntry] = {}


def register_rule(*types: type, covers_children: bool = True, spiking: bool = False, replace: bool = False):
    """Decorator registering ``fn`` as the counting rule for ``types`` (and their subclasses, unless they
    have their own rule), with the :class:`RuleEntry` flags ``covers_children`` and ``spiking``.

    Refuses a type that already has a rule unless ``replace=True``, and anything that is not a class. Returns
    ``fn`` unchanged, so ``register_rule(T)(existing_rule)`` reuses a rule for another type.
    """

    def deco(fn: Rule) -> Rule:
        for t in types:
            if not isinstance(t, type):
                raise TypeError(f"register_rule expects classes, got {t!r}")
            if t in RULES and not replace:
                raise ValueError(f"{t.__qualname__} already has a counting rule ({RULES[t].fn.__name__})")
            RULES[t] = RuleEntry(fn, covers_children, spiking)
        return fn

    return deco


def find_rule(module: nn.Module, extra: dict[type, RuleEntry] | None = None) -> RuleEntry | None:
    """The rule for ``module``'s type (most specific class first), or None."""
    for klass in type(module).__mro__:
        if extra and klass in extra:
            return extra[klass]
        if klass in RULES:
            return RULES[klass]
    return None


# --------------------------------------------------------------------------- call context

#: coverage maps shared by all profiles, least recently used first (CallContext.cached)
_SHARED_MAPS: OrderedDict = OrderedDict()
_SHARED_MAPS_MAX = 256


@dataclass
class CallContext:
    """Per-profile state the rules share: known spike tensors, caches, options.

    One context lives for one :class:`~energy.profiler.Profiler` (one ``profile`` call): every hooked call of
    every forward run inside it gets the same ``ctx``. Rules read and write it only through these members:

    * ``reuse`` - the weight-reuse mode, ``"layer"`` (weights read once per call and step) or ``"none"``
      (one weight read per MAC/SOP: call :func:`no_reuse_weights`);
    * :meth:`is_spike`, :meth:`mark_spike`, :meth:`known_spike` - whether a tensor holds binary spikes;
    * :meth:`nnz` - non-zero elements of a tensor, counted once per tensor;
    * :meth:`steps` and ``step_stack`` - time steps of a call (the stack is pushed by the profiler around
      multi-step containers);
    * :meth:`param_stats` - a module's parameter sizes, cached;
    * :meth:`cached` - coverage maps by geometry key (:func:`conv_key`, :func:`pool_key`);
    * ``scratch`` - a rule module's own per-profile state (below).

    ``scratch`` is a plain ``dict[str, Any]``, empty when the profile starts and dropped with the context, so
    nothing leaks from one profile into the next. Each rule module keeps its state under one key that names
    it (``ctx.scratch.setdefault("convert.events", {})``); values are whatever that module needs. State keyed
    by tensor identity must not keep tensors alive: hold a weak reference and drop the entry when the tensor
    is freed, as :mod:`convert.count_rules` does.
    """

    reuse: str = "layer"  # "layer" or "none"
    _spikes: dict = field(default_factory=dict)  # id -> weakref of tensors known to be spikes
    _nnz: dict = field(default_factory=dict)  # id -> (weakref, nnz tensor)
    _maps: dict = field(default_factory=dict)  # coverage maps of this profile, by geometry key
    step_stack: list = field(default_factory=list)  # time steps of enclosing multi-step containers
    _params: dict = field(default_factory=dict)  # (id(module), recurse) -> (elements, words, bytes)
    scratch: dict[str, Any] = field(default_factory=dict)  # rule modules' own state, one key per module

    def param_stats(self, module: nn.Module, recurse: bool = True) -> tuple[int, int, int]:
        """(elements, 32-bit words, bytes) of the module's parameters, cached per module."""
        key = (id(module), recurse)
        if key not in self._params:
            self._params[key] = _param_stats(module, recurse)
        return self._params[key]

    # spike bookkeeping -------------------------------------------------------
    def mark_spike(self, t) -> None:
        """Declare ``t`` a binary spike tensor (a layer fed by it counts SOPs without checking its values);
        anything but a tensor is ignored. The mark is forgotten when ``t`` is freed."""
        if isinstance(t, torch.Tensor):
            self._spikes[id(t)] = _forgetting_ref(self._spikes, t)

    def known_spike(self, t: torch.Tensor) -> bool:
        """True if ``t`` itself was marked with :meth:`mark_spike` (no look at its values)."""
        ref = self._spikes.get(id(t))
        return ref is not None and ref() is t

    def is_spike(self, t: torch.Tensor) -> bool | torch.Tensor:
        """Whether ``t`` holds binary spikes.

        True for a known spike tensor. Otherwise decided from the values: on an
        accelerator as a 0-dim bool tensor (no host sync); on the CPU, where
        reading a result costs nothing, a strided sample of the tensor first,
        so that real-valued tensors are recognised without a full pass.
        """
        if t.dtype == torch.bool or self.known_spike(t):
            return True
        if t.device.type == "cpu" and t.numel() > 4096:
            flat = t.reshape(-1)
            sample = flat[:: max(flat.numel() // 1024, 1)]
            if not bool(_binary_values(sample)):
                return False
            return bool(_binary_values(t))
        return _binary_values(t)

    def nnz(self, t: torch.Tensor) -> torch.Tensor:
        """Non-zero elements of ``t`` (a 0-dim int64 tensor on ``t``'s device, no host sync), counted once
        per tensor and profile."""
        entry = self._nnz.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1]
        n = torch.count_nonzero(t)
        self._nnz[id(t)] = (_forgetting_ref(self._nnz, t), n)
        return n

    def steps(self, module: nn.Module, x: torch.Tensor, sample_dims: int) -> int:
        """Time steps one call covers: T for a multi-step call ``[T, B, ...]``, else 1
        (or the T of an enclosing multi-step container)."""
        if getattr(module, "step_mode", "s") == "m" and x.dim() >= sample_dims + 2:
            return int(x.shape[0])
        return self.step_stack[-1] if self.step_stack else 1

    def cached(self, key, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A coverage map by its geometry key (:func:`conv_key`, :func:`pool_key`), made by ``make()`` the first
        time: kept for this profile and, across profiles, in a small process-wide cache (a map depends on the
        geometry alone, and making one costs a backward pass)."""
        if key not in self._maps:
            shared = _SHARED_MAPS.pop(key, None)
            self._maps[key] = make() if shared is None else shared
            _SHARED_MAPS[key] = self._maps[key]  # most recently used last
            while len(_SHARED_MAPS) > _SHARED_MAPS_MAX:
                _SHARED_MAPS.popitem(last=False)
        return self._maps[key]


# --------------------------------------------------------------------------- helpers


def _forgetting_ref(table: dict, t: torch.Tensor) -> weakref.ref:
    """A weak reference to ``t`` that removes ``t``'s entry from ``table`` (keyed by ``id(t)``) when ``t`` is
    freed, unless the entry already belongs to a newer tensor at the same address: the tables of a profile
    hold only live tensors, so they do not grow with the number of forward passes."""
    key = id(t)

    def forget(ref: weakref.ref) -> None:
        entry = table.get(key)
        if entry is ref or (isinstance(entry, tuple) and entry[0] is ref):
            del table[key]

    return weakref.ref(t, forget)


def _binary_values(t: torch.Tensor) -> torch.Tensor:
    """0-dim bool tensor: every element of ``t`` is 0 or 1."""
    if not t.is_floating_point() and not t.is_complex():
        return ((t == 0) | (t == 1)).all()
    return ~torch.any(t * t - t)


def tensors(xs: Iterable) -> list[torch.Tensor]:
    """The tensors among ``xs`` (a rule's ``inputs``), in order; other arguments are dropped."""
    return [x for x in xs if isinstance(x, torch.Tensor)]


def first_tensor(out) -> torch.Tensor | None:
    """``out`` itself if it is a tensor, else the first tensor of a tuple or list (a module's output such as
    snnTorch's ``(spikes, membrane)``), else None."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, torch.Tensor):
                return o
    return None


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes ``t`` holds in its own dtype (elements x element size): the ``*_bytes`` fields of :class:`Counts`."""
    return t.numel() * t.element_size()


def _param_stats(module: nn.Module, recurse: bool) -> tuple[int, int, int]:
    """(elements, 32-bit words, bytes) of the module's parameters."""
    elems = nbytes = 0
    for p in module.parameters(recurse=recurse):
        elems += p.numel()
        nbytes += p.numel() * p.element_size()
    return elems, elems, nbytes


def select(binary, if_binary, if_not):
    """``if_binary`` if the input is binary, else ``if_not``, without a host sync.

    ``binary`` is what :meth:`CallContext.is_spike` returned: a bool gives back one of the two values
    unchanged; a 0-dim bool tensor (an accelerator's answer) gives a 0-dim tensor, float64 when both values
    are numbers (``torch.where``). The values are counts in whatever unit the caller stores (SOPs, MACs,
    elements).
    """
    if isinstance(binary, torch.Tensor):
        a = if_binary if isinstance(if_binary, torch.Tensor) else float(if_binary)
        b = if_not if isinstance(if_not, torch.Tensor) else float(if_not)
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            a = torch.tensor(a, dtype=torch.float64, device=binary.device)
        return torch.where(binary, a, b)
    return if_binary if binary else if_not


def base_counts(
    module: nn.Module, inputs: tuple, output, ctx: CallContext, sample_dims: int, recurse_params: bool = True
) -> tuple[Counts, torch.Tensor | None, torch.Tensor | None]:
    """Activation traffic, buffer sizes and weight reads common to every layer rule.

    ``sample_dims`` is the number of trailing dims of one sample at one time step
    (3 for a 2-D convolution's ``[C, H, W]``, 1 for a linear layer's features).
    Returns ``(counts, x, out)``: a :class:`Counts` with every input tensor read once and the output written
    once (32-bit words in ``act_reads`` / ``act_writes``, dtype bytes alongside), the module's parameters read
    once per time step (``weight_reads``, words; ``reuse="layer"``), and the buffer sizes (elements per sample
    and step); ``x`` is the first input tensor and ``out`` the first output tensor (either may be None).
    Operations (``macs``, ``sops``) are left at 0 for the rule to fill.
    """
    xs = tensors(inputs)
    out = first_tensor(output)
    c = Counts()
    x = xs[0] if xs else None
    for t in xs:
        c.act_reads += t.numel()
        c.act_read_bytes += tensor_bytes(t)
    if out is not None:
        c.act_writes = out.numel()
        c.act_write_bytes = tensor_bytes(out)
    elems, words, nbytes = ctx.param_stats(module, recurse_params)
    c.weight_buffer = elems
    steps = 1
    if x is not None:
        steps = ctx.steps(module, x, sample_dims)
        c.in_buffer = per_sample(x, sample_dims)
        c.in_call = x.numel()
        if out is not None:
            c.out_buffer = per_sample(out, sample_dims)
            c.out_call = out.numel()
            c.out_call_step = out.numel() // _call_steps(module, x)
        c.act_buffer = max(c.in_buffer, c.out_buffer)
    c.weight_reads = words * steps
    c.weight_read_bytes = nbytes * steps
    return c, x, out


def _call_steps(module: nn.Module, x: torch.Tensor) -> int:
    """T of one call as the module itself sees it: the leading dim of a multi-step call, else 1."""
    return int(x.shape[0]) if getattr(module, "step_mode", "s") == "m" and x.dim() >= 2 else 1


def record_spike_rate(c: Counts, x: torch.Tensor, binary, nnz) -> None:
    """Record the input spike rate in ``c`` (returns nothing): ``c.in_numel`` = elements of ``x``,
    ``c.in_nnz`` = ``nnz`` (non-zero elements, e.g. :meth:`CallContext.nnz`) where ``binary``, NaN where not
    (rates of real values mean little; the profiler reports NaN rates as missing)."""
    c.in_numel = x.numel()
    c.in_nnz = nnz if binary is True else select(binary, nnz, float("nan"))


def per_sample(t: torch.Tensor, sample_dims: int) -> int:
    """Elements of one sample at one time step: the product of ``t``'s ``sample_dims`` trailing dims (all of
    ``t`` when it has fewer dims, or for ``sample_dims`` 0). The unit of the ``*_buffer`` fields."""
    return math.prod(t.shape[-sample_dims:]) if t.dim() >= sample_dims and sample_dims > 0 else t.numel()


def no_reuse_weights(c: Counts, module: nn.Module, out: torch.Tensor | None) -> None:
    """For ``ctx.reuse == "none"``: replace ``c``'s weight reads (returns nothing) by one read per operation
    (``c.macs + c.sops``, so call it after filling them) plus one bias read per element of ``out`` when the
    module has a bias; ``weight_read_bytes`` at the module weight's element size (4 bytes without one)."""
    bias = getattr(module, "bias", None)
    per_op = c.macs + c.sops
    c.weight_reads = per_op + (out.numel() if (bias is not None and out is not None) else 0)
    w = getattr(module, "weight", None)
    size = w.element_size() if isinstance(w, torch.Tensor) else 4
    c.weight_read_bytes = c.weight_reads * size


# --------------------------------------------------------------------------- convolution


def conv_coverage(module: nn.Module, spatial: tuple[int, ...], device) -> torch.Tensor:
    """For a convolution ``module`` (1-, 2- or 3-D) and an input of spatial size ``spatial``: a float64
    tensor of shape ``spatial`` on ``device`` whose entry ``p`` is the number of output positions whose
    receptive field holds input position ``p`` (exact at the borders, for any padding mode, stride and
    dilation). SOPs of a spike input = sum of spikes x coverage x ``C_out / groups``. Cache it with
    ``ctx.cached(conv_key(...), ...)``: making one costs a backward pass."""
    nd = len(spatial)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    with torch.inference_mode(False), torch.enable_grad():
        x = torch.ones((1, 1) + spatial, dtype=torch.float64, device=device, requires_grad=True)
        k = torch.ones((1, 1) + tuple(module.kernel_size), dtype=torch.float64, device=device)
        if module.padding_mode != "zeros":
            xp = F.pad(x, module._reversed_padding_repeated_twice, mode=module.padding_mode)
            y = conv(xp, k, None, module.stride, 0, module.dilation, 1)
        else:
            y = conv(x, k, None, module.stride, module.padding, module.dilation, 1)
        (grad,) = torch.autograd.grad(y.sum(), x)
    return grad[0, 0].round()


def conv_key(module: nn.Module, spatial: tuple[int, ...], device) -> tuple:
    """The geometry a convolution's coverage map depends on: the key of :meth:`CallContext.cached` for
    :func:`conv_coverage` (kernel, stride, padding and its mode, dilation, input size, device)."""
    return (
        "conv",
        module.kernel_size,
        module.stride,
        module.padding,
        module.dilation,
        module.padding_mode,
        spatial,
        device,
    )


@register_rule(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def conv_rule(module: nn.Conv2d, inputs, output, ctx: CallContext) -> Counts:
    """Convolutions: SOPs by coverage on spikes (:func:`conv_coverage`), else output elements x fan-in MACs."""
    nd = len(module.kernel_size)
    c, x, out = base_counts(module, inputs, output, ctx, sample_dims=nd + 1)
    fan_in = (module.in_channels // module.groups) * math.prod(module.kernel_size)
    dense = out.numel() * fan_in
    binary = ctx.is_spike(x)
    c.binary_input = binary
    if binary is False:
        c.macs = dense
    else:
        spatial = tuple(x.shape[-nd:])
        cov = ctx.cached(conv_key(module, spatial, x.device), lambda: conv_coverage(module, spatial, x.device))
        # float32 sums of 0/1 are exact below 2**24 per pixel; the weighted sum runs in float64
        per_pixel = x.reshape((-1,) + spatial).sum(0, dtype=torch.float32).double()
        sops = (per_pixel * cov).sum() * (module.out_channels // module.groups)
        c.sops = select(binary, sops, 0)
        c.macs = select(binary, 0, dense)
        record_spike_rate(c, x, binary, per_pixel.sum())
    if ctx.reuse == "none":
        no_reuse_weights(c, module, out)
    return c


@register_rule(nn.Linear)
def linear_rule(module: nn.Linear, inputs, output, ctx: CallContext) -> Counts:
    """Linear layers: non-zero inputs x out_features SOPs on spikes, else output elements x in_features MACs."""
    c, x, out = base_counts(module, inputs, output, ctx, sample_dims=1)
    dense = out.numel() * module.in_features
    binary = ctx.is_spike(x)
    c.binary_input = binary
    if binary is False:
        c.macs = dense
    else:
        nnz = ctx.nnz(x)
        c.sops = select(binary, nnz * module.out_features, 0)
        c.macs = select(binary, 0, dense)
        record_spike_rate(c, x, binary, nnz)
    if ctx.reuse == "none":
        no_reuse_weights(c, module, out)
    return c


# --------------------------------------------------------------------------- pooling


def _pool_windows_1d(n_in: int, k: int, s: int, p: int, ceil_mode: bool) -> torch.Tensor:
    """How many pooling windows cover each of ``n_in`` positions (PyTorch's output-size rule)."""
    span = n_in + 2 * p - k
    n_out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (n_out - 1) * s >= n_in + p:
        n_out -= 1  # the last window must start inside the input or the left padding
    cov = torch.zeros(n_in, dtype=torch.float64)
    for i in range(n_out):
        lo, hi = max(i * s - p, 0), min(i * s - p + k, n_in)
        if lo < hi:
            cov[lo:hi] += 1
    return cov


def pool_coverage(module, spatial: tuple[int, ...], device) -> torch.Tensor:
    """For an average-pooling ``module`` (``kernel_size``, ``stride``, ``padding``, ``ceil_mode``) and an input
    of spatial size ``spatial``: a float64 tensor of shape ``spatial`` on ``device`` whose entry ``p`` is the
    number of pooling windows that hold input position ``p`` (PyTorch's output-size rule). Accumulates of a
    spike input = sum of spikes x coverage. Cache key: :func:`pool_key`."""
    nd = len(spatial)

    def per_dim(v):
        return (v,) * nd if isinstance(v, int) else tuple(v)

    ks, ss = per_dim(module.kernel_size), per_dim(module.stride or module.kernel_size)
    ps = per_dim(module.padding)
    axes = [_pool_windows_1d(n, k, s, p, module.ceil_mode) for n, k, s, p in zip(spatial, ks, ss, ps, strict=True)]
    grid = axes[0]
    for a in axes[1:]:
        grid = grid.unsqueeze(-1) * a
    return grid.to(device)


def adaptive_coverage(out_size, spatial: tuple[int, ...], device) -> torch.Tensor:
    """As :func:`pool_coverage`, for adaptive average pooling to ``out_size`` (an int, or one size per
    spatial dim with None for "unchanged"): windows holding each input position, float64 on ``device``."""
    nd = len(spatial)
    sizes = (out_size,) * nd if isinstance(out_size, int) else tuple(out_size)
    axes = []
    for n_in, n_out in zip(spatial, sizes, strict=True):
        n_out = n_in if n_out is None else n_out
        cov = torch.zeros(n_in, dtype=torch.float64)
        for i in range(n_out):
            lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
            cov[lo:hi] += 1
        axes.append(cov)
    grid = axes[0]
    for a in axes[1:]:
        grid = grid.unsqueeze(-1) * a
    return grid.to(device)


def spatial_dims(module) -> int:
    """Spatial dims of a 1-, 2- or 3-D layer, from the torch base class name (AvgPool2d -> 2), so subclasses
    work too; TypeError when no class in the MRO ends in ``<digit>d``."""
    for klass in type(module).__mro__:
        n = klass.__name__
        if n.endswith("d") and n[-2:-1].isdigit():
            return int(n[-2])
    raise TypeError(f"cannot tell the dimensionality of {type(module).__name__}")


def pool_key(module, spatial: tuple[int, ...], device) -> tuple:
    """The geometry a pooling layer's coverage map depends on (its repr leaves ``ceil_mode`` out): the key of
    :meth:`CallContext.cached` for :func:`pool_coverage` and :func:`adaptive_coverage`."""
    attrs = ("kernel_size", "stride", "padding", "ceil_mode", "output_size")
    return ("pool", type(module).__name__, *(repr(getattr(module, a, None)) for a in attrs), spatial, device)


def _avg_pool(module, inputs, output, ctx: CallContext, cov_fn) -> Counts:
    nd = spatial_dims(module)
    c, x, out = base_counts(module, inputs, output, ctx, sample_dims=nd + 1)
    spatial = tuple(x.shape[-nd:])
    cov = ctx.cached(pool_key(module, spatial, x.device), lambda: cov_fn(spatial, x.device))
    channels = x.numel() // math.prod(spatial)
    dense = cov.sum() * channels  # a 0-dim device tensor: no host sync
    binary = ctx.is_spike(x)
    c.binary_input = binary
    if binary is False:
        c.macs = dense
    else:
        per_pixel = x.reshape((-1,) + spatial).sum(0, dtype=torch.float32).double()
        c.sops = select(binary, (per_pixel * cov).sum(), 0)
        c.macs = select(binary, 0, dense)
        record_spike_rate(c, x, binary, per_pixel.sum())
    return c


@register_rule(nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def avg_pool_rule(module, inputs, output, ctx):
    """Average pooling: an accumulate per (input, window holding it); SOPs on spikes, else MACs."""
    return _avg_pool(module, inputs, output, ctx, lambda s, d: pool_coverage(module, s, d))


@register_rule(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
def adaptive_avg_pool_rule(module, inputs, output, ctx):
    """Adaptive average pooling, as :func:`avg_pool_rule` with the adaptive windows."""
    return _avg_pool(module, inputs, output, ctx, lambda s, d: adaptive_coverage(module.output_size, s, d))


# --------------------------------------------------------------------------- free and spike-preserving layers


def whole_sample(module, inputs) -> int:
    """The ``sample_dims`` for :func:`base_counts` of a shape-agnostic layer: the number of trailing dims of
    one sample and step of the first input tensor, i.e. all but the batch (and T for a multi-step call);
    at least 1, and 1 when there is no input tensor."""
    x = next((t for t in inputs if isinstance(t, torch.Tensor)), None)
    if x is None:
        return 1
    lead = 2 if getattr(module, "step_mode", "s") == "m" else 1
    return max(x.dim() - lead, 1)


def preserving_rule(module, inputs, output, ctx: CallContext) -> Counts:
    """Rule of a spike-preserving layer (max-pooling, flatten, identity, dropout): no arithmetic, memory
    only (:func:`base_counts`); when the input is known to be spikes the output is marked as spikes too and
    the input and output spike rates are recorded (not for dropout in training mode, which scales)."""
    c, x, out = base_counts(module, inputs, output, ctx, sample_dims=whole_sample(module, inputs))
    if x is not None:
        binary = ctx.is_spike(x)
        c.binary_input = binary
        scales = getattr(module, "training", False) and getattr(module, "p", 0) > 0  # dropout in train mode
        if binary is True and out is not None and not scales:
            ctx.mark_spike(out)
            record_spike_rate(c, x, True, ctx.nnz(x))
            c.out_numel, c.out_nnz = out.numel(), ctx.nnz(out)
    return c


register_rule(
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
)(preserving_rule)


def elementwise_free_rule(module, inputs, output, ctx: CallContext) -> Counts:
    """Rule of an activation function: no operations (as in the paper's accounting), memory only
    (:func:`base_counts`)."""
    c, x, _ = base_counts(module, inputs, output, ctx, sample_dims=whole_sample(module, inputs))
    return c


register_rule(
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.ELU,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Mish,
    nn.Softplus,
)(elementwise_free_rule)


# --------------------------------------------------------------------------- normalisation


@register_rule(nn.modules.batchnorm._BatchNorm)
def batch_norm_rule(module, inputs, output, ctx):
    """BatchNorm (inference: folded scale and shift): one MAC per output element."""
    # BatchNorm1d/2d/3d and spikingjelly's threshold-dependent variants: [C], [C, H, W], [C, D, H, W]
    try:
        nd = {1: 1, 2: 3, 3: 4}[spatial_dims(module)]
    except (TypeError, KeyError):
        nd = 1
    c, x, out = base_counts(module, inputs, output, ctx, sample_dims=nd)
    c.macs = out.numel()
    if ctx.reuse == "none" and getattr(module, "weight", None) is not None:
        no_reuse_weights(c, module, out)
    return c


@register_rule(nn.LayerNorm, nn.GroupNorm)
def layer_norm_rule(module, inputs, output, ctx):
    """LayerNorm / GroupNorm: three MACs per output element (mean, variance, affine)."""
    c, x, out = base_counts(module, inputs, output, ctx, sample_dims=1)
    c.macs = 3 * out.numel()
    return c


@register_rule(nn.Softmax, nn.LogSoftmax)
def softmax_rule(module, inputs, output, ctx):
    """Softmax / LogSoftmax: three MACs per output element (exp, sum, divide)."""
    c, x, out = base_counts(module, inputs, output, ctx, sample_dims=1)
    c.macs = 3 * out.numel()
    return c


@register_rule(nn.Embedding)
def embedding_rule(module, inputs, output, ctx):
    """Embedding lookups: no operations; one weight read per output element (the rows used)."""
    c, x, out = base_counts(module, inputs, output, ctx, sample_dims=1)
    # a lookup: reads one row per token, not the whole table
    c.weight_reads = out.numel()
    c.weight_read_bytes = out.numel() * module.weight.element_size()
    return c


# --------------------------------------------------------------------------- attention


@register_rule(nn.MultiheadAttention)
def mha_rule(module: nn.MultiheadAttention, inputs, output, ctx: CallContext) -> Counts:
    """Multi-head attention: the Q/K/V projections (SOPs for spike inputs), Q.K^T, softmax, A.V and the output
    projection."""
    xs = tensors(inputs)
    q, k = xs[0], xs[1] if len(xs) > 1 else xs[0]
    v = xs[2] if len(xs) > 2 else k
    c, _, out = base_counts(module, (q, k, v), output, ctx, sample_dims=1)
    e, h = module.embed_dim, module.num_heads
    if q.dim() == 2:  # unbatched [L, E], whatever batch_first says
        n, lq, ls = 1, q.shape[0], k.shape[0]
    elif module.batch_first:
        n, lq, ls = q.shape[0], q.shape[1], k.shape[1]
    else:
        lq, n, ls = q.shape[0], q.shape[1], k.shape[0]
    kdim, vdim = module.kdim, module.vdim
    dh = e // h
    sops = macs = 0
    for t, width in ((q, e), (k, kdim), (v, vdim)):
        dense = t.numel() // width * e * width
        binary = ctx.is_spike(t)
        if binary is False:
            macs = macs + dense
        else:
            sops = sops + select(binary, ctx.nnz(t) * e, 0)
            macs = macs + select(binary, 0, dense)
    scores = n * h * lq * ls * dh  # Q K^T
    mix = n * h * lq * ls * dh  # A V
    softmax = 3 * n * h * lq * ls
    out_proj = n * lq * e * e
    c.macs = macs + scores + mix + softmax + out_proj
    c.sops = sops
    if ctx.reuse == "none":  # only the projections read weights; Q.K^T, A.V and softmax do not
        biased = module.in_proj_bias is not None
        c.weight_reads = macs + sops + out_proj + (n * (lq + 2 * ls) * e + n * lq * e if biased else 0)
        c.weight_read_bytes = c.weight_reads * 4
    return c


# --------------------------------------------------------------------------- neurons


def neuron_counts(
    module: nn.Module,
    x: torch.Tensor,
    spikes: torch.Tensor | None,
    ctx: CallContext,
    state_tensors: int = 1,
    recurse: bool = True,
) -> Counts:
    """The counts of a stateful spiking neuron's call (a neuron rule returns them, usually as they are).

    ``x`` is the input (``[T, B, ...]`` for a multi-step module, else ``[B, ...]``), ``spikes`` the output.
    One neuron update per element of ``x`` (per neuron and step); each update reads and writes
    ``state_tensors`` 32-bit words of state (1: a membrane; 2: e.g. synaptic current and membrane; 0: a
    stateless unit); the input is read and the output written once; the module's parameters (``recurse``:
    with its children's) are read once per step. Records the output spike rate and marks ``spikes`` as
    spikes unless the neuron is known to emit analog or scaled values (LIAF, non-spiking surrogates, graded
    spikes). Buffer sizes are elements per sample and step.
    """
    c = Counts()
    n = x.numel()
    c.neuron_updates = n
    c.state_reads = n * state_tensors
    c.state_writes = n * state_tensors
    c.state_bytes = 2 * n * state_tensors * x.element_size()
    c.act_reads = n
    c.act_read_bytes = tensor_bytes(x)
    c.binary_input = ctx.is_spike(x) if ctx.known_spike(x) else False
    elems, words, nbytes = ctx.param_stats(module, recurse)
    multi = getattr(module, "step_mode", "s") == "m" and x.dim() >= 2
    steps = int(x.shape[0]) if multi else 1
    c.weight_reads = words * steps  # learnable time constants or thresholds, if any
    c.weight_read_bytes = nbytes * steps
    c.weight_buffer = elems
    step_shape = x.shape[1:] if multi else x.shape
    sample_step = math.prod(step_shape[1:]) if len(step_shape) > 1 else math.prod(step_shape)
    c.state_buffer = sample_step * state_tensors
    c.act_buffer = c.in_buffer = c.out_buffer = sample_step
    c.in_call = n
    c.out_call = n
    c.out_call_step = n // steps
    if spikes is not None:
        c.act_writes = spikes.numel()
        c.act_write_bytes = tensor_bytes(spikes)
        c.out_numel = spikes.numel()
        c.out_nnz = ctx.nnz(spikes)
        if _emits_binary(module):
            ctx.mark_spike(spikes)  # otherwise the next layer decides from the values, on the device
    return c


def _emits_binary(module) -> bool:
    """False for neurons known to emit analog or scaled values (LIAF, non-spiking surrogates, graded spikes)."""
    if any(k.__name__ == "LIAFNode" for k in type(module).__mro__):
        return False
    if getattr(getattr(module, "surrogate_function", None), "spiking", True) is False:
        return False
    return getattr(module, "graded_spikes_factor", 1.0) == 1.0


def _spikingjelly_neuron(module, inputs, output, ctx):
    return neuron_counts(module, inputs[0], first_tensor(output), ctx)


def _snntorch_neuron(module, inputs, output, ctx):
    # Leaky(x, mem) -> (spk, mem); Synaptic keeps two state tensors (syn, mem)
    names = {k.__name__ for k in type(module).__mro__}
    states = 2 if names & {"Synaptic", "RSynaptic", "Alpha"} else 1
    # children (RLeaky/RSynaptic recurrent layers, SConv2dLSTM's conv) are hooked on their own
    return neuron_counts(module, inputs[0], first_tensor(output), ctx, state_tensors=states, recurse=False)


def _register_library_neurons() -> None:
    try:
        from spikingjelly.activation_based import layer as sj_layer
        from spikingjelly.activation_based.neuron import BaseNode

        register_rule(BaseNode, spiking=True)(_spikingjelly_neuron)
        register_rule(sj_layer.Dropout, sj_layer.Dropout2d)(preserving_rule)
        from spikingjelly.activation_based.layer.attention import SpikingSelfAttention

        @register_rule(SpikingSelfAttention, covers_children=False)
        def ssa_rule(module, inputs, output, ctx):
            # the inline V.K^T and (V.K^T).Q products; the conv/BN/LIF children are hooked themselves
            t, n, ch, length = inputs[0].shape
            return Counts(macs=2 * t * n * ch * (ch // module.num_heads) * length)
    except ImportError:  # pragma: no cover - spikingjelly is a dependency
        pass
    try:
        from snntorch._neurons.neurons import SpikingNeuron

        register_rule(SpikingNeuron, spiking=True, covers_children=False)(_snntorch_neuron)
    except ImportError:  # pragma: no cover - snntorch is a dependency
        pass


_register_library_neurons()


__all__ = [
    "CONVENTIONS",
    "RULES",
    "CallContext",
    "Rule",
    "RuleEntry",
    "adaptive_avg_pool_rule",
    "adaptive_coverage",
    "avg_pool_rule",
    "base_counts",
    "batch_norm_rule",
    "conv_coverage",
    "conv_key",
    "conv_rule",
    "elementwise_free_rule",
    "embedding_rule",
    "find_rule",
    "first_tensor",
    "layer_norm_rule",
    "linear_rule",
    "mha_rule",
    "neuron_counts",
    "no_reuse_weights",
    "per_sample",
    "pool_coverage",
    "pool_key",
    "preserving_rule",
    "record_spike_rate",
    "register_rule",
    "select",
    "softmax_rule",
    "spatial_dims",
    "tensor_bytes",
    "tensors",
    "whole_sample",
]

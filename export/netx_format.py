"""lava-dl netx HDF5 (``.net``) files: read, check and write.

The layout (``lava-dl`` ``netx/hdf5.py`` and slayer's ``export_hdf5``, as
summarised in ``docs/lava.md``): a group ``layer`` with subgroups ``"0"``,
``"1"``, ... in order; each has a ``type`` (``input``, ``conv``, ``dense``,
``flatten``), a neuron ``shape`` in slayer order (C, H, W), integer-valued float
``weight``/``bias`` for synaptic layers (conv weights in torch's
``(out, in/groups, kH, kW)`` cross-correlation layout), ``stride``/``padding``/
``dilation``/``groups`` for convolutions, and a ``neuron`` group with the Loihi
CUBA-LIF parameters ``iDecay``, ``vDecay`` (units of 1/4096) and ``vThMant``.

:func:`read_netx` returns a :class:`NetxNet` of :class:`NetxLayer` records and
refuses, with one :class:`~spklip_energy.errors.ConfigError` line, anything this
project cannot simulate bit-exactly (a file that is not HDF5 or not netx, an
unsupported layer type or neuron, inconsistent shapes). Before it reads any
data it checks, from the declared shapes and dtypes alone, that every dataset it
would read (the ``layer`` and ``simulation`` groups) fits the memory limit, one
by one and summed (:func:`spklip_energy.limits.check_memory`); it refuses
external and soft links, datasets whose data lives outside the file (HDF5
external storage, virtual datasets) and integer fields beyond 32 bits, so a
small file can neither make it allocate terabytes nor read another file.
Scalar fields (``type``, the neuron's ``iDecay``/``vDecay``/``vThMant``/
``messageBits``, ``groups``, the input's ``weight``/``bias``, ``simulation``
values) must hold exactly one value. Whatever h5py raises on a damaged file,
wherever it meets the damage, becomes one line: ``FILE: corrupt HDF5 file (...)``;
only h5py's calls are guarded so (the file is walked once, into plain records, and
checked from those). Errors of the file system (permissions, a file that went
away) stay ``OSError`` naming the file, for the caller (the CLI) to report.
:func:`write_netx` writes such records atomically (temporary file, then rename).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spklip_energy.errors import ConfigError, first_line, short_repr
from spklip_energy.limits import check_memory

from .loihi_fixed import DECAY_UNIT, VTH_MAX, WEIGHT_RANGE

#: netx layer types this project reads, simulates and writes.
LAYER_TYPES = ("input", "conv", "dense", "flatten")
#: netx layer types that netx itself refuses (pooling and friends): named in the error.
NETX_UNSUPPORTED = ("pool", "convT", "unpool", "average", "concat")
#: neuron types netx maps to Loihi's CUBA-LIF.
CUBA_TYPES = ("CUBA", "LOIHI")
#: dense weights netx keeps losslessly; outside, its weight optimisation clips them (and warns)
DENSE_RANGE = WEIGHT_RANGE
#: the default integrator netx gives a dense layer without a neuron group (vThMant = 1 << 18 - 1 = 1 << 17).
DEFAULT_INTEGRATOR = {"i_decay": 0, "v_decay": DECAY_UNIT, "v_th_mant": VTH_MAX + 1}
#: integer fields (weights, biases, shapes) beyond this magnitude are refused: Loihi's registers are at most
#: 24 bits wide, and the engine's int64 arithmetic (shifts by 6, sums of products) stays exact below it.
INT_LIMIT = 1 << 31
#: groups read below the file's root, and how deep (``layer/<i>/neuron/<field>`` is 3 below ``layer``).
READ_GROUPS = {"layer": 3, "simulation": 1}
#: bytes one value of a dataset costs once read: its own bytes, plus float64 and int64 copies of it.
COPY_BYTES = 16
#: what every HDF5 file starts with, at offset 0 or after a user block of 512, 1024, 2048, ... bytes
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass
class NetxNeuron:
    """Loihi CUBA-LIF parameters as stored in netx (decays in 1/4096, threshold mantissa)."""

    i_decay: int
    v_decay: int
    v_th_mant: int
    type: str = "CUBA"

    def check(self, where: str) -> None:
        for name, value, hi in (
            ("iDecay", self.i_decay, DECAY_UNIT),
            ("vDecay", self.v_decay, DECAY_UNIT),
            ("vThMant", self.v_th_mant, VTH_MAX if self.type != "default" else VTH_MAX + 1),
        ):
            if not 0 <= value <= hi:
                raise ConfigError(f"{where}: neuron {name}={value} is outside Loihi's range 0..{hi}")


@dataclass
class NetxLayer:
    """One netx layer: ``shape`` is the neuron shape in (C, H, W) order (dense: (N, 1, 1))."""

    type: str
    shape: tuple[int, ...]
    neuron: NetxNeuron | None = None
    weight: np.ndarray | None = None  # int64: conv (out, in/groups, kH, kW); dense (out, in)
    bias: np.ndarray | None = None  # int64 bias mantissa: per channel (conv) or per neuron (dense)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    extra: dict = field(default_factory=dict)  # informative keys kept on write (e.g. input weight/bias)

    @property
    def neurons(self) -> int:
        return math.prod(self.shape) if self.type != "flatten" else 0

    @property
    def synaptic(self) -> bool:
        return self.type in ("conv", "dense")


@dataclass
class NetxNet:
    """A chain of netx layers (``layers[0]`` may be the input layer)."""

    layers: list[NetxLayer]
    path: str = ""
    attrs: dict = field(default_factory=dict)  # the optional ``simulation`` group and similar

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) of the data the first layer receives."""
        return self.layers[0].shape  # check_chain requires layer 0 to be the input layer

    def warnings(self) -> list[str]:
        return [
            f"layer {i}: {lay.extra['clipped_weights']} dense weights outside [{DENSE_RANGE[0]}, {DENSE_RANGE[1]}] clipped, as netx does"
            for i, lay in enumerate(self.layers)
            if lay.extra.get("clipped_weights")
        ]

    def describe(self) -> list[dict]:
        return [
            {
                "index": i,
                "type": lay.type,
                "shape": list(lay.shape),
                "neurons": lay.neurons,
                **(
                    {"vThMant": lay.neuron.v_th_mant, "iDecay": lay.neuron.i_decay, "vDecay": lay.neuron.v_decay}
                    if lay.neuron
                    else {}
                ),
            }
            for i, lay in enumerate(self.layers)
        ]


@dataclass
class _Dataset:
    """A dataset of an open file, as :func:`_walk` found it: its header (read then), its values on demand."""

    name: str  # its path in the file, for messages
    shape: tuple[int, ...] | None  # None for an empty (null dataspace) dataset
    dtype: np.dtype
    node: Any  # the h5py dataset
    file: Path

    def values(self) -> Any:
        """``dataset[()]``: what h5py reads (an array, a scalar, bytes, ``h5py.Empty``)."""
        with _h5py_errors(self.file, f"reading {self.name}"):
            return self.node[()]


#: a group of the file as :func:`_walk` found it: names to datasets and groups (an empty dict for a group
#: below the depth this reader looks into)
_Group = dict


def _numbers(ds: _Dataset | _Group, where: str, key: str) -> np.ndarray:
    """The values of a numeric dataset as float64: integers or real floats only (booleans, complex numbers,
    text and compound records are refused, not cast)."""
    if not isinstance(ds, _Dataset):
        raise ConfigError(f"{where}: {key} must be a dataset of numbers, found a group")
    if ds.dtype.kind not in "iuf":
        raise ConfigError(f"{where}: {key} must hold integers or real numbers, found {_shown(ds.dtype)} values")
    if ds.shape is None:
        raise ConfigError(f"{where}: {key} must hold numbers, found an empty dataset")
    return np.asarray(ds.values(), dtype=np.float64)


def _pair(ds: _Dataset | _Group, where: str, key: str, low: int) -> tuple[int, int]:
    f = _numbers(ds, where, key).reshape(-1)
    if not np.all(np.isfinite(f)) or np.any(f != np.trunc(f)) or (f.size and np.abs(f).max() > INT_LIMIT):
        raise ConfigError(f"{where}: {key} must hold integers within +-2**31, found {f.tolist()[:4]}")
    a = f.astype(np.int64)
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.size != 2:
        raise ConfigError(f"{where}: {key} must be a scalar or a pair, found {a.size} values")
    if a.min() < low:
        raise ConfigError(f"{where}: {key} {a.tolist()} must be at least {low}")
    return int(a[0]), int(a[1])


def _scalar(ds: _Dataset | _Group, where: str, key: str) -> object:
    """The one value of a scalar field: a dataset of exactly one value (shape ``()``, ``(1,)``, ...), else
    ConfigError naming ``where`` and ``key``; bytes come back as text."""
    if not isinstance(ds, _Dataset):
        raise ConfigError(f"{where}: {key} must be a dataset holding one value, found a group")
    if ds.shape is None or math.prod(ds.shape) != 1:
        found = "an empty dataset" if ds.shape is None else f"{math.prod(ds.shape)} values of shape {_dims(ds.shape)}"
        raise ConfigError(f"{where}: {key} must be a scalar (one value), found {found}")
    v = ds.values()
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0]
    if isinstance(v, bytes):
        v = v.decode("ascii", "replace")
    return v


def _integer_array(ds: _Dataset | _Group, where: str, key: str) -> np.ndarray:
    a = _numbers(ds, where, key)
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{where}: {key} holds non-finite values")
    if np.any(a != np.trunc(a)):
        raise ConfigError(f"{where}: {key} holds non-integer values (netx truncates them; write integers)")
    if a.size and np.abs(a).max() > INT_LIMIT:
        raise ConfigError(f"{where}: {key} holds values beyond +-2**31 (max |value| {np.abs(a).max():g})")
    return a.astype(np.int64)


def _number(value, where: str, key: str, kind: str = "a number") -> float:
    """A finite real number (ConfigError for NaN, Inf, text, a boolean or a complex number)."""
    if isinstance(value, (bool, np.bool_, complex, np.complexfloating, np.void)):
        raise ConfigError(f"{where}: {key} must be {kind}, found {short_repr(value)}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {key} must be {kind}, found {short_repr(value)}") from None
    if not math.isfinite(f):
        raise ConfigError(
            f"{where}: {key} must be {'a finite number' if kind == 'a number' else kind + ' within +-2**31'}"
            f", found {short_repr(value)}"
        )
    return f


def _int(value, where: str, key: str) -> int:
    """A scalar field as an int within +-2**31."""
    f = _number(value, where, key, "an integer")
    if f != int(f) or abs(f) > INT_LIMIT:
        raise ConfigError(f"{where}: {key} must be an integer within +-2**31, found {short_repr(value)}")
    return int(f)


def _int_field(ds: _Dataset | _Group, where: str, key: str) -> int:
    """A scalar integer field (one value, an integer within +-2**31)."""
    return _int(_scalar(ds, where, key), where, key)


def _float_field(ds: _Dataset | _Group, where: str, key: str) -> float:
    """A scalar number field (one finite value)."""
    return _number(_scalar(ds, where, key), where, key)


def _dataset_bytes(ds: _Dataset, chunks: tuple[int, ...] | None) -> tuple[int, str]:
    """(bytes reading ``ds`` may take, its declared shape and dtype in words), from its header only."""
    size = math.prod(ds.shape) if ds.shape is not None else 0
    item = int(ds.dtype.itemsize)
    chunk = math.prod(chunks) * item if chunks else 0  # a compressed chunk is inflated whole
    return size * (item + COPY_BYTES) + chunk, f"declared shape {_dims(ds.shape or ())} of {ds.dtype}"


def _shown(text: str) -> str:
    """A name from the file as it can be shown on one line (``repr`` when it holds odd characters)."""
    text = str(text)
    return text if text.isprintable() and len(text) <= 200 else repr(text[:200])


def _dims(shape) -> str:
    """A shape for a message: ``[4, 8, 8]``, or its first values and its length when it is long."""
    shape = list(shape)
    return str(shape) if len(shape) <= 6 else f"[{', '.join(map(str, shape[:6]))}, ... ({len(shape)} values)]"


#: what h5py raises while reading a damaged file (HDF5's error stack becomes one of these, wherever the
#: damage is met: opening, iterating a group, resolving a link, reading a dataset). Caught around h5py's
#: calls only (:func:`_h5py_errors`): the same types raised by this module's own code are bugs, not files.
H5PY_ERRORS = (RuntimeError, OSError, KeyError, ValueError, TypeError, IndexError, AttributeError, OverflowError)
#: of those, the ones HDF5 raises for a damaged structure (and names that are not UTF-8); the others say a
#: value is not what h5py can read.
CORRUPT_ERRORS = (RuntimeError, OSError, KeyError, UnicodeError)


@contextlib.contextmanager
def _h5py_errors(path: Path, doing: str = "") -> Iterator[None]:
    """Turn what h5py raises inside the block into one line naming ``path`` (``FILE: corrupt HDF5 file
    (...)``, or ``malformed netx file`` for a value h5py cannot read). An ``OSError`` with an ``errno`` is
    the file system's (permissions, a file that went away, a folder, I/O): it stays an ``OSError``, naming
    the file, for the caller to report as such."""
    try:
        yield
    except H5PY_ERRORS as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from None
        why = first_line(exc)
        detail = _shown(f"{doing}: {why}" if doing else why)
        if isinstance(exc, CORRUPT_ERRORS):
            raise ConfigError(f"{path}: corrupt HDF5 file ({detail})") from None
        raise ConfigError(f"{path}: malformed netx file ({detail})") from None


def _is_hdf5(path: Path) -> bool:
    """Whether ``path`` holds the HDF5 signature where the format puts it (offset 0, 512, 1024, ...). Read
    with Python: an unreadable file is an ``OSError`` naming it."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        offset = 0
        while offset + len(HDF5_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else 2 * offset
    return False


def _walk(h, path: Path) -> _Group:
    """The groups of :data:`READ_GROUPS` of the open file ``h``, walked once into plain records (nothing
    is read but names, links and dataset headers), after refusing what would make reading them unsafe.

    Refused: external links, soft links, external storage, virtual datasets (their data lives elsewhere:
    another file, a device), and datasets whose declared shapes and dtypes need more memory than the limit,
    one by one and summed (:func:`spklip_energy.limits.check_memory`).
    """
    import h5py

    total = count = 0

    def visit(group, depth: int) -> _Group:
        nonlocal total, count
        out: _Group = {}
        with _h5py_errors(path):
            prefix, names = group.name.rstrip("/"), list(group)  # link names: nothing is resolved yet
        for name in names:
            obj_path = _shown(f"{prefix}/{name}")
            with _h5py_errors(path):
                link = group.get(name, getlink=True)
                obj = group.get(name) if isinstance(link, h5py.HardLink) else None
                if isinstance(obj, h5py.Dataset):
                    header = obj.shape, obj.dtype, obj.chunks, obj.is_virtual, obj.external
                    target = ""
                else:
                    target = f"{_shown(link.filename)}:" if isinstance(link, h5py.ExternalLink) else ""
                    target += _shown(link.path) if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)) else ""
            if link is None:  # listed by the group, yet not there
                raise ConfigError(f"{path}: corrupt HDF5 file ({obj_path} is listed but cannot be found)")
            if isinstance(link, h5py.ExternalLink):
                raise ConfigError(
                    f"{path}: {obj_path} is an external link to {target}; a netx file must hold its own data"
                )
            if isinstance(link, h5py.SoftLink):
                raise ConfigError(
                    f"{path}: {obj_path} is a soft link to {target}; a netx file holds plain groups and datasets"
                )
            if not isinstance(link, h5py.HardLink):
                raise ConfigError(
                    f"{path}: {obj_path} is a {type(link).__name__}; a netx file holds plain groups and datasets"
                )
            if isinstance(obj, h5py.Dataset):
                shape, dtype, chunks, virtual, external = header
                if virtual:
                    raise ConfigError(
                        f"{path}: {obj_path} is a virtual dataset (its data lives in other files); "
                        "a netx file must hold its own data"
                    )
                if external:
                    raise ConfigError(
                        f"{path}: {obj_path} keeps its data in the external file "
                        f"{_shown(external[0][0])}; a netx file must hold its own data"
                    )
                ds = _Dataset(obj_path, shape, dtype, obj, path)
                nbytes, declared = _dataset_bytes(ds, chunks)
                check_memory(nbytes, f"reading {path}: {obj_path}", declared)
                total += nbytes
                count += 1
                out[name] = ds
            elif isinstance(obj, h5py.Group):
                out[name] = visit(obj, depth - 1) if depth > 1 else {}
        return out

    tree: _Group = {}
    for name, depth in READ_GROUPS.items():
        with _h5py_errors(path):
            link = h.get(name, getlink=True)
            obj = h.get(name) if isinstance(link, h5py.HardLink) else None
        if link is None:
            continue
        if not isinstance(link, h5py.HardLink):
            raise ConfigError(
                f"{path}: /{name} is a {type(link).__name__}; a netx file holds plain groups and datasets"
            )
        if isinstance(obj, h5py.Group):
            tree[name] = visit(obj, depth)
        elif isinstance(obj, h5py.Dataset):
            with _h5py_errors(path):
                header = obj.shape, obj.dtype
            tree[name] = _Dataset(f"/{name}", *header, obj, path)  # not a group: refused by the reader
    check_memory(
        total,
        f"reading {path}",
        f"the declared shapes of its {count} datasets under {' and '.join('/' + g for g in READ_GROUPS)}, summed",
    )
    return tree


def _read_neuron(g: _Group, where: str) -> NetxNeuron:
    n = g["neuron"]
    if not isinstance(n, dict):
        raise ConfigError(f"{where}: 'neuron' is not a group")
    ntype = str(_scalar(n["type"], where, "neuron type")) if "type" in n else "CUBA"
    if ntype not in CUBA_TYPES:
        raise ConfigError(
            f"{where}: neuron type {short_repr(ntype)} is not a CUBA-LIF ({'/'.join(CUBA_TYPES)}); "
            "the fixed-point reference simulates only CUBA-LIF"
        )
    missing = [k for k in ("iDecay", "vDecay", "vThMant") if k not in n]
    if missing:
        raise ConfigError(f"{where}: neuron group lacks {', '.join(missing)}")
    if "messageBits" in n and _int_field(n["messageBits"], where, "neuron messageBits") != 0:
        raise ConfigError(f"{where}: graded spikes (messageBits > 0) are not supported")
    neuron = NetxNeuron(*(_int_field(n[k], where, f"neuron {k}") for k in ("iDecay", "vDecay", "vThMant")), ntype)
    neuron.check(where)
    return neuron


def read_netx(path: str | os.PathLike) -> NetxNet:
    """Read and check a netx ``.net`` file (see the module docstring)."""
    import h5py

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a netx file")
    if not path.is_file():
        raise ConfigError(f"{path}: no such netx file")
    if not _is_hdf5(path):
        raise ConfigError(f"{path}: not a netx network (not an HDF5 file)")
    with _h5py_errors(path):
        h = h5py.File(path, "r")
    try:
        layers, attrs = _read_file(_walk(h, path), path)
    except BaseException:
        with contextlib.suppress(*H5PY_ERRORS):
            h.close()
        raise
    with _h5py_errors(path):
        h.close()
    net = NetxNet(layers, str(path), attrs)
    check_chain(net)
    return net


def _read_file(tree: _Group, path: Path) -> tuple[list[NetxLayer], dict]:
    """The layers and the ``simulation`` values of a file walked by :func:`_walk`."""
    group = tree.get("layer")
    if not isinstance(group, dict) or not group:
        raise ConfigError(f"{path}: not a netx network (no 'layer' group with layers '0', '1', ...)")
    keys = list(group)
    if not all(k.isascii() and k.isdigit() for k in keys) or sorted(int(k) for k in keys) != list(range(len(keys))):
        shown = [_shown(k) for k in sorted(keys)[:8]]
        raise ConfigError(
            f"{path}: layer names must be 0..{len(keys) - 1}, found {shown}"
            + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
        )
    layers = [_read_layer(group[str(i)], i, f"{path}: layer {i}") for i in range(len(keys))]
    attrs = {}
    if isinstance(tree.get("simulation"), dict):
        attrs = {
            k: _scalar(v, f"{path}: simulation", _shown(k))
            for k, v in tree["simulation"].items()
            if isinstance(v, _Dataset)
        }
    return layers, attrs


def _read_layer(g: _Group | _Dataset, i: int, where: str) -> NetxLayer:
    """One ``layer/i`` group (raises ConfigError for anything this project cannot simulate)."""
    if not isinstance(g, dict):
        raise ConfigError(f"{where}: is not a group")
    if "type" not in g or "shape" not in g:
        raise ConfigError(f"{where}: lacks 'type' or 'shape'")
    ltype = str(_scalar(g["type"], where, "type"))
    if ltype in NETX_UNSUPPORTED:
        raise ConfigError(f"{where}: layer type {short_repr(ltype)} is not supported by netx")
    if ltype not in LAYER_TYPES:
        raise ConfigError(
            f"{where}: layer type {short_repr(ltype)} is not simulated here (supported: {', '.join(LAYER_TYPES)})"
        )
    shape = tuple(int(s) for s in _integer_array(g["shape"], where, "shape").reshape(-1))
    if not 1 <= len(shape) <= 3 or (ltype in ("input", "conv") and len(shape) != 3):
        article = "an" if ltype == "input" else "a"
        raise ConfigError(
            f"{where}: {article} {ltype} layer's shape must be "
            f"{'(C, H, W)' if ltype in ('input', 'conv') else '1 to 3 sizes'}, found {_dims(shape)}"
        )
    if ltype == "dense":
        shape = (math.prod(shape), 1, 1)
    if any(s < 1 for s in shape):
        raise ConfigError(f"{where}: shape {_dims(shape)} has a non-positive size")
    lay = NetxLayer(ltype, shape)
    if "neuron" in g:
        lay.neuron = _read_neuron(g, where)
    elif ltype == "dense":
        lay.neuron = NetxNeuron(**DEFAULT_INTEGRATOR, type="default")
    elif ltype in ("conv", "input") and i > 0:
        raise ConfigError(f"{where}: {ltype} layer has no neuron group")
    if ltype in ("conv", "dense"):
        if "weight" not in g:
            raise ConfigError(f"{where}: {ltype} layer has no weight")
        w = _integer_array(g["weight"], where, "weight")
        if ltype == "conv":
            if w.ndim == 5 and w.shape[-1] == 1:
                w = w[..., 0]
            if w.ndim != 4:
                raise ConfigError(f"{where}: conv weight must be (out, in, kH, kW), found {_dims(w.shape)}")
            lay.stride = _pair(g["stride"], where, "stride", 1) if "stride" in g else (1, 1)
            lay.padding = _pair(g["padding"], where, "padding", 0) if "padding" in g else (0, 0)
            lay.dilation = _pair(g["dilation"], where, "dilation", 1) if "dilation" in g else (1, 1)
            lay.groups = _int_field(g["groups"], where, "groups") if "groups" in g else 1
            if lay.groups < 1:
                raise ConfigError(f"{where}: groups={lay.groups} must be at least 1")
        else:
            if w.ndim == 1:  # netx reshapes a 1-D dense weight to (out, -1)
                if w.size % shape[0]:
                    raise ConfigError(f"{where}: a 1-D weight of {w.size} values does not split into {shape[0]} rows")
                w = w.reshape(shape[0], -1)
            if w.ndim != 2:
                raise ConfigError(f"{where}: dense weight must be (out, in), found {_dims(w.shape)}")
            clipped = int(((w < DENSE_RANGE[0]) | (w > DENSE_RANGE[1])).sum())
            if clipped:  # netx's optimize_weight_bits clips 8-bit-plus-sign weights, with a warning
                w = np.clip(w, *DENSE_RANGE)
                lay.extra["clipped_weights"] = clipped
        lay.weight = w
        if "bias" in g:
            b = _integer_array(g["bias"], where, "bias").reshape(-1)
            want = shape[0]
            if b.size == 1 and want != 1:
                b = np.full(want, b[0])
            if b.size != want:
                raise ConfigError(
                    f"{where}: bias has {b.size} values for {want} {'channels' if ltype == 'conv' else 'neurons'}"
                )
            lay.bias = b
    elif ltype == "input":
        lay.extra = {k: _float_field(g[k], where, k) for k in ("weight", "bias") if k in g}
    return lay


def _conv_out(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def check_chain(net: NetxNet) -> None:
    """Check that consecutive layers fit (sizes, channels) and that the chain is one this project runs."""
    name = net.path or "network"
    if net.layers[0].type != "input":
        raise ConfigError(f"{name}: layer 0 must be an input layer (found {net.layers[0].type!r})")
    if net.layers[0].neuron is None:
        raise ConfigError(f"{name}: the input layer has no neuron group")
    prev = net.layers[0].shape
    for i, lay in enumerate(net.layers[1:], start=1):
        where = f"{name}: layer {i} ({lay.type})"
        if lay.type == "input":
            raise ConfigError(f"{where}: an input layer may only come first")
        if lay.type == "flatten":
            if math.prod(lay.shape) != math.prod(prev):
                raise ConfigError(f"{where}: flattens {math.prod(prev)} values into shape {_dims(lay.shape)}")
            prev = (math.prod(prev), 1, 1)
            continue
        if lay.type == "conv":
            if len(prev) != 3:
                raise ConfigError(f"{where}: needs a (C, H, W) input, found {_dims(prev)}")
            w = lay.weight
            if w.shape[1] * lay.groups != prev[0] or w.shape[0] != lay.shape[0] or w.shape[0] % lay.groups:
                raise ConfigError(
                    f"{where}: weight {_dims(w.shape)} with groups {lay.groups} does not map "
                    f"{prev[0]} input channels to {lay.shape[0]}"
                )
            hw = tuple(
                _conv_out(prev[1 + a], w.shape[2 + a], lay.stride[a], lay.padding[a], lay.dilation[a]) for a in range(2)
            )
            if tuple(lay.shape[1:]) != hw:
                raise ConfigError(
                    f"{where}: shape {_dims(lay.shape)} but the convolution of {_dims(prev)} "
                    f"gives {[lay.shape[0], *hw]}"
                )
        elif lay.type == "dense":
            if lay.weight.shape != (lay.shape[0], math.prod(prev)):
                raise ConfigError(
                    f"{where}: weight {_dims(lay.weight.shape)} does not map {math.prod(prev)} "
                    f"inputs to {lay.shape[0]} neurons"
                )
        prev = lay.shape


def write_netx(path: str | os.PathLike, net: NetxNet) -> Path:
    """Write ``net`` as a netx HDF5 file, atomically; floats hold integer values as netx expects."""
    import h5py

    check_chain(net)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with h5py.File(tmp, "w") as h:
            sim = h.create_group("simulation")
            for k, v in net.attrs.items():
                sim.create_dataset(k, data=v)
            lg = h.create_group("layer")
            for i, lay in enumerate(net.layers):
                g = lg.create_group(str(i))
                g.create_dataset("type", data=np.array([lay.type.encode("ascii")], dtype="S10"))
                shape = lay.shape if lay.type != "dense" else (lay.shape[0], 1, 1)
                g.create_dataset("shape", data=np.asarray(shape, dtype=np.int64))
                if lay.type == "input":
                    for k in ("weight", "bias"):
                        if k in lay.extra:
                            g.create_dataset(k, data=np.asarray([lay.extra[k]], dtype=np.float32))
                if lay.weight is not None:
                    g.create_dataset("weight", data=lay.weight.astype(np.float32))
                if lay.bias is not None:
                    g.create_dataset("bias", data=lay.bias.astype(np.float32))
                if lay.type == "conv":
                    g.create_dataset("inChannels", data=lay.weight.shape[1] * lay.groups)
                    g.create_dataset("outChannels", data=lay.weight.shape[0])
                    g.create_dataset("kernelSize", data=np.asarray(lay.weight.shape[2:], dtype=np.int64))
                    for k, v in (("stride", lay.stride), ("padding", lay.padding), ("dilation", lay.dilation)):
                        g.create_dataset(k, data=np.asarray(v, dtype=np.int64))
                    g.create_dataset("groups", data=lay.groups)
                elif lay.type == "dense":
                    g.create_dataset("inFeatures", data=lay.weight.shape[1])
                    g.create_dataset("outFeatures", data=lay.weight.shape[0])
                if lay.neuron is not None and lay.neuron.type != "default":
                    n = g.create_group("neuron")
                    n.create_dataset("type", data=lay.neuron.type.encode("ascii"), dtype=h5py.string_dtype())
                    n.create_dataset("iDecay", data=int(lay.neuron.i_decay))
                    n.create_dataset("vDecay", data=int(lay.neuron.v_decay))
                    n.create_dataset("vThMant", data=int(lay.neuron.v_th_mant))
                    n.create_dataset("refDelay", data=1)
                    n.create_dataset("gradedSpike", data=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


__all__ = ["LAYER_TYPES", "NetxLayer", "NetxNet", "NetxNeuron", "check_chain", "read_netx", "write_netx"]

"""The project's one checkpoint format: weights plus a JSON card.

A checkpoint holds a model's ``state_dict`` and a *card*, a JSON object that
describes the model: ``kind`` (required; see :mod:`spklip_energy.zoo`),
``config`` and any training or evaluation metadata. Two on-disk forms exist,
chosen by the file suffix:

``.safetensors``
    ``safetensors`` file; its string metadata holds ``format``, ``version``
    (the text ``"1"``: safetensors metadata is text) and ``card`` (the card as
    JSON text).
anything else (``.pt`` by convention)
    a ``torch.save`` zip holding ``{"format", "version": 1, "card", "state_dict"}``
    (``version`` the integer 1).

Two versions, both strict: the file layout's ``version`` above (only
:data:`VERSION`), and the card's optional ``format_version`` (the card layout:
only :data:`CARD_FORMAT_VERSION`, a JSON integer). ``format_version`` may be
absent: :func:`save_checkpoint` stores any card with a ``kind`` as given, and
the project's own writers (``zoo.default_card``, ``save_spklip``) add it.

Loading never unpickles arbitrary objects: ``.pt`` files are read with
``torch.load(weights_only=True)``, and a file whose pickle asks for anything
beyond tensors and plain containers is refused. Every problem with a file is a
:class:`~spklip_energy.errors.CheckpointError` naming it.
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import re
import stat
import warnings
import zipfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from .atomic import atomic_path
from .errors import CheckpointError, ConfigError, first_line, found, json_type, short_repr
from .limits import check_memory

FORMAT = "spklip-energy-checkpoint"  # marker stored in every checkpoint
VERSION = 1  # the only layout version this code reads and writes
CARD_FORMAT_VERSION = 1  # the only card "format_version" this code reads and writes (absent is fine)
SAFETENSORS_SUFFIX = ".safetensors"

# Never converted into "corrupt file": the user or the interpreter wants out.
_PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit)

# torch's weights-only unpickler names what it refused in these messages.
_REFUSAL_PATTERNS = (
    re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module)"),
    re.compile(r"reduce for unrecognized function (.+?)(?: which belongs|$)", re.MULTILINE),
    re.compile(r"Can only (?:build|create new object)\b.*?got (.+?)$", re.MULTILINE),
)
# Imports a torch.save state dict needs (plus torch.*Storage types); any other
# import in a pickle that torch refused is what it refused.
_TENSOR_PICKLE_IMPORTS = frozenset(
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
    }
)
_IMPORT_OPCODES = frozenset({"GLOBAL", "INST", "STACK_GLOBAL"})


@dataclass
class Checkpoint:
    """A loaded checkpoint: the card, the CPU tensors and the file they came from."""

    card: dict  # JSON object; always has a non-empty string "kind"
    state_dict: dict[str, torch.Tensor]  # CPU tensors, dtypes as saved
    path: Path | None = None  # the file read, or None for an in-memory checkpoint

    @property
    def kind(self) -> str:
        return self.card["kind"]

    @property
    def config(self) -> dict:
        return self.card.get("config", {})


# --------------------------------------------------------------------------- saving


def save_checkpoint(
    path: str | os.PathLike,
    model_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    card: dict,
) -> Path:
    """Write ``model_or_state_dict`` and ``card`` to ``path`` atomically; return the path.

    The form follows the suffix: ``.safetensors`` or a ``torch.save`` zip for
    anything else. Tensors are detached, moved to the CPU and made contiguous;
    views and tensors sharing storage are copied so that each is stored alone.
    An existing file at ``path`` is replaced only once the new one is complete.
    """
    target = Path(path)
    card_text = _card_to_json(card)
    state_dict = _state_dict_for_saving(model_or_state_dict)
    try:
        with atomic_path(target) as tmp:
            if _is_safetensors(target):
                metadata = {"format": FORMAT, "version": str(VERSION), "card": card_text}
                safetensors.torch.save_file(state_dict, str(tmp), metadata=metadata)
            else:
                payload = {
                    "format": FORMAT,
                    "version": VERSION,
                    "card": card_text,
                    "state_dict": state_dict,
                }
                torch.save(payload, tmp)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CheckpointError(f"cannot write checkpoint {target} ({reason})") from None
    return target


def nonfinite_tensors(weights: nn.Module | Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors (parameters and buffers) that hold a NaN or an Inf."""
    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    return [
        name
        for name, t in state.items()
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]


# --------------------------------------------------------------------------- models from cards


#: state-dict entries under this prefix are training state (optimizer moments, RNG), not weights
TRAIN_STATE_PREFIX = "_train."


def nonfinite_weights(ck: Checkpoint) -> str | None:
    """One sentence naming the first weight of ``ck`` that holds NaN or Inf (None when all are finite)."""
    bad = nonfinite_tensors({k: v for k, v in ck.state_dict.items() if not k.startswith(TRAIN_STATE_PREFIX)})
    if not bad:
        return None
    more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
    return f"checkpoint {ck.path}: weight {bad[0]!r} holds NaN or Inf{more}"


def refuse_nonfinite(ck: Checkpoint, consequence: str) -> None:
    """Refuse a checkpoint whose weights hold NaN or Inf, saying what that would make of the result."""
    problem = nonfinite_weights(ck)
    if problem:
        raise CheckpointError(f"{problem}; {consequence}")


def module_nbytes(module: nn.Module) -> int:
    """Bytes held by ``module``'s parameters and buffers (shared tensors counted once; meta tensors too)."""
    seen: set[int] = set()
    total = 0
    for t in [*module.parameters(), *module.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def config_cause(
    values: Mapping[str, Any], defaults: Mapping[str, Any], base: str, ignore: Collection[str] = (), limit: int = 4
) -> str:
    """The config values behind a model's size, for a resource message (the ``cause`` of
    :func:`build_on_meta`): those of ``values`` that differ from ``defaults`` (keys in ``ignore`` aside),
    at most ``limit`` shown, e.g. ``kind 'test-ann-cnn' with height=100000``; ``base`` names the defaults,
    and is all that is said when nothing differs."""
    missing = object()
    changed = [(k, v) for k, v in values.items() if k not in ignore and defaults.get(k, missing) != v]
    if not changed:
        return base
    shown = ", ".join(f"{k}={short_repr(v)}" for k, v in changed[:limit])
    more = f" and {len(changed) - limit} more" if len(changed) > limit else ""
    return f"{base} with {shown}{more}"


def build_on_meta(build: Callable[[], nn.Module], what: str, cause: str, factor: float = 1.0) -> nn.Module:
    """Build a model on the ``meta`` device (no memory) and refuse it when too large; return it.

    ``factor`` times its parameter and buffer bytes must fit
    :func:`spklip_energy.limits.check_memory` (``what`` and ``cause`` name the
    model and the config values behind its size). A model so large that torch
    cannot even compute its size (the ``RuntimeError`` or ``OverflowError`` it raises
    for sizes beyond its index range) is refused the same way. Anything else a
    builder raises is a bug of the builder and is not disguised as a user error.
    """
    try:
        with torch.device("meta"):
            model = build()
    except (RuntimeError, OverflowError) as exc:
        if isinstance(exc, OverflowError) or "overflow" in str(exc).lower():
            check_memory(float("inf"), what, cause)
        raise ConfigError(f"{what}: the model cannot be built ({first_line(exc, 160)})") from None
    check_memory(factor * module_nbytes(model), what, cause)
    return model


def check_weights_fit(
    model: nn.Module | Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor], where: str, what: str
) -> None:
    """Refuse ``state_dict`` unless its names and shapes are exactly those of ``model``.

    ``model`` may live on the ``meta`` device. ``where`` names the file, ``what``
    the model the card describes; the one-line :class:`CheckpointError` names the
    first missing, unexpected or differently shaped (or non-float where a float is
    expected) tensor and how many differ.
    """
    expected = model.state_dict() if isinstance(model, nn.Module) else model
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = []
    for key, want in expected.items():
        got = state_dict.get(key)
        if got is None:
            continue
        if tuple(got.shape) != tuple(want.shape):
            wrong.append(f"{key!r} has shape {list(got.shape)} where the model has {list(want.shape)}")
        elif want.is_floating_point() and not got.is_floating_point():
            wrong.append(f"{key!r} is {got.dtype} where the model has {want.dtype}")
    if not (missing or unexpected or wrong):
        return
    if wrong:
        first = wrong[0]
    elif missing:
        first = f"{missing[0]!r} is missing"
    else:
        first = f"{unexpected[0]!r} is not part of that model"
    counts = [
        f"{n} {label}"
        for n, label in ((len(missing), "missing"), (len(unexpected), "unexpected"), (len(wrong), "mismatched"))
        if n
    ]
    raise CheckpointError(f"{where}: its weights do not fit {what} ({first}; tensors {', '.join(counts)} in all)")


def _card_to_json(card: Any) -> str:
    if not isinstance(card, dict):
        raise CheckpointError(f"a checkpoint card must be a dict, got {type(card).__name__}")
    kind = card.get("kind")
    if not isinstance(kind, str) or not kind:
        raise CheckpointError(f"a checkpoint card needs a non-empty string 'kind', got {kind!r}")
    for key, (check, expected) in _CARD_FIELDS.items():
        if key in card and not check(card[key]):
            raise CheckpointError(f"the {key!r} of checkpoint card {kind!r} must be {expected}, got {found(card[key])}")
    try:
        return json.dumps(card)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint card of kind {kind!r} is not JSON-serialisable ({exc})") from None


def _state_dict_for_saving(obj: Any) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"can only save a torch module or a state dict, got {type(obj).__name__}")
    out: dict[str, torch.Tensor] = {}
    seen_storages: set[int] = set()
    for key, value in obj.items():
        if not isinstance(key, str):
            raise CheckpointError(f"state dict key {key!r} is not a string")
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"state dict entry {key!r} is a {type(value).__name__}, not a tensor")
        if value.layout != torch.strided:
            raise CheckpointError(f"state dict entry {key!r} is a {value.layout} tensor; only dense tensors are saved")
        tensor = value.detach().to("cpu")
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        alone = (
            tensor.is_contiguous()
            and tensor.storage_offset() == 0
            and storage.nbytes() == tensor.nbytes
            and ptr not in seen_storages
        )
        if not alone:
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        if ptr:  # empty storages all have pointer 0
            seen_storages.add(ptr)
        out[key] = tensor
    return out


def _is_safetensors(path: Path) -> bool:
    return path.suffix.lower() == SAFETENSORS_SUFFIX


# --------------------------------------------------------------------------- loading


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Never runs code from the file. Raises :class:`CheckpointError` when the file
    is missing, not a regular file, empty, truncated or corrupt, refused as
    unsafe, not a spklip-energy checkpoint, of an unsupported version, or when
    its card or tensors are malformed.
    """
    p = Path(path)
    _check_file(p)
    if _is_safetensors(p):
        card_text, state_dict = _read_safetensors(p)
    else:
        card_text, state_dict = _read_torch(p)
    card = _parse_card(p, card_text)
    return Checkpoint(card=card, state_dict=state_dict, path=p)


def _check_file(p: Path) -> None:
    try:
        st = p.stat()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {p} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {p} ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise CheckpointError(f"checkpoint {p} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"checkpoint {p} is not a regular file")
    if st.st_size == 0:
        raise CheckpointError(f"checkpoint {p} is empty")


def _corrupt(p: Path, exc: BaseException) -> CheckpointError:
    text = str(exc).strip()
    if isinstance(exc, pickle.UnpicklingError) and text.startswith("Weights only load failed"):
        # torch wraps the unpickler's own message in advice paragraphs; keep only it
        paragraphs = [part.strip() for part in text.split("\n\n") if part.strip()]
        if len(paragraphs) >= 3:
            exc = pickle.UnpicklingError(paragraphs[1])
    return CheckpointError(f"checkpoint {p} is truncated or corrupt ({first_line(exc, 120)})")


def _refusal(p: Path, message: str) -> str | None:
    """What a failed weights-only load refused, or None when the file is merely corrupt.

    torch names the refused global for protocol-2 pickles (what ``torch.save``
    writes); other pickles stop at an opcode it does not implement, so their
    opcodes are listed (never executed) with :mod:`pickletools`.
    """
    for pattern in _REFUSAL_PATTERNS:
        found = pattern.search(message)
        if found:
            return found.group(1).strip()
    return _unsafe_pickle_import(_pickle_bytes(p))


def _pickle_bytes(p: Path) -> bytes:
    """The pickle stream of a ``torch.save`` zip, or the whole file for a bare pickle."""
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                names = [n for n in zf.namelist() if n.endswith("data.pkl")]
                return zf.read(names[0]) if names else b""
        return p.read_bytes()
    except Exception:  # unreadable archive: nothing to inspect
        return b""


def _unsafe_pickle_import(data: bytes) -> str | None:
    """The first import or call in ``data`` that torch checkpoints never need."""
    strings: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickletools warns about odd string escapes
            for opcode, arg, _ in pickletools.genops(data):
                if isinstance(arg, str):
                    strings.append(arg)
                if opcode.name in _IMPORT_OPCODES:
                    if opcode.name == "STACK_GLOBAL":
                        name = ".".join(strings[-2:]) if len(strings) >= 2 else "a global"
                    else:
                        name = str(arg).replace(" ", ".")
                    storage = name.startswith("torch.") and name.endswith("Storage")
                    if name not in _TENSOR_PICKLE_IMPORTS and not storage:
                        return name
    except Exception:  # the stream is corrupt past this point; judge what came before
        pass
    return None


def _read_torch(p: Path) -> tuple[Any, dict[str, torch.Tensor]]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's note on unusual pickle protocols
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except _PASS_THROUGH:
        raise
    except pickle.UnpicklingError as exc:
        refused = _refusal(p, str(exc))
        if refused is None:
            raise _corrupt(p, exc) from None
        raise CheckpointError(
            f"checkpoint {p} was refused because it contains pickled objects that could run code "
            f"({refused}); only tensors and plain containers are loaded"
        ) from None
    except BaseException as exc:  # torch, zipfile and pickle raise many types for bad bytes
        raise _corrupt(p, exc) from None

    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a spklip-energy checkpoint ({_describe_foreign(obj)})")
    _check_version(p, obj.get("version"), VERSION)
    state_dict = obj.get("state_dict")
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"checkpoint {p} has no state_dict dict (found {type(state_dict).__name__})")
    _check_tensors(p, state_dict)
    return obj.get("card"), state_dict


def _read_safetensors(p: Path) -> tuple[Any, dict[str, torch.Tensor]]:
    # The whole file is read into memory: safe_open maps it, and a later change
    # to the file would then crash the process (SIGBUS) instead of raising.
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {p} ({exc.strerror or exc})") from None
    try:
        metadata = _safetensors_metadata(data)
    except _PASS_THROUGH:
        raise
    except BaseException as exc:
        raise _corrupt(p, exc) from None
    if metadata.get("format") != FORMAT:
        keys = ", ".join(repr(k) for k in list(metadata)[:5]) or "none"
        raise CheckpointError(
            f"{p} is not a spklip-energy checkpoint (a safetensors file without the "
            f"{FORMAT!r} format marker; metadata keys: {keys})"
        )
    _check_version(p, metadata.get("version"), str(VERSION))
    try:
        state_dict = safetensors.torch.load(data)
    except _PASS_THROUGH:
        raise
    except BaseException as exc:  # SafetensorError, or a pyo3 panic (a BaseException)
        raise _corrupt(p, exc) from None
    _check_tensors(p, state_dict)
    return metadata.get("card"), state_dict


def _safetensors_metadata(data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors file (8-byte little-endian length, JSON header)."""
    if len(data) < 8:
        raise ValueError(f"file has {len(data)} bytes, fewer than the 8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError(f"header length {n} exceeds the file's {len(data) - 8} remaining bytes")
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise ValueError("__metadata__ is not a JSON object")
    return metadata


def _describe_foreign(obj: Any) -> str:
    if isinstance(obj, dict) and "format" in obj:
        return f"its format marker is {short_repr(obj['format'])}, not {FORMAT!r}"
    if isinstance(obj, dict):
        keys = list(obj)
        shown = ", ".join(short_repr(k) for k in keys[:4])
        more = f", ... ({len(keys)} keys)" if len(keys) > 4 else ""
        if not keys:
            return f"found an empty dict and no {FORMAT!r} format marker"
        return f"found a dict with keys {shown}{more} and no {FORMAT!r} format marker"
    return f"found a {type(obj).__name__}, not a dict with a {FORMAT!r} format marker"


def _check_version(p: Path, version: Any, expected: Any) -> None:
    """The file layout's ``version`` must be ``expected`` exactly: the integer 1 in a ``.pt``, the text
    ``"1"`` in safetensors metadata (which holds only text), never another type or value."""
    if type(version) is not type(expected) or version != expected:
        kind = "" if isinstance(version, (int, float)) and not isinstance(version, bool) else f" ({json_type(version)})"
        raise CheckpointError(
            f"checkpoint {p} has format version {short_repr(version)}{kind}, "
            f"but this spklip-energy reads only version {expected!r}"
        )


def _check_tensors(p: Path, state_dict: dict) -> None:
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise CheckpointError(f"checkpoint {p} has a non-string state_dict key {short_repr(key)}")
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"checkpoint {p} has state_dict entry {short_repr(key)} that is a {type(value).__name__}, not a tensor"
            )


def _parse_card(p: Path, card_text: Any) -> dict:
    if not isinstance(card_text, str):
        raise CheckpointError(f"checkpoint {p} has no card text (found {type(card_text).__name__})")
    try:
        card = json.loads(card_text)
    except ValueError as exc:  # json.JSONDecodeError
        raise CheckpointError(f"checkpoint {p} has a card that is not valid JSON ({exc})") from None
    except RecursionError:
        raise CheckpointError(f"checkpoint {p} has a card nested too deeply to read") from None
    if not isinstance(card, dict):
        raise CheckpointError(f"checkpoint {p} has a card that is a JSON {type(card).__name__}, not an object")
    kind = card.get("kind")
    if not isinstance(kind, str) or not kind:
        raise CheckpointError(f"checkpoint {p} has a card without a non-empty string 'kind'")
    for key, (check, expected) in _CARD_FIELDS.items():
        if key in card and not check(card[key]):
            raise CheckpointError(
                f"checkpoint {p} has a card whose {key!r} is not {expected} (found {found(card[key])})"
            )
    return card


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# Fields every reader of a card may rely on: field -> (test, what it must be).
_CARD_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "config": (lambda v: isinstance(v, dict), "an object"),
    "format_version": (
        lambda v: type(v) is int and v == CARD_FORMAT_VERSION,
        f"the integer {CARD_FORMAT_VERSION}, the only card format version this spklip-energy reads",
    ),
    "tokenizer": (lambda v: isinstance(v, str), "a string"),
    "classes": (_is_str_list, "a list of strings"),
    "class_names": (_is_str_list, "a list of strings"),
    "class_prompts": (_is_str_list, "a list of strings"),
    "train": (lambda v: isinstance(v, dict), "an object"),
    "eval": (lambda v: isinstance(v, dict), "an object"),
    "data": (lambda v: isinstance(v, dict), "an object"),
    "pretrain": (lambda v: isinstance(v, dict), "an object"),
    "init": (lambda v: isinstance(v, dict), "an object"),
    "conversion": (lambda v: isinstance(v, dict), "an object"),
    "note": (lambda v: isinstance(v, str), "a string"),
}

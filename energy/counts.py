"""The count record one layer call produces, and how records add up.

Every field is an operation or access count. During a profiled forward the
fields may be 0-dim tensors on the model's device (so that deciding whether an
input is binary never forces a host sync); :func:`materialise` turns a batch of
records into Python numbers with one transfer at the end.

Memory accesses are counted in 32-bit words, split by what is accessed so that
cost models can charge each buffer at the SRAM size it needs:

* ``weight_reads`` - parameter reads (weights and biases),
* ``state_reads`` / ``state_writes`` - membrane-potential reads and writes,
* ``act_reads`` / ``act_writes`` - reads of layer inputs and writes of outputs.

Byte counts by the tensors' actual dtypes are kept alongside, and the
``*_buffer`` fields give the size (in elements) of the buffer each kind of
access goes to, per sample and time step: the parameters, the neuron state, the
largest activation. ``in_buffer`` / ``out_buffer`` split the activation buffer into
the layer's input and output (per sample and step), and ``in_call`` / ``out_call`` /
``out_call_step`` keep the size of the traced tensors themselves (whole batch; the output
per step of a multi-step call): the published energy models size their buffers by one or
the other (see :mod:`energy.models`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

Number = int | float | torch.Tensor

#: Fields that add up over calls.
SUM_FIELDS = (
    "macs",
    "sops",
    "neuron_updates",
    "weight_reads",
    "state_reads",
    "state_writes",
    "act_reads",
    "act_writes",
    "weight_read_bytes",
    "state_bytes",
    "act_read_bytes",
    "act_write_bytes",
    "in_nnz",
    "in_numel",
    "out_nnz",
    "out_numel",
)
#: Fields that keep their maximum over calls (buffer sizes).
MAX_FIELDS = (
    "weight_buffer",
    "state_buffer",
    "act_buffer",
    "in_buffer",
    "out_buffer",
    "in_call",
    "out_call",
    "out_call_step",
)


@dataclass
class Counts:
    """Operations and memory accesses of one layer call (see module doc)."""

    macs: Number = 0  # multiply-accumulates on non-binary inputs (dense)
    sops: Number = 0  # synaptic operations: (non-zero spike, weight) pairs reaching an output
    neuron_updates: Number = 0  # neuron state updates (one per neuron per time step)
    weight_reads: Number = 0  # 32-bit words of parameters read
    state_reads: Number = 0  # 32-bit words of membrane state read
    state_writes: Number = 0  # 32-bit words of membrane state written
    act_reads: Number = 0  # 32-bit words of layer input read
    act_writes: Number = 0  # 32-bit words of layer output written
    weight_read_bytes: Number = 0  # bytes of parameters read, by their dtype
    state_bytes: Number = 0  # bytes of membrane state read + written
    act_read_bytes: Number = 0  # bytes of input read, by dtype
    act_write_bytes: Number = 0  # bytes of output written, by dtype
    in_nnz: Number = 0  # non-zero input elements (for rates)
    in_numel: Number = 0  # input elements
    out_nnz: Number = 0  # non-zero output elements
    out_numel: Number = 0  # output elements
    weight_buffer: int = 0  # elements in the parameter buffer
    state_buffer: int = 0  # elements of neuron state per sample and step
    act_buffer: int = 0  # elements of the largest activation per sample and step
    in_buffer: int = 0  # elements of the layer's input per sample and step
    out_buffer: int = 0  # elements of the layer's output per sample and step
    in_call: int = 0  # elements of the input tensor of one call (whole batch, all steps it holds)
    out_call: int = 0  # elements of the output tensor of one call
    out_call_step: int = 0  # elements of that output per step (out_call / T for a multi-step call)
    binary_input: Number = False  # the input was a spike tensor (bool or 0-dim bool tensor)
    notes: list[str] = field(default_factory=list)

    def add_(self, other: Counts) -> Counts:
        """Accumulate ``other`` into this record (in place) and return it."""
        for name in SUM_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in MAX_FIELDS:
            setattr(self, name, max(getattr(self, name), getattr(other, name)))
        b = other.binary_input
        self.binary_input = (self.binary_input | b) if isinstance(b, torch.Tensor) else (self.binary_input or b)
        for n in other.notes:
            if n not in self.notes:
                self.notes.append(n)
        return self


_NAMES = tuple(f.name for f in fields(Counts) if f.name != "notes")


def materialise(records: list[Counts]) -> list[dict]:
    """Turn records (fields possibly device tensors) into dicts of Python numbers.

    All tensor fields of all records are moved to the host in one transfer.
    """
    names = _NAMES
    slots: list[torch.Tensor] = []
    where: list[tuple[int, str]] = []
    out = []
    tensor = torch.Tensor
    for i, rec in enumerate(records):
        row: dict = {"notes": list(rec.notes)}
        values = rec.__dict__
        for name in names:
            v = values[name]
            if isinstance(v, tensor):
                if v.device.type == "cpu":  # reading a CPU value costs no sync: no need to batch it
                    row[name] = v.item()
                    continue
                slots.append(v.detach().reshape(()).to(torch.float64))
                where.append((i, name))
                row[name] = None
            else:
                row[name] = v
        out.append(row)
    if slots:
        dev = slots[0].device
        values = torch.stack([s.to(dev) for s in slots]).cpu().tolist()
        for (i, name), v in zip(where, values, strict=True):
            out[i][name] = v
    for row in out:
        for name in names:
            v = row[name]
            if name == "binary_input":
                row[name] = bool(v)
            elif isinstance(v, float) and v.is_integer():
                row[name] = int(v)
    return out

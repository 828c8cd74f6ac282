"""Several processes, one run: torchrun, DistributedDataParallel and what SPKLIP needs besides.

``torchrun --nproc_per_node N -m spklip_energy.train ...`` (or ``spklip-energy train --nproc N``,
which launches it) starts N processes; each calls :func:`init_world`, which reads torchrun's
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...) and joins the process
group: gloo on the CPU, nccl on CUDA (one GPU per local rank). Without torchrun's environment it
returns the one-process world and nothing changes.

What a CLIP-style model needs beyond DDP's gradient averaging, and why each is written here:

* **One global batch, split.** Every rank walks the same shuffled order of the training clips
  (:class:`GlobalBatches`, the permutation a one-process ``DataLoader`` draws from the same seed)
  and reads only its contiguous slice of each global batch, so a run on N processes sees the
  batches a one-process run sees (``DistributedSampler`` interleaves clips instead and pads).
* **The loss over the global batch.** The contrastive loss compares every clip with every text
  of the batch, so each rank gathers the features of all ranks (:func:`gather_rows`, through
  ``torch.distributed.nn.functional.all_gather``, whose backward returns each rank the sum of the
  gradients for its own rows) and computes the whole global loss. Each rank then holds N times
  the gradient of its own rows; DDP's average over ranks makes it exactly the one-process
  gradient. Every loss term is computed from gathered features in this way, none from a slice.
* **BatchNorm statistics over the global batch** (:func:`sync_batchnorm`): torch's
  ``SyncBatchNorm`` refuses CPU tensors (so gloo runs, and CI, could not use it) and its
  ``convert_sync_batchnorm`` replaces spikingjelly's multi-step BatchNorm and tdBN layers with a
  single-step layer that no longer reads ``[T, B, C, H, W]``. Here each BatchNorm instance keeps its
  class and its step handling; only the per-channel sum and sum of squares are all-reduced
  (differentiably) before normalising, on any backend.
* **A rank that dies ends the run.** Collectives fail with a :class:`LostRankError` naming the
  rank, not a hang: gloo reports a closed connection at once, torchrun stops the other workers,
  and the process group's timeout (``SPKLIP_DIST_TIMEOUT`` seconds, default 300) bounds the rest.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.modules.batchnorm import _BatchNorm

from .errors import ConfigError, LostRankError

#: Seconds a collective may wait for the other ranks before the run fails (environment override).
DEFAULT_TIMEOUT_S = 300


@dataclass(frozen=True)
class World:
    """Where this process stands in the run: its rank among ``size`` processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def main(self) -> bool:
        """Whether this process writes checkpoints, logs and progress (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def describe(self) -> str:
        return f"rank {self.rank} of {self.size} ({self.backend})" if self.distributed else "one process"


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment variable {name}={text!r} is not an integer (torchrun sets it)") from None


def launched_by_torchrun() -> bool:
    return (_env_int("WORLD_SIZE") or 1) > 1


def init_world(device: torch.device) -> World:
    """Join torchrun's process group (gloo for a CPU ``device``, nccl for CUDA), or return the
    one-process world when this process was not started by torchrun with more than one process.

    On CUDA each process takes the GPU of its local rank; ``device`` must then be ``cuda``/``auto``."""
    size = _env_int("WORLD_SIZE") or 1
    if size <= 1:
        return World()
    rank, local = _env_int("RANK"), _env_int("LOCAL_RANK") or 0
    if rank is None or not 0 <= rank < size:
        raise ConfigError(f"torchrun environment: RANK={os.environ.get('RANK')!r} with WORLD_SIZE={size}")
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={size} but {' and '.join(missing)} unset: start the processes with torchrun "
            "(or spklip-energy ... --nproc N), which sets them"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        if local >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {local} but this machine has {torch.cuda.device_count()} GPU(s); "
                "start at most that many processes per node"
            )
        torch.cuda.set_device(local)
    timeout = datetime.timedelta(seconds=_timeout_s())
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timeout)
    return World(rank=rank, size=size, local_rank=local, backend=backend)


def _timeout_s() -> float:
    text = os.environ.get("SPKLIP_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"SPKLIP_DIST_TIMEOUT={text!r}: expected a positive number of seconds")
    return value


def local_device(world: World, device: torch.device) -> torch.device:
    """The device this rank computes on: its own GPU under nccl, else ``device``."""
    return torch.device("cuda", world.local_rank) if world.backend == "nccl" else device


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


#: Words of the errors gloo and nccl raise when a peer is gone or a collective timed out.
_LOST_PEER = (
    "gloo",
    "nccl",
    "connection",
    "closed by peer",
    "reset by peer",
    "timed out",
    "timeout",
    "broken pipe",
    "socket",
)


@contextlib.contextmanager
def collectives(world: World, stage: str) -> Iterator[None]:
    """Turn a failed collective (a rank died, was killed or timed out) into a :class:`LostRankError`."""
    try:
        yield
    except (RuntimeError, dist.DistError) as exc:  # DistBackendError, gloo "Connection closed by peer", ...
        text = str(exc).strip()
        if not world.distributed or not (isinstance(exc, dist.DistError) or any(w in text.lower() for w in _LOST_PEER)):
            raise
        first = text.splitlines()[0] if text else type(exc).__name__
        raise LostRankError(
            f"{world.describe()}: lost contact with the other ranks during {stage} ({first[:160]}); "
            "a rank died, was killed or stopped answering; the checkpoint of the last finished epoch is kept "
            "and --resume continues from it"
        ) from None


@contextlib.contextmanager
def joined(device: torch.device, stage: str) -> Iterator[World]:
    """This process's place in a torchrun launch (a one-process world when not launched so) for one job:
    joined on entry, a collective that fails because a rank is lost raised as
    :class:`~spklip_energy.errors.LostRankError` naming ``stage``, and the process group closed on exit
    whatever happens. Every command that can run on several processes (train, eval, report) runs in one."""
    world = init_world(device)
    try:
        with collectives(world, stage):
            yield world
    finally:
        close_world(world)


class GlobalBatches(torch.utils.data.Sampler):
    """This rank's slice of each global batch of a shuffled (or ordered) pass over ``n`` clips.

    The order is the one a one-process ``DataLoader(shuffle=True, generator=...)`` yields for a generator
    seeded with ``seed``; global batch
    ``k`` is positions ``k*batch_size ...`` of it, and rank ``r`` takes the ``r``-th of ``size``
    contiguous, as-equal-as-possible parts. A final global batch with fewer clips than ranks is left
    out (every rank needs at least one clip for its BatchNorm statistics and the gather)."""

    def __init__(self, n: int, batch_size: int, seed: int, world: World, shuffle: bool = True) -> None:
        self.n, self.batch_size, self.seed, self.world, self.shuffle = n, batch_size, seed, world, shuffle

    def global_batches(self) -> list[list[int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed)
            # a DataLoader draws its workers' base seed from the generator before its sampler's permutation
            # (tests/test_distributed.py checks the orders agree)
            torch.empty((), dtype=torch.int64).random_(generator=g)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        batches = [order[i : i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        return [b for b in batches if len(b) >= self.world.size]

    def __iter__(self):
        for batch in self.global_batches():
            lo, hi = split_bounds(len(batch), self.world)
            yield batch[lo:hi]

    def __len__(self) -> int:
        return len(self.global_batches())


def split_bounds(n: int, world: World) -> tuple[int, int]:
    """``[lo, hi)`` of this rank's contiguous part of ``n`` items (the first ``n % size`` ranks get one more)."""
    base, extra = divmod(n, world.size)
    lo = world.rank * base + min(world.rank, extra)
    return lo, lo + base + (1 if world.rank < extra else 0)


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    """torch >= 2.10 marks ``torch.distributed.nn.functional`` deprecated in favour of the private
    ``_functional_collectives``; the public, differentiable one stays in use across the supported range."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def gather_rows(x: torch.Tensor, world: World, differentiable: bool = True) -> torch.Tensor:
    """The rows ``[n_r, ...]`` of every rank concatenated in rank order (parts may differ in length).

    ``differentiable``: the gradient of each rank's rows flows back to it, summed over ranks."""
    if not world.distributed:
        return x
    sizes = [torch.zeros((), dtype=torch.long, device=x.device) for _ in range(world.size)]
    dist.all_gather(sizes, torch.tensor(x.shape[0], device=x.device))
    sizes = [int(s) for s in sizes]
    top = max(sizes)
    padded = torch.cat([x, x.new_zeros((top - x.shape[0], *x.shape[1:]))]) if x.shape[0] < top else x
    if differentiable:
        from torch.distributed.nn.functional import all_gather

        with _quiet_deprecation():
            parts = all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in range(world.size)]
        dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)])


def gather_objects(obj, world: World) -> list:
    """Every rank's ``obj`` (picklable; only between the ranks of one run), in rank order."""
    if not world.distributed:
        return [obj]
    out: list = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def all_sum(values: dict[str, float], world: World) -> dict[str, float]:
    """Per-key sums over ranks of a dict of numbers (same keys on every rank)."""
    if not world.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist(), strict=True))


def _synced_batch_norm(bn: _BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm of ``x [N, C, ...]`` with the statistics of every rank's ``x`` (training mode, more than
    one rank), else the layer's own forward. Population variance for normalising, the unbiased one for the
    running estimate, as ``torch.nn.functional.batch_norm`` does."""
    if not (bn.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return _BatchNorm.forward(bn, x)
    from torch.distributed.nn.functional import all_reduce

    dims = [0, *range(2, x.dim())]
    c = x.shape[1]
    xf = x.float()
    count = x.new_tensor([x.numel() / c], dtype=torch.float32)
    with _quiet_deprecation():
        stats = all_reduce(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))
    n = stats[-1]
    mean = stats[:c] / n
    var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0)
    if bn.track_running_stats and bn.running_mean is not None:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.mul_(1 - m).add_(mean.detach().to(bn.running_mean.dtype), alpha=m)
            unbiased = var.detach() * n / (n - 1).clamp_min(1)
            bn.running_var.mul_(1 - m).add_(unbiased.to(bn.running_var.dtype), alpha=m)
    shape = (1, c) + (1,) * (x.dim() - 2)
    y = (xf - mean.view(shape)) * torch.rsqrt(var + bn.eps).view(shape)
    if bn.affine:
        y = y * bn.weight.view(shape) + bn.bias.view(shape)
    return y.to(x.dtype)


def sync_batchnorm(model: torch.nn.Module) -> int:
    """Make every BatchNorm layer of ``model`` normalise with the statistics of all ranks; returns how many.

    The layer keeps its class: the single-step computation it delegates to (spikingjelly's
    ``super_forward`` for its multi-step BatchNorm and tdBN, ``flat_forward`` for layers that flatten
    first, else ``forward``) is replaced on the instance. Outside a distributed run, or in eval mode,
    the layer computes as before."""
    done = 0
    for m in model.modules():
        if not isinstance(m, _BatchNorm):
            continue
        cls = type(m)
        target = next((name for name in ("super_forward", "flat_forward") if hasattr(cls, name)), "forward")
        if target == "forward" and cls.forward is not _BatchNorm.forward:
            raise ConfigError(
                f"{cls.__name__}: a BatchNorm with its own forward cannot be synchronised "
                "(give it a flat_forward, as TokenBatchNorm has)"
            )
        setattr(m, target, types.MethodType(_synced_batch_norm, m))
        done += 1
    return done


def launch(nproc: int, module: str, argv: list[str], max_procs: int = 64) -> dict:
    """Run ``python -m module argv`` as ``nproc`` processes on this machine under torch's elastic launcher
    (what ``torchrun --standalone --nproc_per_node nproc -m module`` does), waiting for them.

    Returns ``{"processes": nproc, "failed": {rank: description}, "first": rank}``: ``failed`` is empty
    when every rank exited with 0, else ``first`` is the rank that failed first (the launcher stops the
    others). Several machines: call ``torchrun`` itself with its rendezvous flags (README)."""
    import logging
    import sys
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if isinstance(nproc, bool) or not isinstance(nproc, int) or not 1 <= nproc <= max_procs:
        raise ConfigError(f"--nproc must be a whole number of processes from 1 to {max_procs}, got {nproc!r}")
    for name in ("torch.distributed.elastic", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.ERROR)  # the run's own messages say what happened
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.2,
    )
    try:
        elastic_launch(config, sys.executable)("-m", module, *argv)
    except ChildFailedError as exc:
        first_rank, _ = exc.get_first_failure()

        def how(failure) -> str:
            code = failure.exitcode
            return f"killed by signal {failure.signal_name()}" if code < 0 else f"exit status {code}"

        return {
            "processes": nproc,
            "first": first_rank,
            "failed": {rank: how(f) for rank, f in sorted(exc.failures.items())},
        }
    return {"processes": nproc, "first": None, "failed": {}}


__all__ = [
    "launch",
    "DEFAULT_TIMEOUT_S",
    "GlobalBatches",
    "LostRankError",
    "World",
    "all_sum",
    "barrier",
    "close_world",
    "collectives",
    "gather_objects",
    "gather_rows",
    "init_world",
    "launched_by_torchrun",
    "local_device",
    "split_bounds",
    "sync_batchnorm",
]

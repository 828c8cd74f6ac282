"""Accuracy statistics: the one home for intervals, paired tests and seed aggregates.

Every accuracy figure the project reports is a proportion of clips (or of
caption queries) that a model got right. This module turns the per-clip
outcomes into what a reader needs to judge that figure:

* :func:`proportion_ci`, :func:`accuracy_summary` - the Wilson score interval
  (or the exact Clopper-Pearson one) of a proportion ``k / n``, from
  :meth:`scipy.stats.binomtest(...).proportion_ci <scipy.stats.binomtest>`.
* :func:`mcnemar_exact` - two models evaluated on the *same* clips: the exact
  McNemar test (a two-sided binomial test with p = 1/2 on the discordant pairs,
  :func:`scipy.stats.binomtest`) and the accuracy difference with a paired
  bootstrap interval (:func:`paired_bootstrap`).
* :func:`aggregate_seeds` - several training seeds: mean and sample standard
  deviation over seeds, and the pooled interval over all their clips.
* :func:`fmt_ci` - the text form ``"72.5 % [56.9, 83.9]"``.

Per-clip outcomes travel in cards in a compact text form, one ``'0'``/``'1'``
per clip (:func:`encode_hits`, :func:`decode_hits`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest

from .errors import ConfigError
from .options import check_positive_int, check_seed

#: the confidence level every reported interval uses unless told otherwise
LEVEL = 0.95
#: interval methods: scipy's names ("exact" is Clopper-Pearson)
METHODS = ("wilson", "exact")
#: bootstrap resamples unless told otherwise, and the most accepted
RESAMPLES = 10_000
MAX_RESAMPLES = 10_000_000
MCNEMAR_TEST = "exact McNemar (binomial on discordant pairs)"


def _count(value, name: str) -> int:
    """A non-negative integer count (a Python or numpy integer; not a bool or a float)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be a whole number of clips, got {value!r}")
    if value < 0:
        raise ConfigError(f"{name} must be at least 0, got {value}")
    return int(value)


def check_level(level) -> float:
    """A confidence level strictly between 0 and 1."""
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, float, np.floating, np.integer)):
        raise ConfigError(f"confidence level must be a number between 0 and 1, got {level!r}")
    level = float(level)
    if not 0 < level < 1:  # also refuses NaN
        raise ConfigError(f"confidence level must lie strictly between 0 and 1, got {level!r}")
    return level


def _check_method(method) -> str:
    if method not in METHODS:
        raise ConfigError(f"unknown interval method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def proportion_ci(k: int, n: int, level: float = LEVEL, method: str = "wilson") -> tuple[float, float]:
    """The ``level`` confidence interval of the proportion ``k / n``.

    ``method`` ``"wilson"`` is the Wilson score interval, ``"exact"`` the
    Clopper-Pearson interval; both from :func:`scipy.stats.binomtest`. ``n == 0``
    gives ``(nan, nan)``: no clips, no information.
    """
    k, n = _count(k, "k (clips right)"), _count(n, "n (clips)")
    if k > n:
        raise ConfigError(f"k (clips right) must not exceed n (clips): {k} > {n}")
    level, method = check_level(level), _check_method(method)
    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method=method)
    return float(ci.low), float(ci.high)


def hits_vector(hits, name: str = "hits") -> np.ndarray:
    """Per-clip outcomes as a 1-D boolean array.

    Accepts booleans, the integers 0 and 1 (a list, tuple or numpy array), or the
    compact text form of :func:`encode_hits`; anything else is a :class:`ConfigError`.
    """
    if isinstance(hits, str):
        return decode_hits(hits, name)
    try:
        arr = np.asarray(hits)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{name} must be a vector of per-clip outcomes (0/1), got {type(hits).__name__} ({exc})"
        ) from None
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be a one-dimensional vector of per-clip outcomes, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.copy()
    if arr.size == 0:
        return np.zeros(0, dtype=bool)
    if arr.dtype.kind not in "iuf":
        raise ConfigError(f"{name} must hold per-clip outcomes (booleans or 0/1), got values of type {arr.dtype}")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        raise ConfigError(
            f"{name} must hold only 0 and 1 (or booleans); found {arr[bad][0]!r} at position "
            f"{int(np.flatnonzero(bad)[0])}"
        )
    return arr.astype(bool)


def encode_hits(hits) -> str:
    """Per-clip outcomes as text, ``'1'`` for a hit and ``'0'`` for a miss (compact for cards)."""
    return "".join("1" if h else "0" for h in hits_vector(hits))


def decode_hits(text: str, name: str = "hits") -> np.ndarray:
    """The inverse of :func:`encode_hits`."""
    if not isinstance(text, str) or text.strip("01"):
        raise ConfigError(f"{name} must be a string of '0' and '1' (one per clip), got {str(text)[:40]!r}")
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8) == ord("1")


def count_summary(k: int, n: int, level: float = LEVEL, method: str = "wilson") -> dict:
    """``{"value", "k", "n", "ci_low", "ci_high", "method", "level"}`` of ``k`` hits in ``n`` clips."""
    low, high = proportion_ci(k, n, level, method)
    k, n = int(k), int(n)
    return {
        "value": k / n if n else float("nan"),
        "k": k,
        "n": n,
        "ci_low": low,
        "ci_high": high,
        "method": method,
        "level": float(level),
    }


def accuracy_summary(hits, level: float = LEVEL, method: str = "wilson") -> dict:
    """The accuracy of a per-clip outcome vector with its ``level`` interval.

    Returns ``{"value", "k", "n", "ci_low", "ci_high", "method", "level"}``
    (``method`` ``"wilson"`` by default; see :func:`proportion_ci`).
    """
    h = hits_vector(hits)
    return count_summary(int(h.sum()), int(h.size), level, method)


def _paired(hits_a, hits_b) -> tuple[np.ndarray, np.ndarray]:
    a, b = hits_vector(hits_a, "hits_a"), hits_vector(hits_b, "hits_b")
    if a.size != b.size:
        raise ConfigError(f"paired outcomes must cover the same clips: hits_a has {a.size} clips, hits_b {b.size}")
    return a, b


def paired_bootstrap(
    hits_a, hits_b, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> tuple[float, float]:
    """Percentile interval of ``mean(hits_a) - mean(hits_b)`` under resampling clips with replacement.

    The clips are resampled as pairs (one draw takes both models' outcomes on
    that clip), so the interval accounts for the two models being evaluated on
    the same clips. A pair is one of three kinds - only A right, only B right,
    or both the same - and a resample's difference depends only on how many
    pairs of each kind it drew. Drawing those three counts from the multinomial
    distribution (:meth:`numpy.random.Generator.multinomial`) is therefore the
    same bootstrap as drawing ``n`` clip indices, without an ``n``-sized array per
    resample: memory is ``O(resamples)`` for any number of clips, and the
    resamples are drawn in chunks of at most 100 000. ``seed`` fixes the
    generator, so the interval is reproducible. No clips: ``(nan, nan)``.
    """
    a, b = _paired(hits_a, hits_b)
    resamples = check_positive_int(resamples, "resamples", MAX_RESAMPLES)
    seed, level = check_seed(seed), check_level(level)
    n = a.size
    if n == 0:
        return float("nan"), float("nan")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = np.array([only_a, only_b, n - only_a - only_b], dtype=float) / n
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    chunk = 100_000
    for lo in range(0, resamples, chunk):
        m = min(chunk, resamples - lo)
        counts = rng.multinomial(n, p, size=m)
        diffs[lo : lo + m] = (counts[:, 0] - counts[:, 1]) / n
    tail = (1 - level) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return float(low), float(high)


def mcnemar_exact(hits_a, hits_b, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> dict:
    """Exact McNemar test of two models evaluated on the same clips, with the accuracy difference.

    ``a_only`` (b) counts the clips A got right and B wrong, ``b_only`` (c) the
    reverse. Under the null hypothesis that both models are equally accurate, a
    discordant clip is as likely to favour either, so ``b ~ Binomial(b + c, 1/2)``;
    the p-value is scipy's two-sided :func:`~scipy.stats.binomtest` (1 when there
    are no discordant clips). ``difference`` is ``mean(A) - mean(B)`` and
    ``difference_ci`` its paired bootstrap interval (:func:`paired_bootstrap`).
    """
    a, b = _paired(hits_a, hits_b)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(binomtest(only_a, discordant, 0.5, alternative="two-sided").pvalue)
    n = int(a.size)
    diff = (only_a - only_b) / n if n else float("nan")
    low, high = paired_bootstrap(a, b, resamples, seed, level)
    return {
        "a_only": only_a,
        "b_only": only_b,
        "n": n,
        "p_value": p,
        "difference": diff,
        "difference_ci": (low, high),
        "level": check_level(level),
        "resamples": int(resamples),
        "seed": int(seed),
        "test": MCNEMAR_TEST,
    }


def _seed_counts(item, i: int) -> tuple[int, int]:
    if isinstance(item, tuple):
        if len(item) != 2:
            raise ConfigError(f"seed {i}: a (k, n) pair must have two numbers, got {item!r}")
        k, n = _count(item[0], f"seed {i}: k"), _count(item[1], f"seed {i}: n")
        if k > n:
            raise ConfigError(f"seed {i}: k must not exceed n: {k} > {n}")
    else:
        h = hits_vector(item, f"seed {i}: hits")
        k, n = int(h.sum()), int(h.size)
    if n == 0:
        raise ConfigError(f"seed {i} has no clips")
    return k, n


def aggregate_seeds(per_seed: Sequence, level: float = LEVEL, method: str = "wilson") -> dict:
    """Accuracy over several training seeds.

    ``per_seed`` holds one entry per seed: a ``(k, n)`` **tuple** (hits, clips) or
    that seed's per-clip outcome vector (a list, array or :func:`encode_hits`
    text). Returns ``{"mean", "std", "seeds", "pooled", "values"}``: the mean and
    the sample standard deviation (``ddof=1``; nan for one seed) of the per-seed
    accuracies ``values``, and ``pooled``, :func:`count_summary` of all clips of
    all seeds together.

    The two answer different questions. ``pooled`` treats every clip of every
    seed as an independent trial, so its interval reflects only how many clips
    were scored and understates the spread between training seeds (the same
    clips scored by three seeds are not three times the evidence). Mean ± std
    over seeds is what carries the seed-to-seed variance.
    """
    if isinstance(per_seed, (str, bytes)) or not isinstance(per_seed, Sequence) or not per_seed:
        raise ConfigError("aggregate_seeds needs a non-empty list with one entry per seed")
    counts = [_seed_counts(item, i) for i, item in enumerate(per_seed)]
    values = np.array([k / n for k, n in counts])
    std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return {
        "mean": float(np.mean(values)),
        "std": std,
        "seeds": len(values),
        "pooled": count_summary(sum(k for k, _ in counts), sum(n for _, n in counts), level, method),
        "values": [float(v) for v in values],
    }


def fmt_ci(summary: dict, digits: int = 1) -> str:
    """``"72.5 % [56.9, 83.9]"``: a summary's value and interval in percent (``"—"`` when unknown)."""
    value = summary.get("value") if isinstance(summary, dict) else None
    if value is None or not math.isfinite(value):
        return "—"
    text = f"{100 * value:.{digits}f} %"
    interval = fmt_interval(summary.get("ci_low"), summary.get("ci_high"), digits)
    return text if interval == "—" else f"{text} {interval}"


def fmt_interval(low, high, digits: int = 1, sign: bool = False) -> str:
    """``"[56.9, 83.9]"``: an interval of proportions in percent (``sign``: ``"[+2.6, +4.6]"``, for
    differences); ``"—"`` when either end is unknown."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "—"
    f = f"{'+' if sign else ''}.{digits}f"
    return f"[{100 * low:{f}}, {100 * high:{f}}]"


def fmt_mean_std(mean, std, digits: int = 1) -> str:
    """``"94.0 ± 2.3"``: a mean over seeds and its standard deviation in percent (the std left out when
    it is unknown, e.g. for one seed; ``"—"`` without a mean)."""
    if mean is None or not math.isfinite(mean):
        return "—"
    text = f"{100 * mean:.{digits}f}"
    return text if std is None or not math.isfinite(std) else f"{text} ± {100 * std:.{digits}f}"


def fmt_difference(diff, low, high, unit: str = "", digits: int = 1) -> str:
    """``"+3.6 [+2.6, +4.6]"``: a difference of proportions in percent points (``unit`` after the value,
    e.g. ``" pts"``) with its interval."""
    return f"{100 * diff:+.{digits}f}{unit} {fmt_interval(low, high, digits, sign=True)}"


def describe_ci(summary: dict) -> str:
    """``"95 % Wilson interval over 40 clips"``: what :func:`fmt_ci`'s brackets are."""
    name = {"wilson": "Wilson", "exact": "Clopper-Pearson"}.get(summary.get("method"), str(summary.get("method")))
    return f"{100 * summary.get('level', LEVEL):g} % {name} interval over {summary.get('n')} clips"

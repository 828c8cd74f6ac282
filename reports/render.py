"""Text, Markdown and HTML renderings of energy reports (:class:`~energy.record.EnergyReport`) and
comparisons. Never counts."""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING

import pandas as pd

from spklip_energy.stats import RESAMPLES, fmt_difference, fmt_interval, fmt_mean_std

from . import models as energy_models

if TYPE_CHECKING:  # the records come from energy (which imports torch); rendering does not need it loaded
    from energy.record import EnergyReport, PartFigures

#: Per-layer columns shown in reports, in order.
LAYER_COLUMNS = [
    "name",
    "part",
    "type",
    "calls",
    "spiking",
    "binary_input",
    "macs",
    "sops",
    "neuron_updates",
    "mem_reads",
    "mem_writes",
    "input_rate",
    "output_rate",
    "params",
    "compute_j",
    "neuron_j",
    "memory_j",
    "total_j",
    "bound",
]


def _si(x: float, unit: str = "") -> str:
    if x is None:
        return "—"
    ax = abs(x)
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if ax >= scale:
            return f"{x / scale:.3g} {prefix}{unit}".rstrip()
    return f"{x:.3g} {unit}".rstrip()


def _j(x: float) -> str:
    return f"{x:.4g}"


def table6_rows(summary: EnergyReport) -> list[tuple[str, str]]:
    """The paper's Table 6 rows for one model, per sample."""
    t = summary.table6_per_sample
    return [
        ("Computational energy (J)", _j(t.computational_energy_j)),
        ("Memory access energy (J)", _j(t.memory_access_energy_j)),
        ("Total energy (J)", _j(t.total_energy_j)),
        ("Memory energy ratio", f"{100 * t.memory_energy_ratio:.2f} %"),
    ]


def table6_text(summary: EnergyReport) -> str:
    """Terminal summary in the form of the paper's Table 6 (appendix A.6)."""
    cm = summary.cost_model
    rows = table6_rows(summary)
    width = max(len(r[0]) for r in rows) + 2
    lines = [
        f"{summary.checkpoint.kind} ({summary.checkpoint.path}) - "
        f"{summary.data.samples} sample(s) of {summary.data.source}",
        f"cost model {cm['name']!r}, weight reuse {summary.reuse!r}; energy per sample:",
    ]
    lines += [f"  {name:<{width}}{value:>12}" for name, value in rows]
    c = summary.counts_per_sample
    lines.append(
        f"  MACs {_si(c.macs)}, SOPs {_si(c.sops)}, neuron updates {_si(c.neuron_updates)}, "
        f"memory accesses {_si(c.mem_accesses)} (32-bit words)"
    )
    e = summary.energy
    lines.append(f"  memory-bound layers: {e.memory_bound_layers} of {e.layers}")
    if summary.energy_models:
        lines += energy_models.text_lines(summary.energy_models)
    for w in summary.warnings:
        lines.append(f"  note: {w}")
    return "\n".join(lines)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _fmt_cell(col: str, v) -> str:
    if isinstance(v, float) and v != v:  # NaN
        return "—"
    if col.endswith("_j"):
        return f"{v:.3e}"
    if col.endswith("_rate"):
        return f"{v:.4f}"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)) and col not in ("calls",):
        return _si(float(v))
    return str(v)


def per_layer_rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    cols = [c for c in LAYER_COLUMNS if c in df.columns]
    return cols, [[_fmt_cell(c, row[c]) for c in cols] for _, row in df.iterrows()]


#: the header of the energy-by-part table (report Markdown and HTML)
PART_HEADER = [
    "part",
    "layers",
    "MACs",
    "SOPs",
    "neuron updates",
    "memory accesses",
    "compute (µJ)",
    "neuron (µJ)",
    "memory (µJ)",
    "total (µJ)",
    "share",
]


def _uj(x: float) -> str:
    return f"{x * 1e6:.4g}"


def part_rows(summary: EnergyReport) -> list[list[str]]:
    """The energy-by-part table (per sample) of a report, one row per part and a last row for the whole
    encoder; no rows when the report has no parts (not a SPKLIP checkpoint)."""
    parts = summary.parts or {}
    if not parts:
        return []
    from energy.record import PartFigures

    def row(label: str, p: PartFigures, share: str) -> list[str]:
        return [
            label,
            str(p.layers),
            _si(p.macs),
            _si(p.sops),
            _si(p.neuron_updates),
            _si(p.mem_accesses),
            _uj(p.compute_j),
            _uj(p.neuron_j),
            _uj(p.memory_j),
            _uj(p.total_j),
            share,
        ]

    rows = [row(name, p, f"{100 * p.share:.1f} %") for name, p in parts.items()]
    c, e = summary.counts_per_sample, summary.energy_per_sample
    whole = PartFigures(
        layers=sum(p.layers for p in parts.values()),
        macs=c.macs,
        sops=c.sops,
        neuron_updates=c.neuron_updates,
        mem_accesses=c.mem_accesses,
        compute_j=e.compute_j,
        neuron_j=e.neuron_j,
        memory_j=e.memory_j,
        total_j=e.total_j,
        share=1.0,
    )
    return rows + [row("all parts", whole, "100 %")]


PART_NOTE = (
    "Parts of the visual encoder (spklip/parts.py): HSFE: the front end; CNN: the "
    "per-block CNN (STAR-Net's ResNet, or the FSVE's spiking CNN); temporal Transformer: block position "
    "and the Transformer over blocks; heads: from the CNN's features to the block embedding (attention "
    "pool, or global pool, final linear and its LIF; BlockPooling's projection). Counts and energy of "
    "counted layers only, so the parts add up to the totals above."
)


def _provenance_md(cm: dict) -> list[str]:
    lines = [f"- **{cm['name']}**: {cm['description']}"]
    lines.append(
        f"- E_MAC = {cm['e_mac_pj']} pJ, E_AC = {cm['e_ac_pj']} pJ, E_neuron = {cm['e_neuron_pj']} pJ, "
        + (
            f"memory {cm['e_mem_word_pj']} pJ per 32-bit access"
            if cm.get("e_mem_word_pj") is not None
            else f"memory by SRAM tier {cm.get('sram_tiers')} (bytes, pJ per 64-bit access)"
            if cm.get("sram_tiers")
            else "memory not charged separately"
        )
    )
    for s in cm.get("sources", []):
        lines.append(f"- source: {s}")
    for f in cm.get("flags", []):
        lines.append(f"- **{f}**")
    consts = cm.get("constants") or {}
    for c in consts.values() if isinstance(consts, dict) else consts:
        if isinstance(c, dict):
            deriv = f" = {c['derivation']}" if c.get("derivation") else ""
            lines.append(
                f"  - {c.get('name')}: {c.get('value')} {c.get('unit')}{deriv} ({c.get('status')}; {c.get('source')})"
            )
    return lines


def report_markdown(summary: EnergyReport, per_layer: pd.DataFrame, images: dict[str, str]) -> str:
    """The whole report as Markdown; ``images`` maps captions to relative PNG paths."""
    ck, data = summary.checkpoint, summary.data
    parts = [
        f"# Energy report: {ck.kind}",
        "",
        f"Checkpoint `{ck.path}` · data {data.source} ({data.samples} samples) · "
        f"cost model `{summary.cost_model['name']}` · weight reuse `{summary.reuse}` · "
        f"spklip-energy {summary.tool_version}",
        "",
        "## Summary (paper Table 6 form, per sample)",
        "",
        _md_table(["", "value"], [list(r) for r in table6_rows(summary)]),
        "",
        f"Neuron-update energy is grouped with **{summary.neuron_energy_grouping}** energy.",
        "",
    ]
    if summary.accuracy is not None:
        parts += [f"Accuracy recorded in the checkpoint: {summary.accuracy}", ""]
    c = summary.counts_per_sample
    parts += [
        "## Operation counts (per sample)",
        "",
        _md_table(
            ["MACs", "SOPs", "neuron updates", "memory reads", "memory writes", "memory accesses"],
            [
                [
                    _si(c.macs),
                    _si(c.sops),
                    _si(c.neuron_updates),
                    _si(c.mem_reads),
                    _si(c.mem_writes),
                    _si(c.mem_accesses),
                ]
            ],
        ),
        "",
    ]
    by_part = part_rows(summary)
    if by_part:
        parts += ["## Energy by part (per sample)", "", _md_table(PART_HEADER, by_part), "", PART_NOTE, ""]
    parts += _models_md(summary.energy_models)
    if summary.warnings:
        parts += ["## Warnings and assumptions", ""] + [f"- {w}" for w in summary.warnings] + [""]
    for caption, path in images.items():
        parts += [f"![{caption}]({path})", ""]
    cols, rows = per_layer_rows(per_layer)
    parts += ["## Per layer (whole profiled batch)", "", _md_table(cols, rows), ""]
    if summary.not_counted:
        parts += ["## Not counted", ""] + [f"- `{r.name}` ({r.type}): {r.reason}" for r in summary.not_counted] + [""]
    parts += ["## Cost model and sources", ""] + _provenance_md(summary.cost_model) + [""]
    if summary.energy_models:
        parts += ["## Energy models and sources", ""] + energy_models.provenance_lines(summary.energy_models) + [""]
    parts += ["## Counting conventions", ""] + [f"- {c}" for c in summary.conventions] + [""]
    return "\n".join(parts)


MODELS_NOTE = (
    "Every figure names its model; a range is a best-to-worst bound, never a bare number. A layer a "
    "model cannot price is listed as not priced by it (its operations are outside 'ops priced'), never "
    "counted as zero. docs/energy.md explains each model, its assumptions and its validation."
)
BREAK_EVEN_NOTE = (
    "Each spiking synaptic layer against its ANN twin (the same weights run once, densely) priced at "
    "each pricing: below the break-even input rate (spikes per input element and step) the spiking "
    "layer, with the updates of the neurons it drives, costs less. The network row scales every "
    "layer's rate alike. Spikes per synapse per inference are set beside the 0.15-1.38 band of "
    "Dampfhoffer et al. (IEEE TETCI 2023), a literature flag, not an energy preset. never: the spiking "
    "layer costs more even without spikes; always: it costs less even at one spike per input and "
    "step."
)


def _models_sections(em: dict | None) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, note) of each energy-model table of a summary."""
    if not em:
        return []
    out = [
        (
            "Energy under published models (per sample)",
            energy_models.estimate_header(),
            energy_models.estimate_rows(em),
            MODELS_NOTE + " Pricings: " + "; ".join(f"{p['name']} = {p['label']}" for p in em["pricings"]) + ".",
        )
    ]
    rows = energy_models.break_even_rows(em)
    if rows:
        out.append(
            (
                f"Break-even input rates against the ANN twins (network, T = {em['steps']})",
                energy_models.break_even_header(em),
                rows,
                BREAK_EVEN_NOTE,
            )
        )
        out.append(
            (
                "Break-even input rates per spiking layer",
                energy_models.layer_break_even_header(em),
                energy_models.layer_break_even_rows(em),
                "",
            )
        )
    return out


def _models_md(em: dict | None) -> list[str]:
    lines = []
    for title, header, rows, note in _models_sections(em):
        lines += [f"## {title}", "", _md_table(header, rows), ""] + ([note, ""] if note else [])
    return lines


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.warn{color:#8a4b00}
img{max-width:100%}code{background:#f5f5f5;padding:0 3px}"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>'


def report_html(summary: EnergyReport, per_layer: pd.DataFrame, images: dict[str, bytes]) -> str:
    """A self-contained HTML page (plots embedded as data URIs)."""
    ck, data = summary.checkpoint, summary.data
    h = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Energy report: {html.escape(ck.kind)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Energy report: {html.escape(ck.kind)}</h1>",
        f"<p>Checkpoint <code>{html.escape(str(ck.path))}</code> · data {html.escape(str(data.source))} "
        f"({data.samples} samples) · cost model <code>{html.escape(summary.cost_model['name'])}</code> · "
        f"weight reuse <code>{html.escape(summary.reuse)}</code></p>",
        "<h2>Summary (paper Table 6 form, per sample)</h2>",
        _html_table(["", "value"], [list(r) for r in table6_rows(summary)]),
        f"<p>Neuron-update energy is grouped with {html.escape(summary.neuron_energy_grouping)} energy.</p>",
    ]
    by_part = part_rows(summary)
    if by_part:
        h += [
            "<h2>Energy by part (per sample)</h2>",
            _html_table(PART_HEADER, by_part),
            f"<p>{html.escape(PART_NOTE)}</p>",
        ]
    for title, header, rows, note in _models_sections(summary.energy_models):
        h += [f"<h2>{html.escape(title)}</h2>", _html_table(header, rows)] + (
            [f"<p>{html.escape(note)}</p>"] if note else []
        )
    if summary.warnings:
        h.append(
            "<h2>Warnings and assumptions</h2><ul>"
            + "".join(f"<li class='warn'>{html.escape(w)}</li>" for w in summary.warnings)
            + "</ul>"
        )
    for caption, png in images.items():
        h.append(f"<h2>{html.escape(caption)}</h2>" + _img(png, caption))
    cols, rows = per_layer_rows(per_layer)
    h += ["<h2>Per layer (whole profiled batch)</h2>", _html_table(cols, rows)]
    if summary.not_counted:
        h.append(
            "<h2>Not counted</h2><ul>"
            + "".join(
                f"<li><code>{html.escape(r.name)}</code> ({html.escape(r.type)}): {html.escape(r.reason)}</li>"
                for r in summary.not_counted
            )
            + "</ul>"
        )
    h.append(
        "<h2>Cost model and sources</h2><ul>"
        + "".join(
            f"<li>{html.escape(line.lstrip('- ').replace('**', ''))}</li>"
            for line in _provenance_md(summary.cost_model)
        )
        + "</ul>"
    )
    if summary.energy_models:
        h.append(
            "<h2>Energy models and sources</h2><ul>"
            + "".join(
                f"<li>{html.escape(line.strip().lstrip('- ').replace('**', ''))}</li>"
                for line in energy_models.provenance_lines(summary.energy_models)
            )
            + "</ul>"
        )
    h.append(
        "<h2>Counting conventions</h2><ul>"
        + "".join(f"<li>{html.escape(c)}</li>" for c in summary.conventions)
        + "</ul>"
    )
    h.append("</body></html>")
    return "\n".join(h)


# --------------------------------------------------------------------------- comparisons

COMPARE_COLUMNS = [
    ("name", "model"),
    ("kind", "kind"),
    ("accuracy", "top-1 [95 % CI]"),
    ("eval_clips", "eval clips"),
    ("top1_diff", "Δ top-1 vs baseline [95 % CI]"),
    ("p_value", "McNemar p"),
    ("macs", "MACs"),
    ("sops", "SOPs"),
    ("neuron_updates", "neuron updates"),
    ("mem_accesses", "memory accesses"),
    ("compute_j", "compute energy (J)"),
    ("memory_j", "memory energy (J)"),
    ("total_j", "total energy (J)"),
    ("memory_ratio", "memory ratio"),
]
#: columns shown only when the rows carry a paired comparison (two or more checkpoints)
PAIRED_COLUMNS = ("top1_diff", "p_value")
RATIO_KEYS = ("macs", "sops", "neuron_updates", "mem_accesses", "compute_j", "memory_j", "total_j")


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def part_column(part: str) -> str:
    """The comparison table's column of a model part's total energy per sample (``part_hsfe_j``, ...)."""
    return "part_" + "_".join(part.lower().split()) + "_j"


def comparison_frame(rows: list[dict], baseline: int = 0) -> pd.DataFrame:
    """One row per model with per-sample figures and each column's ratio to the baseline model
    (``rows[baseline]``, the first by default); ``df.attrs["baseline"]`` names it. A row's energy by
    part (``energy_by_part_j``) becomes one column per part (:func:`part_column`; NaN where a model has
    no such part), ``df.attrs["parts"]`` lists them in display order."""
    from spklip.parts import PARTS

    df = pd.DataFrame.from_records(rows)
    base = rows[baseline]
    for key in RATIO_KEYS:
        b = base.get(key) or 0
        df[f"{key}_ratio"] = [(r.get(key) / b) if b else float("nan") for r in rows]
    by_part = [r.get("energy_by_part_j") or {} for r in rows]
    df = df.drop(columns=["energy_by_part_j", "energy_models"], errors="ignore")
    ranges = [energy_models.range_columns(r.get("energy_models")) for r in rows]
    for key in dict.fromkeys(k for d in ranges for k in d):
        df[key] = [d.get(key) for d in ranges]
    present = [p for p in PARTS if any(p in d for d in by_part)]
    for part in present:
        df[part_column(part)] = [d.get(part, float("nan")) for d in by_part]
    df.attrs["baseline"] = base.get("name")
    df.attrs["parts"] = present
    df.attrs["ranges_md"] = energy_models.ranges_markdown(rows)
    return df


def _accuracy_cell(r) -> str:
    v, low, high = r.get("accuracy"), r.get("acc_ci_low"), r.get("acc_ci_high")
    if _missing(v):
        return "—"
    if _missing(low) or _missing(high):
        return f"{100 * v:.1f} %"
    return f"{100 * v:.1f} % {fmt_interval(low, high)}"


def _diff_cell(r) -> str:
    d = r.get("top1_diff")
    if _missing(d):
        note = r.get("paired")
        return "—" if _missing(note) or not note else str(note)
    return fmt_difference(d, r.get("diff_ci_low"), r.get("diff_ci_high"), unit=" pts")


def _p_cell(p) -> str:
    if _missing(p):
        return "—"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _part_cell(v, total) -> str:
    if _missing(v):
        return "—"
    return f"{v:.4g} ({100 * v / total:.1f} %)" if not _missing(total) and total else f"{v:.4g}"


def _comparison_notes(base: str | None, paired: bool, parts: bool = False) -> str:
    notes = [f"Ratios (×) are to {'the first model' if base is None else f'the baseline, {base}'}."]
    notes.append(
        "top-1 is what `eval` recorded in each checkpoint, with its 95 % Wilson interval over the "
        "evaluated clips (eval clips); — where a checkpoint records none."
    )
    if paired:
        notes.append(
            "Δ top-1: this model minus the baseline on the same clips, with a 95 % paired-bootstrap "
            f"interval ({RESAMPLES:,} resamples of the clips); McNemar p: two-sided exact McNemar test "
            "(binomial on the clips exactly one of the two models got right)."
        )
    if parts:
        notes.append(
            "Energy by part (J): the total energy per sample of each part of the visual encoder "
            "(spklip/parts.py), with its share of the model's total; — where a model has "
            "no such part or is not a SPKLIP model."
        )
    return "\n\n".join(notes) + "\n"


def comparison_markdown(df: pd.DataFrame, cost_name: str, samples: int) -> str:
    base = df.attrs.get("baseline")
    paired = "paired" in df.columns
    columns = [(k, label) for k, label in COMPARE_COLUMNS if paired or k not in PAIRED_COLUMNS]
    parts = df.attrs.get("parts") or []
    part_keys = {part_column(p): p for p in parts}
    columns += [(key, f"{p} (J)") for key, p in part_keys.items()]
    header = [label.replace("baseline", str(base)) if base is not None else label for _, label in columns]
    rows = []
    for _, r in df.iterrows():
        cells = []
        for key, _ in columns:
            v = r.get(key)
            if key in part_keys:
                cells.append(_part_cell(v, r.get("total_j")))
            elif key == "accuracy":
                cells.append(_accuracy_cell(r))
            elif key == "eval_clips":
                cells.append("—" if _missing(v) else str(int(v)))
            elif key == "top1_diff":
                cells.append(_diff_cell(r))
            elif key == "p_value":
                cells.append(_p_cell(v))
            elif key == "memory_ratio":
                cells.append(f"{100 * v:.2f} %")
            elif key.endswith("_j"):
                ratio = r.get(f"{key}_ratio")
                cells.append(f"{v:.4g} (×{ratio:.3g})" if ratio == ratio else f"{v:.4g}")
            elif key in RATIO_KEYS:
                ratio = r.get(f"{key}_ratio")
                cells.append(f"{_si(v)} (×{ratio:.3g})" if ratio == ratio else _si(v))
            else:
                cells.append(str(v))
        rows.append(cells)
    return (
        f"# Model comparison (per sample, cost model `{cost_name}`, {samples} samples)\n\n"
        + _md_table(header, rows)
        + "\n\n"
        + _comparison_notes(base, paired, bool(parts))
        + ("\n" + df.attrs["ranges_md"] if df.attrs.get("ranges_md") else "")
    )


def comparison_html(
    df: pd.DataFrame, cost_name: str, samples: int, plot: bytes, parts_plot: bytes | None = None
) -> str:
    """The comparison as a self-contained HTML page: the table, its notes, the energy-vs-accuracy plot and
    (``parts_plot``) the energy-by-part plot."""
    tables = _md_tables(comparison_markdown(df, cost_name, samples))
    header, rows = tables[0]
    notes = "".join(
        f"<p>{html.escape(line.replace('`', ''))}</p>"
        for line in _comparison_notes(
            df.attrs.get("baseline"), "paired" in df.columns, bool(df.attrs.get("parts"))
        ).splitlines()
        if line
    )
    by_part = _img(parts_plot, "energy by part") if parts_plot is not None else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Model comparison</title><style>{_CSS}</style>"
        f"</head><body><h1>Model comparison</h1><p>Per sample, cost model <code>{html.escape(cost_name)}</code>, "
        f"{samples} samples.</p>{_html_table(header, rows)}{notes}"
        + "".join(f"<h2>Energy under published models (per sample)</h2>{_html_table(h, r)}" for h, r in tables[1:])
        + f"{_img(plot, 'energy vs accuracy')}{by_part}</body></html>"
    )


def _md_tables(md: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header, rows) of each Markdown table in ``md``, in order."""
    out, block = [], []
    for line in md.split("\n") + [""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip("|").split("|")])
        elif block:
            out.append((block[0], block[2:]))
            block = []
    return out


def _pct(x) -> str:
    return "—" if x is None or x != x else f"{100 * x:.1f}"


def benchmark_markdown(result: dict) -> str:
    """The A.7 protocol's table (``spklip-energy benchmark``) with how to read it."""
    seeds = result["seeds"]
    head = [
        "arm",
        "top-1 mean ± std",
        "pooled 95 % CI",
        *[f"seed {s}" for s in seeds],
        "Δ vs control [95 % CI]",
        "McNemar p",
        "R@5 pooled",
        f"µJ/clip ({result['cost_model']})",
        "× ANN",
    ]
    rows = []
    for r in result["rows"]:
        per_seed = r["top1_per_seed"]
        vs = r.get("vs_control")
        diff = (
            fmt_difference(vs["difference"], *vs["difference_ci"])
            if vs
            else ("(control)" if r["arm"] == "ann-control" else "—")
        )
        p = _p_cell(vs["p_value"]) if vs else "—"
        pooled = r["top1_pooled"]
        rows.append(
            [
                r["title"],
                fmt_mean_std(r["top1_mean"], r["top1_std"]),
                fmt_interval(pooled["ci_low"], pooled["ci_high"]),
                *[_pct(per_seed.get(s, per_seed.get(str(s)))) for s in seeds],
                diff,
                p,
                _pct(r["R@5_pooled"]["value"]),
                f"{r['energy_total_j'] * 1e6:.1f}",
                "—" if r.get("energy_vs_ann") is None else f"{r['energy_vs_ann']:.2f}",
            ]
        )
    pairs = [r for r in result["rows"] if r.get("vs_reference")]
    recipe: list[str] = []
    if pairs:
        prow = []
        for r in pairs:
            vs = r["vs_reference"]
            prow.append(
                [
                    r["arm"],
                    vs["arm"],
                    vs["question"],
                    fmt_difference(vs["difference"], *vs["difference_ci"]),
                    _p_cell(vs["p_value"]),
                    " / ".join(f"{100 * vs['difference_per_seed'][s]:+.1f}" for s in vs["seeds"]),
                    ", ".join(map(str, vs["seeds"])),
                ]
            )
        recipe = [
            "",
            "What each recipe brings: an arm against the arm it differs from in one thing, same seeds and "
            "test clips (Δ in points, pooled over seeds, paired-bootstrap 95 % CI; exact McNemar p):",
            "",
            _md_table(["arm", "against", "isolates", "Δ [95 % CI]", "McNemar p", "Δ per seed", "seeds"], prow),
        ]
    lines = [
        f"Test top-1 (%), zero-shot against the class prompts, {result['test_clips']} test clips per seed "
        f"({result['data']}, preset {result['preset']}, seeds {', '.join(map(str, seeds))}).",
        "",
        _md_table(head, rows),
        *recipe,
        "",
        f"- top-1 mean ± std: over seeds (sample std). Pooled 95 % CI: {result['statistics']['interval']}.",
        f"- Δ vs control and McNemar p: {result['statistics']['paired_test']}.",
        f"- Energy: per clip over {result['energy_clips']} test clips, cost model `{result['cost_model']}` "
        "(docs/energy.md), mean over seeds; × ANN is the ratio to the ANN arm's.",
        f"- Threads: {', '.join(map(str, result['threads']))}; training and evaluation "
        f"{result['train_s_total'] / 60:.0f} min in all; code {', '.join(result['commits']) or 'unknown'}.",
    ]
    return "\n".join(lines) + "\n"


def conversion_curves(result: dict) -> dict[str, list[dict]]:
    """Per conversion arm of a benchmark result, one point per sweep row (ANN, QCFS ANN, each T) over seeds:
    ``label``, ``timesteps``, ``seeds``, top-1 ``mean``/``std`` over seeds, the ``pooled`` 95 % Wilson interval
    (from each seed's top-1 on its test clips) and the mean energy per clip ``total_j``."""
    from spklip_energy.stats import aggregate_seeds

    n = result.get("test_clips")
    out: dict[str, list[dict]] = {}
    for row in result["rows"]:
        sweeps = row.get("convert_sweep") or {}
        if not sweeps or not n:
            continue
        by_label: dict = {}
        for sweep in sweeps.values():
            for point in sweep or []:
                label = point.get("label") or ("ANN" if point["timesteps"] is None else f"T={point['timesteps']}")
                by_label.setdefault(label, []).append(point)
        curve = []
        for label, points in by_label.items():
            agg = aggregate_seeds([(round(p["top1"] * n), n) for p in points])
            curve.append(
                {
                    "label": label,
                    "timesteps": points[0]["timesteps"],
                    "seeds": len(points),
                    "mean": agg["mean"],
                    "std": agg["std"],
                    "pooled": agg["pooled"],
                    "total_j": sum(p["total_j"] for p in points) / len(points),
                }
            )
        out[row["arm"]] = curve
    return out


def convert_sweep_markdown(result: dict) -> str | None:
    """Each conversion arm's accuracy and energy against T over seeds (None without one): top-1 mean ± std over
    seeds and the pooled 95 % Wilson interval (from each seed's top-1 on its test clips)."""
    from spklip_energy.benchmark import ARM_TITLES

    parts = []
    for arm, curve in conversion_curves(result).items():
        rows = [
            [
                p["label"],
                fmt_mean_std(p["mean"], p["std"]),
                fmt_interval(p["pooled"]["ci_low"], p["pooled"]["ci_high"]),
                str(p["seeds"]),
                f"{p['total_j'] * 1e6:.1f}",
            ]
            for p in curve
        ]
        parts.append(
            f"{ARM_TITLES.get(arm, arm)} (`{arm}`): accuracy and energy against T, "
            f"{result['test_clips']} test clips per seed:\n\n"
            + _md_table(["T", "top-1 mean ± std", "pooled 95 % CI", "seeds", f"µJ/clip ({result['cost_model']})"], rows)
            + "\n"
        )
    return "\n".join(parts) or None

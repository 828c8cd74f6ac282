"""Renderings of the energy under the published models (an :class:`~energy.record.EnergyReport`'s ``energy_models``): ranges, the fair
quantized-ANN baseline and break-even rates, as terminal lines and Markdown/HTML table rows. Never prices."""

from __future__ import annotations


def fmt_energy(low: float | None, high: float | None) -> str:
    """``1.23e-04`` or ``1.2e-04 – 3.4e-04`` (J); ``n/a`` when the model does not apply."""
    if low is None:
        return "n/a"
    if high is None or abs(high - low) <= 1e-12 * max(abs(high), 1e-30):
        return f"{low:.3e}"
    return f"{low:.3e} – {high:.3e}"


def _rate(r) -> str:
    return "—" if r is None else f"{r:.4f}"


def _infos(em: dict) -> dict[str, dict]:
    return {m["name"]: m for m in em["models"]}


def estimate_header() -> list[str]:
    return ["model", "status", "pricing", "energy per sample (J)", "priced layers", "ops priced", "not priced"]


def estimate_rows(em: dict) -> list[list[str]]:
    """One row per model and pricing: the energy per sample (a range for a bound), what share of the
    network's operations the model priced and how many layers it could not."""
    infos = _infos(em)
    rows = []
    for e in em["estimates"]:
        info = infos[e["model"]]
        if e["low_j"] is None:
            rows.append([e["model"], info["status"], e["precision"], "n/a", "—", "—", e["note"]])
            continue
        rows.append(
            [
                e["model"],
                info["status"],
                e["precision"],
                fmt_energy(e["low_j"], e["high_j"]),
                str(e["priced_layers"]),
                f"{100 * e['priced_ops_share']:.1f} %",
                str(len(e["not_priced"])),
            ]
        )
    return rows


def break_even_header(em: dict) -> list[str]:
    names = [p["name"] for p in em["pricings"]]
    return [
        "model",
        "measured input rate",
        "SNN layers (J)",
        *[f"ANN twin {n} (J)" for n in names],
        *[f"break-even vs {n}" for n in names],
    ]


def break_even_rows(em: dict) -> list[list[str]]:
    """Network-level: every spiking synaptic layer together, rates scaled alike."""
    rows = []
    for model, be in (em.get("break_even") or {}).items():
        net = be.get("network")
        if not net or not net["pricings"]:  # e.g. SpikeSim: no ANN to compare with
            continue
        pr = [net["pricings"].get(p["name"]) for p in em["pricings"]]
        rows.append(
            [
                model,
                _rate(net["input_rate"]),
                fmt_energy(net["snn_j"], None),
                *[fmt_energy(p["ann_j"], None) if p else "n/a" for p in pr],
                *[_verdict(p) for p in pr],
            ]
        )
    return rows


def _verdict(p: dict | None) -> str:
    """A break-even cell: the rate and which side is cheaper at the measured rate, or ``never`` (the spiking
    layer costs more even without spikes), ``always`` (less even at one spike per input and step),
    ``rate-independent`` (the model's energy does not depend on spikes)."""
    if not p:
        return "n/a"
    r = p.get("break_even_rate")
    if r is None:
        return "rate-independent" if p["verdict"].startswith("no dependence") else p["verdict"]
    if r <= 0:
        return "never"
    if r >= 1:
        return "always"
    return f"{r:.4f} ({p['verdict']})"


def layer_break_even_header(em: dict) -> list[str]:
    return [
        "model",
        "layer",
        "input rate",
        "spikes / synapse / inference",
        "Dampfhoffer band",
        *[f"break-even vs {p['name']}" for p in em["pricings"]],
    ]


def layer_break_even_rows(em: dict) -> list[list[str]]:
    rows = []
    for model, be in (em.get("break_even") or {}).items():
        if not (be.get("network") or {}).get("pricings"):
            continue
        for layer in be.get("layers", []):
            rows.append(
                [
                    model,
                    layer["name"],
                    _rate(layer["input_rate"]),
                    f"{layer['spikes_per_synapse']:.4f}",
                    layer["dampfhoffer"],
                    *[_verdict(layer["pricings"].get(p["name"])) for p in em["pricings"]],
                ]
            )
    return rows


def provenance_lines(em: dict) -> list[str]:
    """Markdown bullets: each model's citation, status, node and assumptions."""
    lines = []
    for m in em["models"]:
        lines.append(f"- **{m['name']}** ({m['title']}; status {m['status']}; {m['node']}): {m['citation']}")
        lines += [f"  - {a}" for a in m["assumptions"]]
    lines.append(
        "- status: P primary text or the authors' code; S+ secondary, cross-checked; S secondary; "
        "U UNVERIFIED (shared/reference/energy-models.md, energy-constants.md)"
    )
    return lines


def text_lines(em: dict) -> list[str]:
    """The terminal block: each model's energy per sample and, for a spiking network, the network-level
    break-even input rates."""
    infos = _infos(em)
    lines = ["energy per sample under each model (J; a range is a best-to-worst bound):"]
    for e in em["estimates"]:
        info = infos[e["model"]]
        if e["low_j"] is None:
            lines.append(f"  {e['model']:<18} {e['precision']:<7} n/a: {e['note']}")
            continue
        extra = f", {len(e['not_priced'])} layer(s) not priced" if e["not_priced"] and e["priced_ops_share"] < 1 else ""
        lines.append(
            f"  {e['model']:<18} {e['precision']:<7} {fmt_energy(e['low_j'], e['high_j']):<26} "
            f"[{info['status']}; {100 * e['priced_ops_share']:.0f} % of ops priced{extra}]"
        )
    rows = break_even_rows(em)
    if rows:
        names = [p["name"] for p in em["pricings"]]
        lines.append(
            f"break-even mean input rate of the spiking layers against their ANN twins ({', '.join(names)}; "
            f"T = {em['steps']}):"
        )
        for r in rows:
            lines.append(
                f"  {r[0]:<18} measured {r[1]}: "
                + "; ".join(f"{n}: {v}" for n, v in zip(names, r[-len(names) :], strict=True))
            )
    return lines


def range_columns(em: dict | None) -> dict[str, float | None]:
    """Flat columns of one variant's estimates for the comparison CSV: ``<model>@<pricing>_low_j`` / ``_high_j``."""
    out: dict[str, float | None] = {}
    for e in (em or {}).get("estimates", []):
        key = f"{e['model']}@{e['precision']}"
        out[f"{key}_low_j"], out[f"{key}_high_j"] = e["low_j"], e["high_j"]
    return out


def ranges_markdown(rows: list[dict]) -> str:
    """The comparison's second table: each variant (and, for an ANN, each fair pricing) under every model."""
    with_models = [r for r in rows if r.get("energy_models")]
    if not with_models:
        return ""
    models = list(dict.fromkeys(m["name"] for r in with_models for m in r["energy_models"]["models"]))
    status = {m["name"]: m["status"] for r in with_models for m in r["energy_models"]["models"]}
    header = ["model", "pricing", *[f"{m} ({status[m]})" for m in models]]
    body = []
    for r in with_models:
        em = r["energy_models"]
        by = {(e["model"], e["precision"]): e for e in em["estimates"]}
        for p in dict.fromkeys(e["precision"] for e in em["estimates"]):
            cells = []
            for m in models:
                e = by.get((m, p))
                cells.append(
                    "—" if e is None else fmt_energy(e["low_j"], e["high_j"]) if e["low_j"] is not None else "n/a"
                )
            body.append([r["name"], p, *cells])
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c) + " |" for c in body]
    pricings = {p["name"]: p["label"] for r in with_models for p in r["energy_models"]["pricings"]}
    note = (
        "Energy per sample (J) under each published model; a range is a best-to-worst bound; n/a: the model "
        "does not apply (SpikeSim prices spiking networks only). A network without neurons is also priced as "
        "int8 and as the activation width a T-step SNN of this comparison corresponds to (Yan et al.): "
        + "; ".join(f"{k} = {v}" for k, v in pricings.items())
        + ". Status: P primary, S+ secondary "
        "cross-checked, S secondary, U UNVERIFIED. Break-even rates per layer: `report` on the spiking model."
    )
    return "## Energy under published models (per sample)\n\n" + "\n".join(out) + "\n\n" + note + "\n"

"""The report's plots: pure functions from warehouse rows (dicts) to matplotlib figures.

Figures are built with matplotlib's object API and the Agg canvas (no pyplot state, no
display), and serialized as SVG with text kept as text, so a page embeds them without any
network and they stay sharp and searchable.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Row = dict[str, Any]

BASE, TUNED = "#7a8ca3", "#d9641e"
SIGNIFICANT, NOT_SIGNIFICANT = "#b2182b", "#555555"
# A significant change the good way (blue, as in the heat maps' RdBu scale, where red is the
# bad way), and one of a metric without a good direction.
BETTER, UNDIRECTED = "#2166ac", "#222222"
ARROWS = {True: " ↑", False: " ↓"}  # higher_is_better -> the good direction after a name
LEARNING_RATE = "#2b8c4a"
WIDTH = 8.0
STYLE = {"svg.fonttype": "none", "svg.hashsalt": "lorascope", "font.size": 9,
         "axes.spines.top": False, "axes.spines.right": False}


def new_figure(height: float, width: float = WIDTH) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def svg_data_uri(plot: Callable[..., Figure], *args: Any) -> str:
    """`plot(*args)` drawn as an SVG data URI, an <img> source (inline SVGs' ids would clash)."""
    with matplotlib.rc_context(STYLE):
        buffer = io.BytesIO()
        plot(*args).savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def png_bytes(plot: Callable[..., Figure], *args: Any, dpi: int = 100) -> bytes:
    """`plot(*args)` drawn as PNG, for places that show no SVG."""
    with matplotlib.rc_context(STYLE):
        buffer = io.BytesIO()
        plot(*args).savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def number(value: float | None, signed: bool = False) -> str:
    """The page's one rule for numbers: 3 significant digits, whole numbers from 1000 up (no
    exponent), integers as they are; `signed` writes + before positive values."""
    if value is None:
        return ""
    sign = "+" if signed else ""
    if isinstance(value, int):
        return f"{value:{sign}d}"
    value = value + 0.0  # -0.0 -> 0.0
    if math.isfinite(value) and abs(value) >= 1000:
        return f"{value:{sign}.0f}"
    return f"{value:{sign}.3g}"


def is_share(row: Row) -> bool:
    """A comparison of proportions (both values in 0..1): its delta is in points of share."""
    values = [row.get("base"), row.get("tuned")]
    return all(v is not None and 0.0 <= v <= 1.0 for v in values)


def forest_panels(rows: Sequence[Row]) -> list[tuple[str, list[Row]]]:
    """Rows grouped into panels by family and unit (shares apart from other scales); a
    family's per-type breakdown (slice `family:type`) is left out when the family has
    overall rows, since its own section plots it."""
    panels: dict[str, list[Row]] = {}
    for family in dict.fromkeys(row["family"] for row in rows):
        members = [row for row in rows if row["family"] == family and row["delta"] is not None]
        overall = [row for row in members if ":" not in (row["slice"] or "")]
        for row in overall or members:
            unit = "change in share" if is_share(row) else "change in value"
            panels.setdefault(f"{family} · {unit}", []).append(row)
    return list(panels.items())


def forest_label(row: Row) -> str:
    where = f" [{row['slice']}]" if row["slice"] and row["slice"] != "(all)" else ""
    return f"{row['metric']}{where}{ARROWS.get(row.get('higher_is_better'), '')}  n={row['n']}"


def change_color(row: Row, alpha: float) -> str:
    """A comparison's colour: grey unless significant after correction; then blue if it moved
    the good way (`higher_is_better`), red if the bad way, black if it has no good way."""
    if row["p_adjusted"] is None or row["p_adjusted"] >= alpha:
        return NOT_SIGNIFICANT
    better = row.get("higher_is_better")
    if better is None or not row["delta"]:
        return UNDIRECTED
    return BETTER if (row["delta"] > 0) == better else SIGNIFICANT


def panel_direction(members: Sequence[Row]) -> str:
    """A panel's good direction when all its rows share one, for its title."""
    directions = {row.get("higher_is_better") for row in members}
    if directions == {True}:
        return " · higher is better ↑"
    if directions == {False}:
        return " · lower is better ↓"
    return " · ↑/↓ per row" if directions - {None} else ""


def forest_plot(rows: Sequence[Row], alpha: float) -> Figure:
    """Base-vs-tuned deltas with their intervals, one panel per family (and unit). Names end
    in the good direction (↑/↓, from `higher_is_better`); a filled point is significant after
    the evaluation's correction (p_adjusted < alpha): blue the better way, red the worse."""
    panels = forest_panels(rows)
    heights = [len(members) + 1.2 for _, members in panels]
    figure = new_figure(0.22 * sum(heights) + 0.9)
    axes = figure.subplots(len(heights), 1, gridspec_kw={"height_ratios": heights},
                           squeeze=False)[:, 0]
    for ax, (title, members) in zip(axes, panels, strict=True):
        y = list(range(len(members)))[::-1]
        for position, row in zip(y, members, strict=True):
            significant = row["p_adjusted"] is not None and row["p_adjusted"] < alpha
            color = change_color(row, alpha)
            if row["ci_low"] is not None and row["ci_high"] is not None:
                ax.plot([row["ci_low"], row["ci_high"]], [position] * 2, color=color, lw=1.5)
            ax.plot(row["delta"], position, "o", color=color, ms=5,
                    mfc=color if significant else "white")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, [forest_label(row) for row in members])
        ax.set_ylim(-0.7, len(members) - 0.3)
        ax.set_title(title + panel_direction(members), loc="left", fontsize=9,
                     fontweight="bold")
        ax.tick_params(axis="y", length=0)
    axes[-1].set_xlabel(f"tuned − base, with its {_confidence(rows)} interval; ↑/↓: higher/"
                        f"lower is better\nfilled: adjusted p < {alpha:g}; blue: better, red: "
                        "worse, black: no better way")
    return figure


def _confidence(rows: Sequence[Row]) -> str:
    levels = {row.get("confidence") for row in rows if row.get("confidence")}
    return f"{levels.pop():.0%}" if len(levels) == 1 else "stated"


def training_plot(rows: Sequence[Row],
                  schedule: Sequence[tuple[int, float]] | None = None) -> Figure:
    """Train and validation loss per step; below, on the same steps, the learning rate:
    `schedule` (step, rate) as a line where given, and the rate reported at each train
    report (train_metrics) as points."""
    figure = new_figure(4.2)
    ax, lr_ax = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    for split, style in (("train", "-o"), ("valid", "--s")):
        points = [(r["step"], r["loss"]) for r in rows if r["split"] == split and r["loss"]]
        if points:
            ax.plot(*zip(*points, strict=True), style, ms=3, label=f"{split} loss")
    ax.set_ylabel("loss")
    ax.legend(loc="upper right", frameon=False)
    if schedule:
        lr_ax.plot(*zip(*schedule, strict=True), "-", color=LEARNING_RATE, lw=1.2,
                   label="schedule (config)")
    reported = [(r["step"], r["learning_rate"]) for r in rows
                if r["split"] == "train" and r["learning_rate"] is not None]
    if reported:
        lr_ax.plot(*zip(*reported, strict=True), "o", color=LEARNING_RATE, ms=4,
                   mfc="white", label="reported (train_metrics)")
    lr_ax.set_xlabel("step")
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_ylim(bottom=0)
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    if schedule or reported:
        lr_ax.legend(loc="upper right", frameon=False)
    return figure


def paired_bars(ax: Any, labels: Sequence[str], base: Sequence[float],
                tuned: Sequence[float]) -> None:
    """Base and tuned rates (0..1) as horizontal bar pairs, each bar's value written at its
    end, so a rate of 0, which draws no bar, still reads as 0 rather than as missing."""
    positions = range(len(labels))
    for offset, values, color, name in ((0.2, base, BASE, "base"), (-0.2, tuned, TUNED, "tuned")):
        ax.barh([p + offset for p in positions], [v or 0 for v in values], 0.4, color=color,
                label=name)
        for position, value in zip(positions, values, strict=True):
            if value is None:
                continue
            inside = value > 0.85  # near the axis' end, inside the bar
            ax.text(value - 0.01 if inside else value + 0.01, position + offset, number(value),
                    ha="right" if inside else "left", va="center", fontsize=6.5,
                    color="white" if inside else "#333333")
    ax.set_yticks(list(positions), labels)
    ax.invert_yaxis()
    ax.tick_params(axis="y", length=0)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1), ncols=2, frameon=False)


def instruction_plot(rows: Sequence[Row]) -> Figure:
    """Share of instructions followed per instruction type (strict), base vs tuned, with
    the delta's interval and n written beside each pair."""
    figure = new_figure(0.42 * len(rows) + 0.9)
    ax = figure.subplots()
    labels = [f"{r['family']}: {r['instruction_type']}" for r in rows]
    paired_bars(ax, labels, [r["base_acc"] for r in rows], [r["tuned_acc"] for r in rows])
    for position, row in enumerate(rows):
        ax.text(1.02, position, f"Δ {_signed(row['delta'])} {interval(row)}  n={row['n']}",
                va="center", fontsize=8, transform=ax.get_yaxis_transform())
    ax.set_xlim(0, 1)
    ax.set_xlabel("instructions followed (strict)")
    return figure


def failure_plot(rows: Sequence[Row]) -> Figure:
    """Share of answers showing each failure mode, base vs tuned, with the delta's interval."""
    figure = new_figure(0.45 * len(rows) + 0.9)
    ax = figure.subplots()
    paired_bars(ax, [r["mode"] for r in rows], [r["base_rate"] for r in rows],
                [r["tuned_rate"] for r in rows])
    for position, row in enumerate(rows):
        ax.text(1.02, position, f"Δ {_signed(row['delta'])} {interval(row)}  n={row['n']}",
                va="center", fontsize=8, transform=ax.get_yaxis_transform())
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of answers with the failure")
    return figure


def category_label(category: str, domain: str | None) -> str:
    """A prompt category named as the rest of the report names its slice, the domain first:
    `in_domain (science_qa)`; a category that is its own domain keeps its name."""
    return f"{domain} ({category})" if domain and domain != category else category


def failure_category_heatmap(rows: Sequence[Row],
                             domains: dict[str, str] | None = None) -> Figure:
    """Change in the share of answers showing each failure mode (tuned − base), per prompt
    category (rows, named with their domain from `domains`, category -> domain, and in its
    order): red where tuning added failures, blue where it removed them, grey where neither
    model showed it."""
    domains = domains or {}
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    categories = sorted({r["category"] for r in rows},
                        key=lambda c: (domains.get(c, ""), c))
    grid = [[math.nan] * len(modes) for _ in categories]
    for r in rows:
        grid[categories.index(r["category"])][modes.index(r["mode"])] = (
            r["tuned_rate"] - r["base_rate"])
    figure = new_figure(0.26 * len(categories) + 1.4)
    ax = figure.subplots()
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#e6e6e6")
    image = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(modes)), modes, rotation=20, ha="left", fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(categories)),
                  [f"{category_label(c, domains.get(c))}  n={_category_n(rows, c)}"
                   for c in categories], fontsize=7)
    figure.colorbar(image, ax=ax, label="tuned − base share")
    return figure


def _category_n(rows: Sequence[Row], category: str) -> Any:
    return max((r["n"] or 0 for r in rows if r["category"] == category), default=0)


def capability_plot(rows: Sequence[Row]) -> Figure:
    """Multiple-choice accuracy per task and metric, base vs tuned, with the delta's interval."""
    figure = new_figure(0.5 * len(rows) + 0.9)
    ax = figure.subplots()
    paired_bars(ax, [f"{r['task']} {r['metric']}" for r in rows],
                [r["base_acc"] for r in rows], [r["tuned_acc"] for r in rows])
    for position, row in enumerate(rows):
        ax.text(1.02, position, f"Δ {_signed(row['delta'])} {interval(row)}  n={row['n']}",
                va="center", fontsize=8, transform=ax.get_yaxis_transform())
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    return figure


def behaviour_plot(rows: Sequence[Row], alpha: float) -> Figure:
    """A behaviour family's rates per prompt set and metric: base vs tuned on the left, the
    change with its interval on the right (filled: adjusted p < alpha; red: a significant
    change the metric's bad way, the view's `worse`). Labels carry the good direction."""
    figure = new_figure(0.42 * len(rows) + 1.0)
    rates, changes = figure.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    arrows = {"higher": " ↑", "lower": " ↓"}
    labels = [f"{r['prompt_set']}: {r['metric']}{arrows.get(r['better'], '')}  n={r['n']}"
              for r in rows]
    paired_bars(rates, labels, [r["base"] for r in rows], [r["tuned"] for r in rows])
    rates.set_xlim(0, 1)
    rates.set_xlabel("rate")
    for position, row in enumerate(rows):
        if row["delta"] is None:
            continue
        significant = row["p_adjusted"] is not None and row["p_adjusted"] < alpha
        color = SIGNIFICANT if row["worse"] else NOT_SIGNIFICANT
        if row["ci_low"] is not None and row["ci_high"] is not None:
            changes.plot([row["ci_low"], row["ci_high"]], [position] * 2, color=color, lw=1.5)
        changes.plot(row["delta"], position, "o", color=color, ms=5,
                     mfc=color if significant else "white")
    changes.axvline(0, color="black", lw=0.8)
    changes.set_xlim(-1, 1)
    changes.set_xlabel(f"tuned − base, interval\n(filled: adjusted p < {alpha:g}; red: worse)")
    changes.tick_params(axis="y", length=0)
    return figure


def gate_plot(rows: Sequence[Row]) -> Figure:
    """The regression gate's comparisons as a change in the good direction (the delta, its
    sign turned where lower is better) with the interval; the dashed line is the allowed
    drop, red points failed the gate."""
    figure = new_figure(0.32 * len(rows) + 1.0)
    ax = figure.subplots()
    y = list(range(len(rows)))[::-1]
    for position, row in zip(y, rows, strict=True):
        sign = -1 if row["higher_is_better"] is False else 1
        color = SIGNIFICANT if row["failed"] else NOT_SIGNIFICANT
        if row["ci_low"] is not None and row["ci_high"] is not None:
            ax.plot([sign * row["ci_low"], sign * row["ci_high"]], [position] * 2, color=color,
                    lw=1.5)
        ax.plot(sign * row["delta"], position, "o", color=color, ms=5,
                mfc=color if row["failed"] else "white")
        ax.plot(-row["max_drop"], position, "|", color="black", ms=10)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [f"{r['family']} {r['metric']} [{r['slice']}]" for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel("change in the good direction, with its interval (|: the allowed drop; "
                  "red: failed)")
    return figure


def reliability_plot(rows: Sequence[Row]) -> Figure:
    """Reliability diagram per task: accuracy against mean confidence per bin, base and
    tuned; points sized by the items in the bin; on the diagonal is calibrated."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    figure = new_figure(3.2, min(WIDTH, 3.4 * len(tasks) + 0.4))
    for ax, task in zip(figure.subplots(1, len(tasks), squeeze=False)[0], tasks, strict=True):
        ax.plot([0, 1], [0, 1], color="black", lw=0.8, label="calibrated")
        for variant, color in (("base", BASE), ("tuned", TUNED)):
            points = [r for r in rows if r["task"] == task and r["variant"] == variant]
            ax.plot([r["mean_confidence"] for r in points], [r["accuracy"] for r in points],
                    "-", color=color, lw=1)
            ax.scatter([r["mean_confidence"] for r in points], [r["accuracy"] for r in points],
                       s=[6 + 4 * math.sqrt(r["count"]) for r in points], color=color,
                       label=variant, alpha=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=task)
        ax.set_aspect("equal")
        ax.legend(loc="upper left", frameon=False)
    return figure


def attention_heatmap(rows: Sequence[Row], adapted: Sequence[int] = ()) -> Figure:
    """Mean Jensen-Shannon divergence between base and tuned attention per layer and head;
    the layers with adapters (`adapted`) have their numbers in the tuned colour, below a
    dashed line where they start."""
    layers = sorted({r["layer"] for r in rows})
    heads = sorted({r["head"] for r in rows})
    grid = [[math.nan] * len(heads) for _ in layers]
    for r in rows:
        grid[layers.index(r["layer"])][heads.index(r["head"])] = r["mean_js_divergence"]
    figure = new_figure(min(0.16 * len(layers) + 1.2, 7.0), 5.5)
    ax = figure.subplots()
    image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest", vmin=0)
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    ax.set_xticks(range(len(heads)), heads, fontsize=7)
    ax.set(xlabel="head", ylabel="layer (orange: with adapters)" if adapted else "layer")
    for label, layer in zip(ax.get_yticklabels(), layers, strict=True):
        if layer in adapted:
            label.set(color=TUNED, fontweight="bold")
    first = min((layers.index(layer) for layer in adapted if layer in layers), default=0)
    if first > 0:
        ax.axhline(first - 0.5, color="white", lw=1.2, ls="--")
    figure.colorbar(image, ax=ax, label="JS divergence (nats)")
    return figure


def experiment_plot(rows: Sequence[Row], parameter: str) -> Figure:
    """Each comparison's delta against the swept value, with its interval: one small panel
    per (kind, subject, metric), members in sweep order; titles leave out a kind all share."""
    keys = list(dict.fromkeys((r["kind"], r["subject"], r["metric"]) for r in rows))
    shared_kind = len({key[0] for key in keys}) == 1
    values = list(dict.fromkeys(r["value"] for r in rows))
    columns = min(3, len(keys)) or 1
    lines = math.ceil(len(keys) / columns) or 1
    figure = new_figure(2.0 * lines + 0.4)
    axes = figure.subplots(lines, columns, squeeze=False).ravel()
    for ax, key in zip(axes, keys, strict=False):
        points = [r for r in rows if (r["kind"], r["subject"], r["metric"]) == key
                  and r["delta"] is not None]
        x = [values.index(r["value"]) for r in points]
        low = [r["delta"] - r["ci_low"] if r["ci_low"] is not None else 0 for r in points]
        high = [r["ci_high"] - r["delta"] if r["ci_high"] is not None else 0 for r in points]
        ax.errorbar(x, [r["delta"] for r in points], yerr=[low, high], fmt="o-", ms=4,
                    capsize=3, color=TUNED)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(values)), values, fontsize=7)
        shown = key[1:] if shared_kind else key
        ax.set_title(" · ".join(k for k in shown if k and k != "(all)"), fontsize=8)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    figure.supxlabel(parameter, fontsize=9)
    figure.supylabel("tuned − base", fontsize=9)
    return figure


def transfer_plot(rows: Sequence[Row], domains: Sequence[str]) -> Figure:
    """A domain experiment's goal deltas on each evaluated domain (x) for each trained domain
    (one series each, with its interval): one panel per slice and metric. The point of the
    trained domain's own x is its in-domain gain; the others, what its tuning did elsewhere."""
    keys = list(dict.fromkeys((r["slice"], r["metric"]) for r in rows))
    columns = min(3, len(keys)) or 1
    lines = math.ceil(len(keys) / columns) or 1
    figure = new_figure(2.2 * lines + 0.6)
    axes = figure.subplots(lines, columns, squeeze=False).ravel()
    colors = matplotlib.colormaps["tab10"]
    for ax, key in zip(axes, keys, strict=False):
        for number, trained in enumerate(domains):
            points = [r for r in rows if (r["slice"], r["metric"]) == key
                      and r["trained_domain"] == trained and r["delta"] is not None]
            offset = (number - (len(domains) - 1) / 2) * 0.12
            x = [domains.index(r["evaluated_domain"]) + offset for r in points]
            low = [r["delta"] - r["ci_low"] if r["ci_low"] is not None else 0 for r in points]
            high = [r["ci_high"] - r["delta"] if r["ci_high"] is not None else 0 for r in points]
            ax.errorbar(x, [r["delta"] for r in points], yerr=[low, high], fmt="o", ms=4,
                        capsize=2, color=colors(number % 10), label=f"tuned on {trained}")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(domains)), domains, fontsize=7)
        ax.set_title(" · ".join(k for k in key if k), fontsize=8)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper center", ncols=min(4, len(domains)),
                  frameon=False)
    figure.supxlabel("evaluated domain", fontsize=9)
    figure.supylabel("tuned − base", fontsize=9)
    return figure


def _signed(value: float | None) -> str:
    return number(value, signed=True)


def interval(row: Row) -> str:
    """A row's interval (ci_low, ci_high) as `[-0.1, +0.2]`; "" without one."""
    if row.get("ci_low") is None or row.get("ci_high") is None:
        return ""
    return f"[{number(row['ci_low'], True)}, {number(row['ci_high'], True)}]"

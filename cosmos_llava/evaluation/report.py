"""The evaluation report: Markdown tables per metric and category, and per-category bar plots with
the models side by side, from the summary `eval` writes (`summary.json`)."""

from __future__ import annotations

from pathlib import Path

TITLES = {
    "judge100": "LLM judge score, 0-100 (mean and 95% bootstrap interval)",
    "relative": "Relative score, LLaVA-Bench style (candidate / reference x 100, both orders averaged)",
    "binary": "Yes/no questions (positive class: yes; unknown answers count as wrong)",
    "exact": "Short answers, exact match after Turkish normalisation",
}


def _num(value, digits: int = 1, percent: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{digits}f}%" if percent else f"{value:.{digits}f}"


def _categories(summary: dict, metric: str) -> list[str]:
    names = {c for model in summary["models"].values() for c in (model.get(metric) or {})}
    return sorted(names - {"overall"}) + (["overall"] if "overall" in names else [])


def _cell(metric: str, entry: dict | None) -> str:
    if not entry:
        return "—"
    if metric == "judge100":
        text = _num(entry["mean"])
        if entry["mean"] is not None:
            text += f" [{entry['low']:.1f}, {entry['high']:.1f}]"
        return text + f" (n={entry['scored']}" + (f", {entry['failed']} failed)" if entry["failed"] else ")")
    if metric == "relative":
        text = _num(entry["score"])
        if entry["candidate_mean"] is not None:
            text += f" ({entry['candidate_mean']:.2f} / {entry['reference_mean']:.2f})"
        return text + f" n={entry['scored']}" + (f", {entry['failed']} failed" if entry["failed"] else "")
    if metric == "exact":
        return f"{_num(entry['accuracy'], percent=True)} ({entry['correct']}/{entry['n']})"
    raise AssertionError(metric)


def markdown(summary: dict, plots: dict[str, str]) -> str:
    models = list(summary["models"])
    judge = summary.get("judge")
    judge_text = f"`{judge['model']}` at {judge['endpoint']}" if judge else "none"
    lines = ["# Evaluation report", "",
             f"Data: `{summary['data']}`, {summary['rows']} rows. Reasoning: {summary['reasoning']}. "
             f"Judge: {judge_text}.", "",
             "| model | answered | errors | not yet answered | tokens per answer | seconds per answer |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, model in summary["models"].items():
        g = model["generation"]
        lines.append(f"| {name} | {g['answered']} | {g['errors']} | {g['missing']} | "
                     f"{_num(g['completion_tokens_mean'])} | {_num(g['seconds_per_answer'], 2)} |")
    reasoning = {name: m["generation"].get("reasoning") for name, m in summary["models"].items()}
    if any(reasoning.values()):
        lines += ["", "| model | reasoning | well-formed traces | judge tokens per answer | comparisons per answer |",
                  "| --- | --- | ---: | ---: | ---: |"]
        for name, r in reasoning.items():
            if r:
                lines.append(f"| {name} | {r['mode']} | {_num(r['well_formed'], percent=True)} | "
                             f"{_num(r['judge_tokens_mean'])} | {_num(r['comparisons_mean'])} |")
    for metric in summary["metrics"]:
        lines += ["", f"## {metric}: {TITLES[metric]}", ""]
        categories = _categories(summary, metric)
        if not categories:
            lines.append("No rows of this kind in the data.")
            continue
        if metric == "binary":
            lines += ["| model | category | n | accuracy | precision | recall | F1 | yes ratio | unknown |",
                      "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
            for name in models:
                for category in categories:
                    r = (summary["models"][name].get("binary") or {}).get(category)
                    if r:
                        label = f"**{category}**" if category == "overall" else category
                        lines.append(f"| {name} | {label} | {r['n']} | {_num(r['accuracy'], percent=True)} | "
                                     f"{_num(r['precision'], 3)} | {_num(r['recall'], 3)} | {_num(r['f1'], 3)} | "
                                     f"{_num(r['yes_ratio'], percent=True)} | {r['unknown']} |")
        else:
            lines += ["| category | " + " | ".join(models) + " |", "| --- |" + " ---: |" * len(models)]
            for category in categories:
                label = f"**{category}**" if category == "overall" else category
                cells = [_cell(metric, (summary["models"][name].get(metric) or {}).get(category)) for name in models]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if metric in plots:
            lines += ["", f"![{metric}]({plots[metric]})"]
    return "\n".join(lines) + "\n"


def _bars(ax, categories: list[str], series: dict[str, list], errors: dict[str, list] | None = None) -> None:
    import numpy as np

    width = 0.8 / max(len(series), 1)
    x = np.arange(len(categories))
    for index, (name, values) in enumerate(series.items()):
        heights = [v if v is not None else 0 for v in values]
        yerr = None
        if errors and name in errors:
            yerr = np.array([[e[0], e[1]] if e else [0, 0] for e in errors[name]]).T
        ax.bar(x + (index - (len(series) - 1) / 2) * width, heights, width, label=name, yerr=yerr, capsize=3)
    ax.set_xticks(x, categories, rotation=20, ha="right")
    ax.grid(axis="y", alpha=0.3)


def plot(summary: dict, metric: str, path: Path) -> bool:
    """A grouped bar chart of one metric by category, models side by side; False if nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories = _categories(summary, metric)
    if not categories:
        return False
    models = summary["models"]

    def values(name: str, key: str, scale: float = 1.0) -> list:
        column = []
        for category in categories:
            entry = (models[name].get(metric) or {}).get(category) or {}
            value = entry.get(key)
            column.append(value * scale if value is not None else None)
        return column

    panels = {"judge100": [("mean", "score (0-100)", 1.0)], "relative": [("score", "relative score", 1.0)],
              "binary": [("accuracy", "accuracy (%)", 100.0), ("f1", "F1", 1.0)],
              "exact": [("accuracy", "exact match (%)", 100.0)]}[metric]
    figure, axes = plt.subplots(1, len(panels), figsize=(max(5.0, 1.2 * len(categories) + 2) * len(panels), 4),
                                squeeze=False)
    for ax, (key, label, scale) in zip(axes[0], panels):
        series = {name: values(name, key, scale) for name in models}
        errors = None
        if metric == "judge100":
            errors = {}
            for name in models:
                entries = [(models[name].get(metric) or {}).get(c) or {} for c in categories]
                errors[name] = [(e["mean"] - e["low"], e["high"] - e["mean"]) if e.get("mean") is not None else None
                                for e in entries]
        _bars(ax, categories, series, errors)
        ax.set_ylabel(label)
    axes[0][0].set_title(TITLES[metric].split(" (")[0], loc="left", fontsize=10)
    axes[0][-1].legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write_report(summary: dict, out: Path) -> list[Path]:
    """`report.md` and `plots/<metric>.png` in `out`; returns the paths written."""
    out = Path(out)
    written, plots = [], {}
    for metric in summary["metrics"]:
        path = out / "plots" / f"{metric}.png"
        if plot(summary, metric, path):
            plots[metric] = f"plots/{metric}.png"
            written.append(path)
    report = out / "report.md"
    report.write_text(markdown(summary, plots), encoding="utf-8")
    return [report, *written]

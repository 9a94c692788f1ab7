#!/usr/bin/env python3
"""Purpose: figures of a softflow results file (docs/results.md) against checkpoint time: a panel per observable,
with each cell's median and its q25-q75 and q05-q95 bands (or the median alone, or the mean), and one panel of fractions (s_max_ge_0_99, ...), a colour
per cell and a line style per fraction. Cells are told apart by the study parameters that differ between them. Run
through scripts/plot-results (which installs Debian's python3-matplotlib where missing); the series and labels need
no matplotlib (the tests use them alone). Bad input ends with one line on stderr and exit code 2, as the softflow
command line does.
"""
import argparse
import json
import math
import os
import sys
import tempfile

DEFAULT_OBSERVABLES = ["entropy_ratio", "s_max"]
DEFAULT_FRACTIONS = ["s_max_ge_0_9", "s_max_ge_0_99", "s_max_ge_0_999"]
BANDS = [("q05", "q95", 0.12), ("q25", "q75", 0.3)]  # (lower, upper, opacity), widest first


class PlotError(Exception):
    """Bad input: reported as one line and exit code 2."""


def load_results(path):
    """The results JSON at path, checked to be a softflow results file with at least one cell."""
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except FileNotFoundError:
        raise PlotError(f"{path}: no such file")
    except (OSError, UnicodeDecodeError) as e:
        raise PlotError(f"{path}: cannot read: {e}")
    except json.JSONDecodeError as e:
        raise PlotError(f"{path}: malformed JSON: {e}")
    except RecursionError:
        raise PlotError(f"{path}: malformed JSON: nested too deeply")
    if not isinstance(results, dict) or "cells" not in results or "schema_version" not in results:
        raise PlotError(f"{path}: not a softflow results file (no schema_version or cells)")
    if not isinstance(results["cells"], list) or not results["cells"]:
        raise PlotError(f"{path}: the results hold no cells")
    for cell in results["cells"]:
        check_cell(cell, path)
    return results


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_cell(cell, path):
    """Refuses a cell that is not as softflow writes it, in what the figure reads (docs/results.md "cells[]")."""
    if not isinstance(cell, dict) or not isinstance(cell.get("index"), int) or isinstance(cell.get("index"), bool):
        raise PlotError(f"{path}: a cell without an index")
    where = f"{path}: cell {cell['index']}"
    if not isinstance(cell.get("parameters"), dict):
        raise PlotError(f"{where}: no parameters")
    if not isinstance(cell.get("checkpoints"), list) or not cell["checkpoints"]:
        raise PlotError(f"{where}: no checkpoints")
    for checkpoint in cell["checkpoints"]:
        if not isinstance(checkpoint, dict) or not is_number(checkpoint.get("t")):
            raise PlotError(f"{where}: a checkpoint without a time t")
        for key in ("observables", "fractions"):
            if not isinstance(checkpoint.get(key, {}), dict):
                raise PlotError(f"{where}: a checkpoint's {key} are not an object")
        for name, summary in checkpoint.get("observables", {}).items():
            if summary is not None and (not isinstance(summary, dict) or
                                        not isinstance(summary.get("quantiles", {}), dict)):
                raise PlotError(f"{where}: observable {name} is not as softflow writes it")


def select_cells(results, indices):
    """The cells to draw: all (indices None) or those whose index is listed, in the order given."""
    cells = results["cells"]
    if indices is None:
        return cells
    by_index = {cell["index"]: cell for cell in cells}
    missing = [i for i in indices if i not in by_index]
    if missing:
        held = sorted(by_index)
        listed = ", ".join(map(str, held[:10])) + (", ..." if len(held) > 10 else "")
        raise PlotError(f"--cells: no cell {missing[0]} (the file has cells {listed})")
    return [by_index[i] for i in indices]


def available(cells, kind):
    """Names of the observables (kind "observables") or fractions (kind "fractions") some checkpoint reports."""
    names = set()
    for cell in cells:
        for checkpoint in cell["checkpoints"]:
            names.update(checkpoint.get(kind, {}).keys())
    return sorted(names)


def check_names(cells, kind, names):
    """Refuses a name no checkpoint of the cells reports, listing those that are."""
    known = available(cells, kind)
    for name in names:
        if name not in known:
            raise PlotError(f"--{kind[:-1]} {name}: not in these results (they have: {', '.join(known)})")


def number(value):
    """A statistic as a float: null (no finite value at that checkpoint) becomes NaN, a gap in the line."""
    if value is None:
        return math.nan
    if not is_number(value):
        raise PlotError(f"a statistic is {json.dumps(value)[:40]}, not a number")
    return float(value)


def observable_series(cell, name):
    """t and, per quantile key (q05, q25, q50, q75, q95) and "mean", the observable's values at each checkpoint of
    the cell."""
    t, series = [], {key: [] for key in ("q05", "q25", "q50", "q75", "q95", "mean")}
    for checkpoint in cell["checkpoints"]:
        t.append(float(checkpoint["t"]))
        summary = checkpoint.get("observables", {}).get(name) or {}
        for key in series:
            series[key].append(number(summary.get("mean") if key == "mean" else summary.get("quantiles", {}).get(key)))
    return t, series


def fraction_series(cell, name):
    """t and the fraction's value at each checkpoint of the cell (NaN where it does not apply)."""
    t, values = [], []
    for checkpoint in cell["checkpoints"]:
        t.append(float(checkpoint["t"]))
        values.append(number(checkpoint.get("fractions", {}).get(name)))
    return t, values


def cell_labels(cells, study_name):
    """One legend label per cell: the parameters whose values differ between the cells ("loss=square, d=16"), or
    the study's name when there is one cell or none differ."""
    keys = sorted(cells[0]["parameters"].keys())
    varying = [k for k in keys if len({json.dumps(c["parameters"].get(k)) for c in cells}) > 1]
    if not varying:
        return [study_name if len(cells) == 1 else f"cell {c['index']}" for c in cells]
    return [", ".join(f"{k}={c['parameters'].get(k)}" for k in varying) for c in cells]


def log_time_axis(cells):
    """True where the positive checkpoint times span more than a decade: then t is drawn on a log axis (t = 0
    left out)."""
    times = [float(cp["t"]) for cell in cells for cp in cell["checkpoints"] if float(cp["t"]) > 0]
    return len(times) > 1 and max(times) > 10 * min(times)


def output_path(results_path, out):
    """The figure's path: --out, else the results path with .results.json (or .json) replaced by .png. Refuses the
    results file itself."""
    if out is None:
        base = results_path
        for suffix in (".results.json", ".json"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
                break
        out = base + ".png"
    if os.path.exists(out) and os.path.exists(results_path) and os.path.samefile(out, results_path):
        raise PlotError(f"--out {out}: is the results file itself")
    if os.path.isdir(out):
        raise PlotError(f"--out {out}: is a directory")
    if os.path.splitext(out)[1].lower() not in (".png", ".pdf", ".svg"):
        raise PlotError(f"--out {out}: the figure's name must end in .png, .pdf or .svg")
    return out


def draw(results, cells, observables, fractions, out, statistic="bands"):
    """Draws one panel per observable (statistic "bands": the median with its q25-q75 and q05-q95 bands; "median";
    "mean") and one panel for all the fractions (a line style per fraction), a colour per cell, and writes the figure
    to out (a temporary file, then renamed, so a failed write leaves nothing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("observable", name) for name in observables] + ([("fractions", None)] if fractions else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    labels = cell_labels(cells, results.get("study", {}).get("name", "study"))
    log_t = log_time_axis(cells)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]

    def shown(t):  # the checkpoints drawn: on a log axis, not t = 0
        return [i for i, x in enumerate(t) if x > 0 or not log_t]

    for axis, (kind, name) in zip(axes[0], panels):
        for k, (cell, label) in enumerate(zip(cells, labels)):
            color = colors[k % len(colors)]
            if kind == "observable":
                t, series = observable_series(cell, name)
                at = shown(t)
                pick = lambda values: [values[i] for i in at]
                for lower, upper, opacity in BANDS if statistic == "bands" else []:
                    axis.fill_between(pick(t), pick(series[lower]), pick(series[upper]), color=color, alpha=opacity,
                                      linewidth=0)
                axis.plot(pick(t), pick(series["mean" if statistic == "mean" else "q50"]), color=color, label=label)
            else:
                for f, fraction in enumerate(fractions):
                    t, values = fraction_series(cell, fraction)
                    at = shown(t)
                    axis.plot([t[i] for i in at], [values[i] for i in at], color=color, marker=".",
                              linestyle=styles[f % len(styles)],
                              label=fraction if k == 0 and len(fractions) > 1 else None)
        if log_t:
            axis.set_xscale("log")
        axis.set_xlabel("t (log scale, t = 0 not shown)" if log_t else "t")
        if kind == "observable":
            titles = {"bands": " (median, q25-q75, q05-q95)", "median": " (median)", "mean": " (mean over runs)"}
            axis.set_title(name + titles[statistic], fontsize=9)
        else:
            axis.set_title("fraction of runs" + (f": {fractions[0]}" if len(fractions) == 1 else ""), fontsize=9)
            if len(fractions) > 1:
                axis.legend(fontsize=7)  # the line styles
        axis.grid(True, alpha=0.3)
    if len(cells) > 1 or not fractions or observables:
        handles = [plt.Line2D([], [], color=colors[k % len(colors)]) for k in range(len(cells))]
        axes[0][0].legend(handles, labels, fontsize=7)
    study = results.get("study", {})
    figure.suptitle(f"{study.get('name', 'study')}: {study.get('runs', '?')} runs per cell", fontsize=10)
    figure.tight_layout()
    folder = os.path.dirname(os.path.abspath(out))
    extension = os.path.splitext(out)[1] or ".png"
    handle, temporary = tempfile.mkstemp(prefix=".plot-results-", suffix=extension, dir=folder)
    os.close(handle)
    try:
        figure.savefig(temporary, dpi=120)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as a file opened for writing would be (mkstemp makes it 0600)
        os.replace(temporary, out)
    except BaseException:
        os.unlink(temporary)
        raise
    finally:
        plt.close(figure)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its usage errors as PlotError, so that they too are one line."""

    def error(self, message):
        raise PlotError(message)


def parse_arguments(argv):
    parser = ArgumentParser(
        prog="softflow-plot-results" if os.path.basename(sys.argv[0]) == "softflow-plot-results" else "plot-results",
        description="Figures of a softflow results file against checkpoint time: per observable each cell's median "
        "and quantile bands, per fraction each cell's line.")
    parser.add_argument("results", help="a softflow results JSON file")
    parser.add_argument("-o", "--out", help="figure path (.png, .pdf or .svg); default: RESULTS with .png")
    parser.add_argument("--observable", action="append", metavar="NAME",
                        help="an observable to draw (repeatable; default: entropy_ratio and s_max)")
    parser.add_argument("--fraction", action="append", metavar="NAME",
                        help="a fraction to draw, all in one panel (repeatable; default: s_max_ge_0_9, s_max_ge_0_99, "
                        "s_max_ge_0_999)")
    parser.add_argument("--median-only", action="store_true", help="draw observables' medians without the bands")
    parser.add_argument("--mean", action="store_true",
                        help="draw observables' means over runs instead (for the 0/1 indicators direction_global, "
                        "... of an attention study: the share of runs)")
    parser.add_argument("--cells", metavar="I,J,...", help="cell indices to draw (default: all)")
    return parser.parse_args(argv)


def parse_cells(text):
    if text is None:
        return None
    try:
        indices = [int(part) for part in text.split(",")]
    except ValueError:
        raise PlotError(f"--cells {text}: expected comma-separated cell indices")
    return indices


def main(argv):
    source = "results"
    try:
        args = parse_arguments(argv)
        source = args.results
        results = load_results(args.results)
        if args.mean and args.median_only:
            raise PlotError("--mean and --median-only: choose one")
        cells = select_cells(results, parse_cells(args.cells))
        # Names asked for must exist; the defaults are drawn where the results have them.
        observables = args.observable or [n for n in DEFAULT_OBSERVABLES if n in available(cells, "observables")]
        fractions = args.fraction or [n for n in DEFAULT_FRACTIONS if n in available(cells, "fractions")]
        check_names(cells, "observables", observables)
        check_names(cells, "fractions", fractions)
        if not observables and not fractions:
            raise PlotError(f"{args.results}: nothing to draw (name an --observable or a --fraction)")
        for cell in cells:  # every statistic drawn checked before any drawing (and without matplotlib)
            try:
                for name in observables:
                    observable_series(cell, name)
                for name in fractions:
                    fraction_series(cell, name)
            except PlotError as e:
                raise PlotError(f"{args.results}: cell {cell['index']}: {e}")
        out = output_path(args.results, args.out)
        try:
            statistic = "mean" if args.mean else ("median" if args.median_only else "bands")
            draw(results, cells, observables, fractions, out, statistic)
        except ImportError:
            raise PlotError("drawing needs matplotlib (Debian: python3-matplotlib; scripts/plot-results installs it)")
    except PlotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:  # a damage the checks above missed
        print(f"error: {source}: damaged results file ({type(e).__name__}: {e})"[:400], file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write the figure: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

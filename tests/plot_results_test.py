"""Purpose: tests of scripts/plot_results.py (run by ctest). Without arguments: the series, labels, time axis, output
path and every bad-input path (exit code 2, one line), on hand-made results; no matplotlib needed. With --figure
SOFTFLOW: a real results file from the softflow binary drawn to PNG, PDF and SVG (exit code 77, a skip for ctest, where
matplotlib is missing).
"""
import contextlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import plot_results  # noqa: E402


def statistics(q50, spread=0.1):
    """An observable's statistics at one checkpoint with quantiles around q50 (None: no finite value)."""
    if q50 is None:
        return None
    keys = ["q01", "q05", "q25", "q50", "q75", "q95", "q99"]
    offsets = [-3, -2, -1, 0, 1, 2, 3]
    return {"count": 10, "mean": q50, "quantiles": {k: q50 + o * spread for k, o in zip(keys, offsets)}}


def results_with(cells_parameters, times=(0.0, 1.0, 10.0, 100.0)):
    """A minimal results file: one cell per parameters dict, entropy_ratio falling with t (null at the last time of
    cell 1), fraction s_max_ge_0_99 rising (null where it does not apply: cell 0 at t = 0)."""
    cells = []
    for index, parameters in enumerate(cells_parameters):
        checkpoints = []
        for k, t in enumerate(times):
            ratio = None if (index == 1 and k == len(times) - 1) else 1.0 - 0.2 * k
            checkpoints.append({
                "t": t, "step": k,
                "observables": {"entropy_ratio": statistics(ratio), "s_max": statistics(0.1 * (k + 1))},
                "fractions": {"s_max_ge_0_99": None if (index == 0 and k == 0) else 0.25 * k},
            })
        cells.append({"index": index, "parameters": parameters, "checkpoints": checkpoints})
    return {"schema_version": 1, "study": {"name": "hand-made", "runs": 10}, "cells": cells}


def run_main(argv):
    """plot_results.main(argv): its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = plot_results.main(argv)
    return code, out.getvalue(), err.getvalue()


class SeriesTest(unittest.TestCase):
    def setUp(self):
        self.results = results_with([{"loss": "logistic", "d": 8}, {"loss": "square", "d": 8}])

    def test_observable_series_takes_each_checkpoints_quantiles_and_null_as_nan(self):
        t, series = plot_results.observable_series(self.results["cells"][1], "entropy_ratio")
        self.assertEqual(t, [0.0, 1.0, 10.0, 100.0])
        self.assertEqual(series["q50"][:3], [1.0, 0.8, 1.0 - 0.4])
        self.assertAlmostEqual(series["q05"][1], 0.8 - 0.2)
        self.assertAlmostEqual(series["q95"][1], 0.8 + 0.2)
        self.assertEqual(series["mean"][:3], [1.0, 0.8, 1.0 - 0.4])
        self.assertTrue(all(math.isnan(series[k][3]) for k in series))  # null statistics: a gap

    def test_fraction_series_keeps_nulls_as_gaps(self):
        t, values = plot_results.fraction_series(self.results["cells"][0], "s_max_ge_0_99")
        self.assertTrue(math.isnan(values[0]))
        self.assertEqual(values[1:], [0.25, 0.5, 0.75])

    def test_labels_name_the_parameters_that_differ(self):
        self.assertEqual(plot_results.cell_labels(self.results["cells"], "s"), ["loss=logistic", "loss=square"])
        grid = [{"loss": "logistic", "sigma_v": 0.1}, {"loss": "square", "sigma_v": 1.0}]
        self.assertEqual(plot_results.cell_labels(results_with(grid)["cells"], "s"),
                         ["loss=logistic, sigma_v=0.1", "loss=square, sigma_v=1.0"])
        one = results_with([{"loss": "logistic"}])["cells"]
        self.assertEqual(plot_results.cell_labels(one, "study name"), ["study name"])
        same = results_with([{"loss": "logistic"}, {"loss": "logistic"}])["cells"]
        self.assertEqual(plot_results.cell_labels(same, "s"), ["cell 0", "cell 1"])

    def test_time_axis_is_logarithmic_only_past_a_decade(self):
        self.assertTrue(plot_results.log_time_axis(self.results["cells"]))
        linear = results_with([{"loss": "logistic"}], times=(0.0, 1.0, 2.0, 5.0))
        self.assertFalse(plot_results.log_time_axis(linear["cells"]))

    def test_cells_are_selected_by_index_in_the_order_given(self):
        chosen = plot_results.select_cells(self.results, [1, 0])
        self.assertEqual([c["index"] for c in chosen], [1, 0])
        self.assertEqual(len(plot_results.select_cells(self.results, None)), 2)

    def test_output_path_defaults_beside_the_results(self):
        self.assertEqual(plot_results.output_path("/x/a.results.json", None), "/x/a.png")
        self.assertEqual(plot_results.output_path("/x/b.json", None), "/x/b.png")
        self.assertEqual(plot_results.output_path("/x/c", None), "/x/c.png")
        self.assertEqual(plot_results.output_path("/x/a.results.json", "/y/f.pdf"), "/y/f.pdf")


class BadInputTest(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.TemporaryDirectory()
        self.results_path = os.path.join(self.folder.name, "r.results.json")
        with open(self.results_path, "w") as f:
            json.dump(results_with([{"loss": "logistic"}, {"loss": "square"}]), f)

    def tearDown(self):
        self.folder.cleanup()

    def write(self, name, text):
        path = os.path.join(self.folder.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def expect_refused(self, argv, expected):
        before = sorted(os.listdir(self.folder.name))
        code, out, err = run_main(argv)
        self.assertEqual(code, 2, err)
        self.assertIn(expected, err)
        self.assertTrue(err.startswith("error: "), err)
        self.assertEqual(err.count("\n"), 1, "one line expected: " + err)
        self.assertEqual(out, "")
        self.assertEqual(sorted(os.listdir(self.folder.name)), before)  # no figure, no temporary

    def test_each_bad_input_is_one_line_and_exit_code_2(self):
        missing = os.path.join(self.folder.name, "missing.json")
        self.expect_refused([missing], "no such file")
        self.expect_refused([self.write("bad.json", "{\"cells\": [")], "malformed JSON")
        self.expect_refused([self.write("other.json", "{\"a\": 1}")], "not a softflow results file")
        self.expect_refused([self.write("empty.json", "{\"schema_version\": 1, \"cells\": []}")], "no cells")
        self.expect_refused([self.results_path, "--observable", "entropy_ration"],
                            "--observable entropy_ration: not in these results (they have: entropy_ratio, s_max)")
        self.expect_refused([self.results_path, "--fraction", "s_max_ge_0_5"], "--fraction s_max_ge_0_5")
        self.expect_refused([self.results_path, "--cells", "0,x"], "--cells 0,x: expected comma-separated")
        self.expect_refused([self.results_path, "--cells", "2"], "--cells: no cell 2 (the file has cells 0, 1)")
        self.expect_refused([self.results_path, "-o", os.path.join(self.folder.name, "f.txt")],
                            "must end in .png, .pdf or .svg")
        self.expect_refused([self.write("deep.json", "[" * 100000)], "malformed JSON")
        damaged = json.load(open(self.results_path))
        for change, expected in [
                (lambda r: r.update(cells=5), "the results hold no cells"),
                (lambda r: r["cells"].__setitem__(0, 1), "a cell without an index"),
                (lambda r: r["cells"][0].pop("checkpoints"), "cell 0: no checkpoints"),
                (lambda r: r["cells"][1].pop("parameters"), "cell 1: no parameters"),
                (lambda r: r["cells"][0]["checkpoints"][1].update(observables=[]), "observables are not an object"),
                (lambda r: r["cells"][0]["checkpoints"][1].update(t=None), "a checkpoint without a time t"),
                (lambda r: r["cells"][0]["checkpoints"][1]["observables"]["s_max"]["quantiles"].update(q50="x"),
                 "cell 0: a statistic is \"x\", not a number")]:
            broken = json.loads(json.dumps(damaged))
            change(broken)
            self.expect_refused([self.write("damaged.json", json.dumps(broken))], expected)
        self.expect_refused([self.results_path, "--out", self.results_path], "is the results file itself")
        self.expect_refused([self.results_path, "--out", self.folder.name], "is a directory")
        self.expect_refused([self.results_path, "--colour", "red"], "unrecognized arguments: --colour red")
        self.expect_refused([], "the following arguments are required: results")
        self.expect_refused([self.results_path, "--mean", "--median-only"], "--mean and --median-only: choose one")


class FigureTest(unittest.TestCase):
    softflow = None  # the binary, from the command line

    def test_a_real_results_file_is_drawn_to_png_pdf_and_svg(self):
        with tempfile.TemporaryDirectory() as folder:
            study = os.path.join(folder, "s.json")
            with open(study, "w") as f:
                json.dump({"name": "figure", "integrator": "gd", "step": 0.5, "runs": 64, "loss": ["logistic", "square"],
                           "checkpoints": {"schedule": "log", "start": 1, "stop": 1000, "count": 4}}, f)
            results = os.path.join(folder, "s.results.json")
            subprocess.run([self.softflow, "run", study, "--backend", "cpu", "--out", results, "-q"], check=True,
                           stdout=subprocess.DEVNULL)
            code, out, err = run_main([results])
            self.assertEqual(code, 0, err)
            png = os.path.join(folder, "s.png")
            self.assertEqual(out.strip(), png)
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            umask = os.umask(0)
            os.umask(umask)
            self.assertEqual(os.stat(png).st_mode & 0o777, 0o666 & ~umask)  # not the temporary file's 0600
            pdf = os.path.join(folder, "f.pdf")
            code, out, err = run_main([results, "-o", pdf, "--observable", "loss", "--cells", "1", "--median-only"])
            self.assertEqual(code, 0, err)
            svg = os.path.join(folder, "m.svg")
            code, out, err = run_main([results, "-o", svg, "--observable", "s_max", "--mean", "--fraction",
                                       "winner_is_argmax_u0"])
            self.assertEqual(code, 0, err)
            with open(svg, "rb") as f:
                self.assertIn(b"<svg", f.read(400))
            with open(pdf, "rb") as f:
                self.assertEqual(f.read(5), b"%PDF-")
            # Only the study, its results and the two figures: no temporary file left.
            self.assertEqual(sorted(os.listdir(folder)), ["f.pdf", "m.svg", "s.json", "s.png", "s.results.json"])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--figure":
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("skipped: matplotlib is not installed (scripts/plot-results installs python3-matplotlib)")
            sys.exit(77)
        FigureTest.softflow = sys.argv[2]
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(FigureTest)
    else:
        suite = unittest.TestSuite([unittest.defaultTestLoader.loadTestsFromTestCase(case)
                                    for case in (SeriesTest, BadInputTest)])
    sys.exit(0 if unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful() else 1)

#!/usr/bin/env python3
"""Purpose: run the same studies on two backends and compare their statistics end to end (the GPU validation
issue's item 2). For each study: counts, fractions and winner counts, and every observable's mean, q05, q50 and q95
at every checkpoint of every cell; prints a table and writes the key figures and the largest differences to JSON.

Tolerances (relative, |x - y| / max(1, |x|)), chosen per study from its precision and integrator:
  float64, fixed step (gd, rk4): 1e-9; counts equal
  float64, dopri5: 10 x rtol (step acceptance can differ at rounding level); counts within max(1, 0.001 runs)
  float32: 1e-3; counts within max(1, 0.001 runs)
A study fails when any figure is outside its tolerance; the exit code is 1 if any study failed.

Usage (GPU machine, after a build):
  bench/compare_backends.py --softflow build-device/softflow --out comparison.json
  bench/compare_backends.py --softflow build-device/softflow --cuda-kernels candidate   # the kernels not yet validated
  bench/compare_backends.py --softflow build/softflow --backends cpu cpu --threads 1 2   # plumbing check, no GPU
Studies default to the built-in default study and examples/{logistic,square,cross_entropy,regression_kappa}.json.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

DEFAULT_STUDIES = ["default", "examples/logistic.json", "examples/square.json", "examples/cross_entropy.json",
                   "examples/regression_kappa.json"]
QUANTITIES = ("mean", "q05", "q50", "q95")


def run(softflow, study, backend, threads, out, runs, cuda_kernels):
    command = [softflow, "run"] + ([] if study == "default" else [study])
    command += ["--backend", backend, "--quiet", "--out", out]
    if backend == "cuda":
        command += ["--cuda-kernels", cuda_kernels]
    if threads:
        command += ["--threads", str(threads)]
    if runs:
        command += ["--runs", str(runs)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def tolerance(study_echo):
    """(relative tolerance, count tolerance as a fraction of runs) for a study's precision and integrator."""
    integrators = study_echo.get("integrator")
    precisions = study_echo.get("precision")
    integrators = integrators if isinstance(integrators, list) else [integrators]
    precisions = precisions if isinstance(precisions, list) else [precisions]
    if "float32" in precisions:
        return 1e-3, 1e-3
    if "dopri5" in integrators:
        return 10 * float(study_echo.get("rtol", 1e-6)), 1e-3
    return 1e-9, 0.0


def quantity(observable, name):
    if name == "mean":
        return observable.get("mean")
    return observable.get("quantiles", {}).get(name)


def compare(a, b):
    """Largest relative difference of the statistics and largest count difference between two results."""
    worst = {"relative": 0.0, "where": None, "count": 0, "count_where": None}
    if len(a["cells"]) != len(b["cells"]):
        raise ValueError("different numbers of cells")
    for i, (cell_a, cell_b) in enumerate(zip(a["cells"], b["cells"])):
        for c, (x, y) in enumerate(zip(cell_a["checkpoints"], cell_b["checkpoints"])):
            for group in ("counts", "winner_counts"):
                gx, gy = x.get(group, {}), y.get(group, {})
                items = gx.items() if isinstance(gx, dict) else enumerate(gx)
                for key, value in items:
                    other = gy[key] if isinstance(gy, dict) else gy[key]
                    if isinstance(value, (int, float)) and abs(value - other) > worst["count"]:
                        worst["count"] = abs(value - other)
                        worst["count_where"] = f"cell {i} checkpoint {c} {group}.{key}"
            for name, obs_a in x["observables"].items():
                obs_b = y["observables"][name]
                for q in QUANTITIES:
                    u, v = quantity(obs_a, q), quantity(obs_b, q)
                    if u is None or v is None or (isinstance(u, float) and math.isnan(u)):
                        continue
                    difference = abs(u - v) / max(1.0, abs(u))
                    if difference > worst["relative"]:
                        worst["relative"] = difference
                        worst["where"] = f"cell {i} checkpoint {c} {name}.{q}"
    return worst


def key_figures(result):
    """The last checkpoint of cell 0: s_max median, entropy ratio median, fraction with s_max >= 0.99."""
    last = result["cells"][0]["checkpoints"][-1]
    obs = last["observables"]
    return {"t": last["t"], "s_max_q50": quantity(obs["s_max"], "q50"),
            "entropy_ratio_q50": quantity(obs["entropy_ratio"], "q50"), "fractions": last.get("fractions"),
            "wall_seconds": result["provenance"]["wall_seconds"], "backend": result["provenance"]["backend"],
            "device": result["provenance"].get("device"), "cuda_kernels": result["provenance"].get("cuda_kernels")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("studies", nargs="*", default=DEFAULT_STUDIES)
    parser.add_argument("--softflow", default="build/softflow")
    parser.add_argument("--backends", nargs=2, default=["cpu", "cuda"])
    parser.add_argument("--threads", nargs=2, type=int, default=[0, 0], help="CPU threads per side (0: all)")
    parser.add_argument("--runs", type=int, default=0, help="override every study's runs")
    parser.add_argument("--cuda-kernels", default="validated", choices=["validated", "candidate"],
                        help="the CUDA side's kernel set (softflow run --cuda-kernels)")
    parser.add_argument("--out", default="backend-comparison.json")
    args = parser.parse_args()
    report = {"backends": args.backends, "cuda_kernels": args.cuda_kernels, "studies": []}
    failed = False
    with tempfile.TemporaryDirectory() as scratch:
        for study in args.studies:
            results = [run(args.softflow, study, backend, threads, os.path.join(scratch, f"{side}.json"), args.runs,
                           args.cuda_kernels)
                       for side, (backend, threads) in enumerate(zip(args.backends, args.threads))]
            relative_tolerance, count_fraction = tolerance(results[0]["study"])
            runs = results[0]["study"]["runs"]
            count_tolerance = max(1, count_fraction * runs) if count_fraction > 0 else 0
            worst = compare(*results)
            ok = worst["relative"] <= relative_tolerance and worst["count"] <= count_tolerance
            failed |= not ok
            report["studies"].append({"study": study, "runs": runs, "ok": ok,
                                      "relative_tolerance": relative_tolerance, "count_tolerance": count_tolerance,
                                      "largest_differences": worst,
                                      "key_figures": [key_figures(r) for r in results]})
            print(f"{'ok  ' if ok else 'FAIL'} {study}: largest relative difference {worst['relative']:.2e} "
                  f"(tolerance {relative_tolerance:.0e}, at {worst['where']}), largest count difference "
                  f"{worst['count']} (tolerance {count_tolerance:g})")
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Purpose: throughput of one softflow study run, from its results' provenance: trajectory-steps/s, useful GFLOP/s
(6 d n FLOPs per value-softmax step: V s, V^T r and the rank-one update, 2 d n each) and, for the CUDA backend,
kernel seconds against wall seconds. With --peak-gflops, the fraction of that peak.

Usage: bench/study_throughput.py RESULTS.json [--peak-gflops P]
"""
import argparse
import json

parser = argparse.ArgumentParser()
parser.add_argument("results")
parser.add_argument("--peak-gflops", type=float, default=0.0)
args = parser.parse_args()
results = json.load(open(args.results))
p = results["provenance"]
flops = 0.0
for cell in results["cells"]:
    d, n = cell["parameters"]["d"], cell["parameters"]["n"]
    steps = cell["checkpoints"][-1]["observables"]["steps"]
    flops += 6.0 * d * n * steps["mean"] * steps["count"]
report = {
    "backend": p["backend"], "device": p["device"], "git_commit": p["git_commit"],
    "wall_seconds": p["wall_seconds"], "trajectory_steps_per_second": p["trajectory_steps_per_second"],
    "useful_gflops_per_second_wall": flops / p["wall_seconds"] / 1e9,
}
if "kernel_seconds" in p:
    report["kernel_seconds"] = p["kernel_seconds"]
    report["wall_over_kernel"] = p["wall_seconds"] / p["kernel_seconds"]
    report["useful_gflops_per_second_kernel"] = flops / p["kernel_seconds"] / 1e9
if args.peak_gflops > 0:
    best = report.get("useful_gflops_per_second_kernel", report["useful_gflops_per_second_wall"])
    report["peak_gflops"] = args.peak_gflops
    report["fraction_of_peak"] = best / args.peak_gflops
print(json.dumps(report, indent=1))

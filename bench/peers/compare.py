#!/usr/bin/env python3
"""Purpose: softflow against its peers (value_softmax_peers.py) on the same study, side by side: gd on the logistic
value-softmax model, d = n = --size, --runs runs, --steps steps of --step, float32 or float64, on the CPU or a GPU.
Prints a markdown table (seconds of the step loop, trajectory-steps/s, ratio to softflow, the final entropy ratio
H(s)/log n: mean, median) and writes the same to JSON.

Timing: softflow's figure is its trajectory-steps/s from `softflow bench` on the same point (the steps' compute
time, observations and initial draws left out) converted to the seconds of --steps steps; the peers' is their step
loop alone (tensors made and, for torch.compile and JAX, compiled before the clock starts). softflow and PyTorch use
the same number of CPU threads (--threads). The entropy check uses softflow's own run of the study.

Honesty check: the peers draw from other random streams, so the final entropy ratios must agree statistically: the
difference of the means within 5 standard errors (sqrt(sd1^2 / R + sd2^2 / R)). A peer that does not is flagged
and the command exits 1.

Usage: /usr/bin/python3 bench/peers/compare.py --softflow build/softflow [--size 16] [--runs 4096] [--steps 1000]
       [--precision float32] [--device cpu|cuda] [--peers torch_manual ...] [--out peers.json]
(any python3 with PyTorch; JAX is used where installed).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import value_softmax_peers as peers  # noqa: E402

SIGMA_V = 0.1
SIGMA_A = 0.1
AGREEMENT_SIGMAS = 5.0


def softflow_study(args):
    return {"name": "peers", "loss": "logistic", "d": args.size, "n": args.size, "precision": args.precision,
            "integrator": "gd", "step": args.step, "sigma_v": SIGMA_V, "sigma_a": SIGMA_A, "runs": args.runs,
            "checkpoints": {"schedule": "list", "times": [0.0, args.step * args.steps]}}


def run_softflow(args, scratch):
    """softflow's steps' seconds (bench method) and its final entropy-ratio statistics."""
    study_path = os.path.join(scratch, "study.json")
    with open(study_path, "w") as f:
        json.dump(softflow_study(args), f)
    out = os.path.join(scratch, "results.json")
    backend = "cuda" if args.device.startswith("cuda") else "cpu"
    threads = ["--threads", str(args.threads)]
    subprocess.run([args.softflow, "run", study_path, "--backend", backend, "--quiet", "--out", out] + threads,
                   check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        results = json.load(f)
    bench = os.path.join(scratch, "bench.json")
    subprocess.run([args.softflow, "bench", "--backend", backend, "--sizes", str(args.size), "--runs",
                    str(args.runs), "--precisions", args.precision, "--integrators", "gd", "--repeats", "3",
                    "--quiet", "--out", bench] + threads, check=True, stdout=subprocess.DEVNULL)
    with open(bench) as f:
        point = json.load(f)["points"][0]
    rate = point["trajectory_steps_per_second"]
    entropy = results["cells"][0]["checkpoints"][-1]["observables"]["entropy_ratio"]
    return {"seconds": args.runs * args.steps / rate, "trajectory_steps_per_second": rate,
            "entropy_ratio": {k: entropy[k] for k in ("mean", "std", "count")} | {"q50": entropy["quantiles"]["q50"]},
            "device": results["provenance"]["device"]}


def agree(x, y):
    standard_error = math.sqrt(x["std"] ** 2 / x["count"] + y["std"] ** 2 / y["count"])
    z = abs(x["mean"] - y["mean"]) / max(standard_error, 1e-300)
    return z, z <= AGREEMENT_SIGMAS


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--softflow", default="build/softflow")
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--runs", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--step", type=float, default=0.5)
    parser.add_argument("--precision", choices=["float32", "float64"], default="float32")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the peers' torch / jax device)")
    parser.add_argument("--peers", nargs="*", default=list(peers.PEERS))
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="CPU threads for softflow and PyTorch alike (default: all cores)")
    parser.add_argument("--out", default="peers.json")
    args = parser.parse_args()

    if peers.torch_available():
        import torch
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        reference = run_softflow(args, scratch)
    rows = [dict(name="softflow", **reference, ratio=1.0, z=0.0, agrees=True)]
    failed = False
    for name in args.peers:
        function = peers.PEERS[name]
        needs = peers.jax_available if name.startswith("jax") else peers.torch_available
        if not needs():
            rows.append({"name": name, "skipped": "not installed"})
            continue
        try:
            if name.startswith("jax"):
                s, seconds = function(args.size, args.runs, args.steps, args.step, SIGMA_V, SIGMA_A,
                                      args.precision, args.device)
            else:
                import torch
                dtype = torch.float64 if args.precision == "float64" else torch.float32
                s, seconds = function(args.size, args.runs, args.steps, args.step, SIGMA_V, SIGMA_A, dtype,
                                      args.device)
        except Exception as error:  # a peer that cannot run here (no torch.compile, no GPU) is reported, not fatal
            rows.append({"name": name, "skipped": f"{type(error).__name__}: {error}".splitlines()[0][:160]})
            continue
        entropy = peers.entropy_ratio_statistics(s)
        z, ok = agree(reference["entropy_ratio"], entropy)
        failed |= not ok
        rows.append({"name": name, "seconds": seconds, "trajectory_steps_per_second": args.runs * args.steps / seconds,
                     "ratio": seconds / reference["seconds"], "entropy_ratio": entropy, "z": z, "agrees": ok})

    print(f"value-softmax logistic gd, d = n = {args.size}, {args.runs} runs x {args.steps} steps of {args.step}, "
          f"{args.precision}, device {args.device} ({reference['device']}, {args.threads} CPU threads)\n")
    print("| implementation | step-loop seconds | trajectory-steps/s | time / softflow's | final H/log n mean "
          "(median) | agreement (z) |\n|---|---|---|---|---|---|")
    for row in rows:
        if "skipped" in row:
            print(f"| {row['name']} | skipped: {row['skipped']} | | | | |")
            continue
        e = row["entropy_ratio"]
        print(f"| {row['name']} | {row['seconds']:.4f} | {row['trajectory_steps_per_second']:.3g} | "
              f"{row['ratio']:.1f}x | {e['mean']:.4f} ({e['q50']:.4f}) | "
              f"{'ok' if row['agrees'] else 'DISAGREES'} ({row['z']:.1f}) |")
    with open(args.out, "w") as f:
        json.dump({"study": softflow_study(args), "device": args.device, "rows": rows}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

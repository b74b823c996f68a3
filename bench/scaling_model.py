#!/usr/bin/env python3
"""bench/scaling_model.py - data-parallel training of the paper's network on a cluster,
modelled from measured parts (docs/scaling.md).

    python3 bench/scaling_model.py [--epoch-s S] [--steps N] [--batch B] [--alpha-us A]

A step on one rank is compute (its share of the global batch, at the per-example time
measured by bench/vib_bench on one thread: the epoch's seconds over its 600 x 100
examples) plus the gradient's ring allreduce: 2 (P - 1) / P x size / bandwidth for the
data and 2 (P - 1) x alpha for the latency of its 2 (P - 1) messages. No overlap of
the two: the reduction starts when the backward pass has ended (libvib's trainer calls
it then). Prints, for P = 2..64 ranks on 10, 25 and 100 Gb/s links:
  - the efficiency (one rank's compute time over compute plus communication) at 100
    examples per rank, the paper's batch;
  - the examples per rank that keep the efficiency at 80% or more;
  - the efficiency with the reduction overlapped with the backward pass (the backward is
    about 2/3 of a step's FLOPs; the model takes the overlapped part as hidden).
"""

import argparse

PARAMS = 2_380_810  # the paper's network: 784-1024-1024, K = 256, 10 classes
GRAD_BYTES = 4 * PARAMS  # 9.5 MB of float32 gradient


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epoch-s", type=float, default=9.7,
                    help="one-thread epoch seconds from bench/vib_bench (default 9.7, Zen 4)")
    ap.add_argument("--steps", type=int, default=600, help="steps of that epoch")
    ap.add_argument("--batch", type=int, default=100, help="examples per step of it")
    ap.add_argument("--alpha-us", type=float, default=10.0,
                    help="latency of one message in microseconds (default 10)")
    a = ap.parse_args()
    t_ex = a.epoch_s / (a.steps * a.batch)  # seconds of compute per example, one core
    alpha = a.alpha_us * 1e-6
    print("compute per example: %.1f us (one core); gradient %.2f MB; latency %.0f us"
          % (t_ex * 1e6, GRAD_BYTES / 1e6, a.alpha_us))
    print("%4s %6s %10s %12s %14s %14s" % ("P", "Gb/s", "comm ms", "eff@100/rank",
                                            "batch/rank>=80%", "eff@100 overlap"))
    for gbps in (10, 25, 100):
        bw = gbps * 1e9 / 8
        for p in (2, 4, 8, 16, 32, 64):
            comm = 2 * (p - 1) / p * GRAD_BYTES / bw + 2 * (p - 1) * alpha
            compute = 100 * t_ex
            eff = compute / (compute + comm)
            need = 4 * comm / t_ex  # compute >= 4 comm  <=>  efficiency >= 0.8
            hidden = min(comm, compute * 2 / 3)  # overlapped with the backward pass
            eff_overlap = compute / (compute + comm - hidden)
            print("%4d %6d %10.2f %12.2f %14.0f %14.2f"
                  % (p, gbps, comm * 1e3, eff, need, eff_overlap))


if __name__ == "__main__":
    main()

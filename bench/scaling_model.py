#!/usr/bin/env python3
"""bench/scaling_model.py - data-parallel training of the paper's network on a cluster,
modelled from measured parts (docs/scaling.md).

    python3 bench/scaling_model.py [--epoch-s S] [--steps N] [--batch B] [--alpha-us A]

A step on one rank is compute (its share of the global batch, at the per-example time
measured by bench/vib_bench on one thread: the epoch's seconds over its 600 x 100
examples) plus the gradient's ring allreduce (libvib-mpi's reduction): 2 (P - 1) / P x
size / bandwidth for the data, and alpha for the latency of each of its messages:
2 (P - 1) steps, each of ceil(n / P / 2^20) messages (a message holds at most 2^20 floats). Printed, for P = 2..64 ranks on 10, 25 and 100 Gb/s links:
  - the communication time of a step, and the efficiency (one rank's compute time over
    its compute plus the communication it waits for) at 100 examples per rank, the
    paper's batch, with the reduction after the backward pass (vib_mpi_attach);
  - the same with the reduction overlapped with the backward pass (vib_mpi_set_overlap):
    each layer's gradient is reduced, one layer after the other, as soon as the backward
    pass has finished it, while the pass computes the layers below;
  - the examples per rank that keep the efficiency at 80% or more, without and with the
    overlap (gradient accumulation over k local batches costs what a k times larger
    batch costs: the same column answers it).
The step's time is split over the layers by their products' FLOPs (forward 2 b m n per
layer, backward 4 b m n, 2 b m n for the first layer, which passes no gradient down);
the head, the loss and the optimizer, a few percent, are spread in proportion.
"""

import argparse

# The paper's network: 784-1024-1024, a head of 2K = 512 outputs, K = 256 -> 10 classes.
LAYERS = [(784, 1024), (1024, 1024), (1024, 512), (256, 10)]
PARAMS = sum(m * n + n for m, n in LAYERS)  # 2,380,810
GRAD_BYTES = 4 * PARAMS  # 9.5 MB of float32 gradient


PIECE = 1 << 20  # floats a message of libvib-mpi's ring holds at most


def ring(p, nbytes, bw, alpha):
    """Seconds of libvib-mpi's ring allreduce of nbytes over p ranks."""
    pieces = -(-(nbytes // 4) // (p * PIECE))  # ceil(n / p / PIECE)
    return 2 * (p - 1) / p * nbytes / bw + 2 * (p - 1) * max(1, pieces) * alpha


def step_times(p, b, t_ex, bw, alpha):
    """(compute, exposed communication without overlap, with overlap) of one step of b
    examples per rank."""
    compute = b * t_ex
    fwd = [2 * m * n for m, n in LAYERS]
    bwd = [4 * m * n for m, n in LAYERS]
    bwd[0] = 2 * LAYERS[0][0] * LAYERS[0][1]
    unit = compute / (sum(fwd) + sum(bwd))  # seconds a FLOP-weight, this step
    whole = ring(p, GRAD_BYTES, bw, alpha)
    # The backward pass from the top: layer l's gradient is ready when the pass has
    # done its products; its reduction starts then, or when the one before has ended.
    t = sum(fwd) * unit
    comm_end = 0.0
    for l in reversed(range(len(LAYERS))):
        t += bwd[l] * unit
        m, n = LAYERS[l]
        comm_end = max(comm_end, t) + ring(p, 4 * (m * n + n), bw, alpha)
    overlapped = max(0.0, comm_end - t)  # what is left after the pass has ended
    return compute, whole, overlapped


def batch_for(eff, p, t_ex, bw, alpha, overlap):
    """The fewest examples per rank (up to 100,000) at efficiency >= eff."""
    b = 1
    while b <= 100_000:
        c, w, o = step_times(p, b, t_ex, bw, alpha)
        if c / (c + (o if overlap else w)) >= eff:
            return b
        b += 1
    return float("inf")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epoch-s", type=float, default=10.7,
                    help="one-thread epoch seconds from bench/vib_bench (default 10.7, Zen 4)")
    ap.add_argument("--steps", type=int, default=600, help="steps of that epoch")
    ap.add_argument("--batch", type=int, default=100, help="examples per step of it")
    ap.add_argument("--alpha-us", type=float, default=10.0,
                    help="latency of one message in microseconds (default 10)")
    a = ap.parse_args()
    t_ex = a.epoch_s / (a.steps * a.batch)  # seconds of compute per example, one core
    alpha = a.alpha_us * 1e-6
    print("compute per example: %.1f us (one core); gradient %.2f MB; latency %.0f us"
          % (t_ex * 1e6, GRAD_BYTES / 1e6, a.alpha_us))
    print("%4s %5s %8s %9s %9s %11s %11s" % ("P", "Gb/s", "comm ms", "eff@100", "overlap",
                                             "b>=80%", "overlap b"))
    for gbps in (10, 25, 100):
        bw = gbps * 1e9 / 8
        for p in (2, 4, 8, 16, 32, 64):
            c, w, o = step_times(p, 100, t_ex, bw, alpha)
            print("%4d %5d %8.2f %9.2f %9.2f %11s %11s"
                  % (p, gbps, w * 1e3, c / (c + w), c / (c + o),
                     batch_for(0.8, p, t_ex, bw, alpha, False),
                     batch_for(0.8, p, t_ex, bw, alpha, True)))


if __name__ == "__main__":
    main()

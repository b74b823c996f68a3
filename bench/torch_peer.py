#!/usr/bin/env python3
"""torch_peer.py - the PyTorch peer of bench/vib_bench: the same VIB network, recipe and
batch, timed the same way, with libvib's benchmark run first in the same invocation so
the two are compared on the same machine state.

    python3 bench/torch_peer.py [--data DIR] [--epochs N] [--threads T] [--libvib PATH]

The network is the paper's (Alemi et al., ICLR 2017): inputs in [-1, 1], encoder
784-1024-1024 with ReLU, a linear head to [mu | rho] with K = 256,
sigma = softplus(rho - 5), z = mu + sigma * eps, a linear softmax decoder; the loss is
cross-entropy + 1e-3 * KL(N(mu, sigma^2) || N(0, I)); Adam (lr 1e-4, betas 0.5 and
0.999) and an exponential moving average of the weights (decay 0.999, with TensorFlow's
warm-up d = min(decay, (1 + t) / (10 + t)), as libvib's) updated after every step;
batch 100. Prediction averages the softmax of 12 posterior samples over the
10,000 test images, in batches of 500 (as libvib's benchmark and train_mnist evaluate),
with the averaged weights.

PyTorch's best BLAS setting here: Debian's torch calls BLIS through libblas.so.3, so
BLIS_ARCH_TYPE=0 (BLIS's AVX-512 kernels) and BLIS_NUM_THREADS = the thread count are
set before torch is imported, unless the caller set them; torch.set_num_threads sets
its own OpenMP pool. Adam runs with foreach=True, its fastest CPU form in 1.13, and the
average is updated with the _foreach ops.

The last stdout line is
    result peer_epoch_s=<s> libvib_epoch_s=<s> epoch_ratio=<peer/libvib>
           peer_predict_s=<s> libvib_predict_s=<s> predict_ratio=<peer/libvib> threads=<T>
"""
import argparse
import gzip
import os
import statistics
import subprocess
import sys
import time


def read_idx(path):
    """The payload of an IDX file (plain or gzip) as bytes, and its dimensions."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise SystemExit(f"torch_peer: {path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    payload = data[4 + 4 * ndim:]
    count = 1
    for d in dims:
        count *= d
    if len(payload) != count:
        raise SystemExit(f"torch_peer: {path}: {len(payload)} bytes of data, header says {count}")
    return payload, dims


def run_libvib(binary, data, epochs, threads):
    """Run libvib's benchmark for one thread count; return its result fields."""
    cmd = [binary, "--data", data, "--epochs", str(epochs), "--threads", str(threads)]
    print("torch_peer: running", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    sys.stdout.write(out)
    last = out.strip().splitlines()[-1].split()
    if not last or last[0] != "result":
        raise SystemExit("torch_peer: libvib's benchmark printed no result line")
    return dict(kv.split("=", 1) for kv in last[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--libvib", default="bench/vib_bench",
                    help="libvib's benchmark binary ('' to time PyTorch alone)")
    args = ap.parse_args()
    if args.epochs < 1 or args.threads < 1:
        raise SystemExit("torch_peer: --epochs and --threads must be positive")

    vib = run_libvib(args.libvib, args.data, args.epochs, args.threads) if args.libvib else None

    os.environ.setdefault("BLIS_ARCH_TYPE", "0")
    os.environ.setdefault("BLIS_NUM_THREADS", str(args.threads))
    import torch  # after the BLIS settings: BLIS reads them when first called

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    def load(prefix):
        for suffix in ("", ".gz"):
            img = os.path.join(args.data, f"{prefix}-images-idx3-ubyte{suffix}")
            lab = os.path.join(args.data, f"{prefix}-labels-idx1-ubyte{suffix}")
            if os.path.exists(img) and os.path.exists(lab):
                pix, dims = read_idx(img)
                labels, _ = read_idx(lab)
                x = torch.frombuffer(bytearray(pix), dtype=torch.uint8).float()
                x = x.view(dims[0], -1) * (2.0 / 255.0) - 1.0
                y = torch.frombuffer(bytearray(labels), dtype=torch.uint8).long()
                return x, y
        raise SystemExit(f"torch_peer: no {prefix} IDX files under {args.data} (make data)")

    xtr, ytr = load("train")
    xte, yte = load("t10k")
    K, batch = 256, 100

    class VIB(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = torch.nn.Sequential(
                torch.nn.Linear(784, 1024), torch.nn.ReLU(),
                torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                torch.nn.Linear(1024, 2 * K))
            self.dec = torch.nn.Linear(K, 10)

        def posterior(self, x):
            h = self.enc(x)
            mu, rho = h[:, :K], h[:, K:]
            return mu, torch.nn.functional.softplus(rho - 5.0)

    model = VIB()
    params = list(model.parameters())
    avg = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=1e-4, betas=(0.5, 0.999), foreach=True)
    decay = 0.999
    nonlocal_t = [0]

    def step(xb, yb):
        mu, sigma = model.posterior(xb)
        z = mu + sigma * torch.randn_like(mu)
        ce = torch.nn.functional.cross_entropy(model.dec(z), yb)
        kl = 0.5 * (mu * mu + sigma * sigma - 1.0 - 2.0 * torch.log(sigma)).sum(1).mean()
        loss = ce + 1e-3 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # TensorFlow's moving average with num_updates, as libvib's: d = min(decay,
        # (1 + t) / (10 + t)) at update t
        nonlocal_t[0] += 1
        t = nonlocal_t[0] - 1
        d = min(decay, (1.0 + t) / (10.0 + t))
        with torch.no_grad():
            torch._foreach_mul_(avg, d)
            torch._foreach_add_(avg, [p.detach() for p in params], alpha=1.0 - d)

    n = xtr.shape[0] // batch * batch
    times = []
    for _ in range(args.epochs):
        perm = torch.randperm(xtr.shape[0])
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            step(xtr[idx], ytr[idx])
        times.append(time.perf_counter() - t0)
    epoch_s = statistics.median(times)

    # 12-sample prediction with the averaged weights
    with torch.no_grad():
        live = [p.detach().clone() for p in params]
        for p, a in zip(params, avg):
            p.copy_(a)
        t0 = time.perf_counter()
        wrong = 0
        pb = 500
        for i in range(0, xte.shape[0], pb):
            mu, sigma = model.posterior(xte[i:i + pb])
            prob = torch.zeros(mu.shape[0], 10)
            for _ in range(12):
                prob += torch.softmax(model.dec(mu + sigma * torch.randn_like(mu)), 1)
            wrong += int((prob.argmax(1) != yte[i:i + pb]).sum())
        predict_s = time.perf_counter() - t0
        for p, l in zip(params, live):
            p.copy_(l)

    print(f"torch_peer: torch {torch.__version__}, {args.threads} threads, "
          f"BLIS_ARCH_TYPE={os.environ['BLIS_ARCH_TYPE']}: epochs "
          + " ".join(f"{t:.3f}" for t in times)
          + f" s, median {epoch_s:.3f} s; 12-sample prediction {predict_s:.3f} s "
          f"(test error {100.0 * wrong / xte.shape[0]:.2f}% after {args.epochs} epochs)")
    if vib is None:
        print(f"result peer_epoch_s={epoch_s:.3f} peer_predict_s={predict_s:.3f} "
              f"threads={args.threads}")
        return
    ve, vp = float(vib["epoch_s"]), float(vib["predict_s"])
    print(f"result peer_epoch_s={epoch_s:.3f} libvib_epoch_s={ve:.3f} "
          f"epoch_ratio={epoch_s / ve:.2f} peer_predict_s={predict_s:.3f} "
          f"libvib_predict_s={vp:.3f} predict_ratio={predict_s / vp:.2f} "
          f"threads={args.threads}")


if __name__ == "__main__":
    main()

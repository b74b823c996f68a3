#!/usr/bin/env python3
"""torch_peer.py - the PyTorch peer of bench/vib_bench at its best: the same VIB network,
recipe and batch, timed the same way, with every BLAS available here, and libvib's
benchmark run first in the same invocation so that all are measured on the same machine
state.

    python3 bench/torch_peer.py [--data DIR] [--epochs N] [--threads LIST]
                                [--blas LIST] [--libvib PATH]

The network is the paper's (Alemi et al., ICLR 2017): inputs in [-1, 1], encoder
784-1024-1024 with ReLU, a linear head to [mu | rho] with K = 256,
sigma = softplus(rho - 5), z = mu + sigma * eps, a linear softmax decoder; the loss is
cross-entropy + 1e-3 * KL(N(mu, sigma^2) || N(0, I)); Adam (lr 1e-4, betas 0.5 and
0.999) and an exponential moving average of the weights (decay 0.999, with TensorFlow's
warm-up d = min(decay, (1 + t) / (10 + t)), as libvib's) updated after every step;
batch 100. Prediction averages the softmax of 12 posterior samples over the
10,000 test images, in batches of 500 (as libvib's benchmark and train_mnist evaluate),
with the averaged weights: the median of three passes.

Debian's torch makes its products through libblas.so.3. For each thread count T of LIST
(default 1,2) and each BLAS of LIST (default: blis and openblas, those installed), a
child process runs PyTorch with that BLAS first on the library path (the system's
default BLAS is not touched), T threads for torch (torch.set_num_threads) and for the
BLAS (BLIS_NUM_THREADS, OPENBLAS_NUM_THREADS), and
  - BLIS: the kernel set libvib runs in its benchmark (read from its backend line), so
    both use the kernels libvib found best for this CPU; never a set the CPU lacks;
  - OpenBLAS: its own CPU detection (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which some
    machines here set, are removed for the child), and OMP_WAIT_POLICY=passive, so
    torch's OpenMP threads sleep instead of spinning on the cores OpenBLAS's own threads
    need (without it two threads ran slower than one).
Each child prints which library and kernels it actually ran. libvib is compared with the
fastest peer, per measurement. Adam runs with foreach=True, its fastest CPU form in
1.13, and the average is updated with the _foreach ops.

For each thread count a line
    result threads=<T> peer_epoch_s=<s> peer_epoch_blas=<name> libvib_epoch_s=<s>
           epoch_ratio=<peer/libvib> peer_predict_s=<s> peer_predict_blas=<name>
           libvib_predict_s=<s> predict_ratio=<peer/libvib> epoch_over_phys=<r>
is printed (epoch_over_phys: libvib's epoch over the physical floor, from its benchmark).
"""
import argparse
import ctypes
import gzip
import os
import statistics
import subprocess
import sys
import sysconfig
import time

MULTIARCH = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
BLAS_DIRS = {
    "blis": f"/usr/lib/{MULTIARCH}/blis-openmp",
    "openblas": f"/usr/lib/{MULTIARCH}/openblas-pthread",
}


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


def result_fields(out, tag):
    """The key=value fields of the last line of `out` that starts with `tag`."""
    for line in reversed(out.strip().splitlines()):
        words = line.split()
        if words and words[0] == tag:
            return dict(kv.split("=", 1) for kv in words[1:] if "=" in kv)
    raise SystemExit(f"torch_peer: no '{tag}' line in:\n{out}")


def run_libvib(binary, data, epochs, threads):
    """Run libvib's benchmark for one thread count; its result fields and kernel set."""
    cmd = [binary, "--data", data, "--epochs", str(epochs), "--threads", str(threads)]
    print("torch_peer: running", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    sys.stdout.write(out)
    fields = result_fields(out, "result")
    backend = next((l for l in out.splitlines() if l.startswith("backend:")), "")
    # "backend: BLIS 0.9.0, kernels zen3 (chosen by libvib: ...), ..."
    words = backend.replace(",", " ").split()
    kernels = words[words.index("kernels") + 1] if "kernels" in words else None
    return fields, kernels, "chosen by libvib" in backend


def blis_arch_id(name):
    """BLIS's id of kernel set `name` in the BLIS the peer loads, or None. Its
    libblas.so.3 exports only the BLAS; libblis.so.4 beside it is the same build."""
    try:
        lib = ctypes.CDLL(os.path.join(BLAS_DIRS["blis"], "libblis.so.4"))
    except OSError:
        return None
    lib.bli_arch_string.restype = ctypes.c_char_p
    lib.bli_arch_string.argtypes = [ctypes.c_int]
    for i in range(64):
        s = lib.bli_arch_string(i)
        if s is None:
            return None
        if s.decode() == name:
            return i
        if s.decode() == "generic":  # the last id
            return None
    return None


def run_peer(blas, threads, args, kernels, libvib_chose):
    """PyTorch with `blas` in a child process; its result fields."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = BLAS_DIRS[blas] + (
        ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    if blas == "blis":
        env["BLIS_NUM_THREADS"] = str(threads)
        if "BLIS_ARCH_TYPE" not in os.environ and libvib_chose and kernels:
            arch = blis_arch_id(kernels)
            if arch is not None:
                env["BLIS_ARCH_TYPE"] = str(arch)
    else:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
        env.setdefault("OMP_WAIT_POLICY", "passive")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", blas, "--data", args.data,
           "--epochs", str(args.epochs), "--threads", str(threads)]
    print(f"torch_peer: running PyTorch with {blas}, {threads} thread(s)", flush=True)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    sys.stdout.write(out)
    return result_fields(out, "peer")


def loaded_blas(blas):
    """Which BLAS from BLAS_DIRS[blas] this process has loaded, and its kernels."""
    path = None
    with open("/proc/self/maps") as maps:
        for line in maps:
            words = line.split()
            if (len(words) >= 6 and words[-1].startswith(BLAS_DIRS[blas] + "/")
                    and "blas" in os.path.basename(words[-1])):
                path = words[-1]
                break
    if path is None:
        return f"nothing from {BLAS_DIRS[blas]} loaded"
    lib = ctypes.CDLL(path)
    if hasattr(lib, "openblas_get_corename"):
        lib.openblas_get_corename.restype = ctypes.c_char_p
        lib.openblas_get_config.restype = ctypes.c_char_p
        return (f"{path}: {lib.openblas_get_config().decode()}, "
                f"core {lib.openblas_get_corename().decode()}")
    if "blis" in path:  # its libblas.so.3 has no BLIS API to ask for the kernels
        arch = os.environ.get("BLIS_ARCH_TYPE")
        return f"{path}: BLIS, " + (f"BLIS_ARCH_TYPE={arch}" if arch else "its own kernel choice")
    return path


def child(args):
    """Train and predict with PyTorch in this process; print a 'peer' line."""
    threads = int(args.threads)
    import torch

    torch.set_num_threads(threads)
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
    updates = [0]

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
        t = updates[0]
        updates[0] += 1
        d = min(decay, (1.0 + t) / (10.0 + t))
        with torch.no_grad():
            torch._foreach_mul_(avg, d)
            torch._foreach_add_(avg, [p.detach() for p in params], alpha=1.0 - d)

    n = xtr.shape[0] // batch * batch
    # a warm-up of 60 steps, as libvib's benchmark
    perm = torch.randperm(xtr.shape[0])
    for i in range(0, 60 * batch, batch):
        step(xtr[perm[i:i + batch]], ytr[perm[i:i + batch]])
    times = []
    for _ in range(args.epochs):
        perm = torch.randperm(xtr.shape[0])
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            step(xtr[idx], ytr[idx])
        times.append(time.perf_counter() - t0)
    epoch_s = statistics.median(times)

    # 12-sample prediction with the averaged weights, the median of three passes
    with torch.no_grad():
        for p, a in zip(params, avg):
            p.copy_(a)
        passes = []
        for rep in range(3):
            t0 = time.perf_counter()
            wrong = 0
            pb = 500
            for i in range(0, xte.shape[0], pb):
                mu, sigma = model.posterior(xte[i:i + pb])
                prob = torch.zeros(mu.shape[0], 10)
                for _ in range(12):
                    prob += torch.softmax(model.dec(mu + sigma * torch.randn_like(mu)), 1)
                wrong += int((prob.argmax(1) != yte[i:i + pb]).sum())
            passes.append(time.perf_counter() - t0)
        predict_s = statistics.median(passes)

    print(f"torch_peer: torch {torch.__version__}, {threads} thread(s), "
          f"BLAS {loaded_blas(args.child)}: epochs " + " ".join(f"{t:.3f}" for t in times)
          + f" s, median {epoch_s:.3f} s; 12-sample prediction {predict_s:.3f} s "
          f"(test error {100.0 * wrong / xte.shape[0]:.2f}% after {args.epochs} epochs)")
    print(f"peer blas={args.child} epoch_s={epoch_s:.3f} predict_s={predict_s:.3f} "
          f"threads={threads}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--blas", default="blis,openblas",
                    help="comma-separated: " + ", ".join(BLAS_DIRS))
    ap.add_argument("--libvib", default="bench/vib_bench",
                    help="libvib's benchmark binary ('' to time PyTorch alone)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    try:
        thread_list = [int(t) for t in args.threads.split(",")]
    except ValueError:
        raise SystemExit(f"torch_peer: bad thread list '{args.threads}'")
    if args.epochs < 1 or not thread_list or min(thread_list) < 1:
        raise SystemExit("torch_peer: --epochs and --threads must be positive")
    blas_list = []
    for b in args.blas.split(","):
        if b not in BLAS_DIRS:
            raise SystemExit(f"torch_peer: unknown BLAS '{b}' (known: {', '.join(BLAS_DIRS)})")
        if os.path.exists(os.path.join(BLAS_DIRS[b], "libblas.so.3")):
            blas_list.append(b)
        else:
            print(f"torch_peer: {b} not installed ({BLAS_DIRS[b]}): skipped "
                  "(sh .ci/deps bench installs it as root)")
    if not blas_list:
        raise SystemExit("torch_peer: no BLAS to run PyTorch with")

    summary = []
    for threads in thread_list:
        vib, kernels, chose = (run_libvib(args.libvib, args.data, args.epochs, threads)
                               if args.libvib else ({}, None, False))
        peers = {b: run_peer(b, threads, args, kernels, chose) for b in blas_list}
        be = min(peers, key=lambda b: float(peers[b]["epoch_s"]))
        bp = min(peers, key=lambda b: float(peers[b]["predict_s"]))
        pe, pp = float(peers[be]["epoch_s"]), float(peers[bp]["predict_s"])
        line = (f"result threads={threads} peer_epoch_s={pe:.3f} peer_epoch_blas={be} "
                f"peer_predict_s={pp:.3f} peer_predict_blas={bp}")
        if vib:
            ve, vp = float(vib["epoch_s"]), float(vib["predict_s"])
            line += (f" libvib_epoch_s={ve:.3f} epoch_ratio={pe / ve:.2f} "
                     f"libvib_predict_s={vp:.3f} predict_ratio={pp / vp:.2f} "
                     f"epoch_over_phys={vib.get('epoch_over_phys', '?')}")
        print(line, flush=True)
        summary.append(line)
    print("torch_peer: summary")
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()

"""libvib.Trainer: epochs, Python callbacks that stop or raise, progress, checkpoints
resumed bit for bit, lifetime."""

import gc
import sys
import weakref

import numpy as np
import pytest

import libvib
from conftest import IN, K, CLASSES, N


def build(seed=7, ema=True, batch=5, lr=1e-2):
    m = libvib.Model(IN, K, CLASSES, encoder=(8,), seed=seed)
    opt = libvib.Adam(m, lr=lr)
    avg = libvib.EMA(m.params, 0.9) if ema else None
    tr = libvib.Trainer(m, opt, N, batch, seed=3, ema=avg)
    return m, opt, avg, tr


def state(m, opt, avg, tr):
    return (m.params.copy(), None if avg is None else avg.values.copy(), opt.steps, tr.steps,
            tr.epochs_done, tr.step_in_epoch, tr.lr)


def same(a, b):
    return all(np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
               for x, y in zip(a, b))


def test_epoch_and_position(data):
    x, y = data
    m, opt, avg, tr = build()
    assert (tr.n, tr.batch, tr.steps_per_epoch) == (N, 5, 5)
    assert (tr.epochs_done, tr.step_in_epoch, tr.steps, tr.stopped) == (0, 0, 0, False)
    assert tr.lr == pytest.approx(1e-2)
    seen = []
    ce, kl, loss = tr.epoch(x, y, callback=lambda *a: seen.append(a))
    assert [s[:3] for s in seen] == [(0, i, 5) for i in range(1, 6)]
    assert all(isinstance(v, float) for s in seen for v in s[3:])
    # the epoch's means are over rows: four batches of 5 and one of 4
    w = np.array([5, 5, 5, 5, 4]) / N
    assert loss == pytest.approx(sum(wi * s[5] for wi, s in zip(w, seen)), rel=1e-9)
    assert (tr.epochs_done, tr.step_in_epoch, tr.steps, opt.steps) == (1, 0, 5, 5)
    assert np.isfinite(ce) and kl > 0
    r = tr.step(x, y)
    assert len(r) == 3 and tr.step_in_epoch == 1
    assert "epoch 1 step 1/5" in repr(tr)


def test_callback_stops_then_resumes_bit_for_bit(data):
    x, y = data
    a = build()
    a[3].epoch(x, y)
    a[3].epoch(x, y)
    b = build()
    b[3].epoch(x, y, callback=lambda e, s, spe, ce, kl, loss: s == 2)
    assert b[3].stopped and b[3].step_in_epoch == 2 and b[3].epochs_done == 0
    b[3].epoch(x, y)  # the rest of the epoch
    assert not b[3].stopped and b[3].epochs_done == 1
    b[3].epoch(x, y, callback=lambda *args: 0)
    assert same(state(*a), state(*b))


def test_callback_exception_stops_and_is_reraised(data):
    x, y = data
    m, opt, avg, tr = build()

    class Boom(Exception):
        pass

    err = Boom("at step 3")

    def cb(epoch, step, spe, ce, kl, loss):
        if step == 3:
            raise err
    with pytest.raises(Boom) as e:
        tr.epoch(x, y, callback=cb)
    assert e.value is err
    assert tr.step_in_epoch == 3 and tr.stopped  # stopped after the raising step
    tr.epoch(x, y)  # goes on from there
    assert tr.epochs_done == 1

    def interrupt(*args):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        tr.epoch(x, y, callback=interrupt)
    assert tr.step_in_epoch == 1
    # the same run without interruptions gives the same state
    ref = build()
    ref[3].epoch(x, y)
    ref[3].step(x, y)
    assert same(state(m, opt, avg, tr), state(*ref))


def test_callback_may_not_train_but_may_save(data, tmp_path):
    x, y = data
    m, opt, avg, tr = build()
    path = tmp_path / "in-callback.ckpt"

    def cb(epoch, step, spe, ce, kl, loss):
        if step == 2:
            tr.save(path)
        if step == 3:
            tr.step(x, y)
    with pytest.raises(RuntimeError, match="callback"):
        tr.epoch(x, y, callback=cb)
    assert tr.step_in_epoch == 3 and path.exists()
    for bad in (lambda: tr.load(path), lambda: tr.set_schedule(1e-3), lambda: tr.close(),
                lambda: tr.epoch(x, y)):
        def cb2(*args, bad=bad):
            bad()
        with pytest.raises(RuntimeError, match="callback"):
            tr.epoch(x, y, callback=cb2)
    assert not tr.closed


def test_checkpoint_resume_bit_for_bit(data, tmp_path):
    x, y = data
    ref = build()
    for _ in range(3):
        ref[3].epoch(x, y)
    ckpt = tmp_path / "run.ckpt"
    a = build()
    a[3].epoch(x, y)
    a[3].epoch(x, y, callback=lambda e, s, *rest: s == 3)
    a[3].save(ckpt)
    # a fresh process's view: everything rebuilt (other initial weights), then loaded
    b = build(seed=1234)
    b[3].load(str(ckpt))
    assert (b[3].epochs_done, b[3].step_in_epoch, b[1].steps) == (1, 3, 8)
    b[3].epoch(x, y)
    b[3].epoch(x, y)
    assert same(state(*ref), state(*b))
    m = libvib.Model.load(ckpt)  # the checkpoint's model part
    assert m.num_params == ref[0].num_params


def test_checkpoint_errors(data, tmp_path):
    x, y = data
    m, opt, avg, tr = build()
    tr.epoch(x, y)
    ckpt = tmp_path / "a.ckpt"
    tr.save(ckpt)
    other = build(batch=4)
    before = state(*other)
    with pytest.raises(libvib.LibvibError, match="batch|trainer") as e:
        other[3].load(ckpt)
    assert e.value.status in (-1, -4)
    assert same(before, state(*other))
    noema = build(ema=False)
    with pytest.raises(libvib.LibvibError):
        noema[3].load(ckpt)
    with pytest.raises(libvib.LibvibIOError):
        tr.load(tmp_path / "none.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\0" * 64)
    with pytest.raises(libvib.FormatError):
        tr.load(junk)


def test_schedule(data):
    x, y = data
    m, opt, avg, tr = build()
    tr.set_schedule(0.1, rate=0.5, decay_steps=2)
    for step in range(5):
        tr.step(x, y)
        assert tr.lr == pytest.approx(libvib.lr_staircase(0.1, 0.5, 2, step))
    with pytest.raises(libvib.InvalidArgumentError):
        tr.set_schedule(0.1, rate=2.0)


def test_progress(data, capsys, monkeypatch):
    x, y = data
    m, opt, avg, tr = build()
    tr.epoch(x, y, progress=True)
    err = capsys.readouterr().err
    assert "epoch 0" in err and "5/5" in err
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm fails: a plain line
    tr.epoch(x, y, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1: step 5/5 loss" in err and err.endswith("\n")


def test_trainer_keeps_its_objects_alive(data):
    x, y = data
    m, opt, avg, tr = build()
    hm, ho, he = weakref.ref(m._handle), weakref.ref(opt._handle), weakref.ref(avg._handle)
    m.close()
    opt.close()
    avg.close()
    del m, opt, avg
    gc.collect()
    assert hm() and ho() and he()
    tr.epoch(x, y)  # still trains
    assert tr.epochs_done == 1
    tr.close()
    gc.collect()
    assert hm() is None and ho() is None and he() is None
    with pytest.raises(ValueError, match="trainer is closed"):
        tr.step(x, y)


def test_data_checks_and_failed_step(data):
    x, y = data
    m, opt, avg, tr = build()
    with pytest.raises(libvib.ArrayShapeError, match=r"\(24, 6\)"):
        tr.epoch(x[:-1], y[:-1])
    with pytest.raises(TypeError, match="float32"):
        tr.step(x.astype(np.float64), y)
    with pytest.raises(TypeError, match="labels"):
        tr.step(x)
    with pytest.raises(TypeError, match="int32"):
        tr.step(x, y.astype(np.uint8))
    with pytest.raises(libvib.InvalidArgumentError, match="batch"):
        libvib.Trainer(m, opt, N, 0)
    with pytest.raises(libvib.InvalidArgumentError):
        libvib.Trainer(m, libvib.Adam(3), N, 4)
    tr.step(x, y)
    before = state(m, opt, avg, tr)
    bad = np.full_like(x, np.nan)
    with pytest.raises(libvib.NumericError):
        tr.epoch(bad, y)
    assert same(before, state(m, opt, avg, tr))


def test_wrong_objects_are_type_errors(model, data):
    x, y = data
    opt = libvib.Adam(model)
    with pytest.raises(TypeError, match="model must be a libvib.Model"):
        libvib.Trainer(opt, opt, N, 4)
    with pytest.raises(TypeError, match="optimizer must be a libvib.Optimizer"):
        libvib.Trainer(model, model, N, 4)
    with pytest.raises(TypeError, match="ema must be a libvib.EMA"):
        libvib.Trainer(model, opt, N, 4, ema=model.params)
    with pytest.raises(TypeError, match="ema must be a libvib.EMA"):
        model.evaluate(x, y, ema=model.params)
    with pytest.raises(TypeError, match="ema must be a libvib.EMA"):
        opt.step(model.params, model.grads, ema=opt)


@pytest.fixture
def default_sigint():
    """Python's default SIGINT handler for the test, whatever the runner inherited (a
    background job starts with SIGINT ignored), and the runner's own back after it."""
    import signal
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_stops_the_epoch_at_a_step(data, default_sigint):
    import os
    import signal
    x, y = data
    m, opt, avg, tr = build()

    def cb(epoch, step, *rest):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as if Ctrl-C were pressed
    with pytest.raises(KeyboardInterrupt):
        tr.epoch(x, y, callback=cb)
    assert tr.step_in_epoch in (2, 3) and tr.stopped


def test_ctrl_c_from_outside_stops_the_epoch(default_sigint):
    """A real SIGINT, arriving while the C loop runs (here from a timer thread), is not
    lost: the epoch stops at a step boundary and KeyboardInterrupt is raised after it."""
    import os
    import signal
    import threading
    rng = np.random.default_rng(5)
    n, dim = 20000, 64
    x = rng.standard_normal((n, dim)).astype(np.float32)
    y = (np.arange(n) % 4).astype(np.int32)
    m = libvib.Model(dim, 8, 4, encoder=(256, 256), seed=2)
    tr = libvib.Trainer(m, libvib.Adam(m, lr=1e-3), n, 20, seed=1)
    timer = threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        tr.epoch(x, y)
    timer.join()
    assert tr.steps == tr.epochs_done * tr.steps_per_epoch + tr.step_in_epoch
    assert tr.epochs_done == 0  # stopped inside the epoch (it is 1000 steps long)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("kind", ["ignored", "own handler"])
def test_sigint_not_left_to_python_is_left_alone(kind):
    """A program that ignores SIGINT or handles it itself keeps that: the epoch does
    not install its handler, a SIGINT during it goes where the program said, the epoch
    runs to its end, and the disposition afterwards is the program's."""
    import os
    import signal
    import threading
    rng = np.random.default_rng(6)
    n, dim = 4000, 64
    x = rng.standard_normal((n, dim)).astype(np.float32)
    y = (np.arange(n) % 4).astype(np.int32)
    m = libvib.Model(dim, 8, 4, encoder=(256, 256), seed=2)
    tr = libvib.Trainer(m, libvib.Adam(m, lr=1e-3), n, 20, seed=1)
    seen = []
    handler = signal.SIG_IGN if kind == "ignored" else (lambda s, f: seen.append(s))
    sent = threading.Event()

    def during(epoch, step, steps_per_epoch, ce, kl, loss):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)
            sent.set()

    before = signal.signal(signal.SIGINT, handler)
    try:
        tr.epoch(x, y, callback=during)
        assert sent.is_set()
        assert tr.epochs_done == 1 and not tr.stopped  # the whole epoch ran
        assert signal.getsignal(signal.SIGINT) is handler
        if kind == "own handler":
            assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, before)


def _two_workers(x, y, batch, steps, overlap):
    """Two workers in threads, each with its shard of every global batch of x, y and a
    reduction that sums their gradients in rank order (the same bits on both): at once
    (set_reduce) or layer by layer (set_reduce_overlap). Returns worker 0's parameters
    (checked equal to worker 1's), the ranges its parts were given, and the model's
    parameter count."""
    import threading
    n, dim = x.shape
    barrier = threading.Barrier(2)
    slots = [None, None]
    ranges = [[], []]
    workers = []
    for rank in range(2):
        m = libvib.Model(dim, 4, 3, encoder=(16,), seed=4)
        tr = libvib.Trainer(m, libvib.Adam(m, lr=1e-2), n, batch, seed=2)
        tr.set_shard(rank, 2)
        workers.append((m, tr))

    def summed(rank, g):
        slots[rank] = g.copy()
        barrier.wait()
        total = slots[0] + slots[1]  # rank order: the same bits on both
        barrier.wait()
        g[:] = total

    for rank, (m, tr) in enumerate(workers):
        if overlap:
            tr.set_reduce_overlap(
                lambda g, lo, hi, r=rank: (ranges[r].append((lo, hi)), summed(r, g)),
                lambda g: None)
        else:
            tr.set_reduce(lambda g, r=rank: summed(r, g))
    errors = []

    def go(tr):
        try:
            for _ in range(steps):
                tr.step(x, y)
        except Exception as e:  # reported below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=go, args=(tr,)) for _, tr in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert np.array_equal(workers[0][0].params, workers[1][0].params)
    return workers[0][0].params.copy(), ranges[0], workers[0][0].num_params


def _parallel_data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 12)).astype(np.float32)
    return x, (np.arange(60) % 3).astype(np.int32)


def test_data_parallel_workers_in_threads():
    """Two workers (threads): the same bits on both, and the one-process run's
    parameters to float rounding."""
    x, y = _parallel_data()
    batch, steps = 10, 9
    one_m = libvib.Model(12, 4, 3, encoder=(16,), seed=4)
    one = libvib.Trainer(one_m, libvib.Adam(one_m, lr=1e-2), 60, batch, seed=2)
    for _ in range(steps):
        one.step(x, y)
    a, _, _ = _two_workers(x, y, batch, steps, overlap=False)
    assert np.max(np.abs(a - one_m.params)) <= 1e-5 * np.max(np.abs(one_m.params))


def test_overlapped_reduction_matches_the_whole():
    """The same two workers with the reduction overlapped: each part, a layer's range
    from the top down, summed as it comes, gives the very bits of the whole reduction."""
    x, y = _parallel_data()
    steps = 9
    whole, _, _ = _two_workers(x, y, 10, steps, overlap=False)
    parts, ranges, P = _two_workers(x, y, 10, steps, overlap=True)
    assert np.array_equal(whole, parts)
    # 3 layers a step (encoder, head, output), from the top, covering [0, P)
    assert len(ranges) == 3 * steps
    first = ranges[:3]
    assert first[0][1] == P and first[-1][0] == 0
    assert all(a[0] == b[1] for a, b in zip(first, first[1:]))


def test_overlapped_reduction_that_raises_fails_the_step():
    m, opt, avg, tr = build()
    x, y = np.random.default_rng(1).standard_normal((N, IN)).astype(np.float32), \
        (np.arange(N) % CLASSES).astype(np.int32)
    before = state(m, opt, avg, tr)
    calls = []

    def part(g, lo, hi):
        calls.append("part")
        if len(calls) == 1:
            raise RuntimeError("the link went down")

    def wait(g):
        calls.append("wait")
        raise ValueError("wait failed too")

    tr.set_reduce_overlap(part, wait)
    with pytest.raises(RuntimeError, match="link went down"):  # the first, not the wait's
        tr.step(x, y)
    assert calls[-1] == "wait" and calls.count("wait") == 1 and len(calls) > 2
    assert same(state(m, opt, avg, tr), before)
    with pytest.raises(TypeError):
        tr.set_reduce_overlap(part, None)
    tr.set_reduce_overlap(None, None)
    tr.step(x, y)
    assert calls.count("wait") == 1


def test_reduction_that_raises_fails_the_step():
    m, opt, avg, tr = build()
    x, y = np.random.default_rng(1).standard_normal((N, IN)).astype(np.float32), \
        (np.arange(N) % CLASSES).astype(np.int32)
    before = state(m, opt, avg, tr)

    def broken(grad):
        raise RuntimeError("the network is down")

    tr.set_reduce(broken)
    with pytest.raises(RuntimeError, match="network is down"):
        tr.step(x, y)
    assert same(state(m, opt, avg, tr), before)
    tr.set_reduce(None)
    tr.step(x, y)
    with pytest.raises(libvib.InvalidArgumentError):
        tr.set_shard(2, 2)

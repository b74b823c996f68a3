"""examples/python/seed_table.py, the over-seeds table of docs/results.md, on CSVs written
here: its means, standard deviations, bests and last-10 means against numbers worked out
by hand, a run that stopped early left out, and the optional evaluations' columns."""

import os
import subprocess
import sys

from conftest import ROOT

PROG = os.path.join(ROOT, "examples", "python", "seed_table.py")
HEADER = ("epoch,seconds,lr,loss,ce_nats,kl_bits,izy_lower_bits,test_error_1_pct,"
          "test_error_s_pct\n")


def write_run(path, errors):
    with open(path, "w") as f:
        f.write(HEADER)
        for i, e in enumerate(errors, 1):
            f.write("%d,1.0,0.0001,0.1,0.1,20.0,3.3,2.0,%.4f\n" % (i, e))


def table(directory):
    p = subprocess.run([sys.executable, PROG, str(directory)], capture_output=True, text=True,
                       check=True)
    rows = {}
    for line in p.stdout.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return p.stdout.splitlines()[0], rows, p.stderr


def test_rows_by_hand(tmp_path):
    # variant a: 12 epochs; the last 10 of seed 1 are 1.0 .. 1.9 (mean 1.45), seed 2's all
    # 2.0; finals 1.9 and 2.0: mean 1.95, sd 0.0707, best 1.90
    write_run(tmp_path / "a_seed1.csv", [5.0, 4.0] + [1.0 + 0.1 * i for i in range(10)])
    write_run(tmp_path / "a_seed2.csv", [5.0, 4.0] + [2.0] * 10)
    write_run(tmp_path / "a_seed3.csv", [5.0, 4.0, 3.0])  # stopped early: left out
    write_run(tmp_path / "b_seed7.csv", [3.0] * 10 + [1.5])
    header, rows, err = table(tmp_path)
    assert "z = mu" not in header
    assert rows["a"] == ["1,2", "12", "1.950%", "0.071", "1.90%", "1.725%", "0.389"]
    assert rows["b"] == ["7", "11", "1.500%", "-", "1.50%", "2.850%", "-"]
    assert "a: seeds [3] stopped early" in err


def test_evaluation_columns(tmp_path):
    write_run(tmp_path / "v_seed1.csv", [1.4])
    write_run(tmp_path / "v_seed2.csv", [1.6])
    with open(tmp_path / "evals.csv", "w") as f:
        f.write("variant,seed,z_mu_pct,samples100_pct,commit\n"
                "v,1,1.20,,x\nv,2,1.30,1.40,x\nother,1,9.0,9.0,x\n")
    header, rows, _ = table(tmp_path)
    assert header.endswith("| z = mu: mean (by seed) | 100 samples: mean (by seed) |")
    assert rows["v"][-2:] == ["1.250% (1.20, 1.30)", "1.400% (-, 1.40)"]

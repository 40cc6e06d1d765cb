"""``sam2_model.training.logcheck``: the mean of a loss term over a run's last steps."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sam2_model.training.logcheck import LogError, mean_over_last, read_log

HEADER = "step,lr,total,focal,dice,iou,object_score,seconds_per_step\n"


def _write_log(path, dice_by_step):
    rows = [f"{s},1.000e-03,1.0,0.01,{d},0.1,0.1,0.2\n" for s, d in dice_by_step]
    path.write_text(HEADER + "".join(rows))
    return path


def test_mean_over_the_last_steps_by_hand(tmp_path):
    # logged every 10 steps; the run ended at step 45 (a final row off the 10-step grid)
    log = _write_log(tmp_path / "log.csv", [(10, 0.9), (20, 0.7), (30, 0.5), (40, 0.3), (45, 0.2)])
    rows = read_log(log)
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 45]
    assert mean_over_last(rows, "dice", 20) == pytest.approx((0.5 + 0.3 + 0.2) / 3)  # steps > 25
    assert mean_over_last(rows, "dice", 15) == pytest.approx((0.3 + 0.2) / 2)  # steps > 30
    assert mean_over_last(rows, "dice", 1) == pytest.approx(0.2)  # at least the last row
    assert mean_over_last(rows, "dice", 1000) == pytest.approx(0.52)  # all of them
    assert mean_over_last(rows, "focal", 20) == pytest.approx(0.01)


def test_bad_logs_are_named(tmp_path):
    with pytest.raises(LogError, match=r"missing\.csv: cannot read"):
        read_log(tmp_path / "missing.csv")
    with pytest.raises(LogError, match="no rows yet"):
        read_log(_write_log(tmp_path / "empty.csv", []))
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "10,1e-3,1.0,0.01,0.5,0.1,0.1,0.2\n20,1e-3,nan?,x,0.5,0.1,0.1,0.2\n")
    with pytest.raises(LogError, match=r"bad\.csv, line 3: not a row of numbers"):
        read_log(bad)
    rows = read_log(_write_log(tmp_path / "log.csv", [(10, 0.5)]))
    with pytest.raises(LogError, match="no column 'dise'"):
        mean_over_last(rows, "dise", 10)
    with pytest.raises(LogError, match="steps must be >= 1"):
        mean_over_last(rows, "dice", 0)


def test_cli_exit_status(tmp_path):
    log = _write_log(tmp_path / "log.csv", [(10, 0.7), (20, 0.3), (30, 0.2)])

    def run(*args):
        cmd = [sys.executable, "-m", "sam2_model.training.logcheck", str(log), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    below = run("--last", "20", "--below", "0.5")  # (0.3 + 0.2) / 2
    assert below.returncode == 0 and "mean dice 0.2500 over the last 20 steps (to step 30), below 0.5" in below.stdout
    above = run("--last", "30", "--below", "0.35")  # (0.7 + 0.3 + 0.2) / 3
    assert above.returncode == 3 and "mean dice 0.4000" in above.stdout and "not below 0.35" in above.stdout
    wrong = run("--term", "dise", "--below", "0.5")
    assert wrong.returncode == 2 and "no column 'dise'" in wrong.stderr

"""J&F metrics against the vos-benchmark reference, the held-out evaluation helpers, and
the frame sources of the video publisher."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam2_model.data.synthetic import SyntheticConfig, generate_video
from sam2_model.eval.metrics import boundary, f_measure, jaccard, score_sequence
from sam2_model.eval.synthetic import FRAME_CODES, EvalReport, click_inside, evaluate_video, frame_code, heldout_seed


def _random_masks(seed: int, h: int = 60, w: int = 80):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    cy, cx, r = rng.uniform(10, h - 10), rng.uniform(10, w - 10), rng.uniform(5, 20)
    gt = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    pred = (yy - cy - rng.uniform(-4, 4)) ** 2 + (xx - cx - rng.uniform(-4, 4)) ** 2 < (r + rng.uniform(-3, 3)) ** 2
    pred &= rng.random((h, w)) > 0.05  # speckle
    return pred, gt


@pytest.mark.parametrize("seed", range(8))
def test_j_and_f_match_vos_benchmark(seed):
    from vos_benchmark.evaluator import Evaluator

    pred, gt = _random_masks(seed)
    ev = Evaluator()
    ev.feed_frame(pred.astype(np.uint8), gt.astype(np.uint8))
    ious, fs = ev.conclude()
    assert jaccard(pred, gt) == pytest.approx(ious[1] / 100, abs=1e-9)
    assert f_measure(pred, gt) == pytest.approx(fs[1] / 100, abs=1e-9)


def test_metric_edge_cases_by_hand():
    a = np.zeros((4, 4), bool)
    a[1:3, 1:3] = True
    b = np.zeros((4, 4), bool)
    b[1:3, 1:4] = True
    assert jaccard(a, b) == pytest.approx(4 / 6)
    empty = np.zeros((4, 4), bool)
    assert jaccard(empty, empty) == 1.0 and f_measure(empty, empty) == 1.0
    assert f_measure(a, empty) == 0.0 and f_measure(empty, a) == 0.0
    assert f_measure(a, a) == 1.0
    # DAVIS's boundary of a 2x2 square: its pixels that differ from their right/lower/diagonal
    # neighbour, plus the outside pixels right of / below it
    assert boundary(a).sum() == 8
    s = score_sequence([a, a, empty], [a, b, a])
    assert s.frames == 2 and s.j == pytest.approx((4 / 6 + 0.0) / 2)


def test_click_inside_is_deep_inside():
    mask = np.zeros((30, 40), bool)
    mask[5:25, 10:30] = True
    x, y = click_inside(mask)
    assert mask[int(y), int(x)] and 13 <= x <= 26 and 13 <= y <= 16
    ring = np.zeros((30, 30), bool)
    yy, xx = np.mgrid[:30, :30]
    ring[((yy - 15) ** 2 + (xx - 15) ** 2 < 14**2) & ((yy - 15) ** 2 + (xx - 15) ** 2 > 6**2)] = True
    x, y = click_inside(ring)
    assert ring[int(y), int(x)]  # not the (empty) centre


def test_frame_code_names_each_outcome():
    def box(y0, y1, x0, x1):
        m = np.zeros((20, 20), bool)
        m[y0:y1, x0:x1] = True
        return m

    empty = np.zeros((20, 20), bool)
    truth, other = box(0, 10, 0, 10), box(10, 20, 10, 20)
    assert frame_code(truth, truth, [other]) == "o"
    assert frame_code(box(0, 10, 0, 7), truth, [other]) == "o"  # IoU 0.7
    assert frame_code(box(0, 10, 0, 6), truth, [other]) == "~"  # IoU 0.6
    assert frame_code(box(0, 10, 0, 3), truth, [other]) == "~"  # IoU 0.3
    assert frame_code(box(0, 10, 0, 2), truth, [other]) == "X"  # IoU 0.2, not on the other object
    assert frame_code(box(9, 20, 9, 20), truth, [other]) == "O"  # 100 of 121 pixels on the other
    assert frame_code(box(9, 20, 9, 20), truth, []) == "X"  # the same mask when no other is tracked
    assert frame_code(empty, truth, [other]) == "M"
    assert frame_code(empty, empty, [other]) == "."
    assert frame_code(other, empty, [other]) == "H"
    report = EvalReport()
    assert report.frame_counts() == dict.fromkeys(FRAME_CODES, 0)


def test_heldout_seeds_are_odd_and_training_seeds_even():
    assert all(heldout_seed(k) % 2 == 1 for k in range(100))
    import sam2_model.training.data as training_data

    with open(training_data.__file__) as f:
        assert "2 * int(rng.integers" in f.read()


def test_evaluate_video_runs_and_scores(monkeypatch):
    from conftest import unit_model

    video = generate_video(heldout_seed(0), SyntheticConfig(height=60, width=80, num_frames=5))
    model = unit_model()
    report = evaluate_video(model, video, heldout_seed(0))
    assert set(report.scores) == set(video.object_ids)
    for s in report.scores.values():
        assert s.frames == 4 and 0.0 <= s.jf <= 1.0
    assert 0 <= report.occlusion_correct <= report.occlusion_frames
    assert set(report.timelines) == set(video.object_ids)
    for i, line in report.timelines.items():
        assert len(line) == 5 and set(line) <= set(FRAME_CODES)
        visible = [bool(m[i].any()) for m in video.masks]
        assert [c not in ".H" for c in line] == visible
    counts = EvalReport([report]).frame_counts()
    assert sum(counts.values()) == 4 * len(video.object_ids)


def test_frame_sources(tmp_path):
    from sam2_ros.frame_source import open_frames

    for k in range(3):
        Image.fromarray(np.full((10, 12, 3), 40 * k, np.uint8)).save(tmp_path / f"{k:03d}.png")
    frames = list(open_frames(str(tmp_path)))
    assert len(frames) == 3 and frames[2][0, 0, 0] == 80 and frames[0].shape == (10, 12, 3)
    synthetic = list(open_frames("synthetic:3:4"))
    assert len(synthetic) == 4 and np.array_equal(
        synthetic[0], generate_video(3, SyntheticConfig(num_frames=4)).frames[0]
    )
    import cv2

    writer = cv2.VideoWriter(str(tmp_path / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 24))
    for k in range(5):
        writer.write(np.full((24, 32, 3), 50 * k, np.uint8))
    writer.release()
    video = list(open_frames(str(tmp_path / "v.mp4")))
    assert len(video) == 5 and video[0].shape == (24, 32, 3)
    with pytest.raises(ValueError, match=r"source: .* is not a folder"):
        open_frames(str(tmp_path / "missing.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="source: no images"):
        list(open_frames(str(tmp_path / "empty")))


def test_touches_by_hand():
    from sam2_model.eval.diagnose import touches

    a = np.zeros((20, 20), bool)
    a[5:10, 5:10] = True
    near, far, diagonal = np.zeros_like(a), np.zeros_like(a), np.zeros_like(a)
    near[5:10, 12:15] = True  # 2 pixels of gap: within 3
    far[5:10, 14:18] = True  # 4 pixels of gap
    diagonal[12, 12] = True  # 3 pixels off the corner on both axes: reached by 8-connected growth
    assert touches(a, [near]) and touches(a, [far, near]) and touches(a, [diagonal])
    assert not touches(a, [far]) and not touches(a, []) and not touches(np.zeros_like(a), [near])
    assert not touches(a, [diagonal], px=2)


def test_diagnosis_scores_every_fully_visible_object_frame():
    from conftest import unit_model

    from sam2_model.eval.diagnose import diagnose_video

    video = generate_video(heldout_seed(3), SyntheticConfig(height=60, width=80, num_frames=5))
    click, memory = diagnose_video(unit_model(), video)
    expected = sum(video.visibility[t][i] == 1.0 for t in range(1, 5) for i in video.object_ids)
    assert expected > 0
    for split in (click, memory):
        assert sum(len(v) for v in split.ious.values()) == expected
        assert all(0.0 <= iou <= 1.0 for v in split.ious.values() for iou in v)
        assert [len(v) for v in split.codes.values()] == [len(v) for v in split.ious.values()]
    assert {k: len(v) for k, v in click.ious.items()} == {k: len(v) for k, v in memory.ious.items()}

"""SAM 2's training losses against hand-computed values, multimask supervision, gradients, and
the training prompt sampler (kinds' frequencies, clicks, boxes, corrections, reproducibility)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sam2_model.training.losses import LossWeights, actual_iou, dice_loss, sam2_loss, sigmoid_focal_loss
from sam2_model.training.prompt_sampler import PromptProbabilities, PromptSampler

LOGITS = [[2.0, -1.0], [0.5, -3.0]]
TARGET = [[1.0, 0.0], [0.0, 1.0]]


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def focal_by_hand(logits, target, alpha=0.25, gamma=2.0) -> float:
    total, count = 0.0, 0
    for row_x, row_t in zip(logits, target):
        for x, t in zip(row_x, row_t):
            p = sig(x)
            if t:
                total += alpha * -math.log(p) * (1 - p) ** gamma
            else:
                total += (1 - alpha) * -math.log(1 - p) * p**gamma
            count += 1
    return total / count


def dice_by_hand(logits, target, eps=1.0) -> float:
    ps = [sig(x) for row in logits for x in row]
    ts = [t for row in target for t in row]
    inter = sum(p * t for p, t in zip(ps, ts))
    return 1 - (2 * inter + eps) / (sum(ps) + sum(ts) + eps)


def tensor(values) -> torch.Tensor:
    return torch.tensor([values], dtype=torch.float32)  # [1, 2, 2]


# --- the single losses ---------------------------------------------------------------------


def test_focal_by_hand():
    got = sigmoid_focal_loss(tensor(LOGITS), tensor(TARGET))
    assert got.shape == (1,)
    assert got.item() == pytest.approx(focal_by_hand(LOGITS, TARGET), rel=1e-5)


def test_focal_bool_targets_and_no_alpha():
    got = sigmoid_focal_loss(tensor(LOGITS), tensor(TARGET).bool(), alpha=-1, gamma=0.0)
    # gamma 0, no alpha: plain binary cross-entropy
    bce = -(math.log(sig(2.0)) + math.log(1 - sig(-1.0)) + math.log(1 - sig(0.5)) + math.log(sig(-3.0))) / 4
    assert got.item() == pytest.approx(bce, rel=1e-5)


def test_focal_stable_on_large_logits():
    logits = torch.tensor([[[100.0, -100.0]]])
    wrong = sigmoid_focal_loss(logits, torch.tensor([[[0.0, 1.0]]]))
    right = sigmoid_focal_loss(logits, torch.tensor([[[1.0, 0.0]]]))
    assert torch.isfinite(wrong).all() and wrong.item() == pytest.approx((0.75 * 100 + 0.25 * 100) / 2, rel=1e-4)
    assert right.item() == pytest.approx(0.0, abs=1e-6)


def test_dice_by_hand():
    got = dice_loss(tensor(LOGITS), tensor(TARGET))
    assert got.shape == (1,)
    assert got.item() == pytest.approx(dice_by_hand(LOGITS, TARGET), rel=1e-5)
    # both empty-ish: p -> 0, t = 0 gives ~0 loss thanks to eps
    assert dice_loss(torch.full((1, 2, 2), -50.0), torch.zeros(1, 2, 2)).item() == pytest.approx(0.0, abs=1e-6)


def test_actual_iou_by_hand():
    # predicted (logits > 0): (0,0), (1,0); target: (0,0), (1,1) -> 1 / 3
    assert actual_iou(tensor(LOGITS), tensor(TARGET)).item() == pytest.approx(1 / 3)
    assert actual_iou(torch.full((1, 2, 2), -1.0), torch.zeros(1, 2, 2)).item() == 1.0
    assert actual_iou(torch.full((1, 2, 2), 1.0), torch.zeros(1, 2, 2)).item() == 0.0
    assert actual_iou(torch.full((1, 2, 2), 1.0), torch.ones(1, 2, 2)).item() == 1.0


def test_sam2_loss_single_mask_by_hand():
    iou_pred, score = 0.7, 0.4
    out = sam2_loss(tensor(LOGITS)[:, None], torch.tensor([[iou_pred]]), torch.tensor([[score]]), tensor(TARGET))
    focal, dice = focal_by_hand(LOGITS, TARGET), dice_by_hand(LOGITS, TARGET)
    iou = abs(iou_pred - 1 / 3)
    obj = -math.log(sig(score))
    assert out.focal.item() == pytest.approx(focal, rel=1e-5)
    assert out.dice.item() == pytest.approx(dice, rel=1e-5)
    assert out.iou.item() == pytest.approx(iou, rel=1e-5)
    assert out.object_score.item() == pytest.approx(obj, rel=1e-5)
    assert out.total.item() == pytest.approx(20 * focal + dice + iou + obj, rel=1e-5)
    weights = LossWeights(focal=1.0, dice=2.0, iou=3.0, object_score=4.0)
    out = sam2_loss(
        tensor(LOGITS)[:, None], torch.tensor([[iou_pred]]), torch.tensor([[score]]), tensor(TARGET), weights
    )
    assert out.total.item() == pytest.approx(focal + 2 * dice + 3 * iou + 4 * obj, rel=1e-5)


def test_sam2_loss_checks_shapes():
    with pytest.raises(ValueError, match="targets"):
        sam2_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3), torch.zeros(2, 1), torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="pred_iou"):
        sam2_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="object_score_logits"):
        sam2_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, 4, 4))


# --- multimask supervision, absent objects ----------------------------------------------------


def candidates_and_target():
    """One item, three 4x4 candidates: 0 is half wrong, 1 matches the target, 2 is all wrong."""
    target = torch.zeros(1, 4, 4)
    target[0, :2] = 1
    exact = (target[0] * 2 - 1) * 5  # +5 inside, -5 outside
    half = exact.clone()
    half[:, :2] = -half[:, :2]
    logits = torch.stack([half, exact, -exact])[None]  # [1, 3, 4, 4]
    return logits, target


def test_multimask_picks_best_candidate_and_supervises_all_ious():
    logits, target = candidates_and_target()
    logits.requires_grad_(True)
    pred_iou = torch.tensor([[0.5, 0.5, 0.5]], requires_grad=True)
    out = sam2_loss(logits, pred_iou, torch.tensor([[2.0]]), target)
    best = logits[:, 1].detach()
    assert out.focal.item() == pytest.approx(sigmoid_focal_loss(best, target).item(), rel=1e-5)
    assert out.dice.item() == pytest.approx(dice_loss(best, target).item(), rel=1e-5)
    # actual IoUs: half wrong -> 4 / 12, exact -> 1, all wrong -> 0
    expected_iou = (abs(0.5 - 1 / 3) + abs(0.5 - 1.0) + abs(0.5 - 0.0)) / 3
    assert out.iou.item() == pytest.approx(expected_iou, rel=1e-5)
    out.total.backward()
    assert logits.grad[0, 1].abs().sum() > 0
    assert logits.grad[0, [0, 2]].abs().sum() == 0  # only the best candidate gets mask losses
    assert (pred_iou.grad != 0).all()  # every candidate's IoU is supervised


def test_absent_target_gets_only_object_score_loss():
    logits, target = candidates_and_target()
    both_logits = torch.cat([logits, logits.flip(0) * 0.3]).requires_grad_(True)  # [2, 3, 4, 4]
    both_targets = torch.cat([target, torch.zeros_like(target)])
    pred_iou = torch.tensor([[0.5, 0.5, 0.5], [0.2, 0.9, 0.4]], requires_grad=True)
    scores = torch.tensor([[2.0], [1.0]], requires_grad=True)
    out = sam2_loss(both_logits, pred_iou, scores, both_targets)
    alone = sam2_loss(logits, pred_iou[:1].detach(), scores[:1].detach(), target)
    assert out.focal.item() == pytest.approx(alone.focal.item(), rel=1e-6)
    assert out.dice.item() == pytest.approx(alone.dice.item(), rel=1e-6)
    assert out.iou.item() == pytest.approx(alone.iou.item(), rel=1e-6)
    obj = (-math.log(sig(2.0)) - math.log(1 - sig(1.0))) / 2
    assert out.object_score.item() == pytest.approx(obj, rel=1e-5)
    out.total.backward()
    assert both_logits.grad[1].abs().sum() == 0
    assert pred_iou.grad[1].abs().sum() == 0
    assert scores.grad[1].item() > 0  # pushes the absent object's score down


def test_all_empty_batch_is_finite():
    logits = torch.randn(3, 3, 4, 4, requires_grad=True)
    scores = torch.randn(3, 1, requires_grad=True)
    out = sam2_loss(logits, torch.rand(3, 3), scores, torch.zeros(3, 4, 4, dtype=torch.bool))
    for value in (out.total, out.focal, out.dice, out.iou, out.object_score):
        assert torch.isfinite(value)
    assert out.focal.item() == out.dice.item() == out.iou.item() == 0.0
    expected = sum(-math.log(1 - sig(s)) for s in scores.detach().flatten().tolist()) / 3
    assert out.total.item() == pytest.approx(expected, rel=1e-5)
    out.total.backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(scores.grad).all()


# --- gradients ---------------------------------------------------------------------------------


def test_gradients_flow_and_descent_lowers_total():
    gen = torch.Generator().manual_seed(0)
    targets = torch.rand(4, 8, 8, generator=gen) > 0.5
    targets[3] = False  # one absent object
    logits = torch.randn(4, 3, 8, 8, generator=gen).requires_grad_(True)
    pred_iou = torch.rand(4, 3, generator=gen).requires_grad_(True)
    scores = torch.randn(4, 1, generator=gen).requires_grad_(True)
    out = sam2_loss(logits, pred_iou, scores, targets)
    out.total.backward()
    for param in (logits, pred_iou, scores):
        assert param.grad is not None and param.grad.abs().sum() > 0
    optimizer = torch.optim.SGD([logits, pred_iou, scores], lr=0.5)
    first = out.total.item()
    for _ in range(20):
        optimizer.zero_grad()
        total = sam2_loss(logits, pred_iou, scores, targets).total
        total.backward()
        optimizer.step()
    assert sam2_loss(logits, pred_iou, scores, targets).total.item() < 0.8 * first


# --- the prompt sampler ------------------------------------------------------------------------


def blob(h: int = 40, w: int = 50) -> np.ndarray:
    gt = np.zeros((h, w), dtype=bool)
    gt[10:25, 5:30] = True
    gt[25:30, 20:45] = True
    return gt


def test_kind_frequencies():
    sampler = PromptSampler(seed=0)
    gt = blob()
    kinds = [sampler.sample(gt).kind for _ in range(2000)]
    for kind, p in (("mask", 0.5), ("click", 0.25), ("box", 0.25)):
        assert abs(kinds.count(kind) / len(kinds) - p) < 0.04


def test_prompt_contents():
    sampler = PromptSampler(seed=1)
    gt = blob()
    h, w = gt.shape
    ys, xs = np.nonzero(gt)
    tight = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float32)
    slack = np.minimum(0.1 * np.array([tight[2] - tight[0], tight[3] - tight[1]] * 2), 20) + 1e-4
    seen = set()
    for _ in range(300):
        prompt = sampler.sample(gt)
        seen.add(prompt.kind)
        if prompt.kind == "mask":
            assert prompt.mask is not None and np.array_equal(prompt.mask, gt) and prompt.box is None
            assert prompt.points.shape == (0, 2) and prompt.labels.shape == (0,)
        elif prompt.kind == "click":
            assert prompt.points.shape == (1, 2) and prompt.points.dtype == np.float32
            assert prompt.labels.tolist() == [1] and prompt.labels.dtype == np.int32
            x, y = prompt.points[0]
            assert gt[int(y), int(x)]
            assert prompt.box is None and prompt.mask is None
        else:
            box = prompt.box
            assert box is not None and box.shape == (4,) and box.dtype == np.float32
            assert prompt.points.shape == (0, 2) and prompt.mask is None
            assert (np.abs(box - tight) <= slack).all()
            assert 0 <= box[0] <= box[2] <= w - 1 and 0 <= box[1] <= box[3] <= h - 1
    assert seen == {"mask", "click", "box"}


def test_boxes_clamped_to_image():
    gt = np.zeros((30, 30), dtype=bool)
    gt[0:30, 0:30] = True  # the whole image: any outward jitter must be clamped
    sampler = PromptSampler(PromptProbabilities(mask=0, click=0, box=1), box_noise=0.5, box_noise_max=100, seed=2)
    boxes = np.stack([sampler.sample(gt).box for _ in range(200)])
    assert (boxes >= 0).all() and (boxes <= 29).all()
    assert (boxes[:, 0] <= boxes[:, 2]).all() and (boxes[:, 1] <= boxes[:, 3]).all()
    assert (boxes[:, 0] > 0).any()  # jitter does happen


def test_corrections_follow_error_regions():
    gt = np.zeros((20, 20), dtype=bool)
    gt[0:10, :] = True  # rows 0-9
    pred = np.zeros_like(gt)
    pred[0:4, :] = True  # rows 4-9 missed: 120 FN pixels
    pred[10:12, :] = True  # rows 10-11 false: 40 FP pixels
    sampler = PromptSampler(seed=3)
    positives = 0
    n = 2000
    for _ in range(n):
        result = sampler.correction(gt, pred)
        assert result is not None
        point, label = result
        assert point.shape == (2,) and point.dtype == np.float32
        x, y = int(point[0]), int(point[1])
        if label == 1:
            assert gt[y, x] and not pred[y, x]
            positives += 1
        else:
            assert label == 0 and pred[y, x] and not gt[y, x]
    assert abs(positives / n - 120 / 160) < 0.04


def test_no_error_gives_none():
    gt = blob()
    assert PromptSampler(seed=0).correction(gt, gt.copy()) is None
    empty = np.zeros((5, 5), dtype=bool)
    assert PromptSampler(seed=0).correction(empty, empty) is None


def test_same_seed_same_sequence():
    gt = blob()
    pred = np.roll(gt, 3, axis=1)

    def draws(seed):
        sampler = PromptSampler(seed=seed)
        out = []
        for _ in range(50):
            p = sampler.sample(gt)
            out.append((p.kind, p.points.tobytes(), None if p.box is None else p.box.tobytes()))
            point, label = sampler.correction(gt, pred)
            out.append((point.tobytes(), label))
        return out

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


def test_sampler_rejects_bad_masks():
    sampler = PromptSampler(seed=0)
    with pytest.raises(ValueError, match="gt"):
        sampler.sample(np.zeros((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="gt"):
        sampler.sample(np.ones((2, 4, 4), dtype=bool))
    with pytest.raises(ValueError, match="pred"):
        sampler.correction(np.ones((4, 4), dtype=bool), np.ones((4, 5), dtype=bool))


def test_rng_state_restores_sequence():
    gt = blob()
    sampler = PromptSampler(seed=5)
    sampler.sample(gt)
    state = sampler.rng.bit_generator.state
    first = [sampler.sample(gt).kind for _ in range(20)]
    sampler.rng.bit_generator.state = state
    assert [sampler.sample(gt).kind for _ in range(20)] == first

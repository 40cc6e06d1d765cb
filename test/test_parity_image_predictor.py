"""Single-image prompting against the official video predictor's first-frame path: the
same JPEG frame, the same prompts, the same masks, logits and object scores."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import TOL, object_score_bias, rel_err
from PIL import Image

from sam2_model import SAM2ImagePredictor
from sam2_model.transforms import logits_to_image

pytestmark = pytest.mark.parity

H, W = 180, 240  # not square, not the model size: exercises the resizes


def scene(seed: int = 0) -> np.ndarray:
    """A textured background with a few filled shapes, ``[H, W, 3]`` uint8."""
    rng = np.random.default_rng(seed)
    img = (rng.random((H, W, 3)) * 60 + 80).astype(np.uint8)
    yy, xx = np.mgrid[:H, :W]
    img[(yy - 70) ** 2 + (xx - 80) ** 2 < 35**2] = (220, 40, 40)
    img[110:160, 140:220] = (40, 200, 60)
    return img


@pytest.fixture(scope="module")
def frame_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    Image.fromarray(scene()).save(root / "00000.jpg", quality=95)
    return root


PROMPTS = {
    "click": {"points": [[80, 70]], "labels": [1]},
    "two clicks": {"points": [[80, 70], [180, 130]], "labels": [1, 0]},
    "box": {"box": [40, 30, 125, 110]},
    "box+click": {"box": [130, 100, 230, 170], "points": [[180, 135]], "labels": [1]},
    "mask": {"mask": "disc"},
    "mask then click": {"mask": "disc", "points": [[60, 60]], "labels": [0]},
}


def _mask(kind: str) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (yy - 70) ** 2 + (xx - 80) ** 2 < 35**2


def _official(pair, frame_dir, prompt):
    """Run the official predictor on frame 0; returns (video-res logits, low-res logits, score)."""
    ref = pair.ref
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = ref.init_state(video_path=str(frame_dir))
        if "mask" in prompt:
            _, _, video_logits = ref.add_new_mask(state, frame_idx=0, obj_id=1, mask=_mask(prompt["mask"]))
        if "points" in prompt or "box" in prompt:
            _, _, video_logits = ref.add_new_points_or_box(
                state,
                frame_idx=0,
                obj_id=1,
                points=np.array(prompt["points"], dtype=np.float32) if "points" in prompt else None,
                labels=np.array(prompt["labels"], dtype=np.int32) if "labels" in prompt else None,
                box=np.array(prompt["box"], dtype=np.float32) if "box" in prompt else None,
            )
    out = state["temp_output_dict_per_obj"][0]["cond_frame_outputs"][0]
    return video_logits[0, 0], out["pred_masks"][0, 0], float(out["object_score_logits"][0, 0])


@pytest.mark.parametrize("name", list(PROMPTS))
@torch.inference_mode()
def test_first_frame_prompt_matches_official(pair, frame_dir, name):
    prompt = PROMPTS[name]
    image = np.asarray(Image.open(frame_dir / "00000.jpg").convert("RGB"))  # the pixels both see
    predictor = SAM2ImagePredictor(pair.ours)
    with object_score_bias(pair, 30.0):  # random weights: make the object visible
        ref_video, ref_low, ref_score = _official(pair, frame_dir, prompt)
        predictor.set_image(image)
        args = dict(prompt)
        if "mask" in args:
            args["mask"] = _mask(args["mask"])
        result = predictor.predict(**args)

    assert result.masks.shape[1:] == (H, W)
    n_clicks = len(prompt.get("points", [])) + (2 if "box" in prompt else 0)
    assert len(result.masks) == (3 if n_clicks == 1 else 1)  # one click is ambiguous
    assert ref_score > 0
    assert result.object_score == pytest.approx(ref_score, rel=1e-4, abs=1e-4)
    low = result.logits[result.best]
    assert rel_err(low, ref_low) <= TOL
    video = logits_to_image(low[None, None], (H, W))[0, 0]
    assert rel_err(video, ref_video) <= TOL
    # the thresholded mask: identical except where the reference logit is ~0
    ref_mask = (ref_video > 0).numpy()
    differ = result.mask != ref_mask
    assert not np.any(differ & (np.abs(ref_video.numpy()) > 1e-3))
    area = result.mask.mean()
    assert 0.0 < area < 1.0, "degenerate mask: the comparison would be vacuous"

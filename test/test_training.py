"""The training recipe: the training forward equals the tracker, a step lowers the loss,
checkpoints load and runs resume exactly, the optimiser groups and the schedule."""

from __future__ import annotations

import csv
import dataclasses
import itertools

import numpy as np
import pytest
import torch
from conftest import moving_shapes_video, unit_model

from sam2_model import SAM2Tracker, build_sam2, load_checkpoint
from sam2_model.data.synthetic import SyntheticConfig
from sam2_model.training import TrainConfig, Trainer
from sam2_model.training.augment import AugmentConfig, Clip, augment_clip
from sam2_model.training.cli import build_parser, config_from_args, main
from sam2_model.training.clip_forward import ClipPrompt, forward_clip
from sam2_model.training.data import ClipSource, ClipStream
from sam2_model.training.trainer import inverse_sqrt_schedule, model_config, param_groups
from sam2_model.transforms import points_to_model, preprocess_image

H, W = 60, 80


def test_training_forward_equals_the_tracker():
    model = unit_model()
    frames, _ = moving_shapes_video(6, H, W, seed=5)
    clicks = {1: [[15.0, 20.0]], 2: [[60.0, 40.0]]}
    tracker = SAM2Tracker(model, memory_dtype=torch.float32, fill_hole_area=0)
    want = []
    with torch.inference_mode():
        for t, f in enumerate(frames):
            result = tracker.track(f)
            if t == 0:
                for obj_id, pts in clicks.items():
                    tracker.add_prompt(obj_id, points=pts, labels=[1])
            else:
                want.append(torch.stack([result.objects[i].logits for i in sorted(clicks)]))
        images = torch.cat([preprocess_image(f, model.image_size) for f in frames])
        prompts = {
            0: [
                ClipPrompt(points_to_model(np.array(pts), (H, W), model.image_size, "cpu"), torch.tensor([1]), None)
                for pts in clicks.values()
            ]
        }
        out = forward_clip(model, images, prompts, binarize_prompted=True)
    assert [s.frame for s in out.steps] == list(range(6))
    for t, step in enumerate(out.steps[1:], start=1):
        got = torch.cat([o.logits for o in step.objects])[:, 0]
        torch.testing.assert_close(got, want[t - 1], rtol=1e-4, atol=1e-4)


def test_the_last_frame_of_a_clip_encodes_no_memory():
    # nothing reads it: encoding it would only cost time (a 1-frame clip encodes none)
    model = unit_model()
    frames, _ = moving_shapes_video(4, H, W, seed=5)
    images = torch.cat([preprocess_image(f, model.image_size) for f in frames])
    prompts = {0: [ClipPrompt(torch.tensor([[30.0, 40.0]]), torch.tensor([1]), None)]}  # model-input pixels
    calls = []
    encode = model.encode_memory
    model.encode_memory = lambda *a, **k: calls.append(1) or encode(*a, **k)
    with torch.no_grad():
        assert len(forward_clip(model, images, prompts).steps) == 4
        assert len(calls) == 3
        forward_clip(model, images[:1], prompts)
    assert len(calls) == 3


def test_a_batch_of_clips_equals_the_clips_one_by_one():
    """Clips batched in one forward (objects of several clips, each on its own frames) give
    what each clip gives alone, for clicks, boxes and masks, with a correction round."""
    model = unit_model()  # eval mode: no dropout, so both runs compute the same function
    size = model.image_size
    clips = [moving_shapes_video(5, H, W, seed=s)[0] for s in (1, 2)]
    images = [torch.cat([preprocess_image(f, size) for f in frames]) for frames in clips]
    gen = torch.Generator().manual_seed(0)
    mask = (torch.rand(size, size, generator=gen) > 0.7).float()

    def click(x: float, y: float) -> ClipPrompt:
        return ClipPrompt(torch.tensor([[x, y]]), torch.tensor([1]), None)

    box = ClipPrompt(torch.tensor([[10.0, 12.0], [70.0, 80.0]]), torch.tensor([2, 3]), None)
    per_clip = [
        {0: [click(30.0, 40.0), box], 3: [click(50.0, 60.0), ClipPrompt(None, None, mask)]},
        {0: [ClipPrompt(None, None, mask)], 3: [click(90.0, 20.0)]},
    ]

    def correction(t, logits):  # a negative click at the same spot for every object
        return [((5.0, 6.0), 0)] * logits.shape[0]

    alone = [forward_clip(model, im, p, correction, 1) for im, p in zip(images, per_clip)]
    batched_prompts = {t: per_clip[0][t] + per_clip[1][t] for t in (0, 3)}
    batched = forward_clip(model, torch.stack(images), batched_prompts, correction, 1, clip_of=[0, 0, 1])
    assert [s.frame for s in batched.steps] == [s.frame for s in alone[0].steps]
    for i, step in enumerate(batched.steps):
        want = alone[0].steps[i].objects + alone[1].steps[i].objects
        assert len(step.objects) == 3
        for got, ref in zip(step.objects, want):
            torch.testing.assert_close(got.logits, ref.logits, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(got.object_score_logits, ref.object_score_logits, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="clip_of"):
        forward_clip(model, torch.stack(images), batched_prompts)


def test_each_correction_round_keeps_its_own_outputs():
    """A prompted frame's first step holds the masks from the prompt alone: the correction
    round that follows is a step of its own and does not overwrite them."""
    model = unit_model()
    frames, _ = moving_shapes_video(3, H, W, seed=3)
    images = torch.cat([preprocess_image(f, model.image_size) for f in frames])
    prompts = {0: [ClipPrompt(torch.tensor([[30.0, 40.0]]), torch.tensor([1]), None)]}

    def correction(t, logits):  # a negative click next to the positive one
        return [((34.0, 44.0), 0)] * logits.shape[0]

    with torch.inference_mode():
        plain = forward_clip(model, images, prompts)
        corrected = forward_clip(model, images, prompts, correction, 1)
    assert [(s.frame, s.prompted) for s in corrected.steps] == [(0, True), (0, True), (1, False), (2, False)]
    first, second = corrected.steps[0].objects[0].logits, corrected.steps[1].objects[0].logits
    torch.testing.assert_close(first, plain.steps[0].objects[0].logits)
    assert (first - second).abs().max() > 1e-3  # the click changed the mask


def _tiny_run(tmp_path, steps, **kw):
    settings = {
        "model": "sam2_ros_demo",
        "image_size": 64,
        "clip_length": 3,
        "max_objects": 2,
        "steps": steps,
        "warmup_steps": 2,
        "checkpoint_every": 2,
        "log_every": 1,
        "device": "cpu",
        "out_dir": str(tmp_path),
        "synthetic": SyntheticConfig(height=48, width=64),
    }
    return Trainer(TrainConfig(**{**settings, **kw}))


def _loss_twice(trainer: Trainer) -> tuple[float, float]:
    """The loss of two steps on the same clip and prompts (the random streams rewound)."""
    torch.manual_seed(0)
    states = trainer.rng.bit_generator.state, trainer.sampler.rng.bit_generator.state
    first = trainer.train_step()["total"]
    trainer.rng.bit_generator.state, trainer.sampler.rng.bit_generator.state = states
    return first, trainer.train_step()["total"]


def test_one_training_step_lowers_the_loss_on_a_fixed_batch(tmp_path):
    before, after = _loss_twice(_tiny_run(tmp_path, steps=10, lr=1e-3, grad_clip=10.0))
    assert after < before  # the same clip and prompts, after one update


def test_a_step_over_a_batch_of_clips_lowers_the_loss(tmp_path):
    before, after = _loss_twice(_tiny_run(tmp_path, steps=10, lr=1e-3, grad_clip=10.0, batch_clips=3))
    assert after < before
    with pytest.raises(ValueError, match="batch_clips"):
        TrainConfig(batch_clips=0)


def test_clips_from_worker_processes(tmp_path):
    """With num_workers, clips come from worker processes, each with its own stream (seeded
    by the run's seed, its start step and the worker id), and a run trains on them."""
    source = ClipSource("synthetic", 3, SyntheticConfig(height=48, width=64), augment=None)
    first = [next(iter(ClipStream(source, 64, 2, seed=1, start=s)))[0] for s in (0, 0, 5)]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])
    loader = torch.utils.data.DataLoader(ClipStream(source, 64, 2, seed=1), batch_size=None, num_workers=2)
    clips = [frames for frames, _ in itertools.islice(loader, 4)]  # workers take turns
    assert clips[0].shape == (3, 3, 64, 64) and not torch.equal(clips[0], clips[1])
    trainer = _tiny_run(tmp_path, steps=3, num_workers=2, batch_clips=2)
    trainer.run()
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3] and all(np.isfinite(float(r["total"])) for r in rows)
    with pytest.raises(ValueError, match="num_workers"):
        TrainConfig(num_workers=-1)


def test_checkpoints_load_and_an_interrupted_run_resumes_exactly(tmp_path):
    straight = _tiny_run(tmp_path / "a", steps=4)
    final = straight.run()
    model = build_sam2("sam2_ros_demo", image_size=64)
    load_checkpoint(model, final)  # the official format: loads into a plain model
    for a, b in zip(model.state_dict().values(), straight.model.state_dict().values()):
        assert torch.equal(a, b)

    first = _tiny_run(tmp_path / "b", steps=2)
    first.run()
    assert (tmp_path / "b" / "last.pt").exists()
    resumed = _tiny_run(tmp_path / "b", steps=4)  # same command, longer: picks up at step 2
    resumed.run()
    assert resumed.step == 4
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    with open(tmp_path / "b" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["total"]) > 0 for r in rows)


def test_weight_average_by_hand_and_across_a_resume(tmp_path):
    """With ema_decay d, after each step avg = d * avg + (1 - d) * weights, starting from the
    initial weights; final.pt holds the average, last.pt both, and a resumed run continues it."""
    trainer = _tiny_run(tmp_path / "a", steps=3, ema_decay=0.75, lr=1e-3, grad_clip=10.0)
    name = "sam_mask_decoder.iou_prediction_head.layers.0.weight"
    expected = trainer.model.state_dict()[name].clone()
    for _ in range(3):
        trainer.train_step()
        weights = trainer.model.state_dict()[name]
        expected = 0.75 * expected + 0.25 * weights
    assert not torch.allclose(expected, weights)  # the steps moved the weights
    torch.testing.assert_close(trainer.ema.state[name], expected)

    straight = _tiny_run(tmp_path / "b", steps=4, ema_decay=0.75)
    final = straight.run()
    raw = torch.load(final, weights_only=True)["model"]
    last = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    torch.testing.assert_close(raw[name], last["ema"][name])
    assert not torch.allclose(raw[name], last["model"][name])  # the raw weights stay in last.pt
    _tiny_run(tmp_path / "c", steps=2, ema_decay=0.75).run()
    resumed = _tiny_run(tmp_path / "c", steps=4, ema_decay=0.75)
    resumed_raw = torch.load(resumed.run(), weights_only=True)["model"]
    for key, value in raw.items():
        torch.testing.assert_close(resumed_raw[key], value, rtol=1e-5, atol=1e-6, msg=key)

    _tiny_run(tmp_path / "d", steps=1).run()  # a run started without an average ...
    with pytest.raises(ValueError, match="no weight average"):  # ... cannot resume with one
        _tiny_run(tmp_path / "d", steps=2, ema_decay=0.9).run()
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)


def test_layer_decay_groups_and_schedule():
    model = build_sam2("sam2_ros_demo")
    groups = param_groups(model, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    depth = len(model.image_encoder.trunk.blocks)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    wd = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    trunk = model.image_encoder.trunk
    assert scale[id(trunk.patch_embed.proj.weight)] == 0.5 ** (depth + 1)
    assert scale[id(trunk.blocks[0].attn.qkv.weight)] == 0.5**depth
    assert scale[id(trunk.blocks[-1].mlp.layers[0].weight)] == 0.5
    assert scale[id(model.sam_mask_decoder.iou_token.weight)] == 1.0
    assert wd[id(trunk.blocks[0].attn.qkv.weight)] == 0.05 and wd[id(trunk.blocks[0].attn.qkv.bias)] == 0.0
    assert wd[id(model.no_obj_ptr)] == 0.0 and wd[id(model.sam_mask_decoder.mask_tokens.weight)] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert inverse_sqrt_schedule(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert inverse_sqrt_schedule(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert inverse_sqrt_schedule(40, 10, 100, 0.1) == pytest.approx(0.5)
    assert inverse_sqrt_schedule(95, 10, 100, 0.1) == pytest.approx((10 / 95) ** 0.5 * 0.5)
    assert inverse_sqrt_schedule(100, 10, 100, 0.1) == 0.0


# every augmentation off
NO_AUGMENT = AugmentConfig(0, 0, 0, affine_prob=0, hflip_prob=0, reverse_prob=0, mosaic_prob=0)


def _shapes_clip(num_frames: int) -> Clip:
    """A 48x64 clip of two moving shapes (object ids 1 and 2)."""
    frames, masks = moving_shapes_video(num_frames, 48, 64, seed=1)
    ids = np.stack([np.where(m[1], 1, 0) + np.where(m[2], 2, 0) for m in masks]).astype(np.uint8)
    return Clip(np.stack(frames), ids)


def test_augmentations():
    rng = np.random.default_rng(0)
    clip = _shapes_clip(5)
    same = augment_clip(clip, rng, NO_AUGMENT)
    assert np.array_equal(same.frames, clip.frames) and np.array_equal(same.masks, clip.masks)
    flipped = augment_clip(clip, rng, dataclasses.replace(NO_AUGMENT, hflip_prob=1.0, reverse_prob=1.0))
    assert np.array_equal(flipped.masks, clip.masks[::-1, :, ::-1])
    assert np.array_equal(flipped.frames, clip.frames[::-1, :, ::-1])
    mosaic = augment_clip(clip, rng, dataclasses.replace(NO_AUGMENT, mosaic_prob=1.0))
    assert not mosaic.masks[:, 24:, :].any() and not mosaic.masks[:, :, 32:].any()  # one copy keeps ids
    assert np.array_equal(mosaic.frames[:, :24, :32], mosaic.frames[:, 24:48, 32:64])  # 2x2 copies
    warped = augment_clip(clip, rng, dataclasses.replace(NO_AUGMENT, affine_prob=1.0, brightness=0.3))
    assert warped.frames.shape == clip.frames.shape and set(np.unique(warped.masks)) <= {0, 1, 2}
    assert not np.array_equal(warped.masks, clip.masks)


def _shifted(a: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``a`` [H, W, ...] moved by (dx, dy) pixels, zeros where nothing moved in."""
    out = np.zeros_like(a)
    h, w = a.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = a[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def test_camera_shake_moves_each_frame_and_its_mask_alike():
    clip = _shapes_clip(6)
    shaken = augment_clip(
        clip, np.random.default_rng(3), dataclasses.replace(NO_AUGMENT, shake_prob=1.0, max_shake=0.1)
    )
    offsets = []
    for i in range(6):  # find each frame's shift: up to 10% of 64 x 48 px, whole pixels
        found = [
            (dx, dy)
            for dx in range(-6, 7)
            for dy in range(-4, 5)
            if np.array_equal(shaken.masks[i], _shifted(clip.masks[i], dx, dy))
            and np.array_equal(shaken.frames[i], _shifted(clip.frames[i], dx, dy))
        ]
        assert len(found) == 1, f"frame {i}: shifts matching {found}"
        offsets.append(found[0])
    assert len(set(offsets)) > 3  # each frame its own shift
    assert any(dx != 0 for dx, _ in offsets) and any(dy != 0 for _, dy in offsets)


def test_cli_maps_flags_to_the_config():
    args = build_parser().parse_args(["--data", "/d", "--steps", "7", "--lr", "1e-4", "--amp", "false"])
    cfg = config_from_args(args)
    assert cfg.data == "/d" and cfg.steps == 7 and cfg.lr == 1e-4 and cfg.amp is False
    assert cfg.model == "sam2_ros_demo"
    assert cfg.synthetic == SyntheticConfig() and cfg.augment == AugmentConfig()


def test_memory_attention_dropout_is_a_run_setting(tmp_path):
    cfg = config_from_args(build_parser().parse_args(["--memory-attention-dropout", "0"]))
    assert model_config(cfg).memory_attention_dropout == 0.0
    assert model_config(TrainConfig()).memory_attention_dropout == 0.1  # the configuration's
    with pytest.raises(ValueError, match="memory_attention_dropout"):
        TrainConfig(memory_attention_dropout=1.0)
    # the setting reaches the model: with lr 0 (the weights stay) and no dropout, a repeated
    # step gives the same loss
    first, second = _loss_twice(_tiny_run(tmp_path / "off", steps=4, lr=0.0, memory_attention_dropout=0.0))
    assert first == second
    first, second = _loss_twice(_tiny_run(tmp_path / "on", steps=4, lr=0.0, memory_attention_dropout=0.5))
    assert first != second


def test_cli_sets_synthetic_and_augment_settings():
    argv = ["--synthetic-num-distractors", "2", "--synthetic-hide-frames", "4", "7", "--augment-mosaic-prob", "0.25"]
    cfg = config_from_args(build_parser().parse_args(argv))
    assert cfg.synthetic.num_distractors == 2 and cfg.synthetic.hide_frames == (4, 7)
    assert cfg.augment.mosaic_prob == 0.25
    assert cfg.synthetic.crossing_prob == SyntheticConfig().crossing_prob  # the rest keep their defaults


def test_cli_rejects_bad_settings_naming_them(capsys):
    with pytest.raises(SystemExit):
        main(["--synthetic-crossing-prob", "1.5", "--steps", "0"])
    assert "SyntheticConfig.crossing_prob" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--amp", "maybe"])
    assert "expected true or false" in capsys.readouterr().err


def test_training_after_tracking_in_the_same_process(tmp_path):
    """Tables cached while tracking (inference mode: RoPE, position encodings) must serve a
    later training step, where inference tensors cannot be saved for backward."""
    trainer = _tiny_run(tmp_path, steps=2)
    frames, _ = moving_shapes_video(3, 48, 64)
    tracker = SAM2Tracker(build_sam2("sam2_ros_demo", image_size=64))
    for t, frame in enumerate(frames):  # fills the caches at the training resolution
        tracker.track(frame)
        if t == 0:
            tracker.add_prompt(1, points=[[20, 20]], labels=[1])
    terms = trainer.train_step()
    assert np.isfinite(terms["total"])


def test_a_step_with_nothing_to_learn_is_skipped(tmp_path):
    """One-frame clips prompted by masks only: every output is the prompt itself (no
    gradient); the step is counted and the weights stay."""
    trainer = _tiny_run(
        tmp_path, steps=2, clip_length=1, mask_prompt_prob=1.0, click_prompt_prob=0.0, box_prompt_prob=0.0
    )
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    terms = trainer.train_step()
    assert trainer.step == 1 and np.isfinite(terms["total"])
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())

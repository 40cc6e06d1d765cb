"""The synthetic video generator (ground truth, hard cases, determinism) and the DAVIS-layout reader."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_model.data import (
    DatasetError,
    DavisDataset,
    SyntheticConfig,
    SyntheticVideo,
    davis_palette,
    generate_video,
    write_davis,
)

NUM_VIDEOS = 20


@pytest.fixture(scope="module")
def videos() -> list[SyntheticVideo]:
    return [generate_video(seed) for seed in range(NUM_VIDEOS)]


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _boxes_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    ax0, ay0, ax1, ay1 = _bbox(a)
    bx0, by0, bx1, by1 = _bbox(b)
    return ax0 <= bx1 and bx0 <= ax1 and ay0 <= by1 and by0 <= ay1


# --- generator -----------------------------------------------------------------------------------


def test_same_seed_same_video_other_seed_other_video():
    a, b, c = generate_video(5), generate_video(5), generate_video(6)
    assert a.object_ids == b.object_ids
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    for ma, mb in zip(a.masks, b.masks):
        assert ma.keys() == mb.keys() and all(np.array_equal(ma[i], mb[i]) for i in ma)
    assert a.visibility == b.visibility and a.in_frame == b.in_frame
    assert all(np.array_equal(x, y) for x, y in zip(a.distractor_masks, b.distractor_masks))
    assert np.abs(a.frames[0].astype(int) - c.frames[0].astype(int)).mean() > 10


def test_a_window_of_frames_equals_those_frames_of_the_whole_video(videos):
    """generate_video(frames=...) renders only a window; its frames and ground truth are the
    whole video's (earlier frames' noise is still drawn), with or without noise."""
    for cfg, whole in ((SyntheticConfig(), videos[1]), (SyntheticConfig(noise_std=0.0, num_frames=9), None)):
        whole = whole or generate_video(1, cfg)
        for window in (range(0, 1), range(5, 9), range(cfg.num_frames - 1, cfg.num_frames), range(cfg.num_frames)):
            part = generate_video(1, cfg, frames=window)
            assert part.first_frame == window.start and part.object_ids == whole.object_ids
            assert len(part.frames) == len(part.masks) == len(part.visibility) == len(window)
            for k, t in enumerate(window):
                assert np.array_equal(part.frames[k], whole.frames[t])
                assert all(np.array_equal(part.masks[k][i], whole.masks[t][i]) for i in whole.object_ids)
                assert part.visibility[k] == whole.visibility[t] and part.in_frame[k] == whole.in_frame[t]
                assert np.array_equal(part.distractor_masks[k], whole.distractor_masks[t])
                assert np.array_equal(part.label_map(k), whole.label_map(t))


@pytest.mark.parametrize("frames", [range(0, 0), range(20, 25), range(-1, 3), range(0, 8, 2), [0, 1]])
def test_a_bad_window_names_the_argument(frames):
    with pytest.raises(ValueError, match="frames: expected a range"):
        generate_video(1, frames=frames)


def test_shapes_and_dtypes(videos):
    for cfg in (SyntheticConfig(), SyntheticConfig(height=96, width=128, num_frames=7)):
        video = generate_video(1, cfg) if cfg != SyntheticConfig() else videos[1]
        n = cfg.num_frames
        assert len(video.frames) == len(video.masks) == len(video.visibility) == n
        assert len(video.in_frame) == len(video.distractor_masks) == n
        assert cfg.min_objects <= len(video.object_ids) <= cfg.max_objects
        assert video.object_ids == list(range(1, len(video.object_ids) + 1))
        for t in range(n):
            assert video.frames[t].shape == (cfg.height, cfg.width, 3) and video.frames[t].dtype == np.uint8
            assert sorted(video.masks[t]) == video.object_ids
            for m in video.masks[t].values():
                assert m.shape == (cfg.height, cfg.width) and m.dtype == bool
            assert video.distractor_masks[t].shape == (cfg.height, cfg.width)
            assert video.distractor_masks[t].dtype == bool
            assert all(isinstance(v, float) for v in video.visibility[t].values())


def test_every_object_clearly_visible_on_frame_0(videos):
    for video in videos:
        h, w = video.frames[0].shape[:2]
        for i in video.object_ids:
            assert video.masks[0][i].sum() >= 0.01 * h * w
            assert video.visibility[0][i] == 1.0  # fully in view and unoccluded: a click can start it


def test_masks_disjoint_and_visibility_consistent(videos):
    for video in videos:
        for t in range(len(video.frames)):
            stack = np.stack([video.masks[t][i] for i in video.object_ids])
            assert stack.sum(axis=0).max() <= 1  # visible masks: one owner per pixel
            assert not (stack.any(axis=0) & video.distractor_masks[t]).any()
            if video.occluder_mask is not None:
                assert not (stack.any(axis=0) & video.occluder_mask).any()
            for i in video.object_ids:
                vis, inside = video.visibility[t][i], video.in_frame[t][i]
                assert 0.0 <= vis <= inside + 1e-12 <= 1.0 + 1e-12
                assert (vis == 0.0) == (not video.masks[t][i].any())


def test_objects_leave_the_frame_and_come_back(videos):
    videos_with_exit = 0
    for video in videos:
        for i in video.object_ids:
            inside = np.array([video.in_frame[t][i] for t in range(len(video.frames))])
            out = np.flatnonzero(inside == 0.0)
            if len(out) and inside[out[-1] :].max() > 0 and inside[: out[0]].max() > 0:
                assert not any(video.masks[t][i].any() for t in out)
                videos_with_exit += 1
                break
    assert videos_with_exit >= 2


def test_objects_fully_hidden_in_view_then_visible_again(videos):
    hidden_videos = 0
    for video in videos:
        for i in video.object_ids:
            vis = np.array([video.visibility[t][i] for t in range(len(video.frames))])
            inside = np.array([video.in_frame[t][i] for t in range(len(video.frames))])
            hidden = np.flatnonzero((vis == 0.0) & (inside == 1.0))  # in the frame, yet not visible
            if len(hidden) >= 2 and vis[hidden[-1] :].max() > 0.5:
                hidden_videos += 1
                break
    assert hidden_videos >= 3
    assert any(v.occluder_mask is not None for v in videos)
    assert any(v.occluder_mask is None for v in videos)


def test_objects_cross_each_other(videos):
    crossing_videos = 0
    for video in videos:
        ids = video.object_ids
        if any(
            _boxes_overlap(m[a], m[b])
            for m in video.masks
            for k, a in enumerate(ids)
            for b in ids[k + 1 :]
            if m[a].any() and m[b].any()
        ):
            crossing_videos += 1
    assert crossing_videos >= 12  # 10 of 20 cross by chance alone; crossing_prob steers more


def test_distractors_look_like_an_object_but_are_background(videos):
    with_distractors = [v for v in videos if v.distractor_sources]
    assert 3 <= len(with_distractors) < len(videos)
    for video in with_distractors:
        assert all(s in video.object_ids for s in video.distractor_sources)
        t = int(np.argmax([m.sum() for m in video.distractor_masks]))
        assert video.distractor_masks[t].sum() >= 100
        if len(video.distractor_sources) != 1:
            continue
        look = video.frames[t][video.distractor_masks[t]].astype(float).mean(axis=0)
        means = {i: video.frames[0][video.masks[0][i]].astype(float).mean(axis=0) for i in video.object_ids}
        background = ~np.any([video.masks[0][i] for i in video.object_ids], axis=0) & ~video.distractor_masks[0]
        dist = {i: np.linalg.norm(look - m) for i, m in means.items()}
        source = video.distractor_sources[0]
        assert dist[source] < 25.0  # same colours and texture as its source ...
        assert dist[source] < np.linalg.norm(look - video.frames[0][background].mean(axis=0)) / 2
        assert all(dist[source] < d for i, d in dist.items() if i != source)  # ... and unlike the others


def test_crowded_configs_still_meet_the_frame_0_guarantee():
    crowded = SyntheticConfig(min_objects=4, max_objects=4, num_distractors=2, occlusion_prob=1.0, exit_prob=1.0)
    small = SyntheticConfig(height=64, width=80, num_frames=6)
    for cfg in (crowded, small):
        for seed in range(4):
            video = generate_video(seed, cfg)
            assert len(video.object_ids) >= cfg.min_objects
            for i in video.object_ids:
                assert video.visibility[0][i] == 1.0
                assert video.masks[0][i].sum() >= cfg.min_object_area * cfg.height * cfg.width * 0.9


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"min_objects": 3, "max_objects": 2}, "max_objects"),
        ({"exit_prob": 1.5}, "exit_prob"),
        ({"height": 8}, "height"),
        ({"min_object_area": 0.0}, "min_object_area"),
        ({"hide_frames": (4, 2)}, "hide_frames"),
    ],
)
def test_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=f"SyntheticConfig.{field}"):
        SyntheticConfig(**kwargs)


def test_generation_is_fast():
    generate_video(100)  # warm up
    start = time.perf_counter()
    generate_video(101)
    assert time.perf_counter() - start < 2.0  # ~0.1 s on a laptop core


# --- DAVIS layout --------------------------------------------------------------------------------


def test_write_davis_round_trip(tmp_path, videos):
    write_davis({"vid_b": videos[1], "vid_a": videos[2]}, tmp_path)
    png = tmp_path / "Annotations" / "vid_a" / "00000.png"
    assert (tmp_path / "JPEGImages" / "vid_a" / "00023.jpg").is_file()
    with Image.open(png) as image:
        assert image.mode == "P"
        assert np.array_equal(np.array(image.getpalette()[:9]), davis_palette()[:3].reshape(-1))
    dataset = DavisDataset(tmp_path)
    assert dataset.names == ["vid_a", "vid_b"] and len(dataset) == 2
    assert DavisDataset(tmp_path, videos=["vid_b"]).names == ["vid_b"]
    for name, video in (("vid_a", videos[2]), ("vid_b", videos[1])):
        sample = dataset.load(name)
        assert sample.name == name and sample.frame_names[:2] == ["00000", "00001"]
        assert len(sample.frames) == len(sample.masks) == len(video.frames)
        assert sample.object_ids == video.object_ids
        for t, (frame, mask) in enumerate(zip(sample.frames, sample.masks)):
            assert mask.dtype == np.uint8 and np.array_equal(mask, video.label_map(t))
            assert frame.dtype == np.uint8 and frame.shape == video.frames[t].shape
            assert np.abs(frame.astype(int) - video.frames[t].astype(int)).mean() < 3.0  # JPEG is lossy


def _frame(path: Path, size: tuple[int, int] = (16, 12), value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)
    return path


def _mask(path: Path, size: tuple[int, int] = (16, 12), mode: str = "P", oid: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = np.zeros((size[1], size[0]), dtype=np.uint8)
    ids[2:6, 3:9] = oid
    if mode == "P":
        image = Image.frombytes("P", size, ids.tobytes())
        image.putpalette(davis_palette().reshape(-1).tolist())
    elif mode == "L":
        image = Image.frombytes("L", size, ids.tobytes())
    else:
        image = Image.fromarray(np.stack([ids] * 3, axis=-1))
    image.save(path)
    return path


def _video(root: Path, name: str = "v", stems: tuple[str, ...] = ("00000", "00001"), ext: str = ".jpg") -> None:
    for stem in stems:
        _frame(root / "JPEGImages" / name / f"{stem}{ext}")
        _mask(root / "Annotations" / name / f"{stem}.png")


def test_reader_accepts_png_frames_grayscale_masks_and_sorts_by_name(tmp_path):
    for stem, value in (("00002", 30), ("00000", 10), ("00001", 20)):  # written out of order
        _frame(tmp_path / "JPEGImages" / "v" / f"{stem}.png", value=value)
        _mask(tmp_path / "Annotations" / "v" / f"{stem}.png", mode="L", oid=int(stem[-1]) + 3)
    _frame(tmp_path / "JPEGImages" / "w" / "a.jpeg")
    _mask(tmp_path / "Annotations" / "w" / "a.png", oid=7)
    (tmp_path / "JPEGImages" / "v" / "notes.txt").write_text("not a frame")
    dataset = DavisDataset(tmp_path)
    assert dataset.names == ["v", "w"]
    sample = dataset.load("v")
    assert sample.frame_names == ["00000", "00001", "00002"]
    assert [int(f[0, 0, 0]) for f in sample.frames] == [10, 20, 30]
    assert [int(m.max()) for m in sample.masks] == [3, 4, 5]
    assert sample.object_ids == [3, 4, 5]
    assert dataset.load("w").object_ids == [7]
    with pytest.raises(KeyError, match="unknown video 'x'"):
        dataset.load("x")


def test_error_missing_root_and_subfolders(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=re.escape(str(missing))):
        DavisDataset(missing)
    _frame(tmp_path / "JPEGImages" / "v" / "00000.jpg")
    with pytest.raises(DatasetError, match="missing folder " + re.escape(str(tmp_path / "Annotations"))):
        DavisDataset(tmp_path)
    other = tmp_path / "other"
    _mask(other / "Annotations" / "v" / "00000.png")
    with pytest.raises(DatasetError, match="missing folder " + re.escape(str(other / "JPEGImages"))):
        DavisDataset(other)


def test_error_video_without_frames(tmp_path):
    _video(tmp_path, "good")
    empty = tmp_path / "JPEGImages" / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no frames here")
    with pytest.raises(DatasetError, match="no frames .* " + re.escape(str(empty))):
        DavisDataset(tmp_path)
    with pytest.raises(DatasetError, match="missing video folder " + re.escape(str(tmp_path / "JPEGImages" / "gone"))):
        DavisDataset(tmp_path, videos=["good", "gone"])
    assert DavisDataset(tmp_path, videos=["good"]).names == ["good"]


def test_error_frame_without_mask(tmp_path):
    _video(tmp_path)
    frame = _frame(tmp_path / "JPEGImages" / "v" / "00002.jpg")
    mask = tmp_path / "Annotations" / "v" / "00002.png"
    dataset = DavisDataset(tmp_path)
    with pytest.raises(DatasetError, match=f"missing mask {re.escape(str(mask))} for frame {re.escape(str(frame))}"):
        dataset.load("v")


@pytest.mark.parametrize("which", ["frame", "mask"])
def test_error_corrupt_image(tmp_path, which):
    _video(tmp_path)
    if which == "frame":
        bad = tmp_path / "JPEGImages" / "v" / "00001.jpg"
        bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    else:
        bad = tmp_path / "Annotations" / "v" / "00001.png"
        bad.write_bytes(bad.read_bytes()[:40])  # truncated PNG
    with pytest.raises(DatasetError, match=f"cannot read {which} {re.escape(str(bad))}"):
        DavisDataset(tmp_path).load("v")


def test_error_mask_size_differs_from_frame(tmp_path):
    _video(tmp_path)
    mask = _mask(tmp_path / "Annotations" / "v" / "00001.png", size=(20, 12))
    with pytest.raises(DatasetError, match=f"mask {re.escape(str(mask))}: size 20x12 differs from frame .*00001"):
        DavisDataset(tmp_path).load("v")


def test_error_frames_of_different_sizes(tmp_path):
    _video(tmp_path)
    frame = _frame(tmp_path / "JPEGImages" / "v" / "00001.jpg", size=(24, 12))
    with pytest.raises(DatasetError, match=f"frame {re.escape(str(frame))}: frame size 24x12 differs"):
        DavisDataset(tmp_path).load("v")


def test_error_unsupported_mask_mode(tmp_path):
    _video(tmp_path)
    mask = _mask(tmp_path / "Annotations" / "v" / "00000.png", mode="RGB")
    with pytest.raises(DatasetError, match=f"mask {re.escape(str(mask))}: mode 'RGB' is not supported"):
        DavisDataset(tmp_path).load("v")


def test_error_two_frames_with_one_name(tmp_path):
    _video(tmp_path)
    _frame(tmp_path / "JPEGImages" / "v" / "00000.png")
    with pytest.raises(DatasetError, match="share the name '00000'"):
        DavisDataset(tmp_path)


def test_synthetic_clips_are_windows_of_longer_videos():
    """A clip is a random window of a full-length video (objects may leave or hide before
    it, or come back within it), with its masks as object ids."""
    from sam2_model.training.data import ClipSource, reappearance_windows

    config = SyntheticConfig(height=48, width=64, num_frames=12)
    source = ClipSource("synthetic", 4, config, augment=None)
    rng, replay = np.random.default_rng(5), np.random.default_rng(5)
    clip = source.sample(rng)
    video = generate_video(2 * int(replay.integers(2**30 - 1)), config)
    start = int(replay.integers(0, 12 - 4 + 1))
    assert clip.frames.shape == (4, 48, 64, 3)
    for k in range(4):
        assert np.array_equal(clip.frames[k], video.frames[start + k])
        for obj_id, mask in video.masks[start + k].items():
            assert np.array_equal(clip.masks[k] == obj_id, mask)
    # clips where an object vanishes and comes back are windows of the whole video too
    config = dataclasses.replace(config, occlusion_prob=1.0, exit_prob=1.0)
    source = ClipSource("synthetic", 6, config, augment=None, reappear_prob=1.0)
    rng, replay = np.random.default_rng(3), np.random.default_rng(3)
    clip = source.sample(rng)
    video = generate_video(2 * int(replay.integers(2**30 - 1)), config)
    replay.random()
    starts = reappearance_windows(video.visibility, 6) or list(range(12 - 6 + 1))
    start = starts[int(replay.integers(len(starts)))]
    assert len(reappearance_windows(video.visibility, 6)) < 12 - 6 + 1  # not every window is one
    for k in range(6):
        assert np.array_equal(clip.frames[k], video.frames[start + k])
        assert np.array_equal(clip.masks[k], video.label_map(start + k))


def test_reappearance_windows():
    from sam2_model.training.data import reappearance_windows

    vis = [{1: 1.0, 2: 1.0}, {1: 0.5, 2: 1.0}, {1: 0.0, 2: 1.0}, {1: 0.0, 2: 1.0}, {1: 0.3, 2: 1.0}, {1: 1.0, 2: 1.0}]
    # object 1 is gone on frames 2-3 and back on 4: windows of 5 starting at 0 or 1 hold it
    assert reappearance_windows(vis, 5) == [0, 1]
    assert reappearance_windows(vis, 3) == []  # too short to see it come back
    # a video whose occluder hides an object for a stretch: some window shows it come back
    video = generate_video(3, SyntheticConfig(height=48, width=64, num_frames=24, occlusion_prob=1.0))
    hidden = [t for t, v in enumerate(video.visibility) if min(v.values()) == 0.0]
    assert hidden and reappearance_windows(video.visibility, 12)

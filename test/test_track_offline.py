"""sam2-track, the offline tracker: its masks equal SAM2Tracker driven by hand, its J&F equals
`python -m sam2_model.eval`'s and vos-benchmark's, bags in and out, and its errors."""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from sam2_model import SAM2Tracker, build_sam2
from sam2_model.data import DavisDataset, SyntheticConfig, davis_palette, generate_video, write_davis
from sam2_model.eval.metrics import f_measure, jaccard
from sam2_model.eval.synthetic import click_inside, evaluate_video
from sam2_model.track import StreamingEvaluator, TrackConfig, TrackError, run_tracking
from sam2_model.track.config import default_checkpoint
from sam2_model.track.evaluate import frame_scores
from sam2_model.track.sources import Selection, SourceInfo

ROOT = Path(__file__).resolve().parents[1]
SMALL = SyntheticConfig(
    height=96, width=128, num_frames=8, num_distractors=0, min_object_area=0.04, max_object_area=0.08
)


@pytest.fixture(scope="module")
def model():
    """The demo model at a small input size (fast on a CPU)."""
    return build_sam2("sam2_ros_demo", default_checkpoint(), image_size=128)


def _config(tmp_path: Path, source: Path, **kw) -> TrackConfig:
    kw.setdefault("out", str(tmp_path / "out"))
    return TrackConfig(input=str(source), progress=False, **kw)


def _write_mp4(frames: list[np.ndarray], path: Path) -> list[np.ndarray]:
    """Write an mp4 and return its frames as OpenCV decodes them (the codec is lossy)."""
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()
    cap, decoded = cv2.VideoCapture(str(path)), []
    while (got := cap.read())[0]:
        decoded.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    cap.release()
    assert len(decoded) == len(frames)
    return decoded


def _write_yaml(path: Path, prompts: list[dict]) -> Path:
    path.write_text(yaml.safe_dump(prompts, default_flow_style=None))
    return path


def _label(masks: dict[int, np.ndarray], hw: tuple[int, int]) -> np.ndarray:
    label = np.zeros(hw, np.uint8)
    for i in sorted(masks):
        label[masks[i]] = i
    return label


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "P"
        return np.asarray(image)


def _save_palette_png(ids: np.ndarray, path: Path) -> None:
    png = Image.fromarray(ids.astype(np.uint8), mode="P")
    png.putpalette(davis_palette().reshape(-1).tolist())
    png.save(path)


# --- step 1: a video, a prompts file, the outputs -----------------------------------------------


def test_video_masks_equal_the_tracker_driven_by_hand(tmp_path, model):
    """Every prompt kind (clicks, a box, a mask PNG, a negative click refining an object later,
    two prompts on one object and frame) with --start 1 --stride 2: the PNGs are the hand-driven
    tracker's label images, frame by frame, and tracks.csv holds its boxes and areas."""
    video = generate_video(3, SMALL)
    frames = _write_mp4(video.frames, tmp_path / "clip.mp4")
    mask3 = video.masks[3][2]
    Image.fromarray(np.where(mask3, 255, 0).astype(np.uint8)).save(tmp_path / "m.png")
    c1 = list(click_inside(video.masks[1][1]))
    ys, xs = np.nonzero(video.masks[1][2])
    box2 = [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]
    prompts = [  # file order within a frame is kept; frames in any order
        {"frame": 3, "id": 1, "points": [[1.0, 1.0]], "labels": [0]},
        {"frame": 1, "id": 1, "label": "first", "points": [c1]},
        {"frame": 1, "id": 2, "label": "second", "box": box2},
        {"frame": 1, "id": 2, "points": [c1], "labels": [0]},
        {"frame": 3, "id": 3, "mask": "m.png"},
    ]
    cfg = _config(
        tmp_path, tmp_path / "clip.mp4", prompts=str(_write_yaml(tmp_path / "p.yaml", prompts)), start=1, stride=2
    )
    summary = run_tracking(cfg, model=model)

    tracker = SAM2Tracker(model)
    expected = {}
    by_hand = {
        1: [dict(obj_id=1, points=[c1], labels=[1]), dict(obj_id=2, box=box2), dict(obj_id=2, points=[c1], labels=[0])],
        3: [dict(obj_id=1, points=[[1.0, 1.0]], labels=[0]), dict(obj_id=3, mask=mask3)],
    }
    for t in range(1, len(frames), 2):
        objects = dict(tracker.track(frames[t]).objects)
        for p in by_hand.get(t, []):
            objects[p["obj_id"]] = tracker.add_prompt(**p)
        expected[t] = objects
    assert summary.frames == 4 and sorted(summary.objects) == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "out" / "masks").iterdir()) == [
        "00001.png",
        "00003.png",
        "00005.png",
        "00007.png",
    ]
    for t, objects in expected.items():
        want = _label({i: o.mask for i, o in objects.items()}, frames[0].shape[:2])
        assert np.array_equal(_png(tmp_path / "out" / "masks" / f"{t:05d}.png"), want), f"frame {t}"
        assert len(np.unique(want)) >= 3  # two objects or more: not a comparison of empty masks
    with open(tmp_path / "out" / "tracks.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 + 3 + 3 + 3  # objects per processed frame
    for r in rows:
        o = expected[int(r["frame"])][int(r["id"])]
        assert int(r["area"]) == o.area and r["name"] == f"{int(r['frame']):05d}"
        box = tuple(str(v) for v in o.bbox) if o.bbox is not None else ("", "", "", "")
        assert (r["x0"], r["y0"], r["x1"], r["y1"]) == box
        assert r["label"] == {1: "first", 2: "second", 3: ""}[int(r["id"])]
        assert float(r["stamp"]) == pytest.approx(int(r["frame"]) / 10.0)  # 10 fps
        assert int(r["occluded"]) == int(o.occluded)
    cap = cv2.VideoCapture(str(tmp_path / "out" / "overlay.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    cap.release()


def test_first_masks_and_masks_dir_prompt_each_object_where_it_first_appears(tmp_path, model):
    """DAVIS protocol inputs on an image folder: --masks-dir prompts object 2 on the first
    annotated frame that has it (frame 2), --first-masks prompts every object on frame 0."""
    video = generate_video(5, SMALL)
    folder, ann = tmp_path / "frames", tmp_path / "ann"
    folder.mkdir()
    ann.mkdir()
    for t, f in enumerate(video.frames[:5]):
        Image.fromarray(f).save(folder / f"img{t:03d}.png")
    first = video.label_map(0)
    _save_palette_png(np.where(first == 1, 1, 0), ann / "img000.png")  # object 2 not annotated yet
    _save_palette_png(video.label_map(2), ann / "img002.png")
    _save_palette_png(video.label_map(3), ann / "img003.png")  # objects already prompted: ignored
    run_tracking(_config(tmp_path, folder, masks_dir=str(ann)), model=model)
    tracker, written = SAM2Tracker(model), tmp_path / "out" / "masks"
    for t in range(5):
        objects = dict(tracker.track(video.frames[t]).objects)
        if t == 0:
            objects[1] = tracker.add_prompt(1, mask=first == 1)
        if t == 2:
            objects[2] = tracker.add_prompt(2, mask=video.label_map(2) == 2)
        assert np.array_equal(
            _png(written / f"img{t:03d}.png"), _label({i: o.mask for i, o in objects.items()}, first.shape)
        )
    _save_palette_png(first, tmp_path / "first.png")
    summary = run_tracking(
        _config(tmp_path, folder, first_masks=str(tmp_path / "first.png"), overwrite=True), model=model
    )
    assert sorted(summary.objects) == video.object_ids
    assert all(o.first_frame == 0 and o.frames == 5 for o in summary.objects.values())


# --- step 1: errors before any work -------------------------------------------------------------


@pytest.fixture
def folder_input(tmp_path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, f in enumerate(generate_video(7, SMALL).frames[:4]):
        Image.fromarray(f).save(folder / f"{t:05d}.jpg")
    return folder


def _error(tmp_path: Path, source: Path, **kw) -> str:
    """The TrackError a run raises; nothing may have been written."""
    cfg = _config(tmp_path, source, **kw)
    with pytest.raises(TrackError) as info:
        run_tracking(cfg)  # no model: errors come before the model is even built
    assert not Path(cfg.out).exists(), "the run wrote outputs before failing"
    return str(info.value)


@pytest.mark.parametrize(
    ("prompts", "expected"),
    [
        ([{"frame": 9, "id": 1, "points": [[5, 5]]}], "frame 9 is beyond the input (4 frames: 0..3)"),
        ([{"frame": 1, "id": 1, "points": [[5, 5]]}], "frame 1 (00001) is not processed with --start 0 --stride 2"),
        ([{"frame": 0, "id": 1, "points": [[500, 5]]}], "points: point 0 (500, 5) is outside the 128x96 image"),
        (
            [{"frame": 0, "id": 1, "points": [[5, 5]]}, {"frame": 2, "id": 2, "points": [[5, 5]], "labels": [0]}],
            "object 2 is unknown on frame 2: negative clicks alone refine an object",
        ),
        ([{"frame": 0, "id": 300, "points": [[5, 5]]}], "line 2, prompt 1, field 'id': expected an object id 1..255"),
        ([{"frame": 0, "id": 1, "point": [[5, 5]]}], "line 3: prompt 1: unknown field 'point'"),
        ([{"frame": 0, "id": 1}], "field 'points': give at least one of points, box or mask"),
        ([{"frame": 0, "id": 1, "mask": "small.png"}], "is 20x10, the frames of"),
        ([{"stamp": 1.5, "id": 1, "points": [[5, 5]]}], "only bags have stamps"),
    ],
)
def test_bad_prompts_are_named_before_any_work(tmp_path, folder_input, prompts, expected):
    Image.fromarray(np.full((10, 20), 255, np.uint8)).save(tmp_path / "small.png")
    path = _write_yaml(tmp_path / "p.yaml", prompts)
    message = _error(tmp_path, folder_input, prompts=str(path), stride=2)
    assert expected in message and "p.yaml" in message


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("p.yaml", "- frame: 0\n  id: 1\n  points: [[1, 2]\n", "p.yaml line 4 column 1"),
        ("p.json", '[{"frame": 0, "id": 1,\n "points": [[1, 2]],}]', "p.json line 2 column 21"),
        ("p.json", '[{"frame": 0, "id": 1,\n "points": "here"}]', "line 2, prompt 1, field 'points'"),
        ("p.yaml", "a: 1\n", "expected a list or `prompts:`"),
    ],
)
def test_prompts_files_that_do_not_parse_name_line_and_field(tmp_path, folder_input, name, text, expected):
    (tmp_path / name).write_text(text)
    assert expected in _error(tmp_path, folder_input, prompts=str(tmp_path / name))


def test_bad_inputs_are_named_before_any_work(tmp_path, folder_input):
    (tmp_path / "p.yaml").write_text("- {frame: 0, id: 1, points: [[5, 5]]}\n")
    p = str(tmp_path / "p.yaml")
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    assert "cannot read video file" in _error(tmp_path, tmp_path / "broken.mp4", prompts=p)
    assert "does not exist" in _error(tmp_path, tmp_path / "missing.mp4", prompts=p)
    assert "nothing to track" in _error(tmp_path, folder_input)
    assert "--start is 7" in _error(tmp_path, folder_input, prompts=p, start=7)
    _save_palette_png(np.ones((10, 20)), tmp_path / "first.png")
    assert "first.png is 20x10, the frames of" in _error(
        tmp_path, folder_input, first_masks=str(tmp_path / "first.png")
    )
    assert "no ground-truth PNG" in _error(tmp_path, folder_input, prompts=p, eval_dir=str(tmp_path))
    assert "only bag inputs" in _error(tmp_path, folder_input, prompts=p, out_bag=str(tmp_path / "b"))
    assert "needs --checkpoint" in _error(tmp_path, folder_input, prompts=p, model="sam2.1_hiera_tiny")


def test_an_earlier_run_is_not_mixed_with_a_new_one(tmp_path, folder_input):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "tracks.csv").write_text("old")
    cfg = _config(tmp_path, folder_input, first_masks=None, prompts=None)
    with pytest.raises(TrackError, match="nothing to track"):
        run_tracking(cfg)
    (tmp_path / "p.yaml").write_text("- {frame: 0, id: 1, points: [[5, 5]]}\n")
    with pytest.raises(TrackError, match="holds an earlier run's results"):
        run_tracking(dataclasses.replace(cfg, prompts=str(tmp_path / "p.yaml")))


def test_the_command_and_the_module_report_errors_and_a_summary(tmp_path, folder_input):
    """`python -m sam2_model.track`: an error is one line naming the problem (exit 2); a run
    with the default (demo) model prints the summary; setup.py installs `sam2-track`."""
    cmd = [sys.executable, "-m", "sam2_model.track", str(folder_input), "--out", str(tmp_path / "o")]
    bad = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "sam2-track: error: prompts: nothing to track" in bad.stderr
    (tmp_path / "p.yaml").write_text("- {frame: 0, id: 4, label: cup, points: [[60, 50]]}\n")
    ok = subprocess.run(
        [*cmd, "--prompts", str(tmp_path / "p.yaml"), "--image-size", "128", "--device", "cpu", "--no-video"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "sam2-track: 4 frames of" in ok.stdout and "object 4 (cup): from frame 0" in ok.stdout
    assert "frame/s" in ok.stderr  # the progress bar
    assert not (tmp_path / "o" / "overlay.mp4").exists() and len(list((tmp_path / "o" / "masks").iterdir())) == 4
    assert "sam2-track = sam2_model.track.cli:main" in (ROOT / "setup.py").read_text()


# --- step 2: --eval -----------------------------------------------------------------------------


def _random_label(rng: np.random.Generator, hw: tuple[int, int], ids: list[int]) -> np.ndarray:
    yy, xx = np.mgrid[: hw[0], : hw[1]]
    label = np.zeros(hw, np.uint8)
    for i in ids:
        cy, cx, r = rng.uniform(0, hw[0]), rng.uniform(0, hw[1]), rng.uniform(4, 20)
        label[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = i
    return label


def test_frame_scores_equal_the_full_frame_metrics():
    """J and F on the window around the masks equal jaccard / f_measure on the whole frame
    (masks touching the frame's border, empty masks, far-apart masks)."""
    rng = np.random.default_rng(0)
    for _ in range(40):
        a, b = _random_label(rng, (60, 90), [1]) == 1, _random_label(rng, (60, 90), [1]) == 1
        for p, g in ((a, b), (a, np.zeros_like(a)), (np.zeros_like(a), np.zeros_like(a))):
            j, f = frame_scores(p, g)
            assert j == pytest.approx(jaccard(p, g), abs=1e-12) and f == pytest.approx(f_measure(p, g), abs=1e-12)


def test_streaming_eval_equals_vos_benchmark_on_the_written_pngs(tmp_path):
    """The official protocol (first and last frames left out) against vos-benchmark's
    VideoEvaluator on PNG folders; objects all appear on the first frame."""
    from vos_benchmark.benchmark import VideoEvaluator

    rng = np.random.default_rng(1)
    hw, n = (48, 64), 7
    gt_dir, pred_dir = tmp_path / "gt" / "v", tmp_path / "pred" / "v"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir(parents=True)
    info = SourceInfo("folder", tmp_path, n, *hw, None, tuple(f"{t:05d}" for t in range(n)))
    preds = []
    for t in range(n):
        gt = _random_label(rng, hw, [1, 2, 3])
        gt[0, 0], gt[0, 1], gt[0, 2] = 1, 2, 3  # every object on every frame
        preds.append(_random_label(rng, hw, [1, 3]))
        _save_palette_png(gt, gt_dir / f"{t:05d}.png")
        _save_palette_png(preds[-1], pred_dir / f"{t:05d}.png")
    ev = StreamingEvaluator(gt_dir, info, Selection(), skip_last=True)
    for t, pred in enumerate(preds):
        ev.add(f"{t:05d}", t, pred)
    result = ev.finish()
    _, ious, fs = VideoEvaluator(str(tmp_path / "gt"), str(tmp_path / "pred"), skip_first_and_last=True)("v")
    assert sorted(result.objects) == sorted(ious) == [1, 2, 3]
    for i, s in result.objects.items():
        assert s.frames == n - 2
        assert s.j == pytest.approx(ious[i] / 100, abs=1e-9) and s.f == pytest.approx(fs[i] / 100, abs=1e-9)


def test_eval_equals_the_project_evaluation_on_a_davis_layout_set(tmp_path):
    """Synthetic videos written in the DAVIS layout, one click per object on frame 0 (as
    `python -m sam2_model.eval` does): --eval's J, F per object equal evaluate_video's on the
    same (JPEG-decoded) frames. (The project's evaluation scores each object's own mask, --eval
    the written label image, as DAVIS does; on these videos the tracked masks never overlap.)"""
    model = build_sam2("sam2_ros_demo", default_checkpoint())  # its own size: good masks
    config = SyntheticConfig(num_frames=6, crossing_prob=0.0, num_distractors=0)
    videos = {f"v{s}": generate_video(s, config) for s in (1, 5)}
    write_davis(videos, tmp_path / "davis")
    dataset = DavisDataset(tmp_path / "davis")
    for name, video in videos.items():
        clicks = [{"frame": 0, "id": i, "points": [list(click_inside(video.masks[0][i]))]} for i in video.object_ids]
        cfg = _config(
            tmp_path,
            tmp_path / "davis" / "JPEGImages" / name,
            out=str(tmp_path / "out" / name),
            prompts=str(_write_yaml(tmp_path / f"{name}.yaml", clicks)),
            eval_dir=str(tmp_path / "davis" / "Annotations" / name),
            video=False,
        )
        got = run_tracking(cfg, model=model).eval
        want = evaluate_video(model, dataclasses.replace(video, frames=dataset.load(name).frames))
        assert sorted(got.objects) == sorted(want.scores) == video.object_ids
        for i, s in want.scores.items():
            assert got.objects[i].j == pytest.approx(s.j, abs=1e-9), (name, i)
            assert got.objects[i].f == pytest.approx(s.f, abs=1e-9), (name, i)
            assert got.objects[i].frames == s.frames == 5
        assert 0.3 < got.jf <= 1.0  # a real score, not an empty comparison
        with open(tmp_path / "out" / name / "eval.csv") as f:
            rows = {r["object"]: r for r in csv.DictReader(f)}
        assert float(rows["mean"]["J&F"]) == pytest.approx(np.mean([s.jf for s in want.scores.values()]), abs=1e-6)
        assert float(rows["1"]["J"]) == pytest.approx(want.scores[1].j, abs=1e-6)


# --- step 3: bags in and out --------------------------------------------------------------------

STAMP0 = 1_700_000_000_000_000_000  # header stamp of a bag's first frame (ns); frames 0.1 s apart


def _write_bag(path: Path, frames: list[np.ndarray], storage: str, compressed: bool) -> None:
    """A bag with the frames on /cam/image (bgr8 Image, or PNG CompressedImage) and a
    CameraInfo topic, written with rosbags."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    T = ts.types
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        kind = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        image_conn = w.add_connection("/cam/image", kind, typestore=ts)
        info_conn = w.add_connection("/cam/info", "sensor_msgs/msg/CameraInfo", typestore=ts)
        for t, rgb in enumerate(frames):
            ns = STAMP0 + t * 100_000_000
            header = T["std_msgs/msg/Header"](T["builtin_interfaces/msg/Time"](ns // 10**9, ns % 10**9), "cam")
            bgr = np.ascontiguousarray(rgb[:, :, ::-1])
            if compressed:
                data = np.frombuffer(cv2.imencode(".png", bgr)[1].tobytes(), np.uint8)
                msg = T[kind](header, "png", data)
            else:
                h, wd = bgr.shape[:2]
                msg = T[kind](header, h, wd, "bgr8", 0, wd * 3, bgr.reshape(-1))
            w.write(image_conn, ns + 5_000_000, ts.serialize_cdr(msg, kind))  # recorded 5 ms later
            info = T["sensor_msgs/msg/CameraInfo"](
                header, 96, 128, "plumb_bob", np.zeros(5), np.zeros(9), np.zeros(9), np.zeros(12), 0, 0,
                T["sensor_msgs/msg/RegionOfInterest"](0, 0, 0, 0, False),
            )  # fmt: skip
            w.write(info_conn, ns + 5_000_000, ts.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))


def _read_bag(path: Path) -> dict[str, list]:
    """topic -> [(log time, msgtype, raw, message)], with the package's messages from msg/."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    for msg in sorted((ROOT / "msg").glob("*.msg")):
        ts.register(get_types_from_msg(msg.read_text(), f"sam2_ros/msg/{msg.stem}"))
    out: dict[str, list] = {}
    with Reader(path) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, conn, raw, ts.deserialize_cdr(raw, conn.msgtype)))
    return out


@pytest.mark.parametrize(
    ("storage", "compressed"), [("mcap", False), ("sqlite3", True), ("mcap", True), ("sqlite3", False)]
)
def test_a_bag_runs_end_to_end_and_the_output_bag_equals_the_pngs(tmp_path, model, storage, compressed):
    """A bag written with rosbags (raw or PNG-compressed images, MCAP or sqlite3), prompts by
    frame and by header stamp: the PNGs equal the tracker driven by hand, tracks.csv and the
    PNGs agree, and --out-bag holds the input topic verbatim, /sam2_tracker/mask equal to the
    PNGs and /sam2_tracker/objects with each object's box, area and mask."""
    video = generate_video(11, SMALL)
    frames = video.frames[:5]
    _write_bag(tmp_path / "in", frames, storage, compressed)
    c1, c2 = list(click_inside(video.masks[0][1])), list(click_inside(video.masks[2][2]))
    prompts = [
        {"frame": 0, "id": 1, "label": "one", "points": [c1]},
        {"stamp": "1700000000.2", "id": 2, "points": [c2]},  # frame 2's header stamp
    ]
    cfg = _config(
        tmp_path, tmp_path / "in", topic="/cam/image", prompts=str(_write_yaml(tmp_path / "p.yaml", prompts)),
        out_bag=str(tmp_path / "out_bag"), video=False,
    )  # fmt: skip
    run_tracking(cfg, model=model)
    tracker, labels = SAM2Tracker(model), []
    for t, frame in enumerate(frames):
        objects = dict(tracker.track(frame).objects)
        if t in (0, 2):
            objects[t // 2 + 1] = tracker.add_prompt(t // 2 + 1, points=[c1 if t == 0 else c2], labels=[1])
        labels.append(_label({i: o.mask for i, o in objects.items()}, frame.shape[:2]))
        assert np.array_equal(_png(tmp_path / "out" / "masks" / f"{t:05d}.png"), labels[t]), t
    with open(tmp_path / "out" / "tracks.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["stamp"] for r in rows if r["id"] == "1"] == [f"1700000000.{t}00000000" for t in range(5)]
    for r in rows:  # the CSV's boxes and areas are the PNGs' (objects never overlap here)
        ids = labels[int(r["frame"])] == int(r["id"])
        assert int(r["area"]) == ids.sum()
        if ids.any():
            ys, xs = np.nonzero(ids)
            assert [int(r[k]) for k in ("x0", "y0", "x1", "y1")] == [xs.min(), ys.min(), xs.max(), ys.max()]

    bag = _read_bag(tmp_path / "out_bag")
    assert set(bag) == {"/cam/image", "/sam2_tracker/objects", "/sam2_tracker/mask"}
    source = _read_bag(tmp_path / "in")["/cam/image"]
    assert [(t, raw) for t, _, raw, _ in bag["/cam/image"]] == [(t, raw) for t, _, raw, _ in source]
    for t, (log_time, _, _, mask) in enumerate(bag["/sam2_tracker/mask"]):
        assert mask.encoding == "mono8" and log_time == STAMP0 + t * 100_000_000 + 5_000_000
        assert np.array_equal(mask.data.reshape(mask.height, mask.width), labels[t])
    for t, (_, _conn, _, array) in enumerate(bag["/sam2_tracker/objects"]):
        assert array.frame_index == t and array.header.stamp.sec == 1_700_000_000 and array.header.frame_id == "cam"
        assert [o.id for o in array.objects] == ([1] if t < 2 else [1, 2])
        for o in array.objects:
            ids = labels[t] == o.id
            assert o.area == ids.sum() and o.label == ("one" if o.id == 1 else "")
            x, y, w, h = o.bbox.x_offset, o.bbox.y_offset, o.bbox.width, o.bbox.height
            crop = o.mask.data.reshape(o.mask.height, o.mask.width) if o.area else np.zeros((0, 0), np.uint8)
            whole = np.zeros_like(ids)
            whole[y : y + h, x : x + w] = crop == 255
            assert np.array_equal(whole, ids)
    built = ROOT / "install" / "sam2_ros" / "share" / "sam2_ros" / "msg" / "TrackedObjectArray.json"
    if built.is_file():  # the type hash ROS computed for our message: the bag replays with ros2 bag play
        assert bag["/sam2_tracker/objects"][0][1].digest in built.read_text()


def test_bad_bags_are_named_before_any_work(tmp_path):
    _write_bag(tmp_path / "in.mcap", generate_video(1, SMALL).frames[:2], "mcap", False)
    bag = next((tmp_path / "in.mcap").glob("*.mcap"))  # a single .mcap file is a bag too
    (tmp_path / "p.yaml").write_text("- {stamp: 1600000000.0, id: 1, points: [[5, 5]]}\n")
    p = str(tmp_path / "p.yaml")
    msg = _error(tmp_path, bag, topic="/camera/missing", prompts=p)
    assert "has no topic '/camera/missing'; its image topics: /cam/image (sensor_msgs/msg/Image)" in msg
    msg = _error(tmp_path, bag, topic="/cam/info", prompts=p)
    assert "/cam/info is a sensor_msgs/msg/CameraInfo topic, expected sensor_msgs/msg/Image or" in msg
    msg = _error(tmp_path, bag, prompts=p)  # the only image topic is taken; the stamp is far off
    assert "stamp 1600000000.000000000 matches no frame; the nearest, frame 0" in msg


# --- step 4: bounded queues, the overlay -------------------------------------------------------


def test_decoding_runs_ahead_by_the_queue_size_at_most():
    """Memory stays bounded: the decoder thread is never more than the queue's size (plus the
    item it holds) ahead of the tracker, on an input of any length."""
    import time

    from sam2_model.track.threads import BackgroundConsumer, Prefetcher

    produced, ahead = [0], []

    def source():
        for i in range(200):
            produced[0] += 1
            yield i

    prefetch = Prefetcher(source(), maxsize=4)
    for consumed, item in enumerate(prefetch, start=1):
        assert item == consumed - 1
        ahead.append(produced[0] - consumed)
        if consumed % 50 == 0:
            time.sleep(0.05)  # a slow frame: the decoder fills the queue and waits
    prefetch.close()
    assert max(ahead) <= 4 + 1 and max(ahead) >= 3

    written, backlog = [], []

    def slow_write(i):
        time.sleep(0.001)
        written.append(i)

    writer = BackgroundConsumer(slow_write, lambda: written.append("closed"), maxsize=3)
    for i in range(60):
        writer.put(i)
        backlog.append(i + 1 - len(written))
    writer.close()
    assert written == [*range(60), "closed"] and max(backlog) <= 3 + 2


def test_a_failing_thread_stops_the_run_with_its_error():
    from sam2_model.track.threads import BackgroundConsumer, Prefetcher

    def source():
        yield 1
        raise TrackError("topic: cannot decode a compressed image")

    with pytest.raises(TrackError, match="cannot decode"):
        list(Prefetcher(source(), maxsize=2))

    def write(i):
        raise OSError("disk full")

    writer = BackgroundConsumer(write, lambda: None, maxsize=2)
    writer.put(1)
    with pytest.raises(OSError, match="disk full"):
        for i in range(10):
            writer.put(i)
        writer.close()


def test_overlay_tints_objects_and_leaves_the_rest():
    from sam2_model.colours import ALPHA, object_colour
    from sam2_model.track.overlay import render_overlay
    from sam2_model.tracker.results import ObjectResult

    image = np.full((40, 60, 3), 100, np.uint8)
    label = np.zeros((40, 60), np.uint8)
    label[20:30, 30:50] = 2
    mask = label == 2
    objects = {
        2: ObjectResult(2, 0, mask, None, 3.0, 0.9, False, (30, 20, 49, 29), int(mask.sum())),
        5: ObjectResult(5, 0, np.zeros_like(mask), None, -3.0, 0.1, True, None, 0),
    }
    out = render_overlay(image, label, objects, {5: "gone"})
    inside = np.round((1 - ALPHA) * 100 + ALPHA * np.array(object_colour(2))).astype(int)
    assert np.abs(out[25, 40].astype(int) - inside).max() <= 1  # tinted in its colour
    assert (out[35:, :25] == 100).all()  # far from the box and the text: unchanged
    assert (out[20, 30] == object_colour(2)).all()  # the box outline
    assert (out[:16, :60] != 100).any()  # "5 gone: occluded" written top left
    assert (image == 100).all()  # the input is not modified


def test_raw_image_encodings_decode_to_rgb():
    """Each supported encoding, rows padded (step > width * channels), to the same RGB."""
    from types import SimpleNamespace

    from sam2_model.track.bag import decode_raw

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    gray = rgb[:, :, 1]

    def msg(encoding, pixels, pad=3, big=0):
        rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
        data = np.concatenate([rows, np.zeros((rows.shape[0], pad), np.uint8)], axis=1)
        return SimpleNamespace(
            encoding=encoding, height=5, width=7, step=data.shape[1], data=data.reshape(-1), is_bigendian=big
        )

    alpha = np.full((5, 7, 1), 9, np.uint8)
    assert np.array_equal(decode_raw(msg("rgb8", rgb)), rgb)
    assert np.array_equal(decode_raw(msg("bgr8", rgb[:, :, ::-1].copy())), rgb)
    assert np.array_equal(decode_raw(msg("rgba8", np.concatenate([rgb, alpha], 2))), rgb)
    assert np.array_equal(decode_raw(msg("bgra8", np.concatenate([rgb[:, :, ::-1], alpha], 2))), rgb)
    assert np.array_equal(decode_raw(msg("mono8", gray)), np.repeat(gray[:, :, None], 3, 2))
    # mono16 scaled as cv_bridge and the node scale it: round(v * 255 / 65535)
    values = np.array([0, 128, 129, 257, 32768, 65534, 65535], np.uint16)  # -> 0, 0, 1, 1, 128, 255, 255
    mono16 = np.tile(values, (5, 1)).astype(">u2")  # big-endian bytes
    grey = np.tile(np.array([0, 0, 1, 1, 128, 255, 255], np.uint8), (5, 1))
    assert np.array_equal(decode_raw(msg("mono16", mono16, pad=2, big=1)), np.repeat(grey[:, :, None], 3, 2))
    with pytest.raises(TrackError, match="encoding '32FC1' is not supported"):
        decode_raw(msg("32FC1", gray))
    with pytest.raises(TrackError, match="malformed rgb8 image"):
        decode_raw(SimpleNamespace(encoding="rgb8", height=5, width=7, step=21, data=np.zeros(10, np.uint8)))

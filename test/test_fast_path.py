"""The GPU fast path's pieces, on the CPU: sync-free hole filling, PIL-equal resizing with
tensor ops, results computed where the model runs, precisions, and the compiled tracker
(padding to buckets, no compilation after warm-up, same results as eager)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import moving_shapes_video, unit_model
from test_tracker import _components_reference

from sam2_model import SAM2Tracker
from sam2_model.tracker.compiled import bucket_size, steady_state_layout
from sam2_model.tracker.options import TrackerOptions
from sam2_model.tracker.postprocess import connected_components, small_components
from sam2_model.tracker.results import mask_bbox
from sam2_model.tracker.state import FrameOutput
from sam2_model.tracker.steps import frame_results
from sam2_model.transforms import resize_image, resize_image_tensor

NUM_FRAMES = 20  # frame 16 is the first with a full pointer window (steady-state layout)


@pytest.fixture(scope="module")
def model():
    return unit_model()


@pytest.fixture(scope="module")
def video():
    return moving_shapes_video(NUM_FRAMES, 120, 160)


def run_session(model, video, frames: int = NUM_FRAMES, warmup: bool = False, objects: int = 3, **options):
    """Up to three objects (click, box, mask) on frame 0, then tracking; every FrameResult."""
    images, masks = video
    tracker = SAM2Tracker(model, **{"max_objects": 4, **options})
    if warmup:
        tracker.warmup()
    prompts = [
        {"points": [[30, 40]], "labels": [1]},
        {"box": [96, 70, 144, 100]},
        {"mask": masks[0][3]},
    ]
    results = []
    for t in range(frames):
        results.append(tracker.track(images[t]))
        if t == 0:
            for k in range(objects):
                tracker.add_prompt(k + 1, **prompts[k])
    return tracker, results


# ---------------------------------------------------------------- hole filling
@pytest.mark.parametrize("density", [0.2, 0.45, 0.6, 0.8])
@pytest.mark.parametrize("max_area", [1, 2, 5, 8, 20])
def test_small_components_match_flood_fill(density, max_area):
    gen = torch.Generator().manual_seed(int(density * 100) + max_area)
    mask = torch.rand(3, 37, 53, generator=gen) < density
    got = small_components(mask, max_area)
    for b in range(3):
        sizes = _components_reference(mask[b].numpy())
        assert np.array_equal(got[b].numpy(), mask[b].numpy() & (sizes <= max_area))


def test_small_components_on_long_thin_components():
    """A one-pixel-wide snake of 200 pixels is not a hole even though every window of it is
    small; a 3-pixel bar next to it is."""
    mask = torch.zeros(1, 36, 30, dtype=torch.bool)
    mask[0, :29:4, 2:28] = True
    mask[0, 1:29:8, 27] = mask[0, 2:29:8, 27] = mask[0, 3:29:8, 27] = True
    mask[0, 5:29:8, 2] = mask[0, 6:29:8, 2] = mask[0, 7:29:8, 2] = True
    mask[0, 34, 10:13] = True
    _, areas = connected_components(mask)
    assert areas.max() > 150  # the snake is one component
    got = small_components(mask, 8)
    assert got[0, 34, 10:13].all() and int(got.sum()) == 3


# ---------------------------------------------------------------- preprocessing
@pytest.mark.parametrize(
    "hw,size", [((480, 640), 256), ((120, 160), 512), ((300, 200), 256), ((200, 300), 256), ((256, 256), 256)]
)
def test_tensor_resize_matches_pil(hw, size):
    image = (np.random.default_rng(hw[0]).random((*hw, 3)) * 255).astype(np.uint8)
    want = resize_image(image, size).astype(int)
    got = resize_image_tensor(torch.from_numpy(image), size).numpy().astype(int)
    diff = np.abs(want - got)
    assert diff.max() <= 2 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())


def test_device_preprocessing_tracks_like_pil(model, video):
    _, pil = run_session(model, video, frames=10, preprocess="pil")
    _, dev = run_session(model, video, frames=10, preprocess="device")
    for a, b in zip(pil, dev):
        for obj_id, ra in a.objects.items():
            rb = b.objects[obj_id]
            inter, union = (ra.mask & rb.mask).sum(), (ra.mask | rb.mask).sum()
            assert union == 0 or inter / union > 0.97
            assert abs(ra.object_score - rb.object_score) < 0.05 * max(1.0, abs(ra.object_score))


def test_device_preprocessing_is_exact_at_model_size(model):
    """No resize needed: both paths see the same pixels and agree exactly."""
    images, _ = moving_shapes_video(6, 128, 128)
    outs = []
    for mode in ("pil", "device"):
        tracker = SAM2Tracker(model, preprocess=mode)
        tracker.track(images[0])
        tracker.add_prompt(1, points=[[40, 40]], labels=[1])
        outs.append([tracker.track(im).objects[1].logits for im in images[1:]])
    for a, b in zip(*outs):
        assert torch.equal(a, b)


# ---------------------------------------------------------------- results
def test_frame_results_boxes_areas_and_label_image_match_the_masks():
    gen = torch.Generator().manual_seed(3)
    outputs = {}
    for obj_id in (2, 7, 9):
        logits = torch.randn(1, 1, 32, 32, generator=gen) * 4 - 2
        outputs[obj_id] = FrameOutput(logits, torch.ones(1, 1), torch.ones(1), torch.zeros(1, 8), False, False)
    outputs[9] = FrameOutput(
        torch.full((1, 1, 32, 32), -5.0), -torch.ones(1, 1), torch.ones(1), torch.zeros(1, 8), False, False
    )
    results, label = frame_results(TrackerOptions(fill_hole_area=0), 0, (50, 70), outputs)
    assert label.shape == (50, 70) and label.dtype == np.uint8
    want = np.zeros((50, 70), np.uint8)
    for obj_id in sorted(results):
        r = results[obj_id]
        assert r.bbox == mask_bbox(r.mask) and r.area == int(r.mask.sum())
        want[r.mask] = obj_id  # overlaps: the higher id
    assert np.array_equal(label, want)
    assert results[9].bbox is None and results[9].area == 0 and results[9].occluded
    assert results[2].area > 0 and (label == 7).any() and (label == 2).any()


# ---------------------------------------------------------------- precision
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_runs_with_the_same_output_format(model, video, precision):
    _, fp32 = run_session(model, video, frames=8)
    tracker, bf16 = run_session(model, video, frames=8, precision=precision)
    for a, b in zip(fp32, bf16):
        assert a.objects.keys() == b.objects.keys()
        for obj_id, ra in a.objects.items():
            rb = b.objects[obj_id]
            assert rb.logits.dtype == torch.float32 and rb.mask.dtype == bool and rb.mask.shape == ra.mask.shape
            inter, union = (ra.mask & rb.mask).sum(), (ra.mask | rb.mask).sum()
            assert union == 0 or inter / union > 0.8
    obj = next(tracker.iter_objects())
    assert all(m.dtype == torch.bfloat16 for m in obj.memories.values())


# ---------------------------------------------------------------- compiled path
def test_bucket_sizes():
    assert [bucket_size(n) for n in (1, 2, 3, 5, 8, 9, 16, 17)] == [1, 2, 4, 8, 8, 16, 16, None]


def test_compiled_tracker_equals_eager_and_never_compiles_on_a_live_frame(model, video):
    """The Dynamo path without code generation (fast): buckets 1, 2, 4 prepared by warmup,
    3 objects padded to 4, the same results as eager, no guard failure afterwards."""
    import torch._dynamo

    _, eager = run_session(model, video)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Dynamo's notes on cached helper functions
        tracker, compiled = run_session(model, video, warmup=True, compile=True, compile_backend="aot_eager")
        path = tracker._compiled
        assert path.buckets == (1, 2, 4) and tracker.warmup_seconds > 0
        tokens, n_ptr = steady_state_layout(model, tracker.options)
        assert (4, tokens, n_ptr) in path._ready
        frames_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        steady = NUM_FRAMES - 16
        assert path.calls == NUM_FRAMES + steady and path.fallbacks == 0  # encoder every frame, step from 16
        tracker.track(video[0][5])  # more live frames: no new graph
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == frames_before
    for a, b in zip(eager, compiled):
        assert np.array_equal(a.label_image, b.label_image)
        for obj_id, ra in a.objects.items():
            torch.testing.assert_close(b.objects[obj_id].logits, ra.logits, rtol=1e-4, atol=1e-4)


def test_compiled_tracker_with_inductor_on_cpu(model, video):
    """Real code generation (C++ on the CPU, Triton on a GPU), one bucket: equal to eager."""
    _, eager = run_session(model, video, frames=18, objects=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracker, compiled = run_session(model, video, frames=18, objects=1, max_objects=1, warmup=True, compile=True)
    assert tracker._compiled.buckets == (1,)
    assert tracker._compiled.calls == 18 + 2 and tracker._compiled.fallbacks == 0
    for a, b in zip(eager, compiled):
        for obj_id, ra in a.objects.items():
            torch.testing.assert_close(b.objects[obj_id].logits, ra.logits, rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------- CUDA graphs (CPU side)
# ops that read device data on the host or give data-dependent shapes: a CUDA graph
# cannot capture them
_HOST_ROUND_TRIPS = {"_local_scalar_dense", "nonzero", "is_nonzero", "equal", "masked_select", "unique", "item"}


class _OpLog(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.bad: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        bool_index = name == "index" and any(t is not None and t.dtype == torch.bool for t in args[1])
        if name in _HOST_ROUND_TRIPS or bool_index:
            self.bad.append(str(func))
        return func(*args, **(kwargs or {}))


def test_captured_functions_make_no_host_round_trip(model):
    """What the CUDA graphs capture (encoder with normalisation, tracking step, results)
    reads nothing back to the host and has fixed output shapes."""
    from sam2_model.tracker.graphs import _encode_pixels
    from sam2_model.tracker.steps import result_tensors, tracking_step

    with torch.inference_mode():
        pixels = torch.randint(0, 256, (128, 128, 3), dtype=torch.uint8)
        tokens, n_ptr = steady_state_layout(model, TrackerOptions())
        memory = torch.randn(2, tokens, model.config.mem_dim)
        log = _OpLog()
        with log:
            f, pos, hr0, hr1 = _encode_pixels(model)(pixels)
            out = tracking_step(model, f, pos, hr0, hr1, memory, memory, n_ptr, torch.bfloat16)
            result_tensors(out[0], out[1][:, 0], out[2], torch.tensor([1, 7]), (96, 128), 8, True, False)
        assert log.bad == []
        probe = _OpLog()  # the check sees what it must refuse
        with probe:
            torch.ones(3).nonzero()
            _ = float(torch.ones(1).sum())
            _ = torch.ones(3)[torch.ones(3) > 0]
        assert len(probe.bad) == 3, probe.bad


def test_cuda_graphs_need_a_gpu(model):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the graphs are tested in test_gpu.py")
    with pytest.raises(ValueError, match="cuda_graphs"):
        SAM2Tracker(model, cuda_graphs=True)
    with pytest.raises(ValueError, match="cuda_graphs"):
        TrackerOptions(cuda_graphs=True, compile=True, compile_mode="reduce-overhead")


def test_label_image_higher_id_wins_and_wide_ids():
    """The label image (computed as a max over objects, so it can be captured) gives
    overlaps to the higher id, and switches to int32 for ids above 255."""
    from sam2_model.tracker.steps import result_tensors

    raw = torch.full((3, 1, 8, 8), -5.0)
    raw[0, 0, :4] = 5.0  # rows 0-3
    raw[1, 0, 2:6] = 5.0  # rows 2-5
    raw[2, 0, 7] = 5.0  # row 7
    for ids, wide in (([3, 9, 200], False), ([3, 9, 300], True)):
        out = result_tensors(raw, torch.zeros(3), torch.zeros(3), torch.tensor(ids), (8, 8), 0, False, wide)
        label = out[4]
        assert label.dtype == (torch.int32 if wide else torch.uint8)
        assert label[0, 0] == 3 and label[3, 0] == 9 and label[5, 0] == 9 and label[6, 0] == 0 and label[7, 0] == ids[2]


def test_sdpa_backends_option(model, video):
    """The attention kernels can be chosen (the math kernel gives the default's masks) and
    the choice is really applied (the CPU has no memory-efficient kernel)."""
    _, default = run_session(model, video, frames=4)
    _, math = run_session(model, video, frames=4, sdpa_backends=("math",))
    for a, b in zip(default, math):
        for obj_id, ra in a.objects.items():
            assert (ra.mask == b.objects[obj_id].mask).mean() > 0.999
            assert abs(ra.object_score - b.objects[obj_id].object_score) < 1e-3 * max(1.0, abs(ra.object_score))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):
            run_session(model, video, frames=2, sdpa_backends=("efficient",))
    for bad in (("fast",), "flash"):
        with pytest.raises(ValueError, match="sdpa_backends"):
            TrackerOptions(sdpa_backends=bad)


def test_update_options_while_tracking(model, video):
    """Post-processing options change on a live tracker (from the next result on); the
    others are refused by name and leave the tracker as it was."""

    def overlaps(result) -> bool:
        masks = [r.mask for r in result.objects.values()]
        return any((a & b).any() for i, a in enumerate(masks) for b in masks[i + 1 :])

    tracker, results = run_session(model, video, frames=3, fill_hole_area=0)
    assert overlaps(results[-1])  # this random model's masks overlap
    tracker.update_options(non_overlap_masks=True, fill_hole_area=4)
    assert tracker.options.non_overlap_masks and tracker.options.fill_hole_area == 4
    assert not overlaps(tracker.track(video[0][3]))
    for bad, field in (({"precision": "bf16"}, "precision"), ({"fill_hole_area": -1}, "fill_hole_area")):
        with pytest.raises(ValueError, match=field):
            tracker.update_options(**bad)
    assert tracker.options.fill_hole_area == 4 and tracker.options.precision == "fp32"


def test_autocast_weights_give_the_same_results(model, video):
    """Weights stored in bf16 give what autocast gives with fp32 weights (it casts them to the
    same values): identical masks and logits; the caller's model is not changed."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tracker, cast = run_session(model, video, frames=8, precision="bf16")
    _, plain = run_session(model, video, frames=8, precision="bf16", cast_weights=False)
    assert tracker.model is not model
    linears = [m for m in tracker.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    norms = [m for m in tracker.model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert all(m.weight.dtype == torch.float32 for m in norms)
    for a, b in zip(cast, plain):
        for obj_id, ra in a.objects.items():
            rb = b.objects[obj_id]
            assert np.array_equal(ra.mask, rb.mask)
            assert torch.equal(ra.logits, rb.logits)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_a_bf16_tracker_made_in_inference_mode(model, video):
    with torch.inference_mode():
        tracker = SAM2Tracker(model, precision="bf16")
    tracker.track(video[0][0])
    assert tracker.add_prompt(1, points=[[30, 40]], labels=[1]).area > 0

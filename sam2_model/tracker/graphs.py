"""CUDA graphs of the tracker's per-frame work (option ``cuda_graphs``).

On a GPU the eager tracker is bound by the host: a tracked frame is about 1,500 small
kernels, each launched from Python. Here the image encoder, the tracking step (one per
object bucket and steady-state memory layout) and the frame's results are captured once
and replayed, so a frame is a few graph launches plus the memory assembly.

Rules that keep replays correct:
- a graph reads its inputs from static buffers: arguments are copied in before a replay;
- a graph's outputs are its own buffers, overwritten by any later replay of any graph
  (all graphs share one memory pool): callers copy what they keep right away, on the same
  stream, before the next replay;
- autocast's weight cache is off while capturing (cached casts would be freed under the
  graph); shapes that were not prepared run the ordinary (eager or compiled) code.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..modeling.sam2 import ImageFeatures, SAM2Model
from ..transforms import normalize_image
from .compiled import CompiledPath, bucket_size, pad_to_bucket, prepared_buckets, steady_state_layout
from .options import PRECISIONS, TrackerOptions
from .steps import eager_step, result_tensors, tracking_step

__all__ = ["CapturedCall", "GraphPath"]

# result graphs kept (one per object count, output size and option set; oldest dropped)
MAX_RESULT_GRAPHS = 8


class CapturedCall:
    """A function of fixed-shape tensors, captured in a CUDA graph.

    Args:
        fn: tensors in, a tuple of tensors out; no host synchronisation inside.
        example: example inputs (their shapes, dtypes and devices are fixed from now on).
        pool: the memory pool shared by the tracker's graphs.
        autocast_dtype: autocast dtype to capture under (None: no autocast).
        warmup_calls: eager calls on a side stream before the capture (lazy
            initialisation, cuBLAS workspaces).
    """

    def __init__(
        self,
        fn: Callable[..., tuple[Tensor, ...]],
        example: Sequence[Tensor],
        pool: tuple[int, int],
        autocast_dtype: torch.dtype | None,
        warmup_calls: int = 2,
    ) -> None:
        device = example[0].device
        self.inputs = tuple(t.clone() for t in example)

        def cast() -> contextlib.AbstractContextManager:
            if autocast_dtype is None:
                return torch.autocast("cuda", enabled=False)
            return torch.autocast("cuda", dtype=autocast_dtype, cache_enabled=False)

        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), cast():
            for _ in range(warmup_calls):
                fn(*self.inputs)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with cast(), torch.cuda.graph(self.graph, pool=pool, capture_error_mode="thread_local"):
            self.outputs: tuple[Tensor, ...] = tuple(fn(*self.inputs))

    def __call__(self, *args: Tensor) -> tuple[Tensor, ...]:
        """Copy ``args`` into the static inputs, replay; the outputs are the graph's buffers."""
        for dst, src in zip(self.inputs, args, strict=True):
            if dst.data_ptr() != src.data_ptr():
                dst.copy_(src)
        self.graph.replay()
        return self.outputs


def _encode_pixels(model: SAM2Model, compiled: CompiledPath | None = None) -> Callable[[Tensor], tuple[Tensor, ...]]:
    """Model-size ``[S, S, 3]`` uint8 pixels -> (features, pos, high_res_0, high_res_1)."""

    def encode(pixels: Tensor) -> tuple[Tensor, ...]:
        images = normalize_image(pixels, pixels.device)[None]  # [S, S, 3] uint8 -> [1, 3, S, S]
        if compiled is not None:
            return tuple(compiled._encoder(images))
        f = model.encode_image(images)
        return f.features, f.pos, f.high_res[0], f.high_res[1]

    return encode


class GraphPath:
    """CUDA graphs of the image encoder, the tracking step and the results of one tracker.

    Args:
        model: the model, on a CUDA device (its weights are fixed from now on).
        opts: the tracker's options.
        compiled: with ``compile``, the compiled encoder and step are what gets captured.
        log: called with a message when a capture fails (that shape then runs uncaptured).
    """

    def __init__(
        self,
        model: SAM2Model,
        opts: TrackerOptions,
        compiled: CompiledPath | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if model.device.type != "cuda":
            raise ValueError(f"cuda_graphs: needs the model on a CUDA device, it is on {model.device}")
        self.model, self.opts, self.compiled = model, opts, compiled
        self._dtype = PRECISIONS[opts.precision]
        self._pool = torch.cuda.graph_pool_handle()
        self._encoder: CapturedCall | None = None
        self._steps: dict[tuple[int, int, int], CapturedCall] = {}
        self._results: OrderedDict[tuple, CapturedCall] = OrderedDict()
        self._failed: set[tuple] = set()
        self._log = log or (lambda msg: warnings.warn(msg, stacklevel=3))
        self.replays = 0  # graph replays so far
        self.captures = 0  # graphs captured so far

    def _capture(
        self, key: tuple, fn: Callable[..., tuple[Tensor, ...]], example: Sequence[Tensor]
    ) -> CapturedCall | None:
        if key in self._failed:
            return None
        try:
            call = CapturedCall(fn, example, self._pool, self._dtype)
        except Exception as exc:  # that shape runs uncaptured from now on
            self._failed.add(key)
            msg = f"CUDA graph capture of {key[0]} failed, running it uncaptured: {type(exc).__name__}: {exc}"
            self._log(msg[:500])
            return None
        self.captures += 1
        return call

    # ------------------------------------------------------------------ encoder
    def encode(self, pixels: Tensor) -> ImageFeatures | None:
        """Model-size ``[S, S, 3]`` uint8 pixels -> features (copies, safe to keep), or None
        before :meth:`warmup`."""
        if self._encoder is None:
            return None
        self.replays += 1
        f, pos, hr0, hr1 = self._encoder(pixels)
        return ImageFeatures(f.clone(), pos.clone(), (hr0.clone(), hr1.clone()))

    # ------------------------------------------------------------------ tracking step
    def step(
        self,
        model: SAM2Model,
        opts: TrackerOptions,
        feats: ImageFeatures,
        memory: Tensor,
        memory_pos: Tensor,
        n_ptr: int,
    ) -> tuple[Tensor, ...]:
        """:func:`~sam2_model.tracker.steps.eager_step` (outputs are copies), replayed for
        prepared shapes; others run the compiled or eager step."""
        b = memory.shape[0]
        bucket = bucket_size(b, self._buckets())
        call = None if bucket is None else self._steps.get((bucket, memory.shape[1], n_ptr))
        if call is None:
            if self.compiled is not None:
                return self.compiled.step(model, opts, feats, memory, memory_pos, n_ptr)
            return eager_step(model, opts, feats, memory, memory_pos, n_ptr)
        memory, memory_pos = pad_to_bucket(memory, memory_pos, bucket)
        self.replays += 1
        out = call(feats.features, feats.pos, feats.high_res[0], feats.high_res[1], memory, memory_pos)
        return tuple(t[:b].clone() for t in out)

    def _step_fn(self, n_ptr: int) -> Callable[..., tuple[Tensor, ...]]:
        if self.compiled is not None:
            step = self.compiled._step
            return lambda f, p, h0, h1, m, mp: step(f, p, h0, h1, m, mp, n_ptr)
        dtype = self.opts.memory_dtype
        return lambda f, p, h0, h1, m, mp: tracking_step(self.model, f, p, h0, h1, m, mp, n_ptr, dtype)

    def _buckets(self) -> tuple[int, ...]:
        return prepared_buckets(self.opts.max_objects)

    # ------------------------------------------------------------------ results
    def results(
        self,
        raw: Tensor,
        scores: Tensor,
        ious: Tensor,
        ids: Tensor,
        image_hw: tuple[int, int],
        fill_hole_area: int,
        non_overlap_masks: bool,
        wide: bool,
    ) -> tuple[Tensor, ...]:
        """:func:`~sam2_model.tracker.steps.result_tensors`, replayed per object count,
        output size and post-processing setting (captured at first use: milliseconds, once)."""
        key = ("results", raw.shape[0], tuple(image_hw), fill_hole_area, non_overlap_masks, wide)

        def fn(r: Tensor, s: Tensor, i: Tensor, k: Tensor) -> tuple[Tensor, ...]:
            return result_tensors(r, s, i, k, image_hw, fill_hole_area, non_overlap_masks, wide)

        call = self._results.get(key)
        if call is None and key not in self._failed:
            call = self._capture(key, fn, (raw, scores, ious, ids))
            if call is not None:
                self._results[key] = call
                while len(self._results) > MAX_RESULT_GRAPHS:
                    self._results.popitem(last=False)
        if call is None:
            return fn(raw, scores, ious, ids)
        self._results.move_to_end(key)
        self.replays += 1
        return call(raw, scores, ious, ids)

    # ------------------------------------------------------------------ warm-up
    def warmup(self, cond_frames: tuple[int, ...] = (1,), buckets: tuple[int, ...] | None = None) -> None:
        """Capture the encoder and the tracking step for ``buckets`` (default: every bucket
        up to ``max_objects``) with the steady-state layouts of ``cond_frames`` prompted frames."""
        model, c = self.model, self.model.config
        dev, s = model.device, model.image_size
        pixels = torch.randint(0, 256, (s, s, 3), dtype=torch.uint8, device=dev)
        if self._encoder is None:
            self._encoder = self._capture(("encoder",), _encode_pixels(model, self.compiled), (pixels,))
        if self._encoder is None:
            return
        f, pos, hr0, hr1 = self._encoder(pixels)
        for n_cond in cond_frames:
            tokens, n_ptr = steady_state_layout(model, self.opts, n_cond)
            for bucket in self._buckets() if buckets is None else buckets:
                key = (bucket, tokens, n_ptr)
                if key in self._steps:
                    continue
                memory = torch.randn(bucket, tokens, c.mem_dim, device=dev)
                call = self._capture(("step", *key), self._step_fn(n_ptr), (f, pos, hr0, hr1, memory, memory))
                if call is not None:
                    self._steps[key] = call
        torch.cuda.synchronize(dev)

"""The tracker's compiled fast path: ``torch.compile`` of the image encoder and of the
per-frame tracking step (memory attention, SAM heads, memory encoder).

Shapes are kept static: object batches are padded to the sizes of
:data:`~sam2_model.tracker.options.COMPILE_BUCKETS` and only the shapes prepared by
:meth:`CompiledPath.warmup` go through the compiled code; any other shape (an object's
first frames, before its memory bank is full) runs eagerly. A live frame never compiles:
compiled calls run under the ``fail_on_recompile`` stance and fall back to eager code if a
guard ever fails.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..modeling.sam2 import ImageFeatures, SAM2Model
from .options import COMPILE_BUCKETS, TrackerOptions
from .steps import eager_step, tracking_step

__all__ = ["CompiledPath", "bucket_size", "pad_to_bucket", "prepared_buckets", "steady_state_layout"]


def bucket_size(batch: int, buckets: tuple[int, ...] = COMPILE_BUCKETS) -> int | None:
    """The smallest bucket that holds ``batch`` objects (None: more than the largest)."""
    return next((b for b in buckets if b >= batch), None)


def prepared_buckets(max_objects: int) -> tuple[int, ...]:
    """The batch sizes prepared for ``max_objects`` (up to the first bucket holding them)."""
    top = bucket_size(max_objects) or COMPILE_BUCKETS[-1]
    return tuple(b for b in COMPILE_BUCKETS if b <= top)


def pad_to_bucket(memory: Tensor, memory_pos: Tensor, bucket: int) -> tuple[Tensor, Tensor]:
    """Memory tokens ``[B, M, C]`` (and their encoding) padded to ``[bucket, M, C]`` with
    copies of the last object (their outputs are dropped)."""
    extra = bucket - memory.shape[0]
    if extra <= 0:
        return memory, memory_pos
    return (
        torch.cat((memory, memory[-1:].expand(extra, -1, -1))),
        torch.cat((memory_pos, memory_pos[-1:].expand(extra, -1, -1))),
    )


def steady_state_layout(model: SAM2Model, opts: TrackerOptions, cond_frames: int = 1) -> tuple[int, int]:
    """``(memory tokens, pointer tokens)`` of an object tracked for a while after
    ``cond_frames`` prompted frames: the 6 recent memories and 15 recent pointers."""
    c = model.config
    hw = c.embedding_size**2
    split = c.d_model // c.mem_dim
    pointers = cond_frames + opts.max_object_pointers - 1
    spatial = cond_frames + c.num_maskmem - 1
    return spatial * hw + pointers * split, pointers * split


class _Encoder(nn.Module):
    """``encode_image`` with tensors out (what ``torch.compile`` handles best)."""

    def __init__(self, model: SAM2Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        f = self.model.encode_image(images)
        return f.features, f.pos, f.high_res[0], f.high_res[1]


class _Step(nn.Module):
    """:func:`~sam2_model.tracker.steps.tracking_step` as a module."""

    def __init__(self, model: SAM2Model, memory_dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.memory_dtype = memory_dtype

    def forward(
        self,
        features: Tensor,
        pos: Tensor,
        high_res_0: Tensor,
        high_res_1: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        num_ptr_tokens: int,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return tracking_step(
            self.model, features, pos, high_res_0, high_res_1, memory, memory_pos, num_ptr_tokens, self.memory_dtype
        )


class CompiledPath:
    """Compiled image encoder and tracking step for one model and its tracker options.

    Args:
        model: the model (its device and weights are fixed from now on).
        opts: the tracker's options (``compile_mode``, ``memory_dtype``, ``max_objects``).
        backend: ``torch.compile`` backend (``"inductor"``; tests use ``"aot_eager"``).
        log: called with a message when a compiled call falls back to eager code.
    """

    def __init__(
        self,
        model: SAM2Model,
        opts: TrackerOptions,
        backend: str = "inductor",
        log: Callable[[str], None] | None = None,
    ) -> None:
        import torch._dynamo

        # one compiled graph per bucket: room for every bucket and some spare
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 64))
        self.model = model
        self.opts = opts
        self.mode = opts.compile_mode
        kwargs = {"backend": backend, "dynamic": False}
        if backend == "inductor":
            kwargs["mode"] = self.mode
        self._encoder_eager = _Encoder(model)
        self._encoder = torch.compile(self._encoder_eager, **kwargs)
        self._step = torch.compile(_Step(model, opts.memory_dtype), **kwargs)
        self._encoder_batches: set[int] = set()  # frames per call the encoder was compiled for
        self._ready: set[tuple[int, int, int]] = set()  # (bucket, memory tokens, pointer tokens)
        self._log = log or (lambda msg: warnings.warn(msg, stacklevel=3))
        self.calls = 0  # calls of the compiled encoder and step
        self.fallbacks = 0  # of which had to run eagerly
        self.warmup_seconds = 0.0

    @property
    def buckets(self) -> tuple[int, ...]:
        """The batch sizes prepared for (up to the first bucket holding ``max_objects``)."""
        return prepared_buckets(self.opts.max_objects)

    # ------------------------------------------------------------ calls
    def _guarded(self, fn: Callable[[], tuple[Tensor, ...]], fallback: Callable[[], tuple[Tensor, ...]]):
        try:
            with torch.compiler.set_stance("fail_on_recompile"):
                out = fn()
        except Exception as exc:  # a guard failed: never compile on a live frame
            self.fallbacks += 1
            self._log(f"compiled tracker step fell back to eager code: {type(exc).__name__}: {exc}"[:500])
            return fallback()
        if "cudagraphs" in self.mode or self.mode == "reduce-overhead":
            out = tuple(t.clone() for t in out)  # CUDA-graph outputs are reused by the next replay
        return out

    def encode(self, images: Tensor) -> ImageFeatures:
        """``[B, 3, S, S]`` -> features, compiled for the batch sizes warmed up (eager for others)."""
        if images.shape[0] not in self._encoder_batches:
            return self.model.encode_image(images)
        images = images.contiguous()  # the layout it was compiled for
        self.calls += 1
        out = self._guarded(lambda: self._encoder(images), lambda: self._encoder_eager(images))
        return ImageFeatures(out[0], out[1], (out[2], out[3]))

    def step(
        self,
        model: SAM2Model,
        opts: TrackerOptions,
        feats: ImageFeatures,
        memory: Tensor,
        memory_pos: Tensor,
        n_ptr: int,
    ) -> tuple[Tensor, ...]:
        """:func:`~sam2_model.tracker.steps.eager_step`, compiled for prepared shapes."""
        b = memory.shape[0]
        bucket = bucket_size(b, self.buckets)
        if bucket is None or (bucket, memory.shape[1], n_ptr) not in self._ready:
            return eager_step(model, opts, feats, memory, memory_pos, n_ptr)
        memory, memory_pos = pad_to_bucket(memory, memory_pos, bucket)
        hr0, hr1 = feats.high_res
        self.calls += 1
        out = self._guarded(
            lambda: self._step(feats.features, feats.pos, hr0, hr1, memory, memory_pos, n_ptr),
            lambda: eager_step(model, opts, feats, memory, memory_pos, n_ptr),
        )
        return tuple(t[:b] for t in out)

    # ------------------------------------------------------------ warm-up
    def warmup(
        self,
        autocast: Callable[[], object],
        cond_frames: tuple[int, ...] = (1,),
        buckets: tuple[int, ...] | None = None,
        encoder_batches: tuple[int, ...] = (1,),
    ) -> float:
        """Compile for the tracker's shapes: the image encoder for ``encoder_batches`` frames
        per call (several cameras' frames are encoded as one batch), and the tracking step for
        ``buckets`` (default: every bucket up to ``max_objects``) with the steady-state
        memory layouts of ``cond_frames`` prompted frames. Returns the seconds it took."""
        start = time.monotonic()
        model, c = self.model, self.model.config
        dev, s = model.device, model.image_size
        with torch.inference_mode(), autocast():
            for batch in sorted(set(encoder_batches)):
                images = torch.randn(batch, 3, s, s, device=dev)
                for _ in range(2):  # the second call runs the compiled code
                    self._encoder(images)
                self._encoder_batches.add(batch)
            out = self._encoder(torch.randn(1, 3, s, s, device=dev))  # [1, ...] features for the step
            feats = ImageFeatures(out[0], out[1], (out[2], out[3]))
            for n_cond in cond_frames:
                tokens, n_ptr = steady_state_layout(model, self.opts, n_cond)
                for bucket in self.buckets if buckets is None else buckets:
                    memory = torch.randn(bucket, tokens, c.mem_dim, device=dev)
                    memory_pos = torch.randn(bucket, tokens, c.mem_dim, device=dev)
                    for _ in range(2):
                        self._step(feats.features, feats.pos, *feats.high_res, memory, memory_pos, n_ptr)
                    self._ready.add((bucket, tokens, n_ptr))
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
        self.warmup_seconds = time.monotonic() - start
        return self.warmup_seconds

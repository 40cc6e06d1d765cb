"""SAM2Tracker: SAM 2's video tracking on a live stream, one frame at a time.

Each object has its own memory bank (prompted frames, the 6 latest frames' memories, the
pointers of the last 15 frames); objects whose memories have the same shape are tracked in
one batch. A bounded history buffer keeps recent frames and per-frame outputs so a prompt
may refer to any buffered frame: the object is then re-tracked up to the latest frame.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..build import resolve_device
from ..modeling.sam2 import ImageFeatures, SAM2Model
from ..prompts import validate_image, validate_prompt
from ..transforms import normalize_image, resize_image_tensor
from .compiled import CompiledPath, steady_state_layout
from .graphs import GraphPath
from .memory import memory_context_frames
from .options import PRECISIONS, RUNTIME_OPTIONS, TrackerOptions
from .results import FrameResult, ObjectResult, ObjectStats, TrackerStats
from .state import BufferedFrame, FrameOutput, HistoryBuffer, ObjectState
from .steps import (
    StepFn,
    apply_prompt,
    eager_step,
    encode_memories,
    frame_results,
    result_tensors,
    to_host,
    track_objects,
)
from .weights import with_autocast_weights

__all__ = ["SAM2Tracker"]

_SDPA_KINDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "math": SDPBackend.MATH,
}


class SAM2Tracker:
    """Promptable multi-object tracking on a stream of frames.

    Example::

        tracker = SAM2Tracker(build_sam2("sam2.1_hiera_tiny", ckpt), device="auto")
        tracker.track(first_frame)
        tracker.add_prompt(1, points=[[320, 240]], labels=[1])   # on the latest frame
        for frame in camera:
            result = tracker.track(frame)                        # FrameResult
            result.objects[1].mask, result.objects[1].bbox

    Args:
        model: a :class:`SAM2Model` (moved to ``device`` when that option is given; with
            bf16/fp16 and ``cast_weights``, :attr:`model` is a copy with low-precision weights).
        **options: see :class:`TrackerOptions`.
    """

    def __init__(self, model: SAM2Model, **options: object) -> None:
        self.options = TrackerOptions.from_kwargs(**options)
        if self.options.device is not None:
            model = model.to(resolve_device(self.options.device))
        self.model = model.eval()
        dtype = PRECISIONS[self.options.precision]
        if dtype is not None and self.options.cast_weights:  # a copy: the caller's model is unchanged
            self.model = with_autocast_weights(self.model, dtype)
        on_cuda = self.model.device.type == "cuda"
        if on_cuda:
            torch.backends.cuda.matmul.allow_tf32 = self.options.allow_tf32
            torch.backends.cudnn.allow_tf32 = self.options.allow_tf32
        preprocess = self.options.preprocess
        self._device_preprocess = preprocess == "device" or (preprocess == "auto" and on_cuda)
        self._compiled: CompiledPath | None = None
        if self.options.compile:
            self._compiled = CompiledPath(self.model, self.options, backend=self.options.compile_backend)
        self._graphs: GraphPath | None = None
        if self.options.cuda_graphs:  # raises unless the model is on a GPU
            self._graphs = GraphPath(self.model, self.options, compiled=self._compiled)
        self._pos_cache: dict = {}  # memory encodings reused across frames
        self._warmup_seconds = 0.0
        self._init_session()

    def _init_session(self) -> None:
        """The state of one stream (everything :meth:`new_session` does not share)."""
        self._lock = threading.RLock()
        self._objects: dict[int, ObjectState] = {}
        self._history = HistoryBuffer(self.options.history_frames)
        self._frames_processed = 0
        self._cache: tuple[int, ImageFeatures] | None = None  # the latest frame's features
        self._staging: torch.Tensor | None = None  # pinned host buffer for frame uploads
        self._staging_copied: torch.cuda.Event | None = None  # when its last upload finished

    def new_session(self) -> SAM2Tracker:
        """Another tracker on the same model, for another stream (camera): the same weights
        in memory and compiled code, its own objects, memory banks, history and frame count.
        :func:`~sam2_model.tracker.multi.track_many` tracks one frame of each in one batch.

        Raises:
            ValueError: with ``cuda_graphs`` or ``compile_mode="reduce-overhead"``, whose
                captured graphs keep their outputs in static buffers one stream would
                overwrite under another's feet.
        """
        if self.options.cuda_graphs or (self.options.compile and self.options.compile_mode == "reduce-overhead"):
            raise ValueError("cuda_graphs: CUDA graphs are captured per session; build each session with its own")
        other = copy.copy(self)  # the model, options and compiled paths are shared
        other._init_session()
        return other

    # ---------------------------------------------------------------- public API
    @property
    def object_ids(self) -> list[int]:
        """Ids of the tracked objects, increasing."""
        return sorted(self._objects)

    @property
    def frame_index(self) -> int:
        """Index of the latest processed frame (-1 before the first)."""
        return self._frames_processed - 1

    @property
    def oldest_frame_index(self) -> int:
        """Index of the oldest frame in the history buffer (-1 when empty)."""
        return self._history.oldest

    @property
    def warmup_seconds(self) -> float:
        """Seconds the last :meth:`warmup` took (0 before)."""
        return self._warmup_seconds

    @torch.inference_mode()
    def warmup(self, buckets: tuple[int, ...] | None = None, cameras: int = 1) -> float:
        """Prepare the tracker before the first live frame: with ``compile``, compile the
        image encoder (for 1..``cameras`` frames per call: the batches of
        :func:`~sam2_model.tracker.multi.track_many` over this tracker's sessions) and the
        tracking step for the object ``buckets`` (default: every bucket up to
        ``max_objects``; this takes minutes on a GPU); with ``cuda_graphs``, capture them
        (seconds); otherwise run the model once so that lazy initialisation (CUDA context,
        kernels) does not land on a live frame. The tracker's state is not touched. Returns
        the seconds it took."""
        start = time.monotonic()
        with self._lock:
            if self._compiled is not None:
                batches = tuple(range(1, max(cameras, 1) + 1))
                self._compiled.warmup(self._autocast, buckets=buckets, encoder_batches=batches)
            if self._graphs is not None:
                with self._autocast():
                    self._graphs.warmup(buckets=buckets)
            elif self._compiled is None:
                with self._autocast():
                    s, dev = self.model.image_size, self.model.device
                    self.model.encode_image(torch.randn(max(cameras, 1), 3, s, s, device=dev))  # the largest batch
                    feats = self.model.encode_image(torch.randn(1, 3, s, s, device=dev))
                    tokens, n_ptr = steady_state_layout(self.model, self.options)
                    memory = torch.randn(1, tokens, self.model.config.mem_dim, device=dev)
                    outs = eager_step(self.model, self.options, feats, memory, memory, n_ptr)
                    to_host(*outs)
        self._warmup_seconds = time.monotonic() - start
        return self._warmup_seconds

    @torch.inference_mode()
    def track(self, image: np.ndarray) -> FrameResult:
        """Process the next frame (RGB ``[H, W, 3]`` uint8) and return every object on it."""
        image = validate_image(image)
        with self._lock, self._autocast():
            frame = self._buffer_frame(self._frames_processed, image)
            return self._track_encoded(frame, self._encode(frame))

    def _track_encoded(self, frame: BufferedFrame, feats: ImageFeatures) -> FrameResult:
        """The rest of :meth:`track` once the frame is buffered and encoded (under the lock
        and autocast)."""
        with self._lock:
            t = self._frames_processed
            objs = list(self._objects.values())
            step = self._step_fn()
            outputs, memories = (
                track_objects(self.model, self.options, feats, objs, t, step, self._pos_cache) if objs else ({}, {})
            )
            compute = self._graphs.results if self._graphs is not None else result_tensors
            results, label = frame_results(self.options, t, frame.image_hw, outputs, compute)
            # commit
            self._history.append(frame)
            self._cache = (t, feats)
            self._frames_processed += 1
            for obj_id, out in outputs.items():
                obj = self._objects[obj_id]
                obj.outputs[t] = out
                obj.memories[t] = memories[obj_id]
                self._prune(obj)
            return FrameResult(t, results, label)

    @torch.inference_mode()
    def add_prompt(
        self,
        obj_id: int,
        points: ArrayLike | None = None,
        labels: ArrayLike | None = None,
        box: ArrayLike | None = None,
        mask: ArrayLike | None = None,
        frame_index: int | None = None,
        clear_previous: bool = False,
    ) -> ObjectResult:
        """Start or refine an object with clicks, a box and/or a mask on a processed frame.

        Args:
            obj_id: a new id starts an object; an existing id refines it.
            points, labels: clicks ``[N, 2]`` (x, y) in pixels and their labels (1 / 0).
            box: ``(x0, y0, x1, y1)``, the first and last pixel covered (inclusive, inside the image).
            mask: ``[H, W]`` mask (non-zero on the object).
            frame_index: the frame the prompt refers to; ``None``: the latest. An older
                frame must still be in the history buffer; the object is then re-tracked
                up to the latest frame.
            clear_previous: drop the object's earlier prompts on that frame first.
        Returns:
            the object's :class:`ObjectResult` on that frame.
        Raises:
            ValueError: naming the bad argument; the tracker is then unchanged.
        """
        with self._lock:
            obj_id, p, frame = self._check_prompt_target(obj_id, frame_index)
            prompt = validate_prompt(frame.image_hw, points, labels, box, mask)
            if not isinstance(clear_previous, (bool, np.bool_)):
                raise ValueError(f"clear_previous: expected a bool, got {clear_previous!r}")
            existing = self._objects.get(obj_id)
            if existing is None and len(self._objects) >= self.options.max_objects:
                raise ValueError(f"obj_id: already tracking max_objects={self.options.max_objects} objects")
            work = existing.copy() if existing is not None else ObjectState(obj_id)
            self._check_context(work, p)
            with self._autocast():
                feats = self._features(p)
                if p in work.outputs and not work.outputs[p].is_cond:  # a correction needs memory
                    self._rebuild_memories(work, memory_context_frames(p, self.model.config.num_maskmem))
                out = apply_prompt(
                    self.model, self.options, work, p, feats, prompt, frame.image_hw, bool(clear_previous)
                )
                (mem,) = encode_memories(self.model, self.options, feats, [out])
                self._store(work, p, out, mem)
                self._retrack(work, p + 1, self._history.latest)
            self._prune(work)
            self._objects[obj_id] = work  # commit
            others = {i: o.outputs[p] for i, o in self._objects.items() if p in o.outputs}
            return frame_results(self.options, p, frame.image_hw, others)[0][obj_id]

    @torch.inference_mode()
    def frame_result(self, frame_index: int | None = None) -> FrameResult:
        """Every object on a buffered frame (``None``: the latest) as it stands now: after
        the prompts given since that frame was tracked, without the objects started later.

        Raises:
            ValueError: naming ``frame_index`` when that frame is not buffered.
        """
        with self._lock:
            _, p, frame = self._check_prompt_target(0, frame_index)
            outputs = {i: o.outputs[p] for i, o in self._objects.items() if p in o.outputs}
            results, label = frame_results(self.options, p, frame.image_hw, outputs)
            return FrameResult(p, results, label)

    def update_options(self, **changes: object) -> None:
        """Change post-processing options while tracking (``fill_hole_area``,
        ``non_overlap_masks``); they apply from the next result on.

        Raises:
            ValueError: naming an option that cannot change on a live tracker, or a bad value.
        """
        fixed = sorted(set(changes) - RUNTIME_OPTIONS)
        if fixed:
            raise ValueError(f"{fixed[0]}: cannot change while tracking (runtime options: {sorted(RUNTIME_OPTIONS)})")
        with self._lock:
            self.options = replace(self.options, **changes)  # validated by TrackerOptions

    def remove_object(self, obj_id: int) -> None:
        """Stop tracking an object and free its memory."""
        with self._lock:
            if obj_id not in self._objects:
                raise ValueError(f"obj_id: no object {obj_id!r}; tracked ids: {self.object_ids}")
            del self._objects[obj_id]

    def reset(self) -> None:
        """Forget every object and frame; the next frame is frame 0 again."""
        with self._lock:
            self._objects.clear()
            self._history.clear()
            self._frames_processed = 0
            self._cache = None

    def stats(self) -> TrackerStats:
        """Objects, frames and bytes held in the memory banks and the history buffer."""
        with self._lock:
            latest, window = self.frame_index, self.options.max_object_pointers - 1
            per_object = {}
            for obj_id, o in sorted(self._objects.items()):
                per_object[obj_id] = ObjectStats(
                    conditioning_frames=len(o.cond),
                    recent_memories=len(o.memories),
                    recent_pointers=o.recent_pointers(latest, window),
                    history_outputs=sum(out.raw_logits is not None for out in o.outputs.values()),
                    memory_bank_bytes=o.memory_bank_bytes(latest, window),
                    history_bytes=o.history_bytes(latest, window),
                )
            cache_bytes = self._cache[1].nbytes() if self._cache is not None else 0
            return TrackerStats(
                objects=len(self._objects),
                frames_processed=self._frames_processed,
                history_frames=len(self._history),
                history_frame_bytes=self._history.nbytes,
                feature_cache_bytes=cache_bytes,
                per_object=per_object,
            )

    # ---------------------------------------------------------------- internals
    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        """The model's numeric context: autocast to ``precision`` and the attention kernels
        of ``sdpa_backends``."""
        dtype = PRECISIONS[self.options.precision]
        with contextlib.ExitStack() as stack:
            if dtype is not None:
                stack.enter_context(torch.autocast(self.model.device.type, dtype=dtype))
            if self.options.sdpa_backends:
                kinds = [_SDPA_KINDS[name] for name in self.options.sdpa_backends]
                stack.enter_context(sdpa_kernel(kinds, set_priority=True))
            yield

    def _buffer_frame(self, t: int, image: np.ndarray) -> BufferedFrame:
        """The frame as kept in the history buffer: on the CPU (PIL-resized when that is
        smaller), or uploaded once and resized on the device."""
        size = self.model.image_size
        if not self._device_preprocess:
            return BufferedFrame.store(t, image, size)
        dev = self.model.device
        if dev.type == "cuda":  # through a reused pinned buffer, asynchronously
            if self._staging is None or tuple(self._staging.shape) != image.shape:
                self._staging = torch.empty(image.shape, dtype=torch.uint8).pin_memory()
            elif self._staging_copied is not None and not self._staging_copied.query():
                self._staging_copied.synchronize()  # the previous upload (done long ago, in practice)
            self._staging.numpy()[...] = image
            src = self._staging.to(dev, non_blocking=True)
            self._staging_copied = torch.cuda.Event()
            self._staging_copied.record(torch.cuda.current_stream(dev))
        else:
            src = torch.tensor(image, device=dev)  # a copy: the caller keeps its array
        pixels = resize_image_tensor(src, size)
        return BufferedFrame.store_on_device(t, pixels, (image.shape[0], image.shape[1]))

    def _step_fn(self) -> StepFn:
        if self._graphs is not None:
            return self._graphs.step
        return self._compiled.step if self._compiled is not None else eager_step

    def _encode(self, frame: BufferedFrame) -> ImageFeatures:
        pixels = frame.model_pixels(self.model.image_size)
        if self._graphs is not None and isinstance(pixels, torch.Tensor):
            feats = self._graphs.encode(pixels)
            if feats is not None:
                return feats
        x = normalize_image(pixels, self.model.device)[None]
        if self._compiled is not None:
            return self._compiled.encode(x)
        return self.model.encode_image(x)

    def _features(self, t: int) -> ImageFeatures:
        if self._cache is not None and self._cache[0] == t:
            return self._cache[1]
        frame = self._history.get(t)
        if frame is None:  # guarded by the callers' checks
            raise RuntimeError(f"frame {t} is not buffered")
        return self._encode(frame)

    def _check_prompt_target(self, obj_id: object, frame_index: object) -> tuple[int, int, BufferedFrame]:
        if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)) or obj_id < 0:
            raise ValueError(f"obj_id: expected a non-negative integer, got {obj_id!r}")
        if len(self._history) == 0:
            raise ValueError("frame_index: no frame has been processed yet; call track() first")
        if frame_index is None:
            p = self._history.latest
        elif isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)):
            raise ValueError(f"frame_index: expected an integer or None, got {frame_index!r}")
        else:
            p = int(frame_index)
        frame = self._history.get(p)
        if frame is None:
            raise ValueError(
                f"frame_index: frame {p} is not in the history buffer (it holds frames "
                f"{self._history.oldest}..{self._history.latest}; history_frames={self.options.history_frames})"
            )
        return int(obj_id), p, frame

    def _needs_memory(self, obj: ObjectState, f: int) -> bool:
        out = obj.outputs.get(f)
        return out is not None and not out.is_cond and f not in obj.memories

    def _check_context(self, obj: ObjectState, p: int) -> None:
        """A prompt on frame p needs the memories of up to 6 earlier frames: they must be
        rebuildable from the history buffer."""
        missing = [
            f
            for f in memory_context_frames(p, self.model.config.num_maskmem)
            if self._needs_memory(obj, f) and (obj.outputs[f].raw_logits is None or self._history.get(f) is None)
        ]
        if missing:
            first_ok = self._history.oldest + self.model.config.num_maskmem - 1
            raise ValueError(
                f"frame_index: frame {p} is too old to prompt object {obj.obj_id} on: its memory needs "
                f"frame {missing[0]}, older than the history buffer (oldest {self._history.oldest}); "
                f"use frames {first_ok}..{self._history.latest}"
            )

    def _rebuild_memories(self, obj: ObjectState, frames: range | list[int]) -> None:
        """Re-encode pruned memories of unprompted frames from the history buffer."""
        for f in frames:
            if self._needs_memory(obj, f):
                out = obj.outputs[f]
                (obj.memories[f],) = encode_memories(self.model, self.options, self._features(f), [out])

    def _retrack(self, obj: ObjectState, start: int, end: int) -> None:
        """Track one object again over buffered frames ``start..end`` (after a past prompt)."""
        for t in range(start, end + 1):
            out = obj.outputs.get(t)
            if out is not None and out.prompted:
                continue  # prompted frames keep their answer
            self._rebuild_memories(obj, memory_context_frames(t, self.model.config.num_maskmem))
            feats = self._features(t)
            outputs, memories = track_objects(self.model, self.options, feats, [obj], t, self._step_fn())
            self._store(obj, t, outputs[obj.obj_id], memories[obj.obj_id])
            obj.drop_old_memories(t, self.model.config.num_maskmem)

    def _store(self, obj: ObjectState, t: int, out: FrameOutput, memory: torch.Tensor) -> None:
        obj.store(t, out, memory, self.options.max_conditioning_frames)

    def _prune(self, obj: ObjectState) -> None:
        c = self.model.config
        obj.prune(self._history.latest, self._history.oldest, c.num_maskmem, self.options.max_object_pointers)

    def iter_objects(self) -> Iterator[ObjectState]:
        """The objects' states (read-only use: tests and diagnostics)."""
        return iter(list(self._objects.values()))

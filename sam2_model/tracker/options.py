"""Options of the streaming tracker."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

__all__ = [
    "COMPILE_BUCKETS",
    "COMPILE_MODES",
    "PRECISIONS",
    "PREPROCESS",
    "RUNTIME_OPTIONS",
    "SDPA_BACKENDS",
    "TrackerOptions",
]

# precision name -> autocast dtype (None: plain fp32)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# where frames are resized and normalised
PREPROCESS = ("auto", "pil", "device")
# torch.compile modes ("reduce-overhead" adds CUDA graphs)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# attention kernels by name (option sdpa_backends)
SDPA_BACKENDS = ("flash", "efficient", "cudnn", "math")
# options that may change on a live tracker (SAM2Tracker.update_options)
RUNTIME_OPTIONS = frozenset({"fill_hole_area", "non_overlap_masks"})
# with compile, object batches are padded to these sizes (static shapes)
COMPILE_BUCKETS = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class TrackerOptions:
    """How the tracker runs. Defaults follow the official video predictor where it matters
    for masks (memory layout, bf16 memory storage, hole filling, no overlap constraint)."""

    history_frames: int = 60  # past frames kept so prompts can refer to them (>= 8)
    max_objects: int = 32  # most objects tracked at once
    max_conditioning_frames: int = 16  # prompted frames kept per object (first + most recent)
    fill_hole_area: int = 8  # fill background holes up to this many low-res pixels (0: off)
    non_overlap_masks: bool = False  # each pixel goes to the highest-scoring object only
    add_all_frames_to_correct_as_cond: bool = False  # corrected frames become prompted frames
    device: str | None = None  # run on this device ("cpu", "cuda", "auto"); None: the model's
    precision: str = "fp32"  # "fp32", or autocast "bf16" / "fp16"
    # with bf16/fp16: keep linear and convolution weights in that dtype (the tracker then
    # works on a copy of the model; same results, no weight casts on every frame)
    cast_weights: bool = True
    memory_dtype: torch.dtype = torch.bfloat16  # storage of encoded memories (official: bf16)
    max_object_pointers: int = 16  # pointers attended to (the official: min(video length, 16))
    batch_objects: bool = True  # one batched pass for objects with equal memory sizes (False: one by one)
    # "pil": resize on the CPU with PIL (the official loader's pixels); "device": upload the
    # uint8 frame once and resize/normalise on the model's device (PIL's filter, within a
    # grey level); "auto": "device" on CUDA, "pil" elsewhere
    preprocess: str = "auto"
    compile: bool = False  # torch.compile the image encoder and the tracking step (see warmup())
    compile_mode: str = "default"  # torch.compile mode; "reduce-overhead" uses CUDA graphs
    compile_backend: str = "inductor"  # torch.compile backend ("aot_eager": no code generation)
    # replay CUDA graphs of the image encoder, the tracking step (steady-state memory, per
    # object bucket) and the results; captured by warmup() (CUDA only)
    cuda_graphs: bool = False
    # attention kernels allowed, in order of preference ("flash", "efficient", "cudnn",
    # "math"); empty: PyTorch's own choice
    sdpa_backends: tuple[str, ...] = ()
    allow_tf32: bool = True  # TF32 matrix products and convolutions in fp32 on CUDA

    def __post_init__(self) -> None:
        if self.history_frames < 8:
            raise ValueError("history_frames: must be >= 8 (corrections re-encode up to 7 past frames)")
        if self.max_objects < 1:
            raise ValueError("max_objects: must be >= 1")
        if self.max_conditioning_frames < 2:
            raise ValueError("max_conditioning_frames: must be >= 2 (the first and the latest)")
        if self.fill_hole_area < 0:
            raise ValueError("fill_hole_area: must be >= 0")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        if self.max_object_pointers < 2:
            raise ValueError("max_object_pointers: must be >= 2")
        if self.preprocess not in PREPROCESS:
            raise ValueError(f"preprocess: must be one of {list(PREPROCESS)}, got {self.preprocess!r}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode: must be one of {list(COMPILE_MODES)}, got {self.compile_mode!r}")
        unknown = [b for b in self.sdpa_backends if b not in SDPA_BACKENDS]
        if isinstance(self.sdpa_backends, str) or unknown:
            raise ValueError(f"sdpa_backends: expected a tuple of {list(SDPA_BACKENDS)}, got {self.sdpa_backends!r}")
        if self.cuda_graphs and self.compile and self.compile_mode in ("reduce-overhead", "max-autotune"):
            raise ValueError(
                f"cuda_graphs: compile_mode {self.compile_mode!r} makes its own CUDA graphs; "
                "use 'default' or 'max-autotune-no-cudagraphs' with cuda_graphs"
            )

    @classmethod
    def from_kwargs(cls, **kwargs: object) -> TrackerOptions:
        """Options from keyword arguments; an unknown name is a ``TypeError`` listing the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown tracker option(s) {unknown}; known: {sorted(known)}")
        return cls(**kwargs)  # type: ignore[arg-type]

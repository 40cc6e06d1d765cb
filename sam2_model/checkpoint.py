"""Loading the official SAM 2 / 2.1 checkpoints (and ours, which share their format).

One pure function (:func:`prepare_state_dict`) unwraps and validates a state dict against
the model's expected keys and shapes; errors say what is wrong and, when the file belongs
to another model size, which configuration matches it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

from .config import CONFIGS, SAM2Config

__all__ = [
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "expected_shapes",
    "guess_config_name",
    "load_checkpoint",
    "prepare_state_dict",
    "read_checkpoint",
    "save_checkpoint",
]

# Top-level names of a SAM 2 state dict: how we tell a SAM 2 checkpoint from anything else.
SAM2_PREFIXES = (
    "image_encoder.",
    "memory_attention.",
    "memory_encoder.",
    "sam_prompt_encoder.",
    "sam_mask_decoder.",
    "obj_ptr_proj.",
    "maskmem_tpos_enc",
    "no_mem_embed",
)
# Prefixes training wrappers add (DistributedDataParallel, torch.compile).
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(ValueError):
    """A checkpoint could not be used; the message says why."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


class CheckpointFormatError(CheckpointError):
    """The file is not a SAM 2 checkpoint (not a PyTorch file, or no SAM 2 weights in it)."""


class CheckpointMismatchError(CheckpointError):
    """A SAM 2 checkpoint of another model (size or version) than the one being loaded."""


def read_checkpoint(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a checkpoint file into a state dict (unwrapping ``{"model": state_dict}``).

    Loaded with ``weights_only=True``: a file holding arbitrary Python objects is refused.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointNotFoundError(
            f"checkpoint file not found: {str(p)!r}. Pass the path of an official SAM 2 checkpoint "
            "(e.g. sam2.1_hiera_tiny.pt from github.com/facebookresearch/sam2) or of one written by sam2-train."
        )
    if not p.is_file():
        raise CheckpointFormatError(f"checkpoint path {str(p)!r} is not a file")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler raises anything on garbage: all mean "unreadable"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointFormatError(
            f"{str(p)!r} is not a readable PyTorch checkpoint ({type(err).__name__}: {first})"
        ) from err
    return unwrap_state_dict(obj, source=str(p))


def unwrap_state_dict(obj: object, source: str = "checkpoint") -> dict[str, Tensor]:
    """``{"model": sd}`` or a bare ``sd`` -> ``sd``, with wrapper prefixes stripped."""
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(f"{source} holds a {type(obj).__name__}, not a state dict")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointFormatError(f"{source} is not a state dict: entry {bad[0]!r} is not a named tensor")
    state = dict(obj)
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    if not any(k.startswith(SAM2_PREFIXES) for k in state):
        sample = ", ".join(list(state)[:3]) or "none"
        raise CheckpointFormatError(
            f"{source} is not a SAM 2 checkpoint: none of its {len(state)} tensors has a SAM 2 name "
            f"(first keys: {sample})"
        )
    return state


@lru_cache(maxsize=16)
def _expected_shapes_cached(config: SAM2Config) -> tuple[tuple[str, tuple[int, ...]], ...]:
    from .modeling.sam2 import SAM2Model

    with torch.device("meta"):
        model = SAM2Model(config)
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def expected_shapes(config: SAM2Config) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a model's state dict (computed without allocating weights)."""
    return dict(_expected_shapes_cached(config.replace(image_size=1024)))


def _shape_map(state: Mapping[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def guess_config_name(state: Mapping[str, Tensor]) -> str | None:
    """The registered configuration whose keys and shapes match ``state`` exactly."""
    shapes = _shape_map(state)
    for name, config in CONFIGS.items():
        if expected_shapes(config) == shapes:
            return name
    return None


def _closest_config_name(state: Mapping[str, Tensor]) -> str:
    shapes = set(_shape_map(state).items())

    def score(name: str) -> float:
        exp = set(expected_shapes(CONFIGS[name]).items())
        return len(exp & shapes) / len(exp | shapes)

    return max(CONFIGS, key=score)


def _examples(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def prepare_state_dict(
    state: Mapping[str, Tensor],
    expected: Mapping[str, tuple[int, ...]],
    model_name: str = "the model",
    source: str = "checkpoint",
) -> dict[str, Tensor]:
    """Validate a SAM 2 state dict against a model's keys and shapes (pure: no loading).

    Raises:
        CheckpointMismatchError: keys missing or unexpected, or shapes differ. The message
            lists examples and names the registered config the checkpoint matches.
    """
    state = unwrap_state_dict(state, source)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k])]
    if not (missing or unexpected or wrong):
        return state
    problems = []
    if wrong:
        k = wrong[0]
        problems.append(
            f"{len(wrong)} tensors of another shape (e.g. {k}: file {tuple(state[k].shape)}, "
            f"model {tuple(expected[k])})"
        )
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {_examples(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {_examples(unexpected)})")
    match = guess_config_name(state)
    if match is not None:
        hint = f"The file is a {match!r} checkpoint: build the model with build_sam2({match!r}, ...)."
    else:
        hint = f"It matches no registered config exactly; the closest is {_closest_config_name(state)!r}."
    raise CheckpointMismatchError(f"{source} does not fit {model_name}: {'; '.join(problems)}. {hint}")


def load_checkpoint(model: nn.Module, checkpoint: str | os.PathLike | Mapping[str, Tensor]) -> nn.Module:
    """Load an official (or sam2-train) checkpoint into ``model``, strictly.

    Args:
        model: a :class:`sam2_model.SAM2Model`.
        checkpoint: path of a ``.pt`` file (``{"model": state_dict}`` or a bare state dict),
            or an in-memory state dict.
    Returns:
        ``model``, with the weights loaded (moved to the model's device and dtype).
    """
    if isinstance(checkpoint, Mapping):
        source, raw = "state dict", dict(checkpoint)
    else:
        source, raw = repr(str(checkpoint)), read_checkpoint(checkpoint)
    config = getattr(model, "config", None)
    name = repr(config.name) if config is not None else type(model).__name__
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state = prepare_state_dict(raw, expected, model_name=f"model {name}", source=source)
    model.load_state_dict(state, strict=True)
    return model


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **extra: object) -> None:
    """Write ``{"model": state_dict, **extra}``: the official format, readable by both."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"model": state, **extra}, Path(path))

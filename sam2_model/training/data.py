"""Training clips: sampled from synthetic videos or a DAVIS-layout dataset, augmented, and
turned into model-size tensors."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..data.davis import DavisDataset, VideoSample
from ..data.synthetic import SyntheticConfig, generate_video
from ..transforms import normalize_image
from .augment import AugmentConfig, Clip, augment_clip

__all__ = ["ClipSource", "ClipStream", "clip_tensors", "reappearance_windows", "sample_clip_tensors"]

DEFAULT_AUGMENT = AugmentConfig()


class ClipSource:
    """Random augmented clips of ``clip_length`` frames.

    Args:
        data: ``"synthetic"`` (a window of a new synthetic video per clip) or a DAVIS-layout folder.
        clip_length: frames per clip (shorter videos repeat their last frame).
        synthetic: settings of the synthetic videos.
        seed: unused here (the caller's generator drives sampling); kept for the record.
        augment: augmentation settings (``None``: no augmentation).
        reappear_prob: synthetic data only: the chance that a clip is a window in which an
            object visible on its first frame vanishes (hidden or out of the frame) and comes
            back, when the video has one (re-finding objects is the hard part of tracking).
    """

    def __init__(
        self,
        data: str,
        clip_length: int,
        synthetic: SyntheticConfig,
        seed: int = 0,
        augment: AugmentConfig | None = DEFAULT_AUGMENT,
        cache_videos: int = 8,
        reappear_prob: float = 0.0,
    ) -> None:
        self.clip_length = clip_length
        self.reappear_prob = reappear_prob
        # clips are windows of longer videos, as from a real dataset: objects hidden or gone
        # in a clip may have been seen before it or come back within it
        self.synthetic = dataclasses.replace(synthetic, num_frames=max(synthetic.num_frames, clip_length))
        self.augment = augment
        self.dataset = None if data == "synthetic" else DavisDataset(data)
        self._cache: OrderedDict[str, VideoSample] = OrderedDict()
        self._cache_size = cache_videos

    def _video(self, name: str) -> VideoSample:
        if name not in self._cache:
            self._cache[name] = self.dataset.load(name)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return self._cache[name]

    def sample(self, rng: np.random.Generator) -> Clip:
        """One clip: frames ``[T, H, W, 3]`` uint8 and object-id masks ``[T, H, W]``."""
        if self.dataset is None:
            # even seeds only: odd seeds are held out for evaluation (see sam2_model.eval)
            seed = 2 * int(rng.integers(2**30 - 1))
            starts = range(self.synthetic.num_frames - self.clip_length + 1)
            video = None
            if self.reappear_prob > 0 and rng.random() < self.reappear_prob:
                video = generate_video(seed, self.synthetic)  # the whole video: where objects vanish
                starts = reappearance_windows(video.visibility, self.clip_length) or starts
            start = starts[int(rng.integers(len(starts)))]
            if video is None:  # only the window is rendered (the same frames as in the whole video)
                video = generate_video(seed, self.synthetic, frames=range(start, start + self.clip_length))
            window = range(start - video.first_frame, start - video.first_frame + self.clip_length)
            clip = Clip(np.stack([video.frames[t] for t in window]), np.stack([video.label_map(t) for t in window]))
        else:
            sample = self._video(self.dataset.names[int(rng.integers(len(self.dataset)))])
            n = len(sample.frames)
            start = int(rng.integers(0, max(n - self.clip_length, 0) + 1))
            idx = [min(start + i, n - 1) for i in range(self.clip_length)]
            clip = Clip(np.stack([sample.frames[i] for i in idx]), np.stack([sample.masks[i] for i in idx]))
        return augment_clip(clip, rng, self.augment) if self.augment is not None else clip


def reappearance_windows(visibility: list[dict[int, float]], clip_length: int) -> list[int]:
    """Start frames of the windows in which some object visible on the first frame is
    gone (visibility 0) on a later frame and visible again after it."""
    starts = []
    for s in range(len(visibility) - clip_length + 1):
        window = visibility[s : s + clip_length]
        for obj_id, first in window[0].items():
            vis = [v.get(obj_id, 0.0) for v in window]
            gone = next((k for k, v in enumerate(vis) if v == 0.0), None)
            if first > 0 and gone is not None and any(v > 0 for v in vis[gone:]):
                starts.append(s)
                break
    return starts


def clip_tensors(
    clip: Clip, size: int, max_objects: int, rng: np.random.Generator, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Model inputs and targets of a clip.

    Returns:
        normalised frames ``[T, 3, S, S]`` and bool masks ``[T, K, S, S]`` of up to
        ``max_objects`` objects visible on frame 0 (``K = 0`` if none is).
    """
    frames = torch.stack(
        [
            normalize_image(np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.BICUBIC)), device)
            for f in clip.frames
        ]
    )
    masks = np.stack(
        [np.asarray(Image.fromarray(m).resize((size, size), Image.Resampling.NEAREST)) for m in clip.masks]
    )
    present = [int(i) for i in np.unique(masks[0]) if i != 0]
    if len(present) > max_objects:
        present = sorted(rng.choice(present, size=max_objects, replace=False).tolist())
    gt = np.stack([masks == i for i in present], axis=1) if present else np.zeros((len(masks), 0, size, size), bool)
    return frames, torch.as_tensor(gt, device=device)


class ClipStream(torch.utils.data.IterableDataset):
    """Endless clips for a ``DataLoader`` with worker processes: ``(frames [T, 3, S, S],
    masks [T, K, S, S])`` on the CPU, K >= 1 objects visible on the first frame.

    Each worker draws from its own generator, seeded by ``(seed, start, worker id)`` (and the
    training process's rank, when several train together): a run resumed at step ``start``
    gets fresh clips (not the ones an uninterrupted run would have drawn; resumption is exact
    only without workers).
    """

    def __init__(
        self, source: ClipSource, size: int, max_objects: int, seed: int, start: int = 0, rank: int = 0
    ) -> None:
        super().__init__()
        self.source, self.size, self.max_objects = source, size, max_objects
        self.seed, self.start, self.rank = seed, start, rank

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        info = torch.utils.data.get_worker_info()
        key = [self.seed, self.start, info.id if info is not None else 0] + ([self.rank] if self.rank else [])
        rng = np.random.default_rng(key)
        cpu = torch.device("cpu")
        while True:
            yield sample_clip_tensors(self.source, self.size, self.max_objects, rng, cpu)


def sample_clip_tensors(
    source: ClipSource, size: int, max_objects: int, rng: np.random.Generator, device: torch.device
) -> tuple[Tensor, Tensor]:
    """:func:`clip_tensors` of the next clip of ``source`` with at least one object visible on
    its first frame (clips without one are skipped)."""
    while True:
        frames, masks = clip_tensors(source.sample(rng), size, max_objects, rng, device)
        if masks.shape[1] > 0:
            return frames, masks

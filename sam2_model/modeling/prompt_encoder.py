"""SAM's prompt encoder: points and box corners become sparse tokens (random Fourier
position features plus a learned type embedding), a mask becomes a dense map."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .common import LayerNorm2d, autocast_state

__all__ = ["PromptEncoder", "RandomPositionEncoding"]

# Point label values understood by the prompt encoder.
LABEL_PAD, LABEL_NEG, LABEL_POS, LABEL_BOX_TL, LABEL_BOX_BR = -1, 0, 1, 2, 3


class RandomPositionEncoding(nn.Module):
    """Fourier features of 2-D coordinates with a fixed random Gaussian frequency matrix."""

    def __init__(self, num_pos_feats: int = 64, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def encode(self, coords: Tensor) -> Tensor:
        """Coordinates in ``[0, 1]``, ``[..., 2]`` (x, y) -> ``[..., 2F]``."""
        coords = 2 * coords - 1
        coords = coords @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat((coords.sin(), coords.cos()), dim=-1)

    def dense(self, size: tuple[int, int]) -> Tensor:
        """Encoding of every cell centre of an ``h x w`` grid: ``[2F, h, w]``."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        grid = torch.stack((xs[None, :].expand(h, w), ys[:, None].expand(h, w)), dim=-1)  # [h, w, 2]
        return self.encode(grid).permute(2, 0, 1)  # HWC -> CHW

    def encode_pixels(self, coords: Tensor, image_size: tuple[int, int]) -> Tensor:
        """Pixel coordinates ``[B, N, 2]`` in an ``(H, W)`` image -> ``[B, N, 2F]``."""
        h, w = image_size
        norm = torch.stack((coords[..., 0] / w, coords[..., 1] / h), dim=-1)
        return self.encode(norm.float())


class PromptEncoder(nn.Module):
    """Encodes clicks, boxes and masks for the mask decoder.

    Args:
        embed_dim: token width.
        image_embedding_size: ``(h, w)`` of the image features (stride 16).
        input_image_size: ``(H, W)`` of the model input the coordinates refer to.
        mask_in_chans: hidden channels of the mask branch.
    """

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int = 16,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = image_embedding_size
        self.input_image_size = input_image_size
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.pe_layer = RandomPositionEncoding(embed_dim // 2)
        # negative click, positive click, box top-left, box bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)
        self._dense_pe_cache: tuple[tuple, Tensor] | None = None  # (grid, matrix identity), encoding

    def dense_pe(self) -> Tensor:
        """Position encoding of the image feature grid: ``[1, C, h, w]``.

        Without gradients it is computed once per precision (its matrix product runs in bf16
        under bf16 autocast, as in the official code) and kept until the matrix changes."""
        g = self.pe_layer.positional_encoding_gaussian_matrix
        cacheable = not torch.is_grad_enabled() and not torch.compiler.is_compiling()
        key = (self.image_embedding_size, g.device, g.dtype, g.data_ptr(), g._version, autocast_state(g.device))
        if cacheable and self._dense_pe_cache is not None and self._dense_pe_cache[0] == key:
            return self._dense_pe_cache[1]
        pe = self.pe_layer.dense(self.image_embedding_size)[None]
        if cacheable:
            self._dense_pe_cache = (key, pe)
        return pe

    def _type_table(self) -> Tensor:
        """Embeddings indexed by ``label + 1``: pad, negative, positive, box corners."""
        return torch.cat([self.not_a_point_embed.weight] + [e.weight for e in self.point_embeddings])

    def embed_points(self, points: Tensor, labels: Tensor, pad: bool) -> Tensor:
        """``points [B, N, 2]`` (input pixels), ``labels [B, N]`` -> ``[B, N(+1), C]``."""
        points = points + 0.5  # pixel centres
        if pad:
            points = torch.cat((points, points.new_zeros(points.shape[0], 1, 2)), dim=1)
            labels = torch.cat((labels, labels.new_full((labels.shape[0], 1), LABEL_PAD)), dim=1)
        pe = self.pe_layer.encode_pixels(points, self.input_image_size)
        labels = labels.long()
        pe = pe * (labels != LABEL_PAD)[..., None]  # padding points carry no position
        return pe + self._type_table()[labels + 1]

    def embed_boxes(self, boxes: Tensor) -> Tensor:
        """``boxes [B, 4]`` (x0, y0, x1, y1 input pixels) -> two corner tokens ``[B, 2, C]``."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        pe = self.pe_layer.encode_pixels(corners, self.input_image_size)
        corner_types = torch.cat((self.point_embeddings[2].weight, self.point_embeddings[3].weight))  # [2, C]
        return pe + corner_types

    def embed_masks(self, masks: Tensor) -> Tensor:
        """Mask logits ``[B, 1, 4h, 4w]`` -> ``[B, C, h, w]``."""
        return self.mask_downscaling(masks)

    def forward(
        self,
        points: tuple[Tensor, Tensor] | None,
        boxes: Tensor | None,
        masks: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        """Sparse tokens ``[B, N, C]`` and dense embedding ``[B, C, h, w]``.

        A padding point is appended to the points when no box is given.
        """
        if points is not None:
            batch = points[0].shape[0]
        elif boxes is not None:
            batch = boxes.shape[0]
        elif masks is not None:
            batch = masks.shape[0]
        else:
            batch = 1
        device = self.no_mask_embed.weight.device
        sparse = [torch.empty((batch, 0, self.embed_dim), device=device)]
        if points is not None:
            sparse.append(self.embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            sparse.append(self.embed_boxes(boxes))
        if masks is not None:
            dense = self.embed_masks(masks)
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, h, w)
        return torch.cat(sparse, dim=1), dense

"""Model configurations: frozen dataclasses and a registry of the official sizes.

Every official SAM 2 / 2.1 checkpoint has a named configuration here. Fields whose value
is shared by all official models have that value as default; the registry only spells out
what differs between sizes and between SAM 2.0 and 2.1.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["CONFIGS", "HieraConfig", "SAM2Config", "config_names", "get_config"]


@dataclass(frozen=True)
class HieraConfig:
    """The Hiera image trunk (hierarchical ViT with windowed attention)."""

    embed_dim: int = 96  # channels of the first stage (stride 4)
    num_heads: int = 1  # attention heads of the first stage
    stages: tuple[int, ...] = (1, 2, 7, 2)  # number of blocks in each of the 4 stages
    global_att_blocks: tuple[int, ...] = (5, 7, 9)  # block indices with global attention
    window_spec: tuple[int, ...] = (8, 4, 14, 7)  # attention window size of each stage
    window_pos_embed_bkg_size: tuple[int, int] = (7, 7)  # grid of the background pos-embed
    q_pool: int = 3  # how many stage transitions pool the queries (downsample)
    q_stride: tuple[int, int] = (2, 2)  # pooling stride at a stage transition
    dim_mul: float = 2.0  # channel multiplier at each stage transition
    head_mul: float = 2.0  # head-count multiplier at each stage transition
    mlp_ratio: float = 4.0  # hidden width of the block MLP relative to its channels

    @property
    def depth(self) -> int:
        """Total number of blocks."""
        return sum(self.stages)

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Channels of each stage, shallow to deep."""
        return tuple(int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages)))

    @property
    def channel_list(self) -> tuple[int, ...]:
        """Channels of each stage, deep to shallow (the order the FPN neck takes)."""
        return self.stage_dims[::-1]


@dataclass(frozen=True)
class SAM2Config:
    """A whole SAM 2 model: trunk, neck, prompt/mask heads, memory encoder and attention."""

    name: str  # registry name, e.g. "sam2.1_hiera_tiny"
    trunk: HieraConfig = field(default_factory=HieraConfig)  # the image trunk
    image_size: int = 1024  # square side the frames are resized to (multiple of 32)
    d_model: int = 256  # channels of the neck, the memory attention and the SAM heads
    mem_dim: int = 64  # channels of the encoded memories and of the pointer tokens
    backbone_stride: int = 16  # stride of the features the heads and memory work on
    fpn_top_down_levels: tuple[int, ...] = (2, 3)  # FPN levels receiving top-down features
    # memory
    num_maskmem: int = 7  # memory slots: the conditioning slot + 6 previous frames
    memory_attention_layers: int = 4  # layers of the memory attention
    memory_attention_ffn_dim: int = 2048  # hidden width of its feed-forward blocks
    memory_attention_dropout: float = 0.1  # dropout inside it (training only)
    rope_theta: float = 10000.0  # RoPE base frequency of the memory attention
    mask_downsampler_stride: int = 2  # stride of each conv of the memory mask downsampler
    mask_downsampler_total_stride: int = 16  # total downsampling of masks to memory size
    fuser_layers: int = 2  # ConvNeXt blocks fusing mask and image features in memory
    sigmoid_scale_for_mem_enc: float = 20.0  # mask probability scale before memory encoding
    sigmoid_bias_for_mem_enc: float = -10.0  # and bias
    # SAM heads
    decoder_depth: int = 2  # layers of the two-way transformer
    decoder_heads: int = 8  # its attention heads
    decoder_mlp_dim: int = 2048  # its MLP hidden width
    mask_in_chans: int = 16  # hidden channels of the prompt encoder's mask branch
    num_multimask_outputs: int = 3  # candidate masks for ambiguous prompts (+1 single)
    iou_head_depth: int = 3  # layers of the IoU prediction MLP
    multimask_min_pt_num: int = 0  # fewest clicks (a box counts 2) that give 3 masks
    multimask_max_pt_num: int = 1  # most clicks that give 3 masks
    multimask_output_for_tracking: bool = True  # also 3 candidates while tracking
    use_multimask_token_for_obj_ptr: bool = True  # pointer from the chosen candidate
    stability_delta: float = 0.05  # single-mask stability check: logit margin
    stability_thresh: float = 0.98  # and the IoU below which the best candidate is used
    binarize_mask_from_pts_for_mem_enc: bool = True  # clicked frames: binary memory mask
    # object pointers
    max_obj_ptrs_in_encoder: int = 16  # most object pointers attended to per frame
    add_tpos_enc_to_obj_ptrs: bool = True  # temporal position encoding on pointers (2.1)
    proj_tpos_enc_in_obj_ptrs: bool = True  # project that encoding to mem_dim (2.1)
    use_signed_tpos_enc_to_obj_ptrs: bool = True  # signed temporal distance (2.1)
    no_obj_embed_spatial: bool = True  # learned "occluded" embedding on memories (2.1)

    def __post_init__(self) -> None:
        if self.image_size % 32 != 0 or self.image_size < 64:
            raise ValueError(f"image_size must be a multiple of 32 and >= 64, got {self.image_size}")
        if self.d_model % self.mem_dim != 0:
            raise ValueError("d_model must be a multiple of mem_dim (pointers are split into tokens)")
        if self.proj_tpos_enc_in_obj_ptrs and not self.add_tpos_enc_to_obj_ptrs:
            raise ValueError("proj_tpos_enc_in_obj_ptrs needs add_tpos_enc_to_obj_ptrs")

    @property
    def embedding_size(self) -> int:
        """Side of the stride-16 feature map the heads and memory work on."""
        return self.image_size // self.backbone_stride

    @property
    def low_res_size(self) -> int:
        """Side of the low-resolution mask logits (stride 4)."""
        return self.embedding_size * 4

    def replace(self, **changes: object) -> SAM2Config:
        """A copy with some fields changed (e.g. ``image_size``)."""
        return dataclasses.replace(self, **changes)


def _sizes() -> dict[str, HieraConfig]:
    return {
        "tiny": HieraConfig(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9)),
        "small": HieraConfig(embed_dim=96, num_heads=1, stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13)),
        "base_plus": HieraConfig(
            embed_dim=112,
            num_heads=2,
            stages=(2, 3, 16, 3),
            global_att_blocks=(12, 16, 20),
            window_pos_embed_bkg_size=(14, 14),
        ),
        "large": HieraConfig(
            embed_dim=144,
            num_heads=2,
            stages=(2, 6, 36, 4),
            global_att_blocks=(23, 33, 43),
            window_spec=(8, 4, 16, 8),
        ),
    }


def _registry() -> dict[str, SAM2Config]:
    configs: dict[str, SAM2Config] = {}
    for size, trunk in _sizes().items():
        name21 = f"sam2.1_hiera_{size}"
        configs[name21] = SAM2Config(name=name21, trunk=trunk)
        name20 = f"sam2_hiera_{size}"
        configs[name20] = SAM2Config(
            name=name20,
            trunk=trunk,
            add_tpos_enc_to_obj_ptrs=False,
            proj_tpos_enc_in_obj_ptrs=False,
            use_signed_tpos_enc_to_obj_ptrs=False,
            no_obj_embed_spatial=False,
        )
    return configs


CONFIGS: dict[str, SAM2Config] = _registry()

# Our own small model (not an official one): the demo's, trained on synthetic video by
# `scripts/train_demo.sh` (about 2.3 h on 2 CPU cores). Same architecture, a fraction of the width.
CONFIGS["sam2_ros_demo"] = SAM2Config(
    name="sam2_ros_demo",
    trunk=HieraConfig(
        embed_dim=24,
        num_heads=1,
        stages=(1, 1, 2, 1),
        global_att_blocks=(3,),
        window_spec=(8, 4, 8, 4),
        window_pos_embed_bkg_size=(4, 4),
    ),
    image_size=256,
    # 128 channels in the heads and memory attention: 0.879 J&F on validation videos against
    # 0.817 for 64 (docs/demo-model-experiments.md); the trunk stays narrow (wider ones train
    # slowly from random weights)
    d_model=128,
    mem_dim=32,
    memory_attention_layers=2,
    memory_attention_ffn_dim=256,
    decoder_heads=4,
    decoder_mlp_dim=256,
    # one mask per prompt and per frame: synthetic shapes are unambiguous, and a small model
    # trained briefly cannot rank 3 candidates reliably (its IoU head lags its masks)
    multimask_min_pt_num=1,
    multimask_max_pt_num=0,
    multimask_output_for_tracking=False,
    stability_thresh=0.0,
)
OFFICIAL_CONFIG_NAMES = tuple(n for n in CONFIGS if n != "sam2_ros_demo")

# Names people type for the same models (the official config files and hub ids).
_ALIASES = {
    "t": "tiny",
    "s": "small",
    "b+": "base_plus",
    "base-plus": "base_plus",
    "l": "large",
}


def config_names() -> list[str]:
    """All registered configuration names."""
    return sorted(CONFIGS)


def _canonical(name: str) -> str:
    key = name.strip().lower().replace("-", "_").removesuffix(".yaml").removesuffix(".pt")
    key = key.rsplit("/", 1)[-1]
    if key in CONFIGS:
        return key
    for prefix in ("sam2.1_hiera_", "sam2_hiera_", "sam2.1_", "sam2_"):
        if key.startswith(prefix):
            size = key[len(prefix) :]
            version = "sam2.1" if prefix.startswith("sam2.1") else "sam2"
            return f"{version}_hiera_{_ALIASES.get(size, size)}"
    return key


def get_config(name: str | SAM2Config, image_size: int | None = None) -> SAM2Config:
    """Look up a configuration by name (``sam2.1_hiera_tiny``, ``sam2.1_hiera_t.yaml`` ...).

    Args:
        name: a registry name, an official config or checkpoint file name, or a config.
        image_size: overrides the input size (multiple of 32); ``None`` keeps 1024.
    """
    if isinstance(name, SAM2Config):
        config = name
    else:
        key = _canonical(name)
        if key not in CONFIGS:
            raise ValueError(f"unknown model config {name!r}; known: {', '.join(config_names())}")
        config = CONFIGS[key]
    if image_size is not None and image_size != config.image_size:
        config = config.replace(image_size=image_size)
    return config

r"""Plain ViT encoders (DINO v1) with the names Lightning Pose's checkpoints give them.

Design: docs/pose-internals.md, "pose.networks.vit".
"""

from __future__ import annotations

import torch
from torch import nn

PATCH_SIZE = 16
HEAD_CHANNELS = 64
PRETRAINED_GRID = 14  # 224 / 16: the grid the position embeddings were made for
LAYER_NORM_EPS = 1e-12
OUTPUT_STRIDE = PATCH_SIZE
# Lightning Pose name -> (width, depth)
DINO_VITS: dict[str, tuple[int, int]] = {"vits_dino": (384, 12), "vitb_dino": (768, 12)}


class Attention(nn.Module):
    """Multi-head self-attention over tokens (N, T, C)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.heads = width // HEAD_CHANNELS
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.o_proj = nn.Linear(width, width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Attend over the tokens (same shape out)."""
        n, t, c = tokens.shape

        def split(x: torch.Tensor) -> torch.Tensor:  # (N, T, C) -> (N, heads, T, 64)
            return x.reshape(n, t, self.heads, HEAD_CHANNELS).transpose(1, 2)

        query, key, value = (
            split(self.q_proj(tokens)),
            split(self.k_proj(tokens)),
            split(self.v_proj(tokens)),
        )
        weights = torch.softmax(query @ key.transpose(2, 3) * HEAD_CHANNELS**-0.5, dim=-1)
        attended = (weights @ value).transpose(1, 2).reshape(n, t, c)
        return self.o_proj(attended)


class Mlp(nn.Module):
    """Two linear layers with an exact GELU between them."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Transform each token."""
        return self.fc2(nn.functional.gelu(self.fc1(tokens)))


class Block(nn.Module):
    """A pre-norm transformer block with Hugging Face ``ViTLayer``'s names."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.layernorm_before = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.attention = Attention(width)
        self.layernorm_after = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Run the block on the tokens."""
        tokens = tokens + self.attention(self.layernorm_before(tokens))
        return tokens + self.mlp(self.layernorm_after(tokens))


class PatchEmbeddings(nn.Module):
    """The 16x16 patch projection (``patch_embeddings.projection``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.projection = nn.Conv2d(3, width, PATCH_SIZE, stride=PATCH_SIZE)


class Embeddings(nn.Module):
    """Class token, patch embedding and position embeddings (``embeddings.*``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position_embeddings = nn.Parameter(torch.zeros(1, 1 + PRETRAINED_GRID**2, width))
        self.patch_embeddings = PatchEmbeddings(width)


class VisionTransformer(nn.Module):
    """A ViT encoder at a fixed input size: (N, 3, H, W) -> (N, T + 1, width) normed tokens."""

    def __init__(self, width: int, depth: int, input_size: tuple[int, int]) -> None:
        super().__init__()
        height, width_px = input_size
        if height % PATCH_SIZE or width_px % PATCH_SIZE:
            raise ValueError(f"input size {input_size} is not a multiple of {PATCH_SIZE}")
        self.grid = (height // PATCH_SIZE, width_px // PATCH_SIZE)
        self.embeddings = Embeddings(width)
        self.layers = nn.ModuleList(Block(width) for _ in range(depth))
        self.layernorm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        # The position embeddings resized to this input's grid: derived from the weights, so
        # not saved, and refreshed whenever weights are loaded.
        self.register_buffer("grid_positions", self.resized_positions(), persistent=False)
        self.register_load_state_dict_post_hook(_refresh_grid_positions)

    def resized_positions(self) -> torch.Tensor:
        """(1, 1 + h*w, width) position embeddings for this input's token grid."""
        positions = self.embeddings.position_embeddings.detach()
        if self.grid == (PRETRAINED_GRID, PRETRAINED_GRID):
            return positions.clone()  # the size they were made for: used as they are
        width = positions.shape[-1]
        patches = positions[:, 1:].reshape(1, PRETRAINED_GRID, PRETRAINED_GRID, width)
        resized = nn.functional.interpolate(
            patches.permute(0, 3, 1, 2), size=self.grid, mode="bicubic", align_corners=False
        )
        return torch.cat((positions[:, :1], resized.permute(0, 2, 3, 1).reshape(1, -1, width)), 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return the normed tokens, class token first."""
        patches = self.embeddings.patch_embeddings.projection(images).flatten(2).transpose(1, 2)
        cls = self.embeddings.cls_token.expand(images.shape[0], -1, -1)
        tokens = torch.cat((cls, patches), dim=1) + self.grid_positions
        for block in self.layers:
            tokens = block(tokens)
        return self.layernorm(tokens)


def _refresh_grid_positions(module: nn.Module, incompatible_keys: object) -> None:
    assert isinstance(module, VisionTransformer)
    module.grid_positions = module.resized_positions()


class DinoBackbone(nn.Module):
    """Lightning Pose's ``VisionEncoder`` at inference: images -> (N, width, S, S) features."""

    def __init__(self, name: str, input_size: tuple[int, int]) -> None:
        super().__init__()
        if name not in DINO_VITS:
            raise ValueError(f"unknown DINO ViT {name!r}; known: {', '.join(DINO_VITS)}")
        if input_size[0] != input_size[1]:
            raise ValueError(
                f"input size {input_size}: Lightning Pose reshapes a ViT's tokens to a square map"
            )
        width, depth = DINO_VITS[name]
        self.out_channels = width
        self.vision_encoder = VisionTransformer(width, depth, input_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return the tokens without the class token, as a (N, width, h, w) map."""
        tokens = self.vision_encoder(images)[:, 1:]
        h, w = self.vision_encoder.grid
        return tokens.reshape(tokens.shape[0], h, w, -1).permute(0, 3, 1, 2)

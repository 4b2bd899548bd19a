"""CLIP's vision tower as upstream uses it (microsoft/BridgeTower 90f4bac, src/modules/clip_model.py:
`LayerNorm`, `QuickGELU`, `ResidualAttentionBlock`, `Transformer`, `VisualTransformer` with
model_type BT, `CLIP`), in plain torch.nn for bench/pytorch/bridgetower_eager.py.
"""
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class VisionConfig:
    """CLIP `VisualTransformer` (heads = width // 64, as upstream `CLIP.__init__`)."""
    width: int = 768
    num_layers: int = 12
    patch_size: int = 16
    image_size: int = 384
    # CLIP's text-tower leftovers that `CLIP.__init__` creates and nothing uses ([77, 512] in BASE).
    context_length: int = 77
    text_width: int = 512


class ClipLayerNorm(nn.LayerNorm):
    """clip_model.py `LayerNorm`: computes in float32 and casts back."""

    def forward(self, x):
        return super().forward(x.type(torch.float32)).type(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-LN block on [L, N, D]: x + attn(ln_1(x)), x + mlp(ln_2(x)); packed q,k,v in_proj."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = ClipLayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = ClipLayerNorm(width)

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class ClipTransformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])


class VisualTransformer(nn.Module):
    """`VisualTransformer` with vit_layernorm_shared=True (one ln_post for every block output), no proj."""

    def __init__(self, c: VisionConfig):
        super().__init__()
        w = c.width
        self.conv1 = nn.Conv2d(3, w, kernel_size=c.patch_size, stride=c.patch_size, bias=False)
        scale = w ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn((c.image_size // c.patch_size) ** 2 + 1, w))
        self.ln_pre = ClipLayerNorm(w)
        self.transformer = ClipTransformer(w, c.num_layers, w // 64)
        self.ln_post = ClipLayerNorm(w)

    def forward_pre(self, x):
        """conv1 patches -> prepend class embedding -> + positional embedding -> ln_pre -> [L, N, D]."""
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.ln_pre(x).permute(1, 0, 2)

    def forward_post(self, x):
        return self.ln_post(x.permute(1, 0, 2))


class CLIP(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.visual = VisualTransformer(c)
        self.positional_embedding = nn.Parameter(torch.empty(c.context_length, c.text_width).normal_(std=0.01))
        self.ln_final = ClipLayerNorm(c.text_width)

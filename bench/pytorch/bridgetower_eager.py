"""BridgeTower in plain torch.nn: the PyTorch anchor of bench/train.ts, without transformers,
pytorch_lightning or sacred (none of them is installable on this project's machines).

A re-implementation, not upstream's module: it mirrors microsoft/BridgeTower at commit 90f4bac
(`src/modules/bt_module.py` `BTTransformer`, `clip_model.py`, `bert_model.py`, `heads.py`) and
transformers 4.17's `RobertaModel`, with the same module tree, so that upstream's state_dict keys
are this model's keys and a released `.ckpt` loads with `load_state_dict(strict=True)`; the same
op order, dropout positions and GELU flavours (exact erf GELU in RoBERTa, the cross-modal layers
and the heads; QuickGELU only inside CLIP). `bench/pytorch/check_eager.py` verifies it against the
upstream-written fixtures in ../shared/fixtures/bridgetower-tiny.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from eager_bert import BertCrossLayer, Pooler, RobertaModel, TextConfig
from eager_clip import CLIP, VisionConfig
from eager_heads import EARLY_HEADS, LATE_HEADS, LinkTower

# transformers 4.17 `get_extended_attention_mask`: (1 - mask) * -10000.0, not finfo.min.
MASK_FILL = -10000.0


@dataclass
class BridgeTowerConfig:
    text: TextConfig = field(default_factory=TextConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    hidden_size: int = 768
    num_layers: int = 6
    num_heads: int = 12
    mlp_ratio: int = 4
    drop_rate: float = 0.1
    # upstream's cross-modal BertConfig gets max_position_embeddings = max_text_len; no layer uses it
    max_text_len: int = 50
    # task heads: name -> its size (vqa: the label count, itc: the contrastive size, others: 1)
    heads: Dict[str, int] = field(default_factory=lambda: {"vqa": 3129})
    head_hidden_scale: float = 2
    nlvr2_drop_rate: float = 0.1


class BridgeTower(nn.Module):
    """bt_module.py `BTTransformer` (CLIP + RoBERTa, model_type BT): modules registered in its order."""

    def __init__(self, c: BridgeTowerConfig):
        super().__init__()
        self.config = c
        h, eps_cross = c.hidden_size, 1e-12  # the cross-modal RobertaConfig keeps BertConfig's 1e-12
        self.cross_modal_text_transform = nn.Linear(c.text.hidden_size, h)
        self.cross_modal_image_transform = nn.Linear(c.vision.width, h)
        # NLVR2 re-creates it with 3 rows (image 2 gets type 2)
        self.token_type_embeddings = nn.Embedding(3 if "nlvr2" in c.heads else 2, h)
        self.vit_model = CLIP(c.vision)
        self.text_transformer = RobertaModel(c.text)
        cross = lambda: BertCrossLayer(h, c.num_heads, h * c.mlp_ratio, eps_cross, c.drop_rate)
        self.cross_modal_image_layers = nn.ModuleList([cross() for _ in range(c.num_layers)])
        self.cross_modal_text_layers = nn.ModuleList([cross() for _ in range(c.num_layers)])
        self.cross_modal_image_pooler = Pooler(h)
        self.cross_modal_text_pooler = Pooler(h)
        self.temperature = nn.Parameter(torch.ones([]) * 0.07)
        for name, build in EARLY_HEADS.items():
            if name in c.heads:
                for attr, module in build(c, c.heads[name]):
                    setattr(self, attr, module)
        self.cross_modal_text_layernorm = nn.LayerNorm(h)
        self.cross_modal_image_layernorm = nn.LayerNorm(h)
        self.cross_modal_text_link_tower = nn.ModuleList([LinkTower(h) for _ in range(c.num_layers - 1)])
        self.cross_modal_image_link_tower = nn.ModuleList([LinkTower(h) for _ in range(c.num_layers - 1)])
        for name, build in LATE_HEADS.items():
            if name in c.heads:
                for attr, module in build(c, c.heads[name]):
                    setattr(self, attr, module)

    def infer(self, text_ids, text_masks, image, image_token_type_idx: int = 1, trace: Optional[Dict[str, List[torch.Tensor]]] = None):
        """`BTTransformer.infer`: the first layers of both encoders, then the cross-modal layers, each
        fed by a bridge (link tower) from the next unimodal layer. `trace`, when given, collects
        the unimodal features the fixtures store (`text_embeds`, `image_embeds`: after the
        cross-modal transforms, before the token types)."""
        text_layers = self.text_transformer.encoder.layer
        blocks = self.vit_model.visual.transformer.resblocks
        visual = self.vit_model.visual
        text_embeds = self.text_transformer.embeddings(text_ids)
        extend_text_masks = (1.0 - text_masks[:, None, None, :].to(text_embeds.dtype)) * MASK_FILL
        split_index = len(text_layers) - self.config.num_layers + 1
        for layer in text_layers[:split_index]:
            text_embeds = layer(text_embeds, extend_text_masks)
        image_embeds = visual.forward_pre(image.type(visual.conv1.weight.dtype))
        for block in blocks[:split_index]:
            image_embeds = block(image_embeds)
        image_embeds_ = visual.forward_post(image_embeds)

        x = self.cross_modal_text_transform(text_embeds)
        text_tt = self.token_type_embeddings(torch.zeros(1, dtype=torch.long, device=x.device)).expand_as(x)
        record = (lambda key, t: trace.setdefault(key, []).append(t)) if trace is not None else (lambda key, t: None)
        record("text_embeds", x)
        x = self.cross_modal_text_layernorm(x + text_tt)
        image_t = self.cross_modal_image_transform(image_embeds_)
        record("image_embeds", image_t)
        image_tt = self.token_type_embeddings(torch.full((1,), image_token_type_idx, dtype=torch.long, device=x.device)).expand_as(image_t)
        y = self.cross_modal_image_layernorm(image_t + image_tt)
        extend_image_masks = torch.zeros(y.size(0), 1, 1, y.size(1), dtype=y.dtype, device=y.device)  # all ones -> (1 - 1) * -10000

        x1 = self.cross_modal_text_layers[0](x, y, extend_text_masks, extend_image_masks)
        y1 = self.cross_modal_image_layers[0](y, x, extend_image_masks, extend_text_masks)
        for link, i in enumerate(range(split_index, len(text_layers))):
            text_embeds = text_layers[i](text_embeds, extend_text_masks)
            image_embeds = blocks[i](image_embeds)
            image_t = self.cross_modal_image_transform(visual.forward_post(image_embeds))
            text_t = self.cross_modal_text_transform(text_embeds)
            record("text_embeds", text_t)
            record("image_embeds", image_t)
            x1_ = self.cross_modal_text_link_tower[link](text_t + text_tt, x1)
            y1_ = self.cross_modal_image_link_tower[link](image_t + image_tt, y1)
            # both directions attend to the other modality's layer input (the pre-update pair)
            x1 = self.cross_modal_text_layers[link + 1](x1_, y1_, extend_text_masks, extend_image_masks)
            y1 = self.cross_modal_image_layers[link + 1](y1_, x1_, extend_image_masks, extend_text_masks)
        cls_feats = torch.cat([self.cross_modal_text_pooler(x1), self.cross_modal_image_pooler(y1)], dim=-1)
        return {"text_feats": x1, "image_feats": y1, "cls_feats": cls_feats, "extend_text_masks": extend_text_masks}


def vqa_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """objectives.compute_vqa: BCE-with-logits (mean) x the label count."""
    return F.binary_cross_entropy_with_logits(logits, targets) * targets.shape[1]


def base_vqa_config(image_size: int = 384, drop_rate: float = 0.1, max_text_len: int = 50) -> BridgeTowerConfig:
    """BridgeTower_ftfpt_base_vqav2's shapes (bench/base-checkpoint.ts `baseVqaArchitecture`)."""
    text = TextConfig(hidden_dropout=drop_rate, attention_dropout=drop_rate)
    return BridgeTowerConfig(text=text, vision=VisionConfig(image_size=image_size), drop_rate=drop_rate, max_text_len=max_text_len, heads={"vqa": 3129}, head_hidden_scale=2)

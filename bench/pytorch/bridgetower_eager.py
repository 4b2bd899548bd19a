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
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

# transformers 4.17 `get_extended_attention_mask`: (1 - mask) * -10000.0, not finfo.min.
MASK_FILL = -10000.0


@dataclass
class TextConfig:
    """RoBERTa: what upstream reads from `RobertaModel.from_pretrained(config['tokenizer'])`."""
    vocab_size: int = 50265
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    pad_token_id: int = 1
    layer_norm_eps: float = 1e-5
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1


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


@dataclass
class BridgeTowerConfig:
    text: TextConfig = field(default_factory=TextConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    hidden_size: int = 768
    num_layers: int = 6
    num_heads: int = 12
    mlp_ratio: int = 4
    drop_rate: float = 0.1
    # upstream builds its cross-modal BertConfig with max_position_embeddings = max_text_len
    max_text_len: int = 50
    # task heads: name -> its size (vqa: labels, nlvr2/snli/itm/mlm: True, itc: contrastive size)
    heads: Dict[str, int] = field(default_factory=lambda: {"vqa": 3129})
    head_hidden_scale: float = 2
    nlvr2_drop_rate: float = 0.1


# ---------------------------------------------------------------- RoBERTa (transformers 4.17)

class RobertaEmbeddings(nn.Module):
    """transformers 4.17 `RobertaEmbeddings`: word + token type, then + position, LayerNorm, dropout."""

    def __init__(self, c: TextConfig):
        super().__init__()
        self.padding_idx = c.pad_token_id
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size, padding_idx=c.pad_token_id)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout)
        # 4.17 registers it persistent, so every checkpoint carries it; ids are given, so it is unused.
        self.register_buffer("position_ids", torch.arange(c.max_position_embeddings).expand((1, -1)))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # `create_position_ids_from_input_ids`: pads keep padding_idx, real tokens count from padding_idx + 1.
        mask = input_ids.ne(self.padding_idx).int()
        position_ids = (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + self.padding_idx
        token_type_ids = torch.zeros_like(input_ids)
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class BertSelfAttention(nn.Module):
    """bert_model.py `BertSelfAttention` (absolute positions): scores / sqrt(d) + mask, softmax, dropout."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.head_size = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size()[:-1] + (self.heads, self.head_size)).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask, context=None, context_mask=None):
        # cross-attention: keys and values from the other modality, and that modality's mask
        source, mask = (hidden_states, attention_mask) if context is None else (context, context_mask)
        query = self.split(self.query(hidden_states))
        key, value = self.split(self.key(source)), self.split(self.value(source))
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_size)
        probs = self.dropout(F.softmax(scores + mask, dim=-1))
        out = torch.matmul(probs, value).permute(0, 2, 1, 3).contiguous()
        return out.view(out.size()[:-2] + (self.heads * self.head_size,))


class BertSelfOutput(nn.Module):
    """bert_model.py `BertSelfOutput` / `BertOutput`: post-LN `LayerNorm(dropout(dense(h)) + residual)`."""

    def __init__(self, inner: int, hidden: int, eps: float, dropout: float):
        super().__init__()
        self.dense = nn.Linear(inner, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states, residual):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + residual)


class BertAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float, hidden_dropout: float, attention_dropout: float):
        super().__init__()
        self.self = BertSelfAttention(hidden, heads, attention_dropout)
        self.output = BertSelfOutput(hidden, hidden, eps, hidden_dropout)

    def forward(self, hidden_states, attention_mask, context=None, context_mask=None):
        return self.output(self.self(hidden_states, attention_mask, context, context_mask), hidden_states)


class BertIntermediate(nn.Module):
    """`BertIntermediate` with ACT2FN['gelu'] = exact erf GELU."""

    def __init__(self, hidden: int, inner: int):
        super().__init__()
        self.dense = nn.Linear(hidden, inner)

    def forward(self, x):
        return F.gelu(self.dense(x))


class BertLayer(nn.Module):
    """bert_model.py `BertLayer` (encoder use): self-attention, then the feed-forward chunk."""

    def __init__(self, hidden, heads, inner, eps, hidden_dropout, attention_dropout):
        super().__init__()
        self.attention = BertAttention(hidden, heads, eps, hidden_dropout, attention_dropout)
        self.intermediate = BertIntermediate(hidden, inner)
        self.output = BertSelfOutput(inner, hidden, eps, hidden_dropout)

    def forward(self, x, mask):
        h = self.attention(x, mask)
        return self.output(self.intermediate(h), h)


class BertCrossLayer(nn.Module):
    """bert_model.py `BertCrossLayer`: self-attention (own mask) -> cross-attention (queries from the
    self-attention output, keys/values from the other modality) -> FFN."""

    def __init__(self, hidden, heads, inner, eps, dropout):
        super().__init__()
        self.attention = BertAttention(hidden, heads, eps, dropout, dropout)
        self.crossattention = BertAttention(hidden, heads, eps, dropout, dropout)
        self.intermediate = BertIntermediate(hidden, inner)
        self.output = BertSelfOutput(inner, hidden, eps, dropout)

    def forward(self, x, other, mask, other_mask):
        h = self.attention(x, mask)
        h = self.crossattention(h, mask, other, other_mask)
        return self.output(self.intermediate(h), h)


class RobertaEncoder(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.layer = nn.ModuleList([
            BertLayer(c.hidden_size, c.num_heads, c.intermediate_size, c.layer_norm_eps, c.hidden_dropout, c.attention_dropout)
            for _ in range(c.num_layers)
        ])


class Pooler(nn.Module):
    """heads.py `Pooler` (= `BertPooler`): tanh(dense(h[:, 0]))."""

    def __init__(self, hidden: int):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, h):
        return torch.tanh(self.dense(h[:, 0]))


class RobertaModel(nn.Module):
    """HF parameter names; BridgeTower calls `embeddings` and `encoder.layer[i]` itself, never `pooler`."""

    def __init__(self, c: TextConfig):
        super().__init__()
        self.embeddings = RobertaEmbeddings(c)
        self.encoder = RobertaEncoder(c)
        self.pooler = Pooler(c.hidden_size)


# ---------------------------------------------------------------- CLIP (clip_model.py)

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


# ---------------------------------------------------------------- heads (heads.py, bt_module.py)

class LinkTower(nn.Module):
    """heads.py `LinkTower` (BridgeTower's "add" bridge): LayerNorm(unimodal + cross-modal)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(hidden)

    def forward(self, hidden_states, cross_modal_hidden_states):
        return self.LayerNorm(hidden_states + cross_modal_hidden_states)


class FC(nn.Module):
    """heads.py `ITMHead` / `ITCHead`: one Linear named `fc`."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.fc(x)


class PredictionHeadTransform(nn.Module):
    """bert_model.py `BertPredictionHeadTransform`: dense, GELU, LayerNorm (cross-modal config eps 1e-12)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x):
        return self.LayerNorm(F.gelu(self.dense(x)))


class MLMHead(nn.Module):
    def __init__(self, hidden: int, vocab: int):
        super().__init__()
        self.transform = PredictionHeadTransform(hidden)
        self.decoder = nn.Linear(hidden, vocab, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, x):
        return self.decoder(self.transform(x)) + self.bias


def classifier(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    """bt_module.py task_head_layers == 2: Linear, LayerNorm, exact GELU, Linear ({vqa,snli,nlvr2}_classifier)."""
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.LayerNorm(n_hidden), nn.GELU(), nn.Linear(n_hidden, n_out))


# head name -> (attribute, builder(config, size)); registration order follows BTTransformer.__init__.
EARLY_HEADS = {
    "mlm": lambda c, _: [("mlm_score", MLMHead(c.hidden_size, c.text.vocab_size))],
    "itm": lambda c, _: [("itm_score", FC(2 * c.hidden_size, 2))],
    "itc": lambda c, n: [("itc_text_head", FC(c.hidden_size, n)), ("itc_image_head", FC(c.hidden_size, n))],
}
LATE_HEADS = {
    "vqa": lambda c, n: [("vqa_classifier", classifier(2 * c.hidden_size, int(2 * c.hidden_size * c.head_hidden_scale), n))],
    "nlvr2": lambda c, _: [("nlvr2_classifier", classifier(4 * c.hidden_size, int(2 * c.hidden_size * c.head_hidden_scale), 2)), ("nlvr2_classifier_dropout", nn.Dropout(c.nlvr2_drop_rate))],
    "snli": lambda c, _: [("snli_classifier", classifier(2 * c.hidden_size, int(2 * c.hidden_size * c.head_hidden_scale), 3))],
    "irtr": lambda c, _: [("rank_output", nn.Linear(2 * c.hidden_size, 1))],
}


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

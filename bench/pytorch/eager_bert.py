"""RoBERTa (transformers 4.17 `RobertaModel`, HF parameter names) and upstream's BERT layers
(microsoft/BridgeTower 90f4bac, src/modules/bert_model.py: `BertSelfAttention`, `BertSelfOutput`,
`BertAttention`, `BertIntermediate`, `BertOutput`, `BertLayer`, `BertCrossLayer`), in plain
torch.nn for bench/pytorch/bridgetower_eager.py.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


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

"""BridgeTower's bridges and task heads (microsoft/BridgeTower 90f4bac, src/modules/heads.py and the
classifiers of bt_module.py `BTTransformer.__init__`), in plain torch.nn.
"""
import torch
import torch.nn.functional as F
from torch import nn


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

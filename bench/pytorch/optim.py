"""Upstream's optimizer for the anchor: meter_utils.set_schedule's six parameter groups and the
transformers 4.17 AdamW update rule (our own code; transformers is not installable here).

The 4.17 rule differs from torch.optim.AdamW: eps is added to sqrt(v) before the bias correction
and the weight decay is applied after the update (`p -= lr * wd * p`), where torch decays first.
"""
import math
from typing import Iterable, List

import torch

# meter_utils.set_schedule: membership by substring of the parameter name.
NO_DECAY = ["bias", "LayerNorm.bias", "LayerNorm.weight", "norm.bias", "norm.weight", "norm1.bias", "norm1.weight", "norm2.bias", "norm2.weight"]
HEAD_NAMES = ["vqa_classifier", "nlvr2_classifier", "snli_classifier", "mlm_score", "itm_score", "itc_text_head", "itc_image_head"]
CROSS_MODAL_NAMES = ["cross_modal"]


def group_index(name: str):
    """0..5 = {backbone, head, cross-modal} x {decay, no decay}; None for a name that is both a
    head and cross-modal (matches none of upstream's six filters, so upstream never updates it)."""
    head = any(h in name for h in HEAD_NAMES)
    cross = any(c in name for c in CROSS_MODAL_NAMES)
    if head and cross:
        return None
    kind = 1 if head else 2 if cross else 0
    return 2 * kind + (1 if any(nd in name for nd in NO_DECAY) else 0)


def param_groups(model: torch.nn.Module, lr: float, wd: float, lr_mult_head, lr_mult_cross_modal) -> List[dict]:
    """set_schedule's groups. A float multiplier is the group's learning rate itself (upstream:
    `lr * mult if type(mult) == int else mult`)."""
    lr_head = lr * lr_mult_head if type(lr_mult_head) == int else lr_mult_head
    lr_cross = lr * lr_mult_cross_modal if type(lr_mult_cross_modal) == int else lr_mult_cross_modal
    rates = [lr, lr, lr_head, lr_head, lr_cross, lr_cross]
    groups = [{"params": [], "names": [], "weight_decay": wd if i % 2 == 0 else 0.0, "lr": rates[i]} for i in range(6)]
    for name, p in model.named_parameters():
        g = group_index(name)
        if g is not None:
            groups[g]["params"].append(p)
            groups[g]["names"].append(name)
    return groups


class HFAdamW(torch.optim.Optimizer):
    """transformers.optimization.AdamW (4.17, correct_bias=True), one tensor at a time; parameters
    whose .grad is None are skipped (as there)."""

    def __init__(self, params: Iterable, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                m.mul_(beta1).add_(p.grad, alpha=1.0 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
                denom = v.sqrt().add_(group["eps"])
                step_size = group["lr"] * math.sqrt(1.0 - beta2 ** state["step"]) / (1.0 - beta1 ** state["step"])
                p.addcdiv_(m, denom, value=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])


OPTIMIZERS = {
    "hf": lambda groups: HFAdamW(groups, lr=groups[0]["lr"], betas=(0.9, 0.98), eps=1e-8),
    "torch": lambda groups: torch.optim.AdamW(groups, lr=groups[0]["lr"], betas=(0.9, 0.98), eps=1e-8),
}


def make_optimizer(kind: str, groups: List[dict]) -> torch.optim.Optimizer:
    if kind not in OPTIMIZERS:
        raise SystemExit(f"--optimizer {kind!r}: use one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[kind]([{k: v for k, v in g.items() if k != "names"} for g in groups])

"""The anchor of bench/train.ts: one upstream BridgeTower VQA training step in PyTorch eager.

NOT RUN by this project (PyTorch is not a dependency and is not installed on its machines); written
to be run beside `bench/train.ts` on the same machine, strictly alternated with it. Untested here:
if upstream's BTTransformer asks for a config key this dict lacks, take it from upstream's
src/config.py (`config()` and `task_finetune_vqa_clip_bert`).

Setup (network needed once: roberta-base and CLIP ViT-B/16 are downloaded by upstream's constructor):

    git clone https://github.com/microsoft/BridgeTower && cd BridgeTower
    pip install torch transformers==4.17.0 pytorch_lightning==1.5.10 sacred einops timm ftfy
    PYTHONPATH=. python /path/to/bridgetower-node/bench/pytorch/train_step.py --batch 2 --size 384 --steps 3

Same step as bench/train.ts: BASE at `--size` px, 50 text tokens, dropout 0.1, all parameters
trainable, random micro-batch with soft VQA targets, loss = BCE-with-logits x labels (upstream
objectives.compute_vqa), backward, AdamW (transformers 4.17, upstream's six groups, lr 1e-5,
wd 0.01, betas (0.9, 0.98), eps 1e-8), zero_grad. Prints per step: forward+backward s, AdamW s,
peak RSS (ru_maxrss), and the torch thread count; set OMP_NUM_THREADS / --threads like the
Node run's intra-op threads.
"""
import argparse
import resource
import time

import torch
import torch.nn.functional as F
from transformers.optimization import AdamW

from src.modules.bt_module import BTTransformer


def vqa_config(size: int) -> dict:
    # upstream src/config.py: config() with task_finetune_vqa_clip_bert's overrides, BASE.
    return {
        "exp_name": "bench", "seed": 0, "datasets": ["vqa"], "loss_names": {"itm": 0, "itc": 0, "itm_itc": 0, "irtr_itm_itc": 0, "mlm": 0, "vqa": 1, "nlvr2": 0, "snli": 0, "irtr": 0},
        "vit": "ViT-B/16", "tokenizer": "roberta-base", "vocab_size": 50265, "hidden_size": 768, "num_heads": 12, "num_layers": 6, "mlp_ratio": 4,
        "drop_rate": 0.1, "max_text_len": 50, "image_size": size, "patch_size": 16, "input_text_embed_size": 768, "input_image_embed_size": 768,
        "model_type": "BT", "vit_layernorm_shared": True, "vit_remove_last": False, "vit_layernorm_init_from_vit": False,
        "temperature": 0.07, "contrastive_hidden_size": 256, "load_path": "", "test_only": False, "head_hidden_scale": 2,
        "vqav2_label_size": 3129, "task_head_layers": 2, "nlvr2_drop_rate": 0.1, "resolution_before": 224,
        "learning_rate": 1e-5, "weight_decay": 0.01, "lr_mult_head": 10, "lr_mult_cross_modal": 5,
    }


def param_groups(model: torch.nn.Module, lr: float, wd: float, mult_head: float, mult_cross: float):
    # upstream meter_utils.set_schedule: {backbone, heads, cross_modal} x {decay, no decay}.
    no_decay = ["bias", "LayerNorm.bias", "LayerNorm.weight", "norm.bias", "norm.weight", "norm1.bias", "norm1.weight", "norm2.bias", "norm2.weight"]
    heads = ["vqa_classifier", "nlvr2_classifier", "mlm_score", "itm_score", "snli_classifier"]
    groups = [[] for _ in range(6)]
    for name, p in model.named_parameters():
        decay = 0 if any(nd in name for nd in no_decay) else 1
        kind = 1 if any(h in name for h in heads) else 2 if "cross_modal" in name else 0
        groups[kind * 2 + (1 - decay)].append(p)
    rates = [lr, lr, lr * mult_head, lr * mult_head, lr * mult_cross, lr * mult_cross]
    return [{"params": ps, "weight_decay": wd if i % 2 == 0 else 0.0, "lr": rates[i]} for i, ps in enumerate(groups)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--text-len", type=int, default=50)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = vqa_config(args.size)
    model = BTTransformer(cfg)
    model.train()
    optimizer = AdamW(param_groups(model, cfg["learning_rate"], cfg["weight_decay"], cfg["lr_mult_head"], cfg["lr_mult_cross_modal"]), lr=cfg["learning_rate"], eps=1e-8, betas=(0.9, 0.98))
    g = torch.Generator().manual_seed(0)
    b, t = args.batch, args.text_len
    batch = {
        "image": [torch.randn(b, 3, args.size, args.size, generator=g)],
        "text_ids": torch.randint(3, 50265, (b, t), generator=g),
        "text_labels": torch.full((b, t), -100),
        "text_masks": torch.ones(b, t, dtype=torch.long),
    }
    targets = torch.zeros(b, cfg["vqav2_label_size"])
    for row in range(b):
        targets[row, torch.randint(0, cfg["vqav2_label_size"], (3,), generator=g)] = torch.tensor([1.0, 0.6, 0.3])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, micro-batch {b}, {args.size} px")
    for step in range(1, args.steps + 1):
        started = time.perf_counter()
        infer = model.infer(batch)
        logits = model.vqa_classifier(infer["cls_feats"])
        loss = F.binary_cross_entropy_with_logits(logits, targets) * targets.shape[1]
        loss.backward()
        fb = time.perf_counter() - started
        started = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad()
        opt = time.perf_counter() - started
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
        print(f"step {step}: forward+backward {fb:.2f} s, AdamW {opt:.2f} s, step {fb + opt:.2f} s, loss {loss.item():.1f}, peak RSS {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()

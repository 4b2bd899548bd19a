"""Verifies bench/pytorch/bridgetower_eager.py against upstream's own outputs: the tiny
checkpoints in ../shared/fixtures/bridgetower-tiny were written, and their expected tensors
computed, by upstream's PyTorch modules (see that folder's README).

    /usr/bin/python3 bench/pytorch/check_eager.py               # every check below; exit 1 on a failure
    /usr/bin/python3 bench/pytorch/check_eager.py --fixtures DIR --json

Each checkpoint loads with load_state_dict(strict=True). Tolerances are the TypeScript parity
tests' (test/models/parity-tiny.test.ts, test/train/grad-parity.test.ts): eval outputs max abs
1e-4; training loss 1e-5 relative, gradients 1e-4 relative L2 (1e-6 absolute where upstream's is
exactly zero); the AdamW update after two steps 1e-3 relative L2 over elements whose gradient is
above noise (1e-6), as test/train/pretrain-parity.test.ts, for the transformers 4.17 rule
(adamw_hf.*) and for torch.optim.AdamW (adamw_torch.*).
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bridgetower_eager import BridgeTower, vqa_loss  # noqa: E402
from checkpoint_io import config_from_checkpoint, load_checkpoint, read_safetensors  # noqa: E402
from optim import group_index, make_optimizer, param_groups  # noqa: E402

EVAL_TOLERANCE = 1e-4
LOSS_TOLERANCE = 1e-5
GRAD_TOLERANCE = 1e-4
ZERO_TOLERANCE = 1e-6
UPDATE_TOLERANCE = 1e-3
GRADIENT_NOISE = 1e-6


def task_outputs(model, out, inputs, kind):
    """The task tensors of expected_<name>.safetensors (README "Expected outputs"), by task."""
    cls = out["cls_feats"]
    table = {
        "vqa": lambda: {"vqa_logits": model.vqa_classifier(cls), "vqa_loss": vqa_loss(model.vqa_classifier(cls), inputs["vqa_targets"])},
        "snli": lambda: {"snli_logits": model.snli_classifier(cls), "snli_loss": F.cross_entropy(model.snli_classifier(cls), inputs["snli_labels"])},
        "pt": lambda: {"itm_logits": model.itm_score(cls), "mlm_logits": model.mlm_score(out["text_feats"])},
        "irtr": lambda: {"itm_logits": model.itm_score(cls), "rank_scores": model.rank_output(cls)[:, 0]},
        "nlvr2": lambda: nlvr2_outputs(model, cls, inputs),
        "irtr_itm_itc": lambda: retrieval_outputs(model, cls, inputs),
    }
    return table[kind]() if kind in table else {}


def nlvr2_outputs(model, cls, inputs):
    trace = {}
    out2 = model.infer(inputs["input_ids"], inputs["attention_mask"], inputs["pixel_values_2"], image_token_type_idx=2, trace=trace)
    logits = model.nlvr2_classifier(torch.cat([cls, out2["cls_feats"]], dim=-1))  # eval: the dropout is off
    return {"image_embeds_2": torch.stack(trace["image_embeds"]), "text_feats_2": out2["text_feats"], "image_feats_2": out2["image_feats"], "cls_feats_2": out2["cls_feats"], "nlvr2_logits": logits, "nlvr2_loss": F.cross_entropy(logits, inputs["nlvr2_labels"])}


def retrieval_outputs(model, cls, inputs):
    """objectives.compute_itm_itc / compute_irtr_itm_itc_recall: ITC on the raw unimodal features
    (last RoBERTa layer, last CLIP block after ln_post; token 0), then ITM re-ranking of every
    (image, text) pair. Upstream re-ranks through infer_fusion on cached encoder outputs; a full
    infer of the pair is the same computation."""
    debug = debug_outputs(model, inputs)
    text = F.normalize(model.itc_text_head(debug["debug.text_layer_outputs"][-1][:, 0]), dim=-1, p=2)
    image = F.normalize(model.itc_image_head(debug["debug.image_layer_outputs"][-1][:, 0]), dim=-1, p=2)
    scale = torch.exp(torch.log(1 / model.temperature))
    ids, masks, pixels = inputs["input_ids"], inputs["attention_mask"], inputs["pixel_values"]
    b = ids.shape[0]
    pair = lambda i, j: model.itm_score(model.infer(ids[j:j + 1], masks[j:j + 1], pixels[i:i + 1])["cls_feats"])[0, 1]
    i2t = torch.stack([torch.stack([pair(i, j) for j in range(b)]) for i in range(b)])
    return {"itc_text_feats": text, "itc_image_feats": image, "logit_scale": scale, "itc_logits_i2t": scale * image @ text.t(), "itc_logits_t2i": scale * text @ image.t(),
            "itm_logits": model.itm_score(cls), "itm_rerank_i2t": i2t, "itm_rerank_t2i": i2t.t()}


def debug_outputs(model, inputs):
    """debug.*: every RoBERTa layer's raw output and every CLIP block's output after ln_post."""
    text = model.text_transformer
    h = text.embeddings(inputs["input_ids"])
    mask = (1.0 - inputs["attention_mask"][:, None, None, :].float()) * -10000.0
    out = {"debug.text_embedding_output": h, "text_extended_attention_mask": mask}
    layers = []
    for layer in text.encoder.layer:
        h = layer(h, mask)
        layers.append(h)
    visual = model.vit_model.visual
    x, blocks = visual.forward_pre(inputs["pixel_values"]), []
    for block in visual.transformer.resblocks:
        x = block(x)
        blocks.append(visual.forward_post(x))
    out["debug.text_layer_outputs"] = torch.stack(layers)
    out["debug.image_layer_outputs"] = torch.stack(blocks)
    return out


def load_model(fixtures, name):
    ckpt = load_checkpoint(os.path.join(fixtures, f"{name}.ckpt"))
    with open(os.path.join(fixtures, "roberta-tiny", "config.json")) as f:
        text_config = json.load(f)
    config = config_from_checkpoint(ckpt["state_dict"], ckpt["hyper_parameters"], text_config)
    model = BridgeTower(config)
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model, ckpt


def check_eval(fixtures, name, golden, kind, inputs, results):
    model, _ = load_model(fixtures, name)
    model.eval()
    expected = read_safetensors(os.path.join(fixtures, f"expected_{golden}.safetensors"))
    with torch.no_grad():
        trace = {}
        out = model.infer(inputs["input_ids"], inputs["attention_mask"], inputs["pixel_values"], trace=trace)
        ours = {"cls_feats": out["cls_feats"], "text_feats": out["text_feats"], "image_feats": out["image_feats"],
                "text_embeds": torch.stack(trace["text_embeds"]), "image_embeds": torch.stack(trace["image_embeds"])}
        ours.update(debug_outputs(model, inputs))
        ours.update(task_outputs(model, out, inputs, kind))
        # upstream infer_fusion reruns the cross-modal layers on cached encoder outputs; this model has
        # one path, so its cls_feats stand in (upstream: the two agree within 9.9e-07)
        ours["cls_feats_from_fusion"] = out["cls_feats"]
    for key, value in ours.items():
        if key not in expected:
            continue
        err = (value - expected[key]).abs().max().item()
        results.append({"check": f"{name}: {key}", "metric": "max abs", "error": err, "tolerance": EVAL_TOLERANCE, "ok": err <= EVAL_TOLERANCE})
    missing = sorted(k for k in expected if k not in ours)
    if missing:
        raise SystemExit(f"expected_{golden}.safetensors holds {', '.join(missing)}, which this check does not compute: add them to task_outputs")


def rel_l2(a, b):
    norm = b.norm().item()
    return (a - b).norm().item() / norm if norm > 0 else (a - b).abs().max().item()


def check_training(fixtures, inputs, results, variant):
    """train_vqa.*: train mode with every dropout at p = 0, loss and gradients at the checkpoint's
    weights, upstream's six groups, then two AdamW steps on the same batch: `hf` the transformers
    4.17 rule upstream trains with (adamw_hf.*), `torch` torch.optim.AdamW (adamw_torch.*)."""
    label = f"train_vqa ({variant} AdamW)"
    model, _ = load_model(fixtures, "vqa")
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    golden = read_safetensors(os.path.join(fixtures, "train_vqa.safetensors"))
    with open(os.path.join(fixtures, "train_vqa.json")) as f:
        meta = json.load(f)
    opt = meta["train_opt"]
    groups = param_groups(model, opt["learning_rate"], opt["weight_decay"], opt["lr_mult_head"], opt["lr_mult_cross_modal"])
    same = all(g["names"] == ref["params"] and g["lr"] == ref["lr"] and g["weight_decay"] == ref["weight_decay"] for g, ref in zip(groups, meta["param_groups"]))
    results.append({"check": f"{label}: six parameter groups (names, order, lr, weight decay)", "metric": "equal", "error": 0 if same else 1, "tolerance": 0, "ok": same})
    optimizer = make_optimizer(variant, groups)
    params = dict(model.named_parameters())
    initial = {n: p.detach().clone() for n, p in params.items()}
    first_grads = {}
    for step in (1, 2):
        optimizer.zero_grad(set_to_none=False)  # torch 1.11 / Lightning 1.5 default; None grads stay None
        out = model.infer(inputs["input_ids"], inputs["attention_mask"], inputs["pixel_values"])
        loss = vqa_loss(model.vqa_classifier(out["cls_feats"]), inputs["vqa_targets"])
        loss.backward()
        ref = golden[f"adamw_{variant}.loss_before_step{step}"].item()
        rel = abs(loss.item() - ref) / abs(ref)
        tol = LOSS_TOLERANCE if step == 1 else 1e-4  # step 2 starts from weights with one step of noise
        results.append({"check": f"{label}: loss before step {step}", "metric": "relative", "error": rel, "tolerance": tol, "ok": rel <= tol})
        if step == 1:
            first_grads = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
            without = sorted(n for n, p in params.items() if p.grad is None)
            results.append({"check": f"{label}: parameters without a gradient", "metric": ", ".join(without), "error": 0 if without == sorted(meta["params_without_grad"]) else 1, "tolerance": 0, "ok": without == sorted(meta["params_without_grad"])})
        optimizer.step()
    for key in (k for k in golden if k.startswith("grad.")):
        name = key[len("grad."):]
        ref, ours = golden[key], first_grads[name]
        if ref.abs().max().item() == 0:
            err, tol, metric = ours.abs().max().item(), ZERO_TOLERANCE, "max abs (reference zero)"
        else:
            err, tol, metric = rel_l2(ours, ref), GRAD_TOLERANCE, "relative L2"
        results.append({"check": f"{label}: grad {name}", "metric": metric, "error": err, "tolerance": tol, "ok": err <= tol})
    for key in (k for k in golden if k.startswith("initial.")):
        name = key[len("initial."):]
        if name in meta["params_without_grad"] or group_index(name) is None:
            continue
        keep = (golden[f"adamw_{variant}.grad_step1.{name}"].abs() >= GRADIENT_NOISE) | (golden[f"adamw_{variant}.grad_step2.{name}"].abs() >= GRADIENT_NOISE)
        ours = (params[name].detach() - initial[name])[keep]
        theirs = (golden[f"adamw_{variant}.step2.{name}"] - golden[key])[keep]
        err = rel_l2(ours, theirs)
        results.append({"check": f"{label}: update after 2 steps, {name}", "metric": "relative L2", "error": err, "tolerance": UPDATE_TOLERANCE, "ok": err <= UPDATE_TOLERANCE})


# (checkpoint, its expected_<name> file, the task tensors that file holds). vqa_legacy is vqa.ckpt
# in torch's legacy serialization; vqa_fp16 its float16 weights, evaluated in float32.
# pt_res32 (positional embedding resized at load) is not checked: this model does not resize.
EVAL_CHECKS = [
    ("vqa", "vqa", "vqa"), ("vqa_legacy", "vqa", "vqa"), ("vqa_fp16", "vqa_fp16", "vqa"), ("snli", "snli", "snli"),
    ("nlvr2", "nlvr2", "nlvr2"), ("pt", "pt", "pt"), ("irtr", "irtr", "irtr"), ("irtr_itm_itc", "irtr_itm_itc", "irtr_itm_itc"),
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default=os.path.join(here, "..", "..", "..", "shared", "fixtures", "bridgetower-tiny"))
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if not os.path.exists(os.path.join(args.fixtures, "vqa.ckpt")):
        raise SystemExit(f"no fixtures at {args.fixtures}: pass --fixtures <path to shared/fixtures/bridgetower-tiny>")
    inputs = read_safetensors(os.path.join(args.fixtures, "inputs.safetensors"))
    results = []
    for name, golden, kind in EVAL_CHECKS:
        check_eval(args.fixtures, name, golden, kind, inputs, results)
    for variant in ("hf", "torch"):
        check_training(args.fixtures, inputs, results, variant)
    failed = [r for r in results if not r["ok"]]
    if args.json:
        print(json.dumps({"torch": torch.__version__, "checks": len(results), "failed": len(failed), "results": results}))
    else:
        for r in results:
            print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['check']}: {r['metric']} {r['error']:.2e} (tolerance {r['tolerance']:g})")
        print(f"{len(results) - len(failed)}/{len(results)} checks passed (torch {torch.__version__})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

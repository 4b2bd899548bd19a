"""The anchor of bench/train.ts: one BridgeTower BASE VQA fine-tuning step in PyTorch eager.

    /usr/bin/python3 bench/pytorch/train_step.py --batch 2 --warmup 1 --steps 2      # 384 px, 50 tokens
    /usr/bin/python3 bench/pytorch/train_step.py --batch 8 --warmup 0 --steps 2 --threads 2 --json

The model is bench/pytorch/bridgetower_eager.py, a torch.nn re-implementation of upstream's
BTTransformer verified against upstream-written fixtures (bench/pytorch/check_eager.py), not
upstream's own module: transformers, pytorch_lightning and sacred are not installable here.
Needs only torch and numpy (Debian: `apt-get install python3-torch libopenblas0-openmp`).

The same step as bench/train.ts's `--subsets all`: BASE (RoBERTa-base 12 layers + CLIP ViT-B/16
12 blocks, 6 cross-modal layers, hidden 768, 3129 answers) at `--size` px, `--text-len` tokens
with a full mask, random weights (upstream's init_weights: N(0, 0.02)), dropout `--dropout`,
every parameter trainable, a random micro-batch with three soft VQA targets per row (as
bench/train-subset.ts `randomVqaBatch`), loss = BCE-with-logits x labels (objectives.compute_vqa),
backward, AdamW over upstream's six groups (meter_utils.set_schedule; `--optimizer hf` is the
transformers 4.17 rule upstream instantiates, `torch` is torch.optim.AdamW; lr 1e-5, wd 0.01,
lr_mult_head 50, lr_mult_cross_modal 5, betas (0.9, 0.98), eps 1e-8: train/tasks.ts's VQA
recipe), then zero_grad. Upstream clips no gradient, so no gradient norm is computed (the Node
step computes one; it is in its AdamW-side time, not here).

Per step: forward+backward s, AdamW s, zero_grad s, step s, loss, the step's own peak RSS
(VmHWM restarted through /proc/self/clear_refs "5" at its start; that also restarts ru_maxrss,
so the run's peak is the largest of these), the process's CPU user/sys seconds and minor page
faults, and the share of the cores other processes used meanwhile (/proc/stat). `--json`: one JSON object per line on stdout
after setup and after every step (the last line is the whole result), for bench/train.ts's
`--pytorch` driver; the human lines go to stderr.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bridgetower_eager import BridgeTower, base_vqa_config, vqa_loss  # noqa: E402
from optim import OPTIMIZERS, make_optimizer, param_groups  # noqa: E402

VOCAB = 50265
FIRST_REAL_ID = 3  # <s>, <pad>, </s> are 0..2
ANSWER_SCORES = [1.0, 0.6, 0.3]
RECIPE = {"learning_rate": 1e-5, "weight_decay": 0.01, "lr_mult_head": 50, "lr_mult_cross_modal": 5}


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def peak_rss_bytes() -> int:
    """VmHWM: the peak since the last restart (Linux), else ru_maxrss (the whole process)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def restart_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux: the peak then covers the whole process


def cpu_jiffies():
    """(busy jiffies of the machine, this process's own jiffies) for the others' share."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
    with open("/proc/self/stat") as f:
        own = f.read().rsplit(")", 1)[1].split()
    return busy, int(own[11]) + int(own[12])  # utime + stime


def others_share(before, after, seconds: float) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    others = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, others / ticks / (seconds * os.cpu_count()))


def init_weights(module: torch.nn.Module) -> None:
    """objectives.init_weights: Linear / Embedding N(0, 0.02), zero biases, LayerNorm 1 and 0."""
    if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
        module.weight.data.normal_(mean=0.0, std=0.02)
    elif isinstance(module, torch.nn.LayerNorm):
        module.bias.data.zero_()
        module.weight.data.fill_(1.0)
    if isinstance(module, torch.nn.Linear) and module.bias is not None:
        module.bias.data.zero_()


def random_batch(batch: int, text_len: int, size: int, labels: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(FIRST_REAL_ID, VOCAB, (batch, text_len), generator=g)
    masks = torch.ones(batch, text_len, dtype=torch.long)
    pixels = (torch.rand(batch, 3, size, size, generator=g) - 0.5) * 4
    targets = torch.zeros(batch, labels)
    for row in range(batch):
        for score in ANSWER_SCORES:
            targets[row, torch.randint(0, labels, (1,), generator=g)] = score
    return ids, masks, pixels, targets


def main() -> None:
    ap = argparse.ArgumentParser(description="one BridgeTower BASE VQA training step in PyTorch eager (bench/train.ts's anchor)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--text-len", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=1, help="steps run first and reported apart (not in the driver's median)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: the cores this process may use)")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--optimizer", default="hf", choices=sorted(OPTIMIZERS), help="hf: transformers 4.17 AdamW (upstream's); torch: torch.optim.AdamW")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.size % 16:
        raise SystemExit(f"--size {args.size} is not a multiple of the patch size 16 (try {round(args.size / 16) * 16})")
    # Debian's torch 1.13 starts with 1 thread here (2 cores); ONNX Runtime's default uses every core.
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch, "imageSize": args.size, "textLength": args.text_len,
              "dropout": args.dropout, "optimizer": args.optimizer, "stage": "start", "warmup": [], "steps": []}

    def report(stage: str) -> None:
        result["stage"] = stage
        # clear_refs "5" also restarts ru_maxrss, so the run's peak is the largest measured one
        result["peakRss"] = max([result.get("peakRssAfterSetup", 0)] + [t["peakRss"] for t in result["warmup"] + result["steps"]])
        if args.json:
            print(json.dumps(result), flush=True)

    started = time.perf_counter()
    config = base_vqa_config(args.size, args.dropout, args.text_len)
    model = BridgeTower(config)
    model.apply(init_weights)
    model.train()
    groups = param_groups(model, RECIPE["learning_rate"], RECIPE["weight_decay"], RECIPE["lr_mult_head"], RECIPE["lr_mult_cross_modal"])
    optimizer = make_optimizer(args.optimizer, groups)
    ids, masks, pixels, targets = random_batch(args.batch, args.text_len, args.size, config.heads["vqa"])
    result["parameters"] = sum(p.numel() for p in model.parameters())
    result["parameterTensors"] = sum(1 for _ in model.parameters())
    result["setupMs"] = (time.perf_counter() - started) * 1000
    result["peakRssAfterSetup"] = peak_rss_bytes()
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, micro-batch {args.batch}, {args.size} px, {args.text_len} tokens; "
        f"{result['parameters'] / 1e6:.1f} M parameters in {result['parameterTensors']} tensors; setup {result['setupMs'] / 1000:.1f} s")
    report("setup")

    def one_step(index: int) -> dict:
        restart_peak()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        before, t0 = cpu_jiffies(), time.perf_counter()
        logits = model.vqa_classifier(model.infer(ids, masks, pixels)["cls_feats"])
        loss = vqa_loss(logits, targets)
        loss.backward()
        t1 = time.perf_counter()
        if index == 0:
            # what gets a gradient: every parameter but the unused ones (text pooler, CLIP text-tower leftovers, temperature)
            with_grad = [p for p in model.parameters() if p.grad is not None]
            result["trainedParameters"] = sum(p.numel() for p in with_grad)
            result["trainedTensors"] = len(with_grad)
        optimizer.step()
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=False)  # torch 1.11 / Lightning 1.5's default, as upstream trained
        t3 = time.perf_counter()
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        # CPU seconds and page faults of this process in the step: sys time and minor faults would
        # show freed memory going back to the kernel and being faulted in again
        cpu = {"cpuUserMs": (usage1.ru_utime - usage0.ru_utime) * 1000, "cpuSysMs": (usage1.ru_stime - usage0.ru_stime) * 1000, "minorFaults": usage1.ru_minflt - usage0.ru_minflt}
        timing = {**cpu, "forwardBackwardMs": (t1 - t0) * 1000, "adamwMs": (t2 - t1) * 1000, "zeroMs": (t3 - t2) * 1000, "totalMs": (t3 - t0) * 1000,
                  "loss": loss.item(), "peakRss": peak_rss_bytes(), "othersShare": others_share(before, cpu_jiffies(), t3 - t0)}
        log(f"step {index + 1}: {timing['totalMs'] / 1000:.2f} s (forward+backward {timing['forwardBackwardMs'] / 1000:.2f}, AdamW {timing['adamwMs'] / 1000:.2f}, "
            f"zero_grad {timing['zeroMs'] / 1000:.2f}; CPU user {cpu['cpuUserMs'] / 1000:.1f} s, sys {cpu['cpuSysMs'] / 1000:.1f} s, {cpu['minorFaults'] / 1e6:.2f} M minor faults; loss {timing['loss']:.1f}; others used {round(100 * timing['othersShare'])} % of the cores; "
            f"step peak RSS {timing['peakRss'] / 1e9:.2f} GB)")
        return timing

    for i in range(args.warmup):
        result["warmup"].append(one_step(i))
        report(f"step {i + 1}")
    for i in range(args.steps):
        result["steps"].append(one_step(args.warmup + i))
        report(f"step {args.warmup + i + 1}")
    log(f"trained {result['trainedParameters'] / 1e6:.1f} M parameters ({result['trainedTensors']} tensors get a gradient); "
        f"peak RSS {max(t['peakRss'] for t in result['warmup'] + result['steps']) / 1e9:.2f} GB (the largest step's)")
    report("done")


if __name__ == "__main__":
    main()

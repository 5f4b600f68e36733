#!/usr/bin/env python3
"""PyTorch reference for kiln's `shakespeare-char` preset (issue 3, acceptance 6).

A character-level GPT equivalent to the model kiln trains, written against plain
`pip install torch`, CPU, 2 threads. It is the other engine in
scripts/bench-train-vs-torch.py (tokens/s) and a loss reference (val loss after 2000 steps).

    python scripts/train_torch_reference.py [--steps 200] [--json]
    python scripts/train_torch_reference.py --steps 2000 --eval-interval 250

Model (kiln's GPT-2-style switches: norm=layernorm, position=learned, mlp=gelu, tied):
  x = wte[tokens] + wpe[0..T]
  n_layer x { x += attn(ln_1(x)); x += mlp(ln_2(x)) }   (pre-norm)
  logits = ln_f(x) @ wte^T                                (tied head)
  attn: q, k, v (one fused matrix), o projections without bias, n_head heads, causal softmax(q k^T / sqrt(d))
  mlp: down(gelu_erf(up(x))), hidden 4 * n_embd, no biases
  LayerNorm eps 1e-5, with weight and bias (kiln's layernorm); dropout 0.
Init (GPT-2 / nanoGPT): N(0, 0.02) for embeddings and matrices, N(0, 0.02/sqrt(2*n_layer)) for
  the two projections into the residual stream (attention o and MLP down), norms 1/0.
Optimiser: AdamW(betas=(0.9, 0.99), eps=1e-8; torch's fused CPU kernel), weight decay 0.1 on the projection matrices
  only (not embeddings, norms or biases: kiln's rule); gradient clip at global norm 1.0.
LR (nanoGPT's get_lr, 0-based step it): lr*(it+1)/(warmup+1) for it < warmup;
  min_lr for it > decay_steps; else min_lr + 0.5*(1+cos(pi*(it-warmup)/(decay_steps-warmup)))*(lr-min_lr).
  lr=1e-3, min_lr=1e-4, warmup=100, decay_steps=2000 (fixed; independent of --steps, so a
  200-step run is the first 200 steps of the 2000-step run).
Data: data/shakespeare/input.txt, vocabulary = sorted distinct characters, first 90% of the
  characters train and last 10% val (nanoGPT's prepare.py). Each step draws batch_size random
  windows of block_size+1 characters from train (torch.randint, seeded).
Eval: mean loss over eval_iters fixed batches of train and of val (drawn once with their own
  seed), after every eval_interval steps and after the last step; at the end also the loss
  over the whole val split in non-overlapping windows ("val_loss_full").
tokens/s = steps * batch_size * block_size / (wall time of the training steps only: batch
  draw, forward, backward, clip, optimiser step; evaluation and start-up excluded).

--variant nanogpt switches to nanoGPT's exact defaults instead (bias=False: LayerNorm
without bias; weight decay on every >=2-D parameter, embeddings included).
"""

import argparse
import json
import math
import os
import sys
import statistics
import time

THREADS_DEFAULT = 2
# Limit the BLAS/OpenMP pools before torch is imported (set_num_threads alone leaves
# the interop pool and some MKL/OpenBLAS paths free to start more).
_threads = THREADS_DEFAULT
for _i, _a in enumerate(sys.argv):
    if _a == "--threads" and _i + 1 < len(sys.argv):
        _threads = int(sys.argv[_i + 1])
    elif _a.startswith("--threads="):
        _threads = int(_a.split("=", 1)[1])
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = str(_threads)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, ln_bias):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd, eps=1e-5, bias=ln_bias)
        # q, k and v as one matrix (one GEMM, as nanoGPT's c_attn); the same model as
        # kiln's separate q_proj/k_proj/v_proj, each N(0, 0.02).
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.o = nn.Linear(n_embd, n_embd, bias=False)
        self.ln_2 = nn.LayerNorm(n_embd, eps=1e-5, bias=ln_bias)
        self.up = nn.Linear(n_embd, 4 * n_embd, bias=False)
        self.down = nn.Linear(4 * n_embd, n_embd, bias=False)

    def attn(self, x):
        b, t, c = x.shape
        h = self.n_head

        def heads(z):
            return z.view(b, t, h, c // h).transpose(1, 2)  # (b, h, t, d)

        q, k, v = self.qkv(x).split(c, dim=2)
        y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
        return self.o(y.transpose(1, 2).reshape(b, t, c))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.down(F.gelu(self.up(self.ln_2(x))))  # exact (erf) GELU
        return x


class CharGPT(nn.Module):
    def __init__(self, vocab, block_size, n_layer, n_head, n_embd, ln_bias):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, ln_bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, eps=1e-5, bias=ln_bias)
        residual_std = 0.02 / math.sqrt(2 * n_layer)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = residual_std if name.endswith(("o.weight", "down.weight")) else 0.02
                nn.init.normal_(p, mean=0.0, std=std)
            # LayerNorm weight 1 and bias 0 are nn.LayerNorm's own init

    def forward(self, idx, targets=None):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied head
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


def _adamw_impl():
    """The fastest AdamW implementation this torch has on CPU: fused (torch >= 2.4), else
    the multi-tensor (foreach) one. Same update rule either way."""
    try:
        torch.optim.AdamW([torch.zeros(1, requires_grad=True)], fused=True)
        return {"fused": True}
    except (RuntimeError, TypeError, ValueError):
        return {"foreach": True}


def get_lr(it, lr, min_lr, warmup, decay_steps):
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_steps or decay_steps <= warmup:
        return min_lr
    r = (it - warmup) / (decay_steps - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (lr - min_lr)


def windows(data, n, batch, block, gen):
    """n batches of random (x, y) windows, drawn with generator gen: starts uniform in
    0..len(data)-block-1, x = data[s:s+block], y = data[s+1:s+1+block]."""
    offsets = torch.arange(block)
    out = []
    for _ in range(n):
        ix = torch.randint(len(data) - block, (batch,), generator=gen)
        idx = ix[:, None] + offsets
        out.append((data[idx], data[idx + 1]))
    return out


@torch.no_grad()
def mean_loss(model, batches):
    model.eval()
    total = sum(model(x, y)[1].item() for x, y in batches) / len(batches)
    model.train()
    return total


@torch.no_grad()
def full_loss(model, data, block, batch=64):
    """Mean per-token loss over all non-overlapping windows of data."""
    model.eval()
    n = (len(data) - 1) // block
    xs = data[: n * block].view(n, block)
    ys = data[1 : n * block + 1].view(n, block)
    tot, cnt = 0.0, 0
    for i in range(0, n, batch):
        _, loss = model(xs[i : i + batch], ys[i : i + batch])
        k = xs[i : i + batch].numel()
        tot += loss.item() * k
        cnt += k
    model.train()
    return tot / cnt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(REPO, "data", "shakespeare", "input.txt"))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--eval-interval", type=int, default=250)
    ap.add_argument("--eval-iters", type=int, default=20, help="fixed eval batches per split")
    ap.add_argument("--no-full-val", action="store_true", help="skip the whole-val-split loss")
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--decay-steps", type=int, default=2000)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--threads", type=int, default=THREADS_DEFAULT)
    ap.add_argument("--variant", choices=["kiln", "nanogpt"], default="kiln",
                    help="kiln: LayerNorm with bias, no decay on embeddings (default); "
                         "nanogpt: bias=False LayerNorm, decay on all >=2-D params")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout at the end")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(args.seed)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))

    with open(args.data, "r", encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n_train = int(len(data) * 0.9)
    train, val = data[:n_train], data[n_train:]

    nanogpt = args.variant == "nanogpt"
    model = CharGPT(len(chars), args.block_size, args.n_layer, args.n_head, args.n_embd, ln_bias=not nanogpt)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        is_embedding = name.startswith(("wte.", "wpe."))
        (decay if p.dim() >= 2 and (nanogpt or not is_embedding) else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.99), eps=1e-8, **_adamw_impl(),
    )
    n_params = sum(p.numel() for p in model.parameters())

    eval_gen = torch.Generator().manual_seed(args.seed ^ 0x5EED)
    eval_train = windows(train, args.eval_iters, args.batch_size, args.block_size, eval_gen)
    eval_val = windows(val, args.eval_iters, args.batch_size, args.block_size, eval_gen)
    gen = torch.Generator().manual_seed(args.seed)

    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, variant {args.variant}; "
        f"{len(text)} chars, vocab {len(chars)}, train {len(train)} val {len(val)}; {n_params} parameters")
    first = None
    history = []
    train_time = 0.0
    step_times = []
    step_loss = float("nan")
    for it in range(args.steps):
        t0 = time.perf_counter()
        lr = get_lr(it, args.lr, args.min_lr, args.warmup, args.decay_steps)
        for g in opt.param_groups:
            g["lr"] = lr
        ((x, y),) = windows(train, 1, args.batch_size, args.block_size, gen)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        step_loss = loss.item()
        step_times.append(time.perf_counter() - t0)
        train_time += step_times[-1]
        if first is None:
            first = step_loss
        done = it + 1
        if done % args.eval_interval == 0 or done == args.steps:
            tl, vl = mean_loss(model, eval_train), mean_loss(model, eval_val)
            history.append({"step": done, "train_loss": tl, "val_loss": vl})
            log(f"step {done:5d}: train {tl:.4f} val {vl:.4f} (lr {lr:.2e}, "
                f"{done * args.batch_size * args.block_size / train_time:,.0f} tokens/s)")
        elif done % 50 == 0 or done == 1:
            log(f"step {done:5d}: loss {step_loss:.4f}")

    tokens = args.steps * args.batch_size * args.block_size
    result = {
        "engine": "pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "variant": args.variant,
        "adamw": "fused" if "fused" in _adamw_impl() else "foreach",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "block_size": args.block_size,
        "vocab": len(chars),
        "params": n_params,
        "tokens": tokens,
        "train_seconds": train_time,
        "tokens_per_s": tokens / train_time,
        # Robust to bursts of load from other tenants of a shared machine.
        "median_step_tokens_per_s": args.batch_size * args.block_size / statistics.median(step_times),
        "first_step_loss": first,
        "last_step_loss": step_loss,
        "final_train_loss": history[-1]["train_loss"],
        "val_loss": history[-1]["val_loss"],
        "evals": history,
    }
    if not args.no_full_val:
        result["val_loss_full"] = full_loss(model, val, args.block_size)
    log(f"{args.steps} steps, {tokens} tokens in {train_time:.2f} s: {result['tokens_per_s']:,.0f} tokens/s; "
        f"train {result['final_train_loss']:.4f} val {result['val_loss']:.4f}"
        + (f" (whole val split {result['val_loss_full']:.4f})" if "val_loss_full" in result else ""))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()

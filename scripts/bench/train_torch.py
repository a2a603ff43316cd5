"""PyTorch reference for the training benchmarks: the same decoder as regmix-model
(RMSNorm, RoPE rotate-half, grouped-query causal attention, SwiGLU, untied output, no
biases), the same AdamW (0.9, 0.95, 1e-8, wd 0.1 on every parameter), gradient clipping at
1.0, the same batch of random tokens and the same thread count. Eager mode with PyTorch's
fused causal attention (scaled_dot_product_attention). Prints one JSON line like
`train-bench`.

    python train_torch.py --preset micro --micro-batch 16 --threads 2
    python train_torch.py --device cuda --preset regmix-1m --vocab 50432 --micro-batch 32 \
        --accumulation 16 [--compile]

On CUDA it trains as the CUDA backend does: fp32 master weights and AdamW (fused), bf16
autocast for the matrix products, flash attention through scaled_dot_product_attention.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# (layers, heads, kv groups, d_model, mlp, context) — crates/regmix-model/src/config.rs
PRESETS = {
    "micro": (2, 4, 4, 64, 192, 128),
    "small": (4, 4, 2, 128, 384, 256),
    "regmix-1m": (2, 8, 8, 256, 512, 2048),
}


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_cache(t, hd, theta=10000.0):
    inv = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.outer(torch.arange(t, dtype=torch.float64), inv)
    return torch.cat([ang.cos()] * 2, -1).float(), torch.cat([ang.sin()] * 2, -1).float()


def apply_rope(x, cos, sin):
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], -1)
    return x * cos + rot * sin


class Block(nn.Module):
    def __init__(self, d, nh, ng, ff):
        super().__init__()
        self.nh, self.ng, self.hd = nh, ng, d // nh
        self.input_layernorm = RMSNorm(d)
        self.q_proj = nn.Linear(d, nh * self.hd, bias=False)
        self.k_proj = nn.Linear(d, ng * self.hd, bias=False)
        self.v_proj = nn.Linear(d, ng * self.hd, bias=False)
        self.o_proj = nn.Linear(nh * self.hd, d, bias=False)
        self.post_attention_layernorm = RMSNorm(d)
        self.gate_proj = nn.Linear(d, ff, bias=False)
        self.up_proj = nn.Linear(d, ff, bias=False)
        self.down_proj = nn.Linear(ff, d, bias=False)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(b, t, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(b, t, self.ng, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(b, t, self.ng, self.hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.ng != self.nh:
            k = k.repeat_interleave(self.nh // self.ng, dim=1)
            v = v.repeat_interleave(self.nh // self.ng, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o_proj(a.transpose(1, 2).reshape(b, t, d))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Model(nn.Module):
    def __init__(self, vocab, layers, nh, ng, d, ff, t):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([Block(d, nh, ng, ff) for _ in range(layers)])
        self.norm = RMSNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        cos, sin = rope_cache(t, d // nh)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if n.endswith(("o_proj.weight", "down_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        x = self.embed_tokens(idx)
        for blk in self.layers:
            x = blk(x, self.cos, self.sin)
        return self.lm_head(self.norm(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="micro")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--accumulation", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    a = ap.parse_args()
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    layers, nh, ng, d, ff, t = PRESETS[a.preset]
    vocab = (a.vocab + 63) // 64 * 64
    model = Model(vocab, layers, nh, ng, d, ff, t).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1,
                            **({"fused": True} if cuda else {}))
    g = torch.Generator().manual_seed(7)
    win = torch.randint(0, a.vocab, (a.micro_batch, t + 1), generator=g)
    x, y = win[:, :-1].contiguous().to(dev), win[:, 1:].contiguous().to(dev)
    def loss_of(x, y):
        return F.cross_entropy(model(x).view(-1, vocab).float(), y.reshape(-1))

    # With --compile the loss is compiled with the model, so Inductor may fuse the
    # cross-entropy into the output layer as our fused classifier does.
    loss_fn = torch.compile(loss_of) if a.compile else loss_of
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    tokens_per_step = a.micro_batch * a.accumulation * t

    def step():
        opt.zero_grad(set_to_none=False)
        total = 0.0
        for _ in range(a.accumulation):
            with autocast:
                loss = loss_fn(x, y) / a.accumulation
            loss.backward()
            total += loss.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return float(total)

    for _ in range(a.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    if cuda:
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    tok_s = a.steps * tokens_per_step / secs
    print(json.dumps({
        "impl": f"pytorch {torch.__version__}" + (" cuda bf16" if cuda else "") + (" compile" if a.compile else " eager"),
        "preset": a.preset, "device": torch.cuda.get_device_name() if cuda else "cpu",
        "params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
        "tokens_per_step": tokens_per_step, "steps": a.steps, "seconds": secs,
        "tokens_per_s": tok_s, "final_loss": loss,
    }))


if __name__ == "__main__":
    main()

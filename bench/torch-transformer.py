"""PyTorch CPU anchor for `npm run bench -- train`: one training step (forward, backward, AdamW) of the same
MaskGIT transformer shape as the models-bench transformer (open-muse MaskGitTransformer layout: token + position
embeddings, pre-RMSNorm blocks of self-attention, cross-attention to the text states and a GELU MLP, no biases,
logits over the codebook), same batch, same thread count. Prints one JSON line. Exit 3 (with the reason on
stderr) when torch is not installed.

usage: python3 bench/torch-transformer.py --hidden 256 --layers 4 --heads 8 --batch 8 --tokens 256 --threads 2
"""
import argparse
import json
import statistics
import sys
import time

try:
    import torch
    from torch import nn
except ImportError as err:  # the bench reports the lane as not measured
    print(f"torch is not installed in {sys.executable}: {err}", file=sys.stderr)
    sys.exit(3)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Attention(nn.Module):
    def __init__(self, hidden, heads, kv_dim):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(hidden, hidden, bias=False)
        self.k = nn.Linear(kv_dim, hidden, bias=False)
        self.v = nn.Linear(kv_dim, hidden, bias=False)
        self.out = nn.Linear(hidden, hidden, bias=False)

    def forward(self, x, kv):
        b, n, d = x.shape
        h = self.heads
        q = self.q(x).view(b, n, h, d // h).transpose(1, 2)
        k = self.k(kv).view(b, kv.shape[1], h, d // h).transpose(1, 2)
        v = self.v(kv).view(b, kv.shape[1], h, d // h).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / (d // h) ** 0.5, dim=-1)
        return self.out((att @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, hidden, heads, inter, text_dim):
        super().__init__()
        self.n1, self.n2, self.n3 = RMSNorm(hidden), RMSNorm(hidden), RMSNorm(hidden)
        self.self_attn = Attention(hidden, heads, hidden)
        self.cross_attn = Attention(hidden, heads, text_dim)
        self.fc1 = nn.Linear(hidden, inter, bias=False)
        self.fc2 = nn.Linear(inter, hidden, bias=False)

    def forward(self, x, text):
        y = self.n1(x)
        x = x + self.self_attn(y, y)
        x = x + self.cross_attn(self.n2(x), text)
        return x + self.fc2(nn.functional.gelu(self.fc1(self.n3(x))))


class MaskGit(nn.Module):
    def __init__(self, codebook, tokens, hidden, layers, heads, inter, text_dim):
        super().__init__()
        self.embed = nn.Embedding(codebook + 1, hidden)  # + the mask token
        self.pos = nn.Embedding(tokens, hidden)
        self.blocks = nn.ModuleList([Block(hidden, heads, inter, text_dim) for _ in range(layers)])
        self.norm = RMSNorm(hidden)
        self.head = nn.Linear(hidden, codebook, bias=False)

    def forward(self, ids, text):
        x = self.embed(ids) + self.pos.weight[None, : ids.shape[1]]
        for blk in self.blocks:
            x = blk(x, text)
        return self.head(self.norm(x))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--codebook", type=int, default=1024)
    p.add_argument("--text-tokens", type=int, default=16)
    p.add_argument("--text-dim", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = MaskGit(a.codebook, a.tokens, a.hidden, a.layers, a.heads, 4 * a.hidden, a.text_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    ids = torch.randint(0, a.codebook + 1, (a.batch, a.tokens))
    labels = torch.randint(0, a.codebook, (a.batch, a.tokens))
    text = torch.randn(a.batch, a.text_tokens, a.text_dim)
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(ids, text)
        loss = nn.functional.cross_entropy(logits.reshape(-1, a.codebook), labels.reshape(-1), label_smoothing=0.1)
        loss.backward()
        opt.step()
        if step >= a.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "params": sum(x.numel() for x in model.parameters()),
        "step_ms": round(statistics.median(times), 1), "best_ms": round(min(times), 1), "loss": float(loss),
    }))


if __name__ == "__main__":
    main()

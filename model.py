"""
GPT-2 in one file: a config dataclass, four small modules and the model.

Parameter names and shapes follow nanoGPT's model.py, so its checkpoints load with
load_state_dict as they are, and OpenAI's GPT-2 weights load through HuggingFace.
"""

import inspect
import math
import re
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64 for faster matmuls
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # bias in Linears and LayerNorms, as GPT-2; False is a little faster


class LayerNorm(nn.Module):
    """LayerNorm whose bias can be switched off (nn.LayerNorm only offers both or neither)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):

    def __init__(self, config):
        super().__init__()
        if config.n_embd % config.n_head != 0:
            raise ValueError(f"n_embd ({config.n_embd}) must be a multiple of "
                             f"n_head ({config.n_head})")
        # query, key and value for all heads in one matmul
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.dropout = config.dropout
        # No causal-mask buffer: scaled_dot_product_attention masks by itself (is_causal),
        # and a buffer would add a key that nanoGPT's flash-attention checkpoints lack.

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_size)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        # exact (erf) GELU as nanoGPT, so its checkpoints behave as they were trained;
        # OpenAI's GPT-2 used the tanh approximation, which differs by ~1e-3 at most
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: the residual stream itself is never normalised."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


# Dense (no sparsity) peak FLOP/s from NVIDIA's datasheets, for the dtypes a GPT trains in.
# 'tf32' is what float32 matmuls reach when TF32 is allowed; a missing entry means no
# tensor-core rate for that dtype. Keys are device names with the brand and memory size taken
# out (see _chip); a variant we don't list (A10G, RTX 4090 D, a laptop part) gets None, since
# no MFU is better than a wrong one.
_H100_SXM = dict(bf16=989e12, fp16=989e12, tf32=494.5e12, fp32=67e12)
_HOPPER_NVL = dict(bf16=835.5e12, fp16=835.5e12, tf32=417.5e12, fp32=60e12)
_A100 = dict(bf16=312e12, fp16=312e12, tf32=156e12, fp32=19.5e12)
_PEAK_FLOPS = {
    "h100 hbm3": _H100_SXM,  # 'NVIDIA H100 80GB HBM3', the SXM part
    "h100 pcie": dict(bf16=756e12, fp16=756e12, tf32=378e12, fp32=51e12),
    "h100 nvl": _HOPPER_NVL,
    "h200": _H100_SXM,  # same compute as the H100 SXM, more and faster memory
    "h200 nvl": _HOPPER_NVL,
    "gh200": _H100_SXM,
    "gh200 hbm3e": _H100_SXM,
    "a100 sxm4": _A100,
    "a100 pcie": _A100,
    "l40s": dict(bf16=362e12, fp16=362e12, tf32=183e12, fp32=91.6e12),
    "l4": dict(bf16=121e12, fp16=121e12, tf32=60e12, fp32=30.3e12),
    "a10": dict(bf16=125e12, fp16=125e12, tf32=62.5e12, fp32=31.2e12),
    "rtx 4090": dict(bf16=165.2e12, fp16=165.2e12, tf32=82.6e12, fp32=82.6e12),  # fp32 accumulate
    "v100 sxm2": dict(fp16=125e12, fp32=15.7e12),  # Volta: no bf16, no tf32
    "v100 pcie": dict(fp16=112e12, fp32=14e12),
}


def _chip(device_name):
    """'NVIDIA A100-SXM4-80GB' -> 'a100 sxm4', 'NVIDIA GeForce RTX 4090' -> 'rtx 4090'."""
    words = re.split(r"[\s\-]+", device_name.lower())
    brand = ("nvidia", "tesla", "geforce")
    return " ".join(w for w in words if w and w not in brand and not re.fullmatch(r"\d+gb?", w))


def _fp32_matmul_uses_tf32():
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9, where allow_tf32 may raise
        return matmul.fp32_precision == "tf32"
    return matmul.allow_tf32


def peak_flops(device, dtype):
    """Dense peak FLOP/s of `device` (torch.device or 'cuda', 'cuda:1', 'cpu', ...) computing
    in `dtype` (torch dtype or its name), or None when we don't know it for sure."""
    device = torch.device(device)
    if device.type != "cuda":
        return None  # CPU and MPS peaks depend on the exact chip and clocks: no honest figure
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    key = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}.get(dtype)
    try:
        peaks = _PEAK_FLOPS.get(_chip(torch.cuda.get_device_name(device)))
    except (AssertionError, RuntimeError):  # no CUDA in this build or on this machine
        return None
    if key is None or peaks is None:
        return None
    if key == "fp32" and "tf32" in peaks and _fp32_matmul_uses_tf32():
        key = "tf32"
    return peaks.get(key)


class GPT(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # One matrix embeds tokens and scores them (weight tying, as GPT-2): fewer
        # parameters, and what nanoGPT's checkpoints hold.
        self.transformer.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)
        # GPT-2: each block adds two projections to the residual stream; shrinking them keeps
        # the stream's variance from growing with depth
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def get_num_params(self, non_embedding=True):
        """Parameter count. The position embedding is left out by default; the token
        embedding stays in, since through tying it is also the output layer's weight."""
        n_params = sum(p.numel() for p in self.parameters())  # a tied tensor counts once
        if non_embedding:
            n_params -= self.transformer.wpe.weight.numel()
        return n_params

    def forward(self, idx, targets=None):
        b, t = idx.size()
        if t > self.config.block_size:
            raise ValueError(f"cannot forward a sequence of length {t}: "
                             f"block_size is only {self.config.block_size}")
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)

        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                   ignore_index=-1)
        else:
            # generation only needs the next token: skip the vocab projection elsewhere
            logits = self.lm_head(x[:, [-1], :])  # a list index keeps the time dimension
            loss = None
        return logits, loss

    def load_checkpoint_weights(self, state_dict):
        """Load a state dict saved by train.py or by nanoGPT, whose checkpoints may carry
        torch.compile's '_orig_mod.' prefix and, from before flash attention, causal-mask buffers."""
        state_dict = {k.removeprefix("_orig_mod."): v for k, v in state_dict.items()}
        self.load_state_dict({k: v for k, v in state_dict.items() if not k.endswith(".attn.bias")})

    def crop_block_size(self, block_size):
        """Shrink the context, e.g. to fine-tune GPT-2 (1024) at a smaller block size."""
        if block_size > self.config.block_size:
            raise ValueError(f"crop_block_size can only shrink the context: asked for "
                             f"{block_size}, the model has {self.config.block_size}")
        self.config.block_size = block_size
        self.transformer.wpe.weight = nn.Parameter(self.transformer.wpe.weight[:block_size])
        # attention keeps no per-position buffers (see CausalSelfAttention): nothing else to crop

    @classmethod
    def from_pretrained(cls, model_type, override_args=None):
        """OpenAI's GPT-2 weights, through HuggingFace transformers."""
        config_args = {
            "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M params
            "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 350M
            "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
            "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
        }
        if model_type not in config_args:
            raise ValueError(f"unknown model_type {model_type!r}; "
                             f"choose one of {list(config_args)}")
        override_args = override_args or {}
        others = sorted(set(override_args) - {"dropout"})
        if others:
            raise ValueError(f"only 'dropout' can be overridden, not {others}")
        try:
            from transformers import GPT2LMHeadModel
        except ImportError as e:
            raise ImportError("GPT.from_pretrained needs HuggingFace transformers: "
                              "pip install transformers") from e

        config = GPTConfig(**config_args[model_type], vocab_size=50257, block_size=1024,
                           bias=True, **override_args)
        model = cls(config)
        sd = model.state_dict()
        sd_hf = GPT2LMHeadModel.from_pretrained(model_type).state_dict()

        # causal-mask buffers are not weights; lm_head is wte again (tied)
        skip = (".attn.bias", ".attn.masked_bias")
        keys_hf = [k for k in sd_hf if not k.endswith(skip) and k != "lm_head.weight"]
        keys = [k for k in sd if k != "lm_head.weight"]
        if set(keys_hf) != set(keys):
            raise RuntimeError(f"{model_type} checkpoint does not match GPT-2's layout: "
                               f"missing {sorted(set(keys) - set(keys_hf))}, "
                               f"unexpected {sorted(set(keys_hf) - set(keys))}")
        # HF keeps these in Conv1D modules, whose weights are the transpose of nn.Linear's
        transposed = ("attn.c_attn.weight", "attn.c_proj.weight",
                      "mlp.c_fc.weight", "mlp.c_proj.weight")
        with torch.no_grad():
            for k in keys:
                w = sd_hf[k].t() if k.endswith(transposed) else sd_hf[k]
                if w.shape != sd[k].shape:
                    raise RuntimeError(f"{k}: checkpoint shape {tuple(w.shape)}, "
                                       f"model {tuple(sd[k].shape)}")
                sd[k].copy_(w)
        return model

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        """AdamW that decays matrices and embeddings (2-D and up) but not biases or LayerNorm
        gains, which only shift or scale and gain nothing from being pulled to zero."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        # The fused kernel updates every tensor in one pass instead of a dozen small ops per
        # tensor: on CUDA fewer launches, on CPU (torch >= 2.4) ~3 ms less per baby-GPT step.
        fused_devices = ("cuda", "cpu") if torch.__version__ >= "2.4" else ("cuda",)
        fused = ("fused" in inspect.signature(torch.optim.AdamW).parameters
                 and device_type in fused_devices)
        extra = dict(fused=True) if fused else dict()
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **extra)

    def flops_per_iter(self, fwdbwd_per_iter):
        """Model FLOPs of fwdbwd_per_iter forward+backward passes over full blocks, estimated
        as in PaLM (appendix B): 6 per parameter per token, plus attention's 12*L*H*Q*T."""
        cfg = self.config
        N = self.get_num_params()
        L, H, Q, T = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head, cfg.block_size
        flops_per_token = 6 * N + 12 * L * H * Q * T
        return flops_per_token * T * fwdbwd_per_iter

    def estimate_mfu(self, fwdbwd_per_iter, dt, peak=None):
        """(achieved FLOP/s, model FLOPs utilisation) for an iteration that took dt seconds.
        peak is the hardware's FLOP/s (see peak_flops); without one, MFU is None."""
        if dt <= 0:
            raise ValueError(f"dt must be positive seconds, got {dt}")
        achieved = self.flops_per_iter(fwdbwd_per_iter) / dt
        return achieved, (achieved / peak if peak else None)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Extend idx (b, t) by max_new_tokens sampled tokens. Call model.eval() first."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature} (use top_k=1 for greedy)")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        for _ in range(max_new_tokens):
            # the model has seen positions only up to block_size: keep the latest tokens
            idx_cond = idx[:, -self.config.block_size:]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            probs = F.softmax(logits, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx

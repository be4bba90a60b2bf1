"""
GPT-2 in one file: a config dataclass, four small modules, the model and the KV cache its
generation keeps.

Parameter names and shapes follow nanoGPT's model.py, so its checkpoints load with
load_state_dict as they are, and OpenAI's GPT-2 weights load through HuggingFace.

A few newer ideas (from nanochat and modded-nanogpt) are options of GPTConfig, each acting in a
line or two where it applies; their defaults give GPT-2 exactly. Muon, the optimizer that pairs
with them, is the last class here.
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
    rope: bool = False  # rotary position embeddings in attention instead of the wpe table
    qk_norm: bool = False  # RMS-normalise queries and keys: attention logits stay bounded
    mlp: str = "gelu"  # 'gelu', or 'relu2' (ReLU squared: cheaper, and as good or better)
    tie_weights: bool = True  # lm_head shares the token embedding's matrix
    zero_init: bool = False  # output projections (and an untied lm_head) start at zero
    logit_softcap: float = 0.0  # > 0: logits = softcap * tanh(logits / softcap)


# what a nanoGPT checkpoint's model_args hold; the options after them are written only when set
NANOGPT_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size", "dropout")
OPTIONS = ("rope", "qk_norm", "mlp", "tie_weights", "zero_init", "logit_softcap")


class LayerNorm(nn.Module):
    """LayerNorm whose bias can be switched off (nn.LayerNorm only offers both or neither)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):

    def __init__(self, config, layer):
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
        self.qk_norm = config.qk_norm
        self.layer = layer  # which of the blocks: its place in a KVCache
        # No causal-mask buffer: scaled_dot_product_attention masks by itself (is_causal),
        # and a buffer would add a key that nanoGPT's flash-attention checkpoints lack.

    def forward(self, x, rotary=None, cache=None):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_size)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.qk_norm:
            q, k = F.rms_norm(q, (q.size(-1),)), F.rms_norm(k, (k.size(-1),))
        if rotary is not None:
            q, k = rotate(q, *rotary), rotate(k, *rotary)
        causal = True
        if cache is not None:  # generation: attend to every position run before as well
            k, v = cache.add(self.layer, k, v)
            causal = T > 1  # the prompt is causal among itself; one new token sees all before it
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=causal)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


def relu_squared(x):
    return F.relu(x).square()


def rotate(x, cos, sin):
    """Rotary position embedding: channel pairs (i, i + head_size/2) of x turn by an angle that
    grows with the position, so a query-key product depends on their distance alone."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def rotary_angles(block_size, head_size, base=10000.0):
    """cos and sin of the rotation angles, each (block_size, head_size / 2)."""
    inv_freq = base ** -(torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)
    angles = torch.outer(torch.arange(block_size, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


class MLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        if config.mlp not in ("gelu", "relu2"):
            raise ValueError(f"mlp must be 'gelu' or 'relu2', got {config.mlp!r}")
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        # exact (erf) GELU as nanoGPT, so its checkpoints behave as they were trained;
        # OpenAI's GPT-2 used the tanh approximation, which differs by ~1e-3 at most.
        # ReLU squared (Primer, So et al. 2021) costs a fraction of erf on a CPU.
        self.act = nn.GELU() if config.mlp == "gelu" else relu_squared
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: the residual stream itself is never normalised."""

    def __init__(self, config, layer):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, rotary=None, cache=None):
        x = x + self.attn(self.ln_1(x), rotary, cache)
        x = x + self.mlp(self.ln_2(x))
        return x


class KVCache:
    """The keys and values of every position run so far, for each block, so that generation runs
    each new token alone instead of the whole context again: the prompt goes in first, whole, then
    one token a call. Holds up to `size` positions; filled by GPT.forward(idx, cache=...)."""

    def __init__(self, n_layer, size):
        self.size = size
        self.pos = 0  # positions held: the next token's position
        self.k, self.v = [None] * n_layer, [None] * n_layer

    def add(self, layer, k, v):
        """Append k, v (b, n_head, t, head_size) after the positions held; all keys and values so far."""
        if self.pos and k.size(2) > 1:  # its attention would need a mask: see CausalSelfAttention
            raise ValueError("a KVCache takes the prompt first, then one token at a time")
        if self.k[layer] is None:  # made at first use, in the dtype autocast computes keys in
            b, h, _, d = k.shape
            self.k[layer], self.v[layer] = k.new_empty(b, h, self.size, d), v.new_empty(b, h, self.size, d)
        end = self.pos + k.size(2)
        self.k[layer][:, :, self.pos:end] = k
        self.v[layer][:, :, self.pos:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


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
        if config.rope and (config.n_embd // config.n_head) % 2:
            raise ValueError(f"rope needs an even head size, got n_embd / n_head = "
                             f"{config.n_embd} / {config.n_head}")
        self.config = config
        # with rope the position table is left out; otherwise the layout is nanoGPT's, in order
        wpe = {} if config.rope else dict(wpe=nn.Embedding(config.block_size, config.n_embd))
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            **wpe,
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, layer) for layer in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        if config.rope:
            # buffers, not parameters, and not saved (persistent=False): rebuilt from the config
            self._set_rotary(config.block_size)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            # One matrix embeds tokens and scores them (weight tying, as GPT-2): fewer
            # parameters, and what nanoGPT's checkpoints hold.
            self.transformer.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)
        # GPT-2: each block adds two projections to the residual stream; shrinking them keeps
        # the stream's variance from growing with depth. zero_init goes further: each block
        # starts as the identity and the first logits are uniform (modded-nanogpt, nanochat).
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
                if config.zero_init:
                    nn.init.zeros_(p)
        if config.zero_init and not config.tie_weights:  # a tied head is the embedding: keep it
            nn.init.zeros_(self.lm_head.weight)

    def _set_rotary(self, block_size, device=None):
        cos, sin = rotary_angles(block_size, self.config.n_embd // self.config.n_head)
        self.register_buffer("rotary_cos", cos.to(device), persistent=False)
        self.register_buffer("rotary_sin", sin.to(device), persistent=False)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def get_num_params(self, non_embedding=True):
        """Parameter count. Embeddings are left out by default: the position table, and the
        token table unless tying makes it the output layer's weight too."""
        n_params = sum(p.numel() for p in self.parameters())  # a tied tensor counts once
        if non_embedding:
            if "wpe" in self.transformer:
                n_params -= self.transformer.wpe.weight.numel()
            if not self.config.tie_weights:
                n_params -= self.transformer.wte.weight.numel()
        return n_params

    def forward(self, idx, targets=None, cache=None):
        """cache (a KVCache, for generation): idx continues the positions it holds, and is added to it."""
        b, t = idx.size()
        start = 0 if cache is None else cache.pos  # the position of idx's first token
        if start + t > self.config.block_size:
            raise ValueError(f"cannot forward a sequence of length {start + t}: "
                             f"block_size is only {self.config.block_size}")
        x = self.transformer.wte(idx)
        rotary = None
        if self.config.rope:
            rotary = self.rotary_cos[start:start + t], self.rotary_sin[start:start + t]
        else:
            x = x + self.transformer.wpe(torch.arange(start, start + t, dtype=torch.long, device=idx.device))
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, rotary, cache)
        x = self.transformer.ln_f(x)
        if cache is not None:
            cache.pos += t

        if targets is not None:
            logits = self.softcap(self.lm_head(x))
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                   ignore_index=-1)
        else:
            # generation only needs the next token: skip the vocab projection elsewhere
            logits = self.softcap(self.lm_head(x[:, [-1], :]))  # a list index keeps the time dim
            loss = None
        return logits, loss

    def softcap(self, logits):
        # a smooth bound on the logits: no token can grow overconfident early on (Gemma 2)
        cap = self.config.logit_softcap
        return cap * torch.tanh(logits / cap) if cap > 0 else logits

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
        if self.config.rope:
            self._set_rotary(block_size)
        else:
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

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type,
                             optimizer="adamw", muon_lr=0.02, muon_momentum=0.95):
        """AdamW that decays matrices and embeddings (2-D and up) but not biases or LayerNorm
        gains, which only shift or scale and gain nothing from being pulled to zero.
        optimizer='muon': Muon for the 2-D weights inside the blocks, AdamW as above for the
        embeddings, the head and the 1-D parameters, in one Muon optimizer."""
        if optimizer not in ("adamw", "muon"):
            raise ValueError(f"optimizer must be 'adamw' or 'muon', got {optimizer!r}")
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        muon = [p for n, p in named if optimizer == "muon" and n.startswith("transformer.h.") and p.dim() == 2]
        muon_ids = {id(p) for p in muon}
        decay = [p for n, p in named if p.dim() >= 2 and id(p) not in muon_ids]
        no_decay = [p for n, p in named if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if optimizer == "muon":
            # the loop sets each group's lr to the schedule's lr times lr_scale
            groups.append({"params": muon, "muon": True, "weight_decay": 0.0,
                           "lr_scale": muon_lr / learning_rate if learning_rate else 0.0})
            return Muon(groups, lr=learning_rate, betas=betas, momentum=muon_momentum)
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
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, cache=True, vocab=None):
        """Extend idx (b, t) by max_new_tokens sampled tokens. Call model.eval() first.
        cache=False runs the whole context again for every token, as nanoGPT does: the same tokens
        (within float rounding), slower. vocab: draw only ids below it, where the vocabulary is
        padded (GPT-2's 50257 to 50304) with ids no tokenizer decodes."""
        for idx_next in self.generate_tokens(idx, max_new_tokens, temperature, top_k, cache, vocab):
            idx = torch.cat((idx, idx_next), dim=1)
        return idx

    @torch.no_grad()
    def generate_tokens(self, idx, max_new_tokens, temperature=1.0, top_k=None, cache=True, vocab=None):
        """The max_new_tokens tokens (each (b, 1)) that extend idx (b, t), one by one as sampled."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature} (use top_k=1 for greedy)")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        block_size = self.config.block_size
        # the prompt runs once, then each new token alone against the cached keys and values
        kv = KVCache(self.config.n_layer, min(block_size, idx.size(1) + max_new_tokens)) if cache else None
        for _ in range(max_new_tokens):
            if kv is None or idx.size(1) > block_size:
                # The model has seen positions only up to block_size: keep the latest tokens, as
                # nanoGPT does. Once the window slides, each token in it has a new position and no
                # longer sees the tokens that left, so its keys and values from the second layer up
                # are not those cached, rotary positions or not: the window runs whole, at nanoGPT's cost.
                logits, _ = self(idx[:, -block_size:])
            elif kv.pos == 0:
                logits, _ = self(idx, cache=kv)
            else:
                logits, _ = self(idx[:, -1:], cache=kv)
            logits = logits[:, -1, :vocab] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            probs = F.softmax(logits, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1)
            idx = torch.cat((idx, idx_next), dim=1)
            yield idx_next


def init_draws(config):
    """Every write GPT(config) makes to its parameters, in order: (name, shape, kind, value), kind
    'normal' (mean 0, std value), 'uniform' (-value to value) or 'fill'. The random ones are all
    there, those a later write overwrites too (nn.Linear's and nn.Embedding's own inits, which
    _init_weights replaces; the token embedding's, which tying replaces), so that replaying them
    in order from the same generator state (draw_rows) gives GPT(config)'s weights exactly and
    leaves the generator where GPT(config) leaves it. A tied lm_head.weight is transformer.wte.weight."""
    c, draws = config, []
    blocks = [f"transformer.h.{i}" for i in range(c.n_layer)]
    linears = [(f"{b}.{name}", fan_in, fan_out) for b in blocks for name, fan_in, fan_out in (
        ("attn.c_attn", c.n_embd, 3 * c.n_embd), ("attn.c_proj", c.n_embd, c.n_embd),
        ("mlp.c_fc", c.n_embd, 4 * c.n_embd), ("mlp.c_proj", 4 * c.n_embd, c.n_embd))]
    head = ("lm_head", c.n_embd, c.vocab_size)
    embeddings = [("transformer.wte.weight", (c.vocab_size, c.n_embd))]
    if not c.rope:
        embeddings.append(("transformer.wpe.weight", (c.block_size, c.n_embd)))
    # the modules as __init__ makes them, each with its own init: wpe before wte (its dict is made
    # first), LayerNorms with ones and zeros, nn.Linear's kaiming_uniform_ bound as torch computes it
    draws += [(name, shape, "normal", 1.0) for name, shape in reversed(embeddings)]
    for name in [f"{b}.{ln}" for b in blocks for ln in ("ln_1", "ln_2")] + ["transformer.ln_f"]:
        draws.append((f"{name}.weight", (c.n_embd,), "fill", 1.0))
        if c.bias:
            draws.append((f"{name}.bias", (c.n_embd,), "fill", 0.0))
    for name, fan_in, fan_out in linears + [head]:
        gain = nn.init.calculate_gain("leaky_relu", math.sqrt(5))
        draws.append((f"{name}.weight", (fan_out, fan_in), "uniform", math.sqrt(3.0) * (gain / math.sqrt(fan_in))))
        if c.bias and name != "lm_head":
            draws.append((f"{name}.bias", (fan_out,), "uniform", 1 / math.sqrt(fan_in)))
    # _init_weights, in apply's order: the embeddings, each block's Linears, then lm_head
    draws += [(name, shape, "normal", 0.02) for name, shape in embeddings]
    for name, fan_in, fan_out in linears + [head]:
        draws.append((f"{name}.weight", (fan_out, fan_in), "normal", 0.02))
        if c.bias and name != "lm_head":
            draws.append((f"{name}.bias", (fan_out,), "fill", 0.0))
    # the residual projections, scaled by depth, or zero
    for name, fan_in, fan_out in linears:
        if name.endswith("c_proj"):
            draws.append((f"{name}.weight", (fan_out, fan_in), "normal", 0.02 / math.sqrt(2 * c.n_layer)))
            if c.zero_init:
                draws.append((f"{name}.weight", (fan_out, fan_in), "fill", 0.0))
    if c.zero_init and not c.tie_weights:
        draws.append(("lm_head.weight", (c.vocab_size, c.n_embd), "fill", 0.0))
    return draws


def draw_rows(draws, rows, piece=1 << 14):
    """Replay init_draws into the rows of each parameter this process keeps: rows is {name:
    (tensor, first row)}, the tensor holding that parameter's rows from the first on (all of them,
    or a rank's shard). Each random write is drawn on the CPU a piece at a time, every piece from
    the generator in turn, and only a tensor's last write is kept: memory for one piece, whatever
    the model's size. A piece (a multiple of 16 numbers, or a tensor's last 16 or more) draws what
    the whole tensor's draw gives there (torch's normal_ transforms 16 uniform draws at a time, and
    draws the last 16 of a tensor anew when its size is no multiple of 16; uniform_ draws one by one)."""
    last = {id(rows[name][0]): k for k, (name, *_) in enumerate(draws)}
    scratch = torch.empty(piece + 16)
    for k, (name, shape, kind, value) in enumerate(draws):
        tensor, first = rows[name]
        keep = last[id(tensor)] == k
        if kind == "fill":
            if keep:
                tensor.fill_(value)
            continue
        width = math.prod(shape[1:])
        mine = tensor.view(-1)  # the flat elements first * width on of the whole tensor
        start, numel = first * width, math.prod(shape)
        a = 0
        while a < numel:
            b = min(a + piece, numel)
            b = numel if numel - b < 16 else b  # the tail goes with the piece before it
            t = scratch[:b - a]
            t.normal_(0.0, value) if kind == "normal" else t.uniform_(-value, value)
            lo, hi = max(a, start), min(b, start + mine.numel())
            if keep and lo < hi:
                mine[lo - start:hi - start].copy_(t[lo - a:hi - a])
            a = b


def orthogonalize(g, steps=5):
    """Newton-Schulz iteration towards the nearest orthogonal matrix U V^T of g = U S V^T
    (Keller Jordan's quintic coefficients: fast, and near enough). bfloat16 on a GPU as in
    modded-nanogpt, but float32 elsewhere: a CPU computes bfloat16 matmuls far slower."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.bfloat16() if g.is_cuda else g.float()
    wide = x.size(-2) <= x.size(-1)
    x = x if wide else x.mT  # iterate on the smaller Gram matrix
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)  # singular values <= 1
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if wide else x.mT).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Muon (Keller Jordan, 2024) for groups marked muon=True, AdamW for the other groups.

    Muon moves a weight matrix along its Nesterov momentum made orthogonal, so that every
    direction of the matrix learns at the same rate, however lopsided the raw gradient is.
    It suits the hidden matrices; embeddings, the head and gains keep AdamW. One optimizer for
    both leaves the training loop, the GradScaler and the checkpoints as they are for AdamW.
    Under FSDP each rank holds some rows of a matrix and its momentum: the update is gathered
    whole, made orthogonal (on every rank alike), and each rank keeps its rows (KellerJordan/Muon
    #45: orthogonalising a shard alone is wrong)."""

    def __init__(self, groups, lr, betas=(0.9, 0.95), momentum=0.95, ns_steps=5, eps=1e-8):
        super().__init__(groups, dict(lr=lr, betas=betas, eps=eps, weight_decay=0.0, muon=False,
                                      momentum=momentum, ns_steps=ns_steps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in (p for p in group["params"] if p.grad is not None):
                state, g = self.state[p], p.grad
                if group["muon"]:
                    if not state:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    buf = state["momentum_buffer"].lerp_(g, 1 - group["momentum"])
                    update = g.lerp(buf, group["momentum"])
                    if hasattr(update, "full_tensor"):  # FSDP's DTensor, a shard of rows: Newton-Schulz needs them all
                        from torch.distributed.tensor import distribute_tensor  # (1 s to import: only here)
                        whole = orthogonalize(update.full_tensor(), group["ns_steps"])
                        update = distribute_tensor(whole, p.device_mesh, p.placements, src_data_rank=None)
                    else:
                        update = orthogonalize(update, group["ns_steps"])
                    # a tall matrix's orthogonal update has smaller entries: scale them back up
                    p.mul_(1 - lr * wd).add_(update, alpha=-lr * max(1, p.size(0) / p.size(1)) ** 0.5)
                    continue
                beta1, beta2 = group["betas"]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"].item()
                state["exp_avg"].lerp_(g, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (state["exp_avg_sq"] / (1 - beta2 ** t)).sqrt_().add_(group["eps"])
                p.mul_(1 - lr * wd).addcdiv_(state["exp_avg"], denom, value=-lr / (1 - beta1 ** t))
        return loss

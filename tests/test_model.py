"""model.py: GPT-2 shapes and losses, learning, sampling, nanoGPT's checkpoint layout,
the optimizer's groups, honest MFU, and (on a CUDA machine) bf16, fused AdamW and compile."""
import copy
import math
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from model import GPT, GPTConfig, KVCache, peak_flops  # noqa: E402

VOCAB = 65
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def tiny_config(**kw):
    args = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=VOCAB, dropout=0.0)
    args.update(kw)
    return GPTConfig(**args)


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    return GPT(tiny_config(**kw))


def batch(b=4, t=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, VOCAB, (b, t), generator=g)
    y = torch.randint(0, VOCAB, (b, t), generator=g)
    return x, y


# ---- forward -------------------------------------------------------------------------------

def test_forward_with_targets_gives_logits_for_every_position_and_a_scalar_loss():
    x, y = batch()
    logits, loss = tiny_model()(x, y)
    assert logits.shape == (4, 16, VOCAB)
    assert loss.shape == () and torch.isfinite(loss)


def test_forward_without_targets_gives_only_the_last_positions_logits_and_no_loss():
    model = tiny_model()
    x, y = batch()
    logits, loss = model(x)
    assert logits.shape == (4, 1, VOCAB)
    assert loss is None
    full, _ = model(x, y)
    torch.testing.assert_close(logits[:, 0], full[:, -1])


def test_targets_of_minus_one_are_ignored_by_the_loss():
    model = tiny_model()
    x, y = batch()
    masked = y.clone()
    masked[:, 8:] = -1
    _, loss_masked = model(x, masked)
    logits, _ = model(x, y)
    expected = torch.nn.functional.cross_entropy(logits[:, :8].reshape(-1, VOCAB),
                                                 y[:, :8].reshape(-1))
    torch.testing.assert_close(loss_masked, expected)


def test_untrained_model_loss_is_about_ln_vocab_size():
    _, loss = tiny_model()(*batch())
    assert abs(loss.item() - math.log(VOCAB)) < 0.1


def test_forward_refuses_a_sequence_longer_than_block_size():
    model = tiny_model()
    with pytest.raises(ValueError, match="block_size is only 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_a_few_adamw_steps_on_a_fixed_batch_lower_the_loss():
    model = tiny_model()
    opt = model.configure_optimizers(0.1, 1e-2, (0.9, 0.95), "cpu")
    x, y = batch()
    losses = []
    for _ in range(25):
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0, losses


def test_dropout_is_active_in_training_and_off_in_eval():
    model = tiny_model(dropout=0.5)
    x, _ = batch()
    model.train()
    a, b = model(x)[0], model(x)[0]
    assert not torch.equal(a, b)
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0])


# ---- init and layout -----------------------------------------------------------------------

def test_state_dict_uses_nanogpts_names_and_shapes():
    model = tiny_model()
    sd = model.state_dict()
    C, V = 32, VOCAB
    expected = {
        "transformer.wte.weight": (V, C),
        "transformer.wpe.weight": (16, C),
        "transformer.ln_f.weight": (C,),
        "transformer.ln_f.bias": (C,),
        "lm_head.weight": (V, C),
    }
    for i in range(2):
        p = f"transformer.h.{i}."
        expected.update({
            p + "ln_1.weight": (C,), p + "ln_1.bias": (C,),
            p + "attn.c_attn.weight": (3 * C, C), p + "attn.c_attn.bias": (3 * C,),
            p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
            p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
            p + "mlp.c_fc.weight": (4 * C, C), p + "mlp.c_fc.bias": (4 * C,),
            p + "mlp.c_proj.weight": (C, 4 * C), p + "mlp.c_proj.bias": (C,),
        })
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected


def test_checkpoint_weights_load_without_compiles_prefix_or_old_mask_buffers():
    source = tiny_model(seed=1)
    saved = {'_orig_mod.' + k: v for k, v in source.state_dict().items()}
    for i in range(source.config.n_layer):  # nanoGPT before flash attention saved its causal mask
        saved[f'_orig_mod.transformer.h.{i}.attn.bias'] = torch.ones(1, 1, 16, 16).tril()
    model = tiny_model(seed=2)
    model.load_checkpoint_weights(saved)
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_lm_head_weight_is_the_token_embedding():
    model = tiny_model()
    assert model.lm_head.weight is model.transformer.wte.weight


def test_bias_false_leaves_no_bias_tensors():
    sd = tiny_model(bias=False).state_dict()
    assert not [k for k in sd if k.endswith(".bias")]


def test_init_is_gpt2s_with_residual_projections_scaled_by_depth():
    torch.manual_seed(0)
    model = GPT(tiny_config(n_layer=4, n_embd=64))
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            assert torch.all(p == 0), name
    attn_proj = model.transformer.h[0].attn.c_proj.weight
    mlp_proj = model.transformer.h[0].mlp.c_proj.weight
    expected = 0.02 / math.sqrt(2 * 4)
    for w in (attn_proj, mlp_proj):
        assert abs(w.std().item() - expected) < 0.1 * expected
    assert abs(model.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.002
    assert abs(model.transformer.wpe.weight.std().item() - 0.02) < 0.002


def test_get_num_params_counts_tied_weights_once_and_can_leave_out_positions():
    model = tiny_model()
    unique = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in unique.values())
    assert model.get_num_params(non_embedding=False) == total
    assert model.get_num_params() == total - 16 * 32


def test_crop_block_size_keeps_the_first_positions_and_refuses_to_grow():
    model = tiny_model()
    wpe = model.transformer.wpe.weight.detach().clone()
    model.crop_block_size(8)
    assert model.config.block_size == 8
    torch.testing.assert_close(model.transformer.wpe.weight.detach(), wpe[:8])
    logits, _ = model(*batch(t=8))
    assert logits.shape == (4, 8, VOCAB)
    with pytest.raises(ValueError):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="only shrink"):
        model.crop_block_size(16)


# ---- generate ------------------------------------------------------------------------------

def test_generate_appends_max_new_tokens_all_within_the_vocab():
    model = tiny_model().eval()
    idx = torch.zeros(3, 5, dtype=torch.long)
    out = model.generate(idx, 7, temperature=0.8, top_k=10)
    assert out.shape == (3, 12)
    assert torch.equal(out[:, :5], idx)
    assert out.min() >= 0 and out.max() < VOCAB


def test_top_k_1_is_greedy_argmax_decoding():
    model = tiny_model().eval()
    idx = torch.randint(0, VOCAB, (2, 4), generator=torch.Generator().manual_seed(3))
    out = model.generate(idx, 6, top_k=1)
    expected = idx
    for _ in range(6):
        logits, _ = model(expected)
        expected = torch.cat([expected, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, expected)
    assert torch.equal(model.generate(idx, 6, top_k=1), out)


def test_top_k_larger_than_the_vocab_is_clamped():
    out = tiny_model().eval().generate(torch.zeros(1, 1, dtype=torch.long), 3, top_k=10_000)
    assert out.shape == (1, 4)


def test_generate_crops_a_context_longer_than_block_size_to_its_latest_tokens():
    model = tiny_model().eval()
    idx = torch.randint(0, VOCAB, (1, 20), generator=torch.Generator().manual_seed(4))
    out = model.generate(idx, 3, top_k=1)
    assert out.shape == (1, 23)
    from_tail = model.generate(idx[:, -16:], 3, top_k=1)
    assert torch.equal(out[:, -3:], from_tail[:, -3:])


OPTIONS = [dict(), dict(rope=True), dict(qk_norm=True), dict(mlp="relu2"), dict(tie_weights=False),
           dict(logit_softcap=3.0), dict(bias=False), dict(n_layer=0),
           dict(rope=True, qk_norm=True, mlp="relu2", tie_weights=False, logit_softcap=15.0, bias=False)]


@pytest.fixture
def one_thread():
    """A tiny model's ops gain nothing from a second thread, and on a busy machine (two tests at a
    time on two cores) lose milliseconds each waiting for it: ten times the time of these tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sharp_model(seed=0, **kw):
    """A tiny model whose weights are ten times GPT-2's init: each token's context moves its logits
    far enough that a cache which kept stale keys or values would change the tokens it picks."""
    model = tiny_model(seed, **kw).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.2)
    return model


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "gpt2")
def test_the_kv_cache_picks_the_uncached_tokens_for_short_and_long_prompts_and_past_block_size(options, one_thread):
    model = sharp_model(**options)
    g = torch.Generator().manual_seed(5)
    # block_size is 16: a prompt within it, one that fills it, one longer; 30 new tokens run past it
    for t in (3, 16, 20):
        idx = torch.randint(0, VOCAB, (2, t), generator=g)
        cached = model.generate(idx, 30, top_k=1)
        assert torch.equal(cached, model.generate(idx, 30, top_k=1, cache=False)), t


def test_each_cached_step_gives_the_logits_of_the_whole_context_run_again(one_thread):
    model = sharp_model(rope=True, qk_norm=True)
    idx = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(6))
    cache = KVCache(model.config.n_layer, 16)
    with torch.no_grad():
        steps = [model(idx[:, :5], cache=cache)[0]] + [model(idx[:, t:t + 1], cache=cache)[0] for t in range(5, 16)]
        for t, logits in enumerate(steps, start=5):
            assert torch.allclose(logits, model(idx[:, :t])[0], atol=1e-5), t
        with pytest.raises(ValueError, match="block_size is only 16"):
            model(idx[:, :1], cache=cache)
        cache = KVCache(model.config.n_layer, 16)
        model(idx[:, :3], cache=cache)
        with pytest.raises(ValueError, match="the prompt first, then one token at a time"):
            model(idx[:, 3:5], cache=cache)  # its attention would need a mask


def test_a_batch_of_prompts_gives_each_prompt_the_tokens_it_gets_alone(one_thread):
    model = sharp_model(rope=True)
    idx = torch.randint(0, VOCAB, (4, 6), generator=torch.Generator().manual_seed(7))
    batch = model.generate(idx, 12, top_k=1)
    for row in range(4):
        assert torch.equal(batch[row:row + 1], model.generate(idx[row:row + 1], 12, top_k=1))


def test_generate_refuses_a_non_positive_temperature():
    model = tiny_model().eval()
    for t in (0.0, -1.0):
        with pytest.raises(ValueError, match="temperature"):
            model.generate(torch.zeros(1, 1, dtype=torch.long), 1, temperature=t)


# ---- optimizer -----------------------------------------------------------------------------

def test_configure_optimizers_decays_matrices_only_and_holds_every_parameter_once():
    model = tiny_model()
    opt = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() < 2 for p in no_decay["params"])
    no_decay_ids = {id(p) for p in no_decay["params"]}
    for name, p in model.named_parameters():
        if name.endswith(".bias") or ".ln_" in name:
            assert id(p) in no_decay_ids, name
    held = decay["params"] + no_decay["params"]
    assert len(held) == len({id(p) for p in held}) == len(list(model.parameters()))
    assert sum(p.numel() for p in held) == model.get_num_params(non_embedding=False)
    assert opt.defaults["lr"] == 6e-4 and opt.defaults["betas"] == (0.9, 0.95)


def test_configure_optimizers_fuses_adamw_on_cpu_but_not_on_devices_without_the_kernel():
    model = tiny_model()
    assert model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu").defaults["fused"] is True
    assert not model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "mps").defaults.get("fused")


# ---- FLOPs and MFU -------------------------------------------------------------------------

def test_flops_per_iter_is_the_palm_estimate():
    model = tiny_model()
    N = model.get_num_params()
    per_token = 6 * N + 12 * 2 * 2 * 16 * 16
    assert model.flops_per_iter(12) == per_token * 16 * 12


def test_cpu_has_no_peak_so_mfu_is_none_but_flops_per_second_is_reported():
    assert peak_flops("cpu", torch.bfloat16) is None
    assert peak_flops(torch.device("cpu"), torch.float32) is None
    model = tiny_model()
    achieved, mfu = model.estimate_mfu(12, 0.5, peak=None)
    assert mfu is None
    assert achieved == model.flops_per_iter(12) / 0.5 > 0


def test_estimate_mfu_divides_by_the_given_peak_and_refuses_a_non_positive_dt():
    model = tiny_model()
    achieved, mfu = model.estimate_mfu(12, 0.25, peak=1e12)
    assert mfu == pytest.approx(achieved / 1e12)
    with pytest.raises(ValueError):
        model.estimate_mfu(12, 0.0)


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA H100 80GB HBM3", 989e12),
    ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-80GB", 312e12),
    ("NVIDIA A100 80GB PCIe", 312e12),
    ("NVIDIA H100 PCIe", 756e12),
    ("NVIDIA Mystery GPU", None),
    ("NVIDIA A10G", None),  # not the A10: another tensor-core rate
    ("NVIDIA GeForce RTX 4090 D", None),  # fewer SMs than the 4090
    ("Tesla V100-SXM2-16GB", None),  # no bf16 tensor cores
])
def test_peak_flops_bf16_for_a_cuda_device_name(monkeypatch, name, expected):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    for device in ("cuda", "cuda:1", torch.device("cuda:0")):
        assert peak_flops(device, torch.bfloat16) == expected
    assert peak_flops("cuda", "bfloat16") == expected


def test_peak_flops_float32_follows_the_tf32_setting(monkeypatch):
    if not hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        pytest.skip("this torch has no fp32_precision setting")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-40GB")
    matmul = torch.backends.cuda.matmul
    saved = matmul.fp32_precision  # a torch setting, not an attribute monkeypatch can undo
    try:
        matmul.fp32_precision = "ieee"
        assert peak_flops("cuda", torch.float32) == 19.5e12
        matmul.fp32_precision = "tf32"
        assert peak_flops("cuda", torch.float32) == 156e12
    finally:
        matmul.fp32_precision = saved
    assert peak_flops("cuda", torch.float64) is None


# ---- from_pretrained -----------------------------------------------------------------------

def test_from_pretrained_without_transformers_says_pip_install_transformers(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(ImportError, match="pip install transformers") as info:
        GPT.from_pretrained("gpt2")
    assert "\n" not in str(info.value)


def test_from_pretrained_refuses_unknown_models_and_overrides_other_than_dropout():
    with pytest.raises(ValueError, match="gpt2-medium"):
        GPT.from_pretrained("gpt3")
    with pytest.raises(ValueError, match="n_layer"):
        GPT.from_pretrained("gpt2", dict(n_layer=2))


@pytest.mark.slow  # GPT-2's full shape, twice: ~10 s; CI skipped it before requirements.txt had transformers
def test_from_pretrained_converts_huggingface_gpt2_to_the_same_logits(monkeypatch):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    # random weights of gpt2's shape stand in for the download; erf GELU as ours
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(activation_function="gelu")).eval()
    monkeypatch.setattr(transformers.GPT2LMHeadModel, "from_pretrained", lambda *a, **k: hf)
    model = GPT.from_pretrained("gpt2", dict(dropout=0.0)).eval()
    assert model.config.vocab_size == 50257 and model.config.dropout == 0.0
    idx = torch.randint(0, 50257, (2, 12))
    with torch.no_grad():
        ours, _ = model(idx, idx)
        theirs = hf(idx).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


# ---- CUDA ----------------------------------------------------------------------------------

@pytest.mark.gpu
@gpu
def test_bf16_autocast_forward_backward_on_cuda_gives_a_finite_loss():
    model = tiny_model().cuda()
    x, y = (t.cuda() for t in batch())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        _, loss = model(x, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.gpu
@gpu
def test_configure_optimizers_on_cuda_returns_a_fused_adamw_that_steps():
    model = tiny_model().cuda()
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cuda")
    assert opt.defaults["fused"] is True
    before = model.lm_head.weight.detach().clone()
    _, loss = model(*(t.cuda() for t in batch()))
    loss.backward()
    opt.step()
    assert not torch.equal(before, model.lm_head.weight.detach())


@pytest.mark.gpu
@gpu
def test_compiled_model_on_cuda_matches_eager_loss_and_backpropagates():
    model = tiny_model().cuda()
    x, y = (t.cuda() for t in batch())
    _, eager = model(x, y)
    compiled = torch.compile(model)
    _, loss = compiled(x, y)
    loss.backward()
    assert abs(loss.item() - eager.item()) < 1e-3
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# ---- FSDP's build: GPT's init replayed a parameter and a piece at a time ----------------------

@pytest.mark.parametrize("options", [dict(), dict(bias=True, tie_weights=False, zero_init=True),
                                     dict(rope=True, mlp="relu2", zero_init=True), dict(n_layer=0)])
def test_init_draws_replayed_in_pieces_give_any_ranks_rows_of_gpts_weights_exactly(options):
    # FSDP's ranks each keep their rows of every parameter (distributed.Ranks.build): at 1 and 3
    # ranks, with pieces smaller than most tensors and sizes no multiple of 16, every row is
    # GPT(config)'s to the bit, and the generator ends where GPT(config) leaves it
    from model import draw_rows, init_draws
    config = {**dict(n_layer=2, n_head=2, n_embd=24, block_size=20, vocab_size=35, bias=False), **options}
    torch.manual_seed(5)
    whole = dict(GPT(GPTConfig(**config)).named_parameters(remove_duplicate=False))
    after = torch.rand(4)
    for world in (1, 3):
        for rank in range(world):
            rows, held = {}, {}
            for name, p in whole.items():  # a tied head is the embedding: one tensor, written once
                if id(p) not in held:
                    chunk = -(-p.shape[0] // world)
                    first, last = min(rank * chunk, p.shape[0]), min((rank + 1) * chunk, p.shape[0])
                    held[id(p)] = (torch.full_like(p[first:last], float("nan")), first)
                rows[name] = held[id(p)]
            torch.manual_seed(5)
            draw_rows(init_draws(GPTConfig(**config)), rows, piece=32)
            assert torch.equal(torch.rand(4), after)
            for name, (mine, first) in rows.items():
                assert torch.equal(mine, whole[name].detach()[first:first + len(mine)]), (name, world, rank)


# ---- the newer options (nanochat, modded-nanogpt) --------------------------------------------

def test_rope_replaces_the_position_table_and_query_key_scores_depend_only_on_distance():
    from model import rotate
    model = tiny_model(rope=True)
    assert "transformer.wpe.weight" not in model.state_dict()
    assert not [k for k in model.state_dict() if "rotary" in k]  # rebuilt from the config, not saved
    cos, sin = model.rotary_cos, model.rotary_sin  # (block_size, head_size / 2)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(16, generator=g), torch.randn(16, generator=g)

    def score(i, j):
        return (rotate(q, cos[i], sin[i]) @ rotate(k, cos[j], sin[j])).item()

    assert score(5, 2) == pytest.approx(score(12, 9), abs=1e-5)  # the same distance, 3
    assert score(5, 2) != pytest.approx(score(12, 2), abs=1e-2)  # 3 apart against 10 apart
    assert rotate(q, cos[7], sin[7]).norm().item() == pytest.approx(q.norm().item(), rel=1e-6)
    x, y = batch()
    logits, loss = model(x, y)
    assert logits.shape == (4, 16, VOCAB) and torch.isfinite(loss)


def test_rope_crop_block_size_keeps_the_first_positions_angles():
    model = tiny_model(rope=True)
    cos = model.rotary_cos.clone()
    model.crop_block_size(8)
    assert torch.equal(model.rotary_cos, cos[:8]) and model.config.block_size == 8


def test_qk_norm_makes_attention_blind_to_the_scale_of_queries_and_keys():
    x, _ = batch()
    for qk_norm in (False, True):
        model = tiny_model(qk_norm=qk_norm, bias=False)
        before, _ = model(x)
        with torch.no_grad():
            for block in model.transformer.h:
                block.attn.c_attn.weight[:64] *= 10  # the query and key rows (n_embd = 32)
        after, _ = model(x)
        assert torch.allclose(before, after, atol=1e-5) == qk_norm


def test_mlp_relu2_squares_the_relu():
    from model import MLP
    torch.manual_seed(0)
    mlp = MLP(tiny_config(mlp="relu2"))
    x = torch.randn(3, 5, 32)
    assert torch.allclose(mlp(x), mlp.c_proj(torch.relu(mlp.c_fc(x)) ** 2), atol=1e-6)
    with pytest.raises(ValueError, match="mlp must be"):
        MLP(tiny_config(mlp="swish"))


def test_untied_head_is_a_matrix_of_its_own_and_counts_as_a_parameter():
    model = tiny_model(tie_weights=False)
    assert model.lm_head.weight is not model.transformer.wte.weight
    sd = model.state_dict()
    assert not torch.equal(sd["lm_head.weight"], sd["transformer.wte.weight"])
    tied = tiny_model()
    assert model.get_num_params(non_embedding=False) == tied.get_num_params(non_embedding=False) + VOCAB * 32
    # non-embedding: the head counts, the token table (no longer the head) does not
    assert model.get_num_params() == tied.get_num_params()


def test_zero_init_starts_from_uniform_logits_with_identity_blocks():
    model = tiny_model(zero_init=True, tie_weights=False)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight") or name == "lm_head.weight":
            assert torch.all(p == 0), name
    x, y = batch()
    logits, loss = model(x, y)
    assert torch.all(logits == 0) and loss.item() == pytest.approx(math.log(VOCAB), abs=1e-6)
    # a tied head is the embedding as well: zeroing it would make every token the same
    tied = tiny_model(zero_init=True)
    assert tied.transformer.wte.weight.abs().sum() > 0


def test_logit_softcap_bounds_the_logits_smoothly():
    x, y = batch()
    for cap in (0.0, 5.0):
        model = tiny_model(logit_softcap=cap)
        with torch.no_grad():
            model.lm_head.weight.mul_(1000)
        logits, loss = model(x, y)
        assert (logits.abs().max().item() <= 5.0) == (cap == 5.0)
        assert torch.isfinite(loss)


def test_every_option_is_a_default_that_keeps_gpt2():
    from model import NANOGPT_ARGS, OPTIONS
    config = GPTConfig()
    assert (config.rope, config.qk_norm, config.mlp, config.tie_weights, config.zero_init,
            config.logit_softcap) == (False, False, "gelu", True, False, 0.0)
    assert set(NANOGPT_ARGS) | set(OPTIONS) == set(vars(config))


# ---- Muon -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(96, 32), (32, 128), (32, 32)])
def test_orthogonalize_brings_every_singular_value_near_one(shape):
    from model import orthogonalize
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    g[:, 0] *= 20  # a lopsided gradient: one direction dominates
    before = torch.linalg.svdvals(g)
    assert before.max() / before.min() > 15
    s = torch.linalg.svdvals(orthogonalize(g))
    assert orthogonalize(g).shape == g.shape and orthogonalize(g).dtype == torch.float32
    assert s.min() > 0.6 and s.max() < 1.3, s  # quintic Newton-Schulz lands in about [0.7, 1.2]


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest_each_parameter_once():
    model = tiny_model(tie_weights=False)
    opt = model.configure_optimizers(0.1, 4e-3, (0.9, 0.95), "cpu", "muon", muon_lr=0.03)
    decay, no_decay, muon = opt.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert muon["muon"] and not decay["muon"] and not no_decay["muon"]
    assert sorted(names[id(p)].split(".", 3)[-1] for p in muon["params"]) == sorted(
        ["attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"] * 2)
    assert {names[id(p)] for p in decay["params"]} == {"transformer.wte.weight", "transformer.wpe.weight",
                                                       "lm_head.weight"}
    assert muon["lr_scale"] == pytest.approx(0.03 / 4e-3) and muon["weight_decay"] == 0.0
    held = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(held) == len(set(held)) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="optimizer must be"):
        model.configure_optimizers(0.1, 4e-3, (0.9, 0.95), "cpu", "sgd")


def train_steps(model, opt, steps, x, y):
    losses = []
    for _ in range(steps):
        for g in opt.param_groups:
            g["lr"] = opt.defaults["lr"] * g.get("lr_scale", 1.0)
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def test_a_few_muon_steps_lower_the_loss_and_its_state_resumes_exactly():
    x, y = batch()
    model = tiny_model(mlp="relu2", rope=True)
    opt = model.configure_optimizers(0.0, 4e-3, (0.9, 0.95), "cpu", "muon", muon_lr=0.03)
    losses = train_steps(model, opt, 10, x, y)
    assert losses[-1] < losses[0] - 0.5, losses
    # the saved state of both halves (momentum, Adam moments, step) continues exactly
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    assert any("momentum_buffer" in s for s in saved_opt["state"].values())
    assert any("exp_avg_sq" in s for s in saved_opt["state"].values())
    onward = train_steps(model, opt, 3, x, y)
    again = tiny_model(mlp="relu2", rope=True, seed=5)
    again.load_state_dict(saved_model)
    again_opt = again.configure_optimizers(0.0, 4e-3, (0.9, 0.95), "cpu", "muon", muon_lr=0.03)
    again_opt.load_state_dict(saved_opt)
    assert train_steps(again, again_opt, 3, x, y) == onward
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k

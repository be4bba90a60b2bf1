# the character-level shakespeare model sized for a laptop CPU (nanoGPT's "baby GPT" shape: 4
# layers, 128 wide, 64 characters of context), trained with the fast recipe: Muon for the
# blocks' matrices, rotary embeddings, QK-norm, a logit softcap and a warmup / constant /
# linear-decay schedule. On tiny shakespeare it reaches nanoGPT's
# 2000-iteration val loss (about 1.90) in a fraction of the time: docs/training.md, "The fast recipe".

out_dir = 'out-shakespeare-char-cpu'
eval_interval = 200 # evaluate at the end only: an evaluation of all of val costs 30 iterations here
eval_on_start = False
eval_iters = 20 # batches for the train-loss estimate
eval_stride = 64 # the val loss is over all of val.bin, each character once: no sampling noise
log_interval = 20

dataset = 'shakespeare_char'
gradient_accumulation_steps = 1
batch_size = 24
block_size = 64 # context of up to 64 previous characters

n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0
rope = True
qk_norm = True
logit_softcap = 15.0 # the head stays tied and zero_init off: untying and zero init cost more than they give here

optimizer = 'muon'
muon_lr = 0.03
learning_rate = 4e-3 # AdamW, for the embeddings (the head too: tied) and the gains
weight_decay = 0.0
beta2 = 0.99 # make a bit bigger because number of tokens per iter is small
max_iters = 200
lr_schedule = 'wsd'
warmup_iters = 20
lr_decay_iters = 200
warmdown_iters = 100 # the second half
min_lr = 0.0

device = 'cpu'
compile = False

# the character-level shakespeare model sized for a laptop CPU: a few minutes on 2 cores
# (nanoGPT's "baby GPT"), reaching a val loss of about 1.9 on tiny shakespeare

out_dir = 'out-shakespeare-char-cpu'
eval_interval = 250
eval_iters = 20
log_interval = 50
always_save_checkpoint = False # we expect to overfit: only save when val improves

dataset = 'shakespeare_char'
gradient_accumulation_steps = 1
batch_size = 12
block_size = 64 # context of up to 64 previous characters

n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0

learning_rate = 1e-3 # with baby networks can afford to go a bit higher
max_iters = 2000
lr_decay_iters = 2000 # make equal to max_iters usually
min_lr = 1e-4 # learning_rate / 10 usually
beta2 = 0.99 # make a bit bigger because number of tokens per iter is small
warmup_iters = 100

device = 'cpu'
compile = False

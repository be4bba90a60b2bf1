# character-level Shakespeare on whatever device is here: the seed's example,
# $ python train.py config/shakespeare.py --log_dir=shakespeare_logs
# (prepare the data first: python data/shakespeare_char/prepare.py). device, dtype and compile
# stay 'auto'. With CUDA: nanoGPT's 10.7M-parameter baby GPT, 5000 iterations (about 2 minutes on
# one H100). Otherwise (a CPU, Apple MPS): nanoGPT's 0.8M-parameter CPU model, 2000 iterations
# (a few minutes on 2 CPU cores), reaching a val loss of about 1.9 on tiny Shakespeare.
import torch

out_dir = 'out-shakespeare-auto'
dataset = 'shakespeare_char'
always_save_checkpoint = False # we expect to overfit: only save when val improves
eval_interval = 250
gradient_accumulation_steps = 1
min_lr = 1e-4 # learning_rate / 10 usually
beta2 = 0.99 # a bit bigger because the number of tokens per iteration is small
warmup_iters = 100
learning_rate = 1e-3 # with baby networks can afford to go a bit higher

if torch.cuda.is_available():
    eval_iters = 200
    log_interval = 10
    batch_size = 64
    block_size = 256 # context of up to 256 previous characters
    n_layer = 6
    n_head = 6
    n_embd = 384
    dropout = 0.2
    max_iters = 5000
else:
    eval_iters = 20
    log_interval = 50
    batch_size = 12
    block_size = 64
    n_layer = 4
    n_head = 4
    n_embd = 128
    dropout = 0.0
    max_iters = 2000
lr_decay_iters = max_iters # make equal to max_iters usually

"""
Sample from a trained model: a checkpoint of train.py (character-level or GPT-2 BPE), or
OpenAI's GPT-2 weights (needs `pip install transformers`).

$ python sample.py --out_dir=out-shakespeare-char-cpu --start="ROMEO:" --num_samples=2
$ python sample.py --init_from=gpt2 --start=FILE:prompt.txt
"""
import os
import sys
from contextlib import nullcontext

import torch

from checkpoint import CheckpointError, find_checkpoints, load_checkpoint, read_sharded
from configurator import check, config_block, configure, die, resolve
from data.dataset import DatasetError, dataset_tokenizer, read_meta, vocab_sha256
from model import GPT, GPTConfig

def free_memory(device):
    """Bytes still free on the device (for a CPU, Linux's MemAvailable), or None where we cannot tell."""
    if device.startswith('cuda'):
        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open('/proc/meminfo') as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith('MemAvailable:'))
    except (OSError, StopIteration, ValueError, IndexError):
        return None

# -----------------------------------------------------------------------------
init_from = 'resume' # either 'resume' (from an out_dir) or a gpt2 variant (e.g. 'gpt2-xl')
out_dir = 'out' # ignored if init_from is not 'resume'
start = "\n" # or "<|endoftext|>" or etc. Can also specify a file, use as: "FILE:prompt.txt"
num_samples = 10 # number of samples to draw
max_new_tokens = 500 # number of tokens generated in each sample
temperature = 0.8 # 1.0 = no change, < 1.0 = less random, > 1.0 = more random, in predictions
top_k = 200 # retain only the top_k most likely tokens, clamp others to have 0 probability
seed = 1337 # the sampling's random seed: the same seed and prompt give the same samples
device = 'auto' # 'cuda', then 'mps', then 'cpu'; or e.g. 'cpu', 'cuda:1'
dtype = 'auto' # bfloat16 where supported, else float16 on CUDA, float32 elsewhere
compile = False # use PyTorch 2.0 to compile the model to be faster
# -----------------------------------------------------------------------------
config_keys = config_block(__file__) # the names assigned above: nothing imported is a key
config = configure({k: globals()[k] for k in config_keys}, sys.argv[1:], __doc__, config_keys)
globals().update(config)
# -----------------------------------------------------------------------------

# everything the user gave is checked here, before any model exists (rules: configurator.RULES)
check(config)
if init_from in ('scratch', 'auto'):
    die(f"init_from must be 'resume' or a GPT-2 model name, got {init_from!r}: sample.py needs a trained model")
device, device_type, dtype, compile, _ = resolve(device, dtype, compile)
if start.startswith('FILE:'):
    try:
        with open(start[5:], 'r', encoding='utf-8-sig') as f:
            start = f.read()
    except OSError as e:
        die(f'cannot read the start text {start[5:]!r}: {e.strerror}')
    except UnicodeDecodeError as e:
        die(f'the start text {start[5:]!r} is not UTF-8 ({e.reason} at byte {e.start}): save it as UTF-8')
if not start:
    die('the start text is empty')
if init_from == 'resume' and not find_checkpoints(out_dir):
    die(f"no checkpoint at {os.path.join(out_dir, 'ckpt.pt')}: train one first, or point --out_dir at a run")

torch.manual_seed(seed)
torch.cuda.manual_seed(seed)
torch.backends.cuda.matmul.allow_tf32 = True # allow tf32 on matmul
torch.backends.cudnn.allow_tf32 = True # allow tf32 on cudnn
ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[dtype]
ctx = nullcontext() if dtype == 'float32' else torch.amp.autocast(device_type=device_type, dtype=ptdtype)

# model
meta_path = None
if init_from == 'resume':
    try: # the newest intact checkpoint: its sha256 is checked, an older one taken for a damaged one
        _, checkpoint, notes = load_checkpoint(out_dir, map_location=device)
    except CheckpointError as e:
        die(e)
    for note in notes:
        print(note, file=sys.stderr)
    model = GPT(GPTConfig(**checkpoint['model_args']))
    if 'sharded' in checkpoint: # FSDP's shards, read whole into this one process
        target = {'model': model.state_dict()}
        read_sharded(checkpoint['sharded'], target)
        model.load_state_dict(target['model'])
    else:
        model.load_checkpoint_weights(checkpoint['model'])
    if 'config' in checkpoint and 'dataset' in checkpoint['config']: # older checkpoints may not have these...
        meta_path = os.path.join('data', checkpoint['config']['dataset'], 'meta.pkl')
else:
    try:
        model = GPT.from_pretrained(init_from, dict(dropout=0.0))
    except (ImportError, ValueError) as e:
        die(e)
model.eval()
model.to(device)
if compile:
    model = torch.compile(model) # requires PyTorch 2.0 (optional)

# the dataset's tokenizer, from its meta.pkl: characters, GPT-2's BPE or one trained on it; GPT-2's
# for OpenAI's weights and for datasets without a meta.pkl (nanoGPT's openwebtext and shakespeare)
meta = None
try: # plain data only: a downloaded or shared dataset folder must not run code here
    if meta_path and os.path.exists(meta_path):
        meta = read_meta(meta_path)
    elif model.config.vocab_size < 50257:
        die(f'this model has a {model.config.vocab_size}-token vocabulary but {meta_path} is missing: '
            'it is needed to decode its tokens')
    tokenizer = dataset_tokenizer(meta_path and os.path.dirname(meta_path), meta)
except DatasetError as e:
    die(e)
if meta is not None and init_from == 'resume' and 'data' in checkpoint and \
        vocab_sha256(os.path.dirname(meta_path), meta) != checkpoint['data']['vocab']:
    print(f'sample.py: warning: the vocabulary of {os.path.dirname(meta_path)} is not the one this model was trained '
          'with (the dataset was prepared again since): the samples may decode into other characters', file=sys.stderr)
try:
    start_ids = tokenizer.encode(start, special=True).tolist()
except ValueError as e: # a character the char vocabulary lacks
    die(f'the start text has characters this model never saw: {e}')
decode = tokenizer.decode
vocab = tokenizer.vocab_size # a model padded past it (nanoGPT's 50304 for GPT-2) draws none of the padding

# the beginning of the prompt
x = (torch.tensor(start_ids, dtype=torch.long, device=device)[None, ...])

# run generation: the samples in one batch, or in as few as memory allows. Each sample's KVCache
# holds 2 x n_layer x n_embd numbers a position; a forward over a full window holds a few more
# (the MLP's, attention's scores): a generous bound, to fill at most half the free memory.
cfg = model.config
positions = min(cfg.block_size, len(start_ids) + max_new_tokens)
per_sample = ((2 * cfg.n_layer + 16) * cfg.n_embd + cfg.n_head * positions) * positions * 4
free = free_memory(device)
batch_size = num_samples if free is None else max(1, min(num_samples, free // 2 // per_sample))
with torch.no_grad():
    with ctx:
        if num_samples == 1 and sys.stdout.isatty(): # a terminal sees each token as it comes
            pending = list(start_ids) # the ids whose text is not on the screen yet
            tokens = model.generate_tokens(x, max_new_tokens, temperature=temperature, top_k=top_k, vocab=vocab)
            while True:
                text = decode(pending)
                if not text.endswith('\ufffd'): # a character whose bytes span tokens waits for the rest
                    print(text, end='', flush=True)
                    pending = []
                idx_next = next(tokens, None)
                if idx_next is None:
                    break
                pending.append(idx_next.item())
            print(decode(pending))
            print('---------------')
        else:
            for first in range(0, num_samples, batch_size):
                n = min(batch_size, num_samples - first)
                y = model.generate(x.expand(n, -1), max_new_tokens, temperature=temperature, top_k=top_k, vocab=vocab)
                for sample in y.tolist():
                    print(decode(sample))
                    print('---------------')

"""Run under torchrun by tests/test_fsdp.py: the gradients that FSDP gives each rank, accumulated over
two micro-steps as train.py does, gathered whole, against one process's over the same global batch.
They must be equal, not world_size times larger (FSDP2 on gloo once summed them: pytorch#162338).
Prints the largest difference and the ratio of the norms; exit status 1 when they differ."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from distributed import Ranks  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402

ranks = Ranks('fsdp', 'gloo', 'cpu', timeout=60)
ranks.start()
config = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=40, bias=False)
torch.manual_seed(0)
steps = 2  # micro-steps per rank
x = torch.randint(40, (ranks.world_size * steps, 4, 16), generator=torch.Generator().manual_seed(1))
y = torch.randint(40, x.shape, generator=torch.Generator().manual_seed(2))

whole = GPT(config)  # one process: the mean loss over every micro-batch
sum(whole(x[i], y[i])[1] for i in range(len(x))).div(len(x)).backward()
expected = {name: p.grad for name, p in whole.named_parameters()}

torch.manual_seed(0)
model = GPT(config)
ranks.shard(model, torch.float32)
for step in range(steps):  # this rank's micro-batches, as train.py draws them
    ranks.sync_gradients(model, step == steps - 1)
    i = ranks.rank * steps + step
    (model(x[i], y[i])[1] / steps).backward()
gathered = {name: p.grad.full_tensor() for name, p in model.named_parameters()}

worst = max((gathered[n] - expected[n]).abs().max().item() for n in expected)
ratio = (torch.cat([g.flatten() for g in gathered.values()]).norm()
         / torch.cat([g.flatten() for g in expected.values()]).norm()).item()
if ranks.master:
    print(f'largest difference {worst:.3g}, norm ratio {ratio:.6f}', flush=True)
ranks.close()
sys.exit(0 if worst < 1e-5 else 1)

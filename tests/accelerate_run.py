"""A tiny accelerate loop that writes the run log, for tests/test_integrations.py.

    python tests/accelerate_run.py OUT [--interrupt-at STEP]      # or under torchrun

8 steps of a small model: the train loss and the learning rate every step, a val loss every 4 (as
`val/loss`: not a word), then end_training(). OUT/logged.json gets what was passed to
accelerator.log; --interrupt-at raises KeyboardInterrupt at that step (on rank 0), as Ctrl-C would."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402

from integrations import AccelerateTrainingLogger  # noqa: E402

out = sys.argv[1]
interrupt_at = int(sys.argv[sys.argv.index('--interrupt-at') + 1]) if '--interrupt-at' in sys.argv else None
config = {'lr': 0.01, 'steps': 8, 'width': 16}
accelerator = Accelerator(cpu=True, log_with=[AccelerateTrainingLogger(log_dir='logs')])
accelerator.init_trackers('tiny', config=config)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, config['width']), torch.nn.ReLU(), torch.nn.Linear(config['width'], 1))
optimizer = torch.optim.AdamW(model.parameters(), lr=config['lr'])
model, optimizer = accelerator.prepare(model, optimizer)
x = torch.randn(64, 8)
y = x.sum(1, keepdim=True)
logged = []
for step in range(config['steps']):
    if step == interrupt_at and accelerator.is_main_process:  # under torchrun, torchrun then stops the others
        raise KeyboardInterrupt
    loss = torch.nn.functional.mse_loss(model(x), y)
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad()
    values = {'train_loss': loss.item(), 'lr': optimizer.param_groups[0]['lr']}
    if step % 4 == 3:
        with torch.no_grad():
            values['val/loss'] = torch.nn.functional.mse_loss(model(x + 0.1), y).item()
    accelerator.log(values, step=step)
    logged.append([step, values])
    if accelerator.is_main_process:
        with open(os.path.join(out, 'logged.json'), 'w') as f:
            json.dump(logged, f)
accelerator.end_training()

"""A tiny Lightning run that writes the run log, for tests/test_integrations.py.

    python tests/lightning_run.py OUT [--resume CKPT] [--sigterm-at STEP] [--interrupt-at STEP] [--fail-at STEP]
                                      [--strategy S] [--train-loss NAME] [--no-test]

fit for 2 epochs of 8 steps, the train loss every 2 steps (as `train_loss`, and `grad/scale` and
LearningRateMonitor's `lr-AdamW`, names that are not words), val_loss after each epoch and a
checkpoint in OUT/ckpt/ per epoch; then test. A CSVLogger beside it keeps Lightning's own record in
OUT/csv/. --sigterm-at sends the process SIGTERM at that step, --interrupt-at raises KeyboardInterrupt,
--fail-at RuntimeError; --strategy runs on 2 processes; --train-loss names the train loss for the logger."""
import importlib.util
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from integrations import LightningTrainingLogger  # noqa: E402


def option(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


class Tiny(L.LightningModule):
    def __init__(self, lr=0.01, width=16, sigterm_at=None, interrupt_at=None, fail_at=None):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 1))

    def loss(self, batch):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def training_step(self, batch, batch_idx):
        if self.global_step == self.hparams.sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)
        if self.global_step == self.hparams.interrupt_at:
            raise KeyboardInterrupt
        if self.global_step == self.hparams.fail_at:
            raise RuntimeError(f'planted failure at step {self.global_step}')
        loss = self.loss(batch)
        self.log('train_loss', loss)
        self.log('grad/scale', 2 * loss.detach())
        return loss

    def validation_step(self, batch, batch_idx):
        self.log('val_loss', self.loss(batch))

    def test_step(self, batch, batch_idx):
        self.log('test_loss', self.loss(batch))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def loader(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


if __name__ == '__main__':
    out = sys.argv[1]
    torch.manual_seed(0)
    at = lambda name: None if option(name) is None else int(option(name))  # noqa: E731
    model = Tiny(sigterm_at=at('--sigterm-at'), interrupt_at=at('--interrupt-at'), fail_at=at('--fail-at'))
    names = {'train_loss': option('--train-loss')} if option('--train-loss') else {}
    trainer = L.Trainer(max_epochs=2, log_every_n_steps=2, accelerator='cpu', devices=2 if option('--strategy') else 1,
                        strategy=option('--strategy', 'auto'), default_root_dir=out, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        logger=[LightningTrainingLogger(log_dir='logs', **names), CSVLogger(out, name='csv', version=0)],
                        callbacks=[LearningRateMonitor(), ModelCheckpoint(os.path.join(out, 'ckpt'), save_top_k=-1)])
    trainer.fit(model, loader(1), loader(2), ckpt_path=option('--resume'))
    if '--no-test' not in sys.argv:
        trainer.test(model, loader(3))
    print('transformers:', 'absent' if importlib.util.find_spec('transformers') is None else 'installed')

"""
Where a run of train.py starts: a new model from the seed, a checkpoint resumed (ckpt.pt, or FSDP's
shards at any world size) or OpenAI's GPT-2 weights, made on this rank's device or sharded, with
its optimizer and GradScaler. In two steps, since a checkpoint that does not fit the command line
is refused before any log exists, and the model is made once the log and the process group are:

    start = Start(config, data_dir, meta_vocab_size, data_identity, device)   # refuses in one line
    model, optimizer, scaler = start.build(ranks, dtype, report, log, fail)
    start.init_from, start.iter_num, start.best_val_loss, start.model_args, start.resume_path
"""
import importlib.util
import os

import torch

from checkpoint import CheckpointError, data_changed, keep_shape, load_checkpoint, start_from
from configurator import GPT2_MODELS, die
from model import GPT, OPTIONS, GPTConfig


class Start:
    """A run's start: what init_from means here, and the checkpoint it resumes from."""

    def __init__(self, config, data_dir, meta_vocab_size, data, device):
        """init_from made definite ('auto' resumes where out_dir holds a checkpoint, ckpt.pt or ckpt/,
        and starts from scratch otherwise), and a checkpoint to resume loaded and held against this
        command line. config's shape keys become the checkpoint's, so that the log says what trains."""
        self.config, self.data_dir, self.meta_vocab_size = config, data_dir, meta_vocab_size
        self.iter_num, self.best_val_loss = 0, 1e9
        self.checkpoint, self.resume_path, self.notes, self.data_change = None, None, [], None
        try:
            self.init_from, self.found = start_from(config['init_from'], config['out_dir'], config['eval_only'])
        except CheckpointError as e:
            die(e)
        if self.init_from == 'resume':
            self.load(data, device)
        if self.init_from in GPT2_MODELS and importlib.util.find_spec('transformers') is None:
            die(f'init_from={self.init_from!r} loads OpenAI weights through HuggingFace: pip install transformers')

    def load(self, data, device):
        """The checkpoint, loaded before the model so that its shape can be checked against this command
        line; a damaged one (its sha256 tells) is refused here, or an older intact one taken instead. A
        sharded one gives its state.json here, and its tensors once the model is made (build)."""
        config = self.config
        try:
            self.resume_path, self.checkpoint, self.notes = load_checkpoint(config['out_dir'], map_location=device)
        except CheckpointError as e:
            die(e)
        ckpt_args, resume_path = self.checkpoint['model_args'], self.resume_path
        if config['block_size'] > ckpt_args['block_size']:
            die(f"block_size must be at most {ckpt_args['block_size']}, the block size of {resume_path}, "
                f"got {config['block_size']}")
        if self.meta_vocab_size is not None and self.meta_vocab_size > ckpt_args['vocab_size']:
            die(f"dataset {config['dataset']!r} has a vocabulary of {self.meta_vocab_size}, larger than the "
                f"{ckpt_args['vocab_size']} of the model in {resume_path}: resume on the dataset it was trained on")
        self.data_change = data_changed(self.checkpoint, data)
        if self.data_change and not config['new_data']:
            die(f'{resume_path} was trained on {self.data_change}: resume on its data, or pass --new_data=True to '
                'train on this data')
        self.notes += keep_shape(config, self.checkpoint) # the log's config says what trains

    def build(self, ranks, dtype, report, log, fail):
        """(model, optimizer, scaler): the model on this rank's device, or sharded by FSDP before the
        optimizer (which then holds each rank's shards), and a checkpoint's state loaded into them.
        report(line) goes to the console and the log, log(line) to the log alone."""
        c, checkpoint = self.config, self.checkpoint
        # vocab_size comes from the dataset's meta.pkl (read above) where it has one
        if self.meta_vocab_size is not None:
            report(f"found vocab_size = {self.meta_vocab_size} (inside {os.path.join(self.data_dir, 'meta.pkl')})")
        model_args = dict(n_layer=c['n_layer'], n_head=c['n_head'], n_embd=c['n_embd'], block_size=c['block_size'],
                          bias=c['bias'], vocab_size=None, dropout=c['dropout']) # from the command line first
        # architecture options go into the checkpoint only where they differ from GPT-2's, so a default
        # checkpoint holds nanoGPT's model_args and nanoGPT's own scripts load it
        for k in OPTIONS:
            if c[k] != getattr(GPTConfig, k):
                model_args[k] = c[k]
        if self.init_from == 'scratch':
            report('Initializing a new model from scratch')
            if self.meta_vocab_size is None:
                report('defaulting to vocab_size of GPT-2 to 50304 (50257 rounded up for efficiency)')
            model_args['vocab_size'] = self.meta_vocab_size if self.meta_vocab_size is not None else 50304
        elif self.init_from == 'resume':
            # the model's shape comes from the checkpoint; the rest of the config from this command line
            model_args = {k: v for k, v in model_args.items() if k not in OPTIONS}
            for k in ['n_layer', 'n_head', 'n_embd', 'block_size', 'bias', 'vocab_size', *OPTIONS]:
                if k in checkpoint['model_args']:
                    model_args[k] = checkpoint['model_args'][k]
            self.iter_num = checkpoint['iter_num']
            self.best_val_loss = checkpoint['best_val_loss']
            for note in self.notes: # an older checkpoint for a damaged newest one, no sha256, the shape kept
                report(note)
            report(f'resumed from {self.resume_path} at iter {self.iter_num} (best val loss {self.best_val_loss:.4f})')
            if c['block_size'] < model_args['block_size']:
                report(f"block_size={c['block_size']}: it trains on windows of {c['block_size']} tokens; the model "
                       f"keeps the {model_args['block_size']} positions of {self.resume_path}")
            if self.data_change: # a val loss on other data is no bar to beat
                report(f'new_data=True: trained on {self.data_change}; the best val loss starts over')
                self.best_val_loss = 1e9
            if self.iter_num >= c['max_iters']:
                report(f"max_iters={c['max_iters']} is already reached: evaluating only "
                       '(raise --max_iters to train on)')
            elif checkpoint.get('log') and not c['eval_only']: # runs.py joins the two logs into one run
                log(f"continues {checkpoint['log']} at iter {self.iter_num}")
        else:
            report(f'Initializing from OpenAI GPT-2 weights: {self.init_from}')
            model = GPT.from_pretrained(self.init_from, dict(dropout=c['dropout']))
            for k in ['n_layer', 'n_head', 'n_embd', 'block_size', 'bias', 'vocab_size']:
                model_args[k] = getattr(model.config, k)
        ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[dtype]
        if self.init_from in GPT2_MODELS: # OpenAI's weights come whole, on every rank
            if c['block_size'] < model.config.block_size:
                model.crop_block_size(c['block_size'])
            if ranks.sharded:
                ranks.shard(model, ptdtype)
            else:
                model.to(ranks.device)
        else: # from the seed; under FSDP no rank ever holds the whole model (distributed.py says how)
            # a resumed model keeps its checkpoint's block size, as in nanoGPT: a shorter --block_size
            # only shortens the windows it trains on, and its checkpoints load where the first did
            model = ranks.build(GPTConfig(**model_args), ptdtype)
        model_args['block_size'] = model.config.block_size # a GPT-2 cropped: its checkpoints say so
        self.model_args = model_args
        report(f'number of parameters: {model.get_num_params() / 1e6:.2f}M')

        # a GradScaler does something only for float16, whose gradients can underflow
        scaler = torch.amp.GradScaler(ranks.device_type, enabled=(dtype == 'float16'))
        optimizer = model.configure_optimizers(c['weight_decay'], c['learning_rate'], (c['beta1'], c['beta2']),
                                               ranks.device_type, c['optimizer'], c['muon_lr'], c['muon_momentum'])
        if self.init_from == 'resume':
            with ranks.lost_ranks_named(fail, lambda: 'resume'):
                if 'sharded' in checkpoint: # FSDP's shards, resharded to this run
                    ranks.load_sharded(model, optimizer, checkpoint['sharded'])
                elif ranks.sharded: # one process's checkpoint, sharded here
                    ranks.load_whole(model, optimizer, checkpoint)
                else:
                    model.load_checkpoint_weights(checkpoint['model'])
                    optimizer.load_state_dict(checkpoint['optimizer'])
                if 'scaler' in checkpoint:
                    scaler.load_state_dict(checkpoint['scaler'])
        self.checkpoint = None # free up memory
        return model, optimizer, scaler

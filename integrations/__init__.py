"""
The run log (logger.py) from other people's training loops: Hugging Face's Trainer, Lightning and
accelerate write the same crash-safe log as train.py, and runs.py reads it.

    from integrations import TrainingLoggerCallback    # Trainer(..., callbacks=[TrainingLoggerCallback(log_dir='logs')])
    from integrations import LightningTrainingLogger   # L.Trainer(..., logger=LightningTrainingLogger(log_dir='logs'))
    from integrations import AccelerateTrainingLogger  # Accelerator(log_with=[AccelerateTrainingLogger(log_dir='logs')])

Importing the package imports no framework: each class imports its own module, and that module its
framework, when the class is first named. common.py holds what the three write alike.
"""
import importlib

_MODULES = {'TrainingLoggerCallback': 'hf_trainer', 'LightningTrainingLogger': 'lightning_logger',
            'AccelerateTrainingLogger': 'accelerate_tracker'}
__all__ = list(_MODULES)


def __getattr__(name):
    if name not in _MODULES:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'{__name__}.{_MODULES[name]}'), name)


def __dir__():
    return sorted(list(globals()) + __all__)

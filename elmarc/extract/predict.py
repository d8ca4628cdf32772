"""The Lightning side of the predict loop: the module that runs a front-end on a batch, and the writer that
streams each batch's features into the feature cache as soon as it is done.

Lightning takes seconds to import, so the extract loop imports this module only when there is work to do.
"""
from __future__ import annotations

import gc
import logging
import time
import warnings

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter

from ..frontends import Frontend
from .feature_cache import FeatureEntry

log = logging.getLogger(__name__)


def quiet_lightning() -> None:
    """Lightning's tips (workers, samplers, loggers) are noise in a sweep log; our settings say why."""
    # our batch sampler returns every index by construction
    warnings.filterwarnings("ignore", message=".*custom batch sampler.*")
    warnings.filterwarnings("ignore", message=".*treespec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")   # extract.num_workers says
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)


class FrontendModule(pl.LightningModule):
    """A front-end as Lightning's predict loop runs it: a batch of inputs -> its feature vectors."""

    def __init__(self, frontend: Frontend):
        super().__init__()
        self.frontend = frontend

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        inputs = batch["inputs"]
        if len(batch["index"]) == 0:
            feats = np.zeros((0, self.frontend.feature_dim), np.float32)
        else:
            feats = self.frontend(inputs).float().cpu().numpy()
        return {"index": batch["index"].numpy(), "features": feats, "skipped": batch["skipped"]}

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        inputs = batch["inputs"]
        if isinstance(inputs, torch.Tensor):
            batch["inputs"] = inputs.to(device, non_blocking=True)
        else:
            batch["inputs"] = [x.to(device) for x in inputs]
        return batch


class ShardWriter(BasePredictionWriter):
    """Writes every batch's features to the cache as soon as the batch is done."""

    def __init__(self, entry: FeatureEntry, gc_every_s: float = 60.0):
        super().__init__(write_interval="batch")
        self.entry, self.n_written, self.skipped = entry, 0, []
        self.gc_every_s, self.last_gc = gc_every_s, time.monotonic()

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        skipped = prediction["skipped"]
        self.entry.write_shard(prediction["index"], prediction["features"],
                               np.array([i for i, _ in skipped], dtype=np.int64), [r for _, r in skipped])
        for i, r in skipped:
            log.warning("skipped clip %d: %s", i, r)
        self.skipped += skipped
        self.n_written += len(prediction["index"]) + len(skipped)
        # lightning issue 19398: CPU memory can creep in long predicts; a full collection is
        # costly with torch loaded, so collect by the clock rather than every few batches
        if time.monotonic() - self.last_gc >= self.gc_every_s:
            gc.collect()
            self.last_gc = time.monotonic()

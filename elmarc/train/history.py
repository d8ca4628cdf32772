"""The training runs' record: per epoch, losses, accuracy and seconds; the first epoch's weights (the proxy)."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from pytorch_lightning.callbacks import Callback

from ..storage import atomic_write_bytes, atomic_write_text


class History(Callback):
    """Per epoch: mean training loss, validation loss and accuracy, seconds; the first epoch's weights
    (the one-epoch proxy). Kept in the checkpoint, so a resumed run has the whole history."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.records, self._t0, self._losses = run_dir, [], None, []

    def on_train_epoch_start(self, trainer, pl_module):
        self._t0, self._losses = time.perf_counter(), []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._losses.append(float(outputs["loss"]))

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or self._t0 is None:
            return
        m = trainer.callback_metrics
        self.records.append({"epoch": trainer.current_epoch, "train_loss": float(np.mean(self._losses)),
                             "val_loss": float(m["val_loss"]), "val_acc": float(m["val_acc"]),
                             "seconds": round(time.perf_counter() - self._t0, 3)})
        if trainer.current_epoch == 0:
            buf = io.BytesIO()
            torch.save(pl_module.state_dict(), buf)
            atomic_write_bytes(self.run_dir / "epoch1.pt", buf.getvalue())
        atomic_write_text(self.run_dir / "history.json", json.dumps(self.records, indent=1))

    def state_dict(self):
        return {"records": self.records}

    def load_state_dict(self, state):
        self.records = list(state["records"])

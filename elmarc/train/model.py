"""The trained counterpart of a random front-end: the same network, initialisation and read-out, then
dropout and a linear classifier, trained end to end (Lightning)."""
from __future__ import annotations

import math

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from ..config import RecipeConfig
from ..frontends.base import Frontend
from ..frontends.speed import current as speed_policy

TRAINING_FORMS, EVALUATION_FORMS = "plain", "rule"


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's dropout draws: a resumed run redraws exactly what it would have."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 17) % (2 ** 31)


class FrozenStandardise(nn.Module):
    """(x - mean) / scale with the training part's statistics of the initial features: a fixed affine map.

    scale is the feature's std, but at least STD_FLOOR of its root mean square (and of the median feature's):
    a feature that barely varies at initialisation (a filter rectified to nearly the same mean everywhere,
    or to zero) would otherwise be multiplied by a huge factor, and its first weight update swamp the logits.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray, rms: np.ndarray | None = None):
        super().__init__()
        std = np.asarray(std, np.float64)
        if rms is not None:     # a dead filter (all zeros at init) that comes alive has the others' magnitude
            rms = np.asarray(rms, np.float64)
            std = np.maximum(std, STD_FLOOR * np.maximum(rms, np.median(rms)))
        std = np.where(std > 0, std, 1.0)
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


STD_FLOOR = 0.1


def readout_norm(kind: str, dim: int, mean: np.ndarray, std: np.ndarray, rms: np.ndarray | None = None) -> nn.Module:
    if kind == "fixed":
        return FrozenStandardise(mean, std, rms)
    if kind == "batchnorm":
        return nn.BatchNorm1d(dim)
    return nn.Identity()


class EndToEnd(pl.LightningModule):
    """input norm -> frontend -> feature vector (the random model's) -> read-out norm -> dropout -> linear.

    With dB log-mel inputs in the tens, one Adam step moves every feature by several of its standard
    deviations, and the model barely learns (make the inputs unit-scale: recipe.input_norm).

    Training runs every layer's plain form (the fast forms write into buffers autograd cannot
    follow); evaluation each layer's rule-based fast form: never one chosen by timing, which can
    differ between two processes and, through float rounding, make a resumed run drift.
    """

    def __init__(self, frontend: Frontend, n_classes: int, recipe: RecipeConfig, lr: float, seed: int,
                 feature_mean: np.ndarray, feature_std: np.ndarray, feature_rms: np.ndarray | None = None,
                 input_stats: tuple[float, float] = (0.0, 1.0)):
        super().__init__()
        self.frontend = frontend
        self.register_buffer("input_stats", torch.tensor(input_stats, dtype=torch.float32))
        for p in self.frontend.parameters():
            p.requires_grad_(True)
        self.norm = readout_norm(str(recipe.readout_norm), frontend.feature_dim, feature_mean, feature_std, feature_rms)
        self.dropout = nn.Dropout(float(recipe.dropout))
        self.head = nn.Linear(frontend.feature_dim, n_classes)
        generator = torch.Generator().manual_seed(int(seed))     # the head's init: same seed, same weights
        bound = 1.0 / math.sqrt(frontend.feature_dim)
        with torch.no_grad():
            self.head.weight.uniform_(-bound, bound, generator=generator)
            self.head.bias.zero_()
        self.recipe, self.lr, self.seed = recipe, float(lr), int(seed)
        self.train()                    # the random front-end was built in eval mode (inference)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.input_stats[0]) / self.input_stats[1]
        with speed_policy().using(TRAINING_FORMS if torch.is_grad_enabled() else EVALUATION_FORMS):
            return self.frontend(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.norm(self.features(x))))

    def training_step(self, batch, batch_idx):
        if batch_idx == 0:          # here, not in on_train_epoch_start, which a resumed run may skip
            torch.manual_seed(epoch_seed(self.seed, self.current_epoch))
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True, on_epoch=True, batch_size=len(y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True, on_epoch=True, batch_size=len(y))

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        if str(self.recipe.optimizer) == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=0.9, weight_decay=float(self.recipe.weight_decay))
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=float(self.recipe.weight_decay))


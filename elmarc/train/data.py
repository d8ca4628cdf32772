"""What training reads: (input, label) of chosen clips, in an order and with crops fixed by (seed, epoch).

Inputs are made on the fly from the decoded-audio cache, so memory stays flat in the number of clips.
Every random draw of an epoch (order, crop offsets) depends only on the seed and the epoch, so a run
resumed from its last checkpoint sees exactly the batches an uninterrupted run would have.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..errors import UserError
from ..extract.inputs import ClipInputs


def crop_length(full: int, fraction: float | None, fits) -> int:
    """Crop length for a fraction of the input; the whole input when the front-end cannot take the crop
    (fits(length) -> bool: e.g. vgg's five pools need 1280 of the 1376 frames)."""
    if fraction is None or fraction >= 1.0:
        return full
    length = max(1, int(round(full * fraction)))
    return length if fits(length) else full


class KeptInputs:
    """ClipInputs whose items are kept in memory after their first use, up to budget_mib (beyond it they are
    made again at each use, so memory stays bounded in the number of clips). A log-mel input costs more to
    make than a small model's training step on a GPU; the values are the same either way."""

    def __init__(self, inputs: ClipInputs, budget_mib: float):
        self.inputs, self.source = inputs, inputs.source
        self.budget, self.used, self.kept = int(float(budget_mib) * 2 ** 20), 0, {}

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int):
        item = self.kept.get(int(i))
        if item is None:
            item = self.inputs[int(i)]
            x = item[1]
            size = 0 if x is None else x.numel() * x.element_size()
            if x is not None and self.used + size <= self.budget:
                self.kept[int(i)], self.used = item, self.used + size
        return item


class TrainingInputs(Dataset):
    """item (position, epoch) -> (input tensor, label index); a random crop of crop_len along time when shorter
    than the input. Clips the extract stage could not read never reach here (the splits hold usable clips)."""

    def __init__(self, inputs: ClipInputs | KeptInputs, clip_index: np.ndarray, labels: np.ndarray, crop_len: int | None, seed: int):
        self.inputs, self.clip_index, self.labels = inputs, np.asarray(clip_index), np.asarray(labels, np.int64)
        self.crop_len, self.seed = crop_len, int(seed)

    def __len__(self) -> int:
        return len(self.clip_index)

    def __getitem__(self, item):
        pos, epoch = item if isinstance(item, tuple) else (item, None)
        i = int(self.clip_index[pos])
        _, x, reason = self.inputs[i]
        if reason:
            raise UserError(f"clip {self.inputs.source.clips['clip_id'].iloc[i]} could not be read while training: {reason}.\n"
                            f"  Fix: run the extract stage again (it lists unreadable clips and the splits leave them out).")
        if epoch is not None and self.crop_len is not None and self.crop_len < x.shape[0]:
            rng = np.random.default_rng([self.seed, int(epoch), i])
            start = int(rng.integers(0, x.shape[0] - self.crop_len + 1))
            x = x[start:start + self.crop_len]
        return x, torch.tensor(self.labels[pos])


class EpochShuffle(Sampler):
    """A permutation of the items drawn from (seed, epoch), the epoch asked of epoch_of() when an epoch's
    iteration starts (the trainer's epoch: Lightning's set_epoch counts differently after a resume).
    Yields (position, epoch), so the dataset draws its crops from the same pair."""

    def __init__(self, n: int, seed: int, epoch_of=lambda: 0):
        self.n, self.seed, self.epoch_of = int(n), int(seed), epoch_of

    def __iter__(self):
        epoch = int(self.epoch_of())
        order = np.random.default_rng([self.seed, epoch, 99]).permutation(self.n)
        return iter((int(p), epoch) for p in order)

    def __len__(self) -> int:
        return self.n

"""hear-validator's checks, written from its source (hearvalidator/validate.py, 2021.0.2 and 2021.0.6, Apache-2.0),
for the torch path: what `hear-validator <module> --model <file>` runs, where the package (which needs
TensorFlow) is not installed. test_hear.py runs the real one too when it imports."""
import importlib
import warnings

import numpy as np
import torch

RATES = {"2021.0.2": [16000, 22050, 44100, 48000], "2021.0.6": [16000, 22050, 32000, 44100, 48000]}


class ModelError(Exception):
    pass


def validate(module_name: str, model_file_path: str = "", version: str = "2021.0.6", device: str = "cpu"):
    """Raise ModelError where the validator of that version fails; return its warnings' messages."""
    module = importlib.import_module(module_name)
    for fn in ("load_model", "get_timestamp_embeddings", "get_scene_embeddings"):
        if not hasattr(module, fn):
            raise ModelError(f"Your API must include a function: '{fn}'")
    model = module.load_model(model_file_path) if model_file_path else module.load_model()
    if not isinstance(model, torch.nn.Module):
        raise ModelError("Model must be either a PyTorch module or a tensorflow module")
    model.to(device)
    if model.sample_rate not in RATES[version]:
        raise ModelError(f"Input sample rate of {model.sample_rate} is invalid. Must be one of {RATES[version]}")
    for attr in ("scene_embedding_size", "timestamp_embedding_size"):
        if not isinstance(getattr(model, attr, None), int):
            raise ModelError(f"Model.{attr} must be an int")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = [(16, 2.0)] if version == "2021.0.2" else [(2, 1.07), (2, 1.98), (2, 4.0)]
        for num_audio, length in runs:
            _timestamps(module, model, num_audio, length, device, version)
        scene = (8, 3.74) if version == "2021.0.2" else (4, 2.74)
        _scene(module, model, *scene, device)
    return [str(w.message) for w in caught]


def _audio(model, num_audio, length, device):
    return torch.rand((num_audio, int(length * model.sample_rate)), device=device) * 2 - 1.0


def _timestamps(module, model, num_audio, length, device, version):
    embeddings, timestamps = module.get_timestamp_embeddings(_audio(model, num_audio, length, device), model)
    if embeddings.dtype != torch.float32:
        raise ModelError(f"Expected embeddings to be {torch.float32}, received {embeddings.dtype}.")
    if embeddings.ndim != 3 or timestamps.ndim != 2:
        raise ModelError(f"timestamp embeddings of shape {embeddings.shape}, timestamps {timestamps.shape}")
    if embeddings.shape[0] != num_audio:
        raise ModelError(f"Passed in a batch of {num_audio} audio samples, but your model returned {embeddings.shape[0]}.")
    if embeddings.shape[:2] != timestamps.shape:
        raise ModelError(f"Expected timestamps of shape {embeddings.shape[:2]}, but received {timestamps.shape}.")
    if embeddings.shape[2] != model.timestamp_embedding_size:
        raise ModelError(f"Output embedding size is {embeddings.shape[2]}, not {model.timestamp_embedding_size}")
    ts = timestamps.detach().cpu().numpy()
    if version == "2021.0.2":
        diff = torch.diff(timestamps)
        average = torch.mean(diff.float())
        if average > 50.0:
            warnings.warn("We suggest a interval between timestamps less than or equal to 50ms", stacklevel=2)
        if not torch.all(torch.abs(diff - average) < 1e-3):
            raise ModelError("Timestamps should occur at regular intervals.")
        return
    if ts.shape[1] > 1:
        diff = np.diff(ts)
        avg, worst = np.mean(diff), np.max(diff)
        if worst > 50.0:
            warnings.warn("We suggest a interval between timestamps less than or equal to 50ms", stacklevel=2)
        if np.max(np.abs(diff - avg)) > 1:
            raise ModelError("Timestamps should occur at regular intervals.")
        if np.min(ts) > avg:
            warnings.warn(f"Your timestamps begin at {np.min(ts)}ms, which appears to be wrong.", stacklevel=2)
        if np.max(ts) < 1000 * length - avg or np.max(ts) < 1000 * length - 50:
            warnings.warn(f"Your timestamps end at {np.max(ts)}ms, but the audio is {1000 * length} ms.", stacklevel=2)
        if np.max(ts) > 1000 * length:
            raise ModelError(f"Your timestamps end at {np.max(ts)}ms, but the audio is {1000 * length} ms.")


def _scene(module, model, num_audio, length, device):
    embeddings = module.get_scene_embeddings(_audio(model, num_audio, length, device), model)
    if embeddings.dtype != torch.float32:
        raise ModelError(f"Expected embeddings to be {torch.float32}, received {embeddings.dtype}.")
    if embeddings.ndim != 2 or embeddings.shape[0] != num_audio:
        raise ModelError(f"scene embeddings of shape {embeddings.shape} for {num_audio} sounds")
    if embeddings.shape[1] != model.scene_embedding_size:
        raise ModelError(f"Output embedding size is {embeddings.shape[1]}, not {model.scene_embedding_size}")

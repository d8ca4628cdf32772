"""A HEAR module that breaks the API the way its model file says: 'shape', 'dtype', 'nan', or fails inside
itself: 'load' (load_model raises a TypeError), 'raise' (get_scene_embeddings raises)."""
import torch

DEFECT = {"value": "ok"}


class Model(torch.nn.Module):
    sample_rate = 16000
    scene_embedding_size = 8
    timestamp_embedding_size = 8

    def __init__(self, defect):
        super().__init__()
        self.defect = defect


def load_model(model_file_path: str = "") -> Model:
    defect = open(model_file_path).read().strip() if model_file_path else "ok"
    if defect == "load":
        raise TypeError("melspectrogram() takes 0 positional arguments but 1 was given")   # as a library upgrade does
    return Model(defect)


def get_scene_embeddings(audio, model):
    n = audio.shape[0]
    if model.defect == "shape":
        return torch.zeros(n, 7)
    if model.defect == "dtype":
        return torch.zeros(n, 8, dtype=torch.float64)
    if model.defect == "nan":
        return torch.full((n, 8), float("nan"))
    if model.defect == "raise":
        raise ValueError("the window is longer than the clip")
    return torch.zeros(n, 8)


def get_timestamp_embeddings(audio, model):
    return torch.zeros(audio.shape[0], 1, 8), torch.zeros(audio.shape[0], 1)

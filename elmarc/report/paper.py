"""The paper's numbers (SPEC section 5): accuracy %, ~3500 features (large width), mean of 3 runs.

Read off the reference's bar charts (+-0.3); MFCC rows from the paper's text.
frame_level / frame_level_many figures carry the reference's averaging bug (SPEC 2).
"""
from __future__ import annotations

_CHART = {
    # frontend: (gtzan svm, gtzan elm, ballroom svm, ballroom elm, us8k svm, us8k elm)
    "vgg": (59.6, 43.7, 71.4, 69.7, 70.8, 66.8),
    "7x96": (45.1, 42.9, 60.6, 56.2, 57.0, 57.8),
    "7x86": (53.2, 42.2, 65.3, 57.6, 63.1, 59.7),
    "timbral": (52.4, 46.7, 64.3, 56.9, 62.6, 60.7),
    "temporal": (43.9, 36.5, 89.9, 89.9, None, None),
    "timbral_temporal": (56.7, 50.1, 81.5, 78.5, None, None),
    "timbral_time": (None, None, None, None, 64.2, 62.8),
    "sample_level": (50.5, 47.9, 71.0, 65.7, 58.6, 57.6),
    "frame_level": (39.9, 37.7, 38.7, 38.7, 38.5, 42.0),
    "frame_level_many": (44.4, 39.2, 41.4, 40.7, 45.1, 46.7),
    "mfcc": (53.4, None, 63.3, None, 65.5, None),
}
_COLUMNS = [("gtzan", "svm"), ("gtzan", "elm"), ("ballroom", "svm"), ("ballroom", "elm"),
            ("urbansound8k", "svm"), ("urbansound8k", "elm")]

PAPER_ACCURACY = {
    (dataset, frontend, clf): value
    for frontend, values in _CHART.items()
    for (dataset, clf), value in zip(_COLUMNS, values)
    if value is not None
}


def paper_accuracy(dataset: str, frontend: str, classifier: str, width: str) -> float | None:
    """The paper's figure (%) for this cell, or None. MFCC has no width; others only at 'large'."""
    if frontend != "mfcc" and width != "large":
        return None
    return PAPER_ACCURACY.get((dataset, frontend, classifier))

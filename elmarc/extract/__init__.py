"""Extraction: model inputs, the decode-once audio cache, the keyed feature cache and the Lightning predict loop.

    settings.py       extract.* resolved for one job (Extraction)
    key.py            what makes a job's features: the spec its entry is keyed by
    stage.py          the stage: decode once, then the predict loop into the entry
    inputs.py         each clip's model input, in fixed batches
    audio_cache.py    the decode-once audio of a dataset, shared by every job
    feature_cache.py  the keyed features entry (shards, then features.npy + clips.csv)
    loop.py           the predict loop; predict.py its Lightning module and shard writer
"""

"""Data: curation of raw sources (``lmfoundry.data.curation``), token shards and the pretraining dataset.

- :func:`lmfoundry.data.shards.tokenize_shards` (``lmfoundry data tokenize``): documents -> shards,
  as one local job or as datatrove tasks (local, Slurm, Ray); the whole shard stage lives in
  :mod:`lmfoundry.data.shards` (format, folder lifecycle, encoding, both schedulers, its config);
- :class:`lmfoundry.data.dataset.PretrainDataset`: deterministic ``[B, S+1]`` batches for training.

Submodules are imported on use, so ``import lmfoundry.data`` stays cheap.
"""

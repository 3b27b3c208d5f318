"""Data: curation of raw sources (``lmfoundry.data.curation``), token shards and the pretraining dataset.

- :func:`lmfoundry.data.tokenize.tokenize_corpus` (``lmfoundry data tokenize``): documents -> shards;
- :func:`lmfoundry.data.tokenize_executor.tokenize_on_executor`: the same as datatrove tasks (local,
  Slurm, Ray), built from the steps in :mod:`lmfoundry.data.tokenize_step`;
  :func:`~lmfoundry.data.tokenize_executor.tokenize_shards` picks one of the two from the settings;
- :mod:`lmfoundry.data.shards`: the on-disk format (datatrove ``.ds`` layout + ``manifest.json``);
- :class:`lmfoundry.data.dataset.PretrainDataset`: deterministic ``[B, S+1]`` batches for training.

Submodules are imported on use, so ``import lmfoundry.data`` stays cheap.
"""

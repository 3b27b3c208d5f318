"""Data: curation of raw sources (``lmfoundry.data.curation``), token shards and the pretraining dataset.

- :func:`lmfoundry.data.tokenize.tokenize_corpus` (``lmfoundry data tokenize``): documents -> shards;
- :mod:`lmfoundry.data.shards`: the on-disk format (datatrove ``.ds`` layout + ``manifest.json``);
- :class:`lmfoundry.data.dataset.PretrainDataset`: deterministic ``[B, S+1]`` batches for training.

Submodules are imported on use, so ``import lmfoundry.data`` stays cheap.
"""

"""What every curation worker would otherwise do for itself, done once in the fork server.

The local executor forks its workers from one server process that imports the ``preload``
modules first; this is one of them. Two per-process costs are paid here, before the fork:

* datatrove checks the installed distributions of a step's dependencies whenever a step object is
  made, unpickling included, so every worker re-checked them for every step class of the pipeline:
  one scan of all installed packages' metadata per dependency name (about 0.1 s each, 0.5 s and
  more per worker). Its answers are cached per process, so checking them here once fills the cache
  every worker inherits.
* the fastText language-ID model, loaded once instead of once per task.
"""

from __future__ import annotations

import contextlib
from itertools import chain

from datatrove.utils._import_utils import check_required_dependencies

from lmfoundry.data.curation import dedup, filters, pipeline, sources


def _check_dependencies() -> None:
    # The steps of every curation (the HTML extractor and the Parquet writer, in only some runs, are
    # left to the workers that use them: a scan here would cost every run)
    steps = [
        *filters.FILTER_CLASSES.values(),
        *filters.STOCK_FILTER_CLASSES.values(),
        filters.PIIScrub,
        dedup.ExactDedupSignature,
        dedup.MinhashSignature,
        dedup.AllBuckets,
        dedup.DedupClusters,
        dedup.DedupFilter,
        sources.SourceReader,
        pipeline.JsonlWriter,
    ]
    for step in dict.fromkeys(steps):
        needed = list(chain.from_iterable(getattr(t, "_requires_dependencies", []) for t in step.mro()))
        # a step this installation cannot run: the run that uses it reports it
        with contextlib.suppress(ImportError):
            check_required_dependencies(step.__name__, needed)


_check_dependencies()
filters.LanguageID().model  # noqa: B018 -- loads the model into this process's cache

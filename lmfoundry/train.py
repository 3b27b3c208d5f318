"""Entry point for several processes: ``accelerate launch [--config_file F] -m lmfoundry.train RECIPE ...``.

Takes the same arguments as ``lmfoundry train`` and behaves identically; every process runs this
module and Accelerate wires them together (DDP, FSDP or DeepSpeed, as the launch config says).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from lmfoundry.cli import run_verb
from lmfoundry.training.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmfoundry.train", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    # every rank runs this; only rank 0 narrates (RANK is set by accelerate launch / torchrun)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    logging.basicConfig(level=logging.INFO if main_rank else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    return run_verb(run, args)


if __name__ == "__main__":
    sys.exit(main())

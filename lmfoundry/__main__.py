import sys

from lmfoundry.cli import main

sys.exit(main())

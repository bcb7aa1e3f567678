"""``python -m certificates.cli ...``: the same as the ``attncert`` console script."""
import sys

from certificates.cli.main import main

sys.exit(main())

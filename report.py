"""Tables, verdicts and figures from finished runs: ``python report.py logs/`` (see lit_sisr.report)."""

import sys

from lit_sisr.report.cli import main

if __name__ == "__main__":
    sys.exit(main())

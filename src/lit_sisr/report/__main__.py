import sys

from lit_sisr.report.cli import main

sys.exit(main())

"""``python -m rpcdaemon``."""

from rpcdaemon.cli import main

raise SystemExit(main())

"""`python -m cli` runs the psconnect command."""

from cli.main import main

raise SystemExit(main())

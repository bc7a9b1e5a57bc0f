"""`python -m gateway` runs the psconnect command."""

from gateway.cli import main

raise SystemExit(main())

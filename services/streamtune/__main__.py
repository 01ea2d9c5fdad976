"""``python -m streamtune``: the `streamtune` command, also what ``torchrun -m streamtune`` runs."""

from streamtune.cli import main

raise SystemExit(main())

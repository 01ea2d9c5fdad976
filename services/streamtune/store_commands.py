"""The store's administrative commands: roll back to an older version, forget a user."""

from __future__ import annotations

import sys
from pathlib import Path

from streamtune.config import Settings
from streamtune.preflight import require_pseudonymisation_key, require_store


def rollback(settings: Settings, to: int) -> int:
    """`streamtune rollback --to N`: point LATEST at an older version; newer ones are kept."""
    from streamtune.checkpoints import is_object_storage, open_store
    from streamtune.errors import CheckpointError

    if not is_object_storage(settings.checkpoint_uri):
        require_store(Path(settings.checkpoint_uri or settings.checkpoint_dir))
    store = open_store(settings.checkpoint_uri, settings.checkpoint_dir, settings.keep_versions)
    try:
        previous = store.rollback(to)
    except CheckpointError as error:
        print(f"cannot roll back to version {to}: {error}", file=sys.stderr)
        return 1
    print(
        f"LATEST now names version {to} (was {previous}); newer versions are kept. A running "
        f"trainer continues from version {to}, re-consuming the events after its offsets."
    )
    return 0


def forget(settings: Settings, user_id: str) -> int:
    """`streamtune forget USER`: record the user's pseudonym for the trainer to purge."""
    from streamtune.privacy import ForgetRequests, Pseudonymiser

    require_pseudonymisation_key(settings.pseudonymise_key is not None, settings.checkpoint_dir)
    key = settings.pseudonymise_key.get_secret_value() if settings.pseudonymise_key else None
    pseudonym = Pseudonymiser.for_store(key, settings.checkpoint_dir).pseudonym(user_id)
    new = ForgetRequests(settings.checkpoint_dir).request(pseudonym)
    print(
        f"{'recorded' if new else 'already recorded'}: forget pseudonym {pseudonym}. The trainer drops "
        "this user's examples from its replay buffer and holdout window within seconds (or when it "
        "next starts); the next version no longer holds them. Versions already published keep their "
        "holdout rows until retention removes them, and trained weights are not retrained."
    )
    return 0

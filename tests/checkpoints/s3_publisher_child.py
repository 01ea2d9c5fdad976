"""A writer to be killed: publishes one version, and after its ``stop_after``-th object upload
reports the key on stdout and waits to be SIGKILLed (it never finishes the publish).

Usage: ``python -m tests.checkpoints.s3_publisher_child URI CACHE_DIR STOP_AFTER``; credentials
and endpoint come from the standard AWS variables, as in production.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from streamtune.checkpoints import open_store
from tests.checkpoints.s3_helpers import publish


def main(uri: str, cache_dir: str, stop_after: int) -> None:
    store = open_store(uri, Path(cache_dir))
    uploads, key = 0, ""

    def before_upload(params: dict[str, Any], **_: Any) -> None:
        nonlocal key
        key = params["url_path"]

    def after_upload(**_: Any) -> None:
        nonlocal uploads
        uploads += 1
        if uploads == stop_after:
            print(f"uploaded {key}", flush=True)
            threading.Event().wait()  # until the parent's SIGKILL

    store.objects.client.meta.events.register("before-call.s3.PutObject", before_upload)
    store.objects.client.meta.events.register("after-call.s3.PutObject", after_upload)
    publish(store, b"doomed", size=65536, files=3)
    print("published: the kill came too late", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

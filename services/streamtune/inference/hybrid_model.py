"""A loaded hybrid version as the batcher and routes see it: rows with ids in, scores with flags out.

A hybrid request row carries the pseudonymised user id, the item id, and optionally the item
text and a context (:class:`HybridRow`); a plain string is taken as an item text with no ids,
so text-only callers and the warm-up work unchanged. A score is a float that also says whether
the user and the item had rows (:class:`HybridScore`): the batcher passes scores through
untouched, so no queue or batch code needs to know the family.

Scoring a row costs two row lookups, cached text vectors and the small dense part; a text is
encoded only the first time this server sees it (:mod:`streamtune.inference.text_cache`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import torch

from streamtune.errors import ModelNotReadyError
from streamtune.inference.text_cache import ServerTexts
from streamtune.modeling.hybrid.model import HybridModel
from streamtune.privacy.pseudonyms import Pseudonymiser

DEFAULT_MAX_ROWS = 256  # rows per dense pass: cheap, so larger than the text family's


@dataclass(frozen=True)
class HybridRow:
    """One instance to score: ids (user already pseudonymised) and the texts it came with."""

    user: str | None = None
    item: str | None = None
    text: str | None = None
    context: str | None = None


class HybridScore(float):
    """P(like), carrying whether the user and the item were known to the version."""

    user_known: bool
    item_known: bool

    def __new__(cls, probability: float, user_known: bool, item_known: bool) -> HybridScore:
        score = super().__new__(cls, probability)
        score.user_known = user_known
        score.item_known = item_known
        return score


class RowMaker:
    """Builds :class:`HybridRow` objects from request fields; raw user ids end here."""

    def __init__(self, pseudonymiser: Pseudonymiser) -> None:
        self._pseudonymiser = pseudonymiser

    def row(
        self, user_id: str | int | None, item_id: str | int | None, text: str | None, context: str | None
    ) -> HybridRow:
        """A row; ids as events carry them (string or integer), the user id pseudonymised."""
        user = None if user_id is None else self._pseudonymiser.pseudonym(str(user_id))
        return HybridRow(user, None if item_id is None else str(item_id), text or None, context or None)


class Readers:
    """Counts the batches scoring on one version's tables, so that a loader reuses the tables of
    a retired version only while none is (:mod:`streamtune.inference.delta_chain`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._retired = False

    def __enter__(self) -> None:
        with self._lock:
            if self._retired:  # a batch that took the version before a swap and waited a whole load
                raise ModelNotReadyError("the version this request started on was replaced; retry")
            self._count += 1

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        with self._lock:
            self._count -= 1

    def retire(self) -> bool:
        """Refuse readers from now on, if none is reading; whether it did."""
        with self._lock:
            if self._count:
                return False
            self._retired = True
            return True


@dataclass(frozen=True)
class HybridServed:
    """One immutable loaded hybrid version; a batch keeps a reference for its whole duration."""

    version: int
    manifest: dict[str, Any]
    model: HybridModel
    texts: ServerTexts | None  # None for a model without text (the ids ablation)
    readers: Readers = field(default_factory=Readers, compare=False, repr=False)

    @property
    def data_watermark_ms(self) -> int | None:
        return self.manifest.get("data_watermark_ms")

    def score_rows(self, rows: Sequence[HybridRow | str]) -> list[HybridScore]:
        """Scores of ``rows`` (strings are item texts without ids)."""
        with self.readers:
            return self._score(rows)

    def _score(self, rows: Sequence[HybridRow | str]) -> list[HybridScore]:
        rows = [HybridRow(text=row) if isinstance(row, str) else row for row in rows]
        model = self.model
        texts: dict[str, torch.Tensor] = {}
        item_texts = [row.text for row in rows]
        if model.config.use_text and self.texts is not None:
            liked, disliked = self.texts.context_vectors([row.context for row in rows], item_texts)
            item_texts = self.texts.item_texts([row.item for row in rows], item_texts)
            item = self.texts.text_vectors(item_texts)
            texts = {
                "item": torch.from_numpy(item),
                "liked": torch.from_numpy(liked),
                "disliked": torch.from_numpy(disliked),
            }
        events = [
            {"user_id": row.user, "item_id": row.item, "text": text} for row, text in zip(rows, item_texts, strict=True)
        ]
        with torch.inference_mode():
            keys = model.keys(events, texts)
            looked_up = model.lookup(keys)
            probabilities = torch.sigmoid(model.scorer(model.inputs(keys, looked_up, texts))).tolist()
        users, items = (looked_up["users"] >= 0).tolist(), (looked_up["items"] >= 0).tolist()
        return [HybridScore(p, u, i) for p, u, i in zip(probabilities, users, items, strict=True)]

    def score_groups(
        self, rows: Sequence[HybridRow | str], contexts: Sequence[str | None] = (), max_rows: int = DEFAULT_MAX_ROWS
    ) -> Iterator[tuple[list[int], list[float]]]:
        """Scores ``max_rows`` at a time, as the batcher asks of every served model. A row's
        context travels in the row; ``contexts`` is used only for plain-string rows."""
        for start in range(0, len(rows), max_rows):
            positions = list(range(start, min(start + max_rows, len(rows))))
            chunk = [_with_context(rows[p], contexts[p] if p < len(contexts) else None) for p in positions]
            yield positions, list(self.score_rows(chunk))

    def predict(
        self,
        rows: Sequence[HybridRow | str],
        contexts: Sequence[str | None] = (),
        max_rows: int = DEFAULT_MAX_ROWS,
        on_forward: Callable[[int], object] | None = None,
    ) -> list[float]:
        """Scores of all ``rows`` in their order (see :meth:`score_groups`)."""
        scores: list[float] = []
        for positions, group in self.score_groups(rows, contexts, max_rows):
            scores += group
            if on_forward is not None:
                on_forward(len(positions))
        return scores


def _with_context(row: HybridRow | str, context: str | None) -> HybridRow | str:
    return HybridRow(text=row, context=context) if isinstance(row, str) else row

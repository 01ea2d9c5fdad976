"""Hyper-parameters of the hybrid (ID + text) model family, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class HybridConfig:
    """How the hybrid model is shaped and how fast each part learns.

    Defaults are chosen from how online learners behave, not searched on an evaluation stream:
    sparse rows see a key a handful of times, so they need a step about a hundred times larger
    than the dense part, which sees every event.
    """

    factors: int = 16  # user/item factor width
    text_dim: int = 384  # sentence-embedding width (all-MiniLM-L6-v2)
    use_text: bool = True  # False gives the "ids" ablation: no text terms at all
    hidden: int = 32  # width of the small MLP over the interaction features
    user_rows: int = 200_000  # row budget per table; least recently seen rows are evicted
    item_rows: int = 200_000
    # SimHash bits of the text embedding for (user, kind-of-film) rows; 0 turns them off. Off by
    # default: on MovieLens they added no AUC over the text terms (see the module docs).
    kind_bits: int = 0
    user_kind_rows: int = 1_000_000  # (user, kind) rows: a user's taste for films of a kind
    # Rows of the words of item texts (see words.py); 0 turns them off. Only with text.
    word_rows: int = 200_000
    max_words: int = 32  # words of one item text that get rows (the first ones)
    admit_after: int = 1  # sightings before a key gets a row (Monolith-style admission)
    expire_after: int | None = None  # evict keys unseen for this many clock units (None: never)
    sparse_lr: float = 0.05  # Adagrad step for table rows
    sparse_decay: float = 0.9  # factor on a row's Adagrad accumulators per touch (see optimizer.py)
    dense_lr: float = 2e-3  # AdamW step for the dense part
    weight_decay: float = 1e-4
    init_std: float = 0.01
    text_gain: float = 1.0  # expected norm of P t_item at the start, for a unit text vector
    # Per-event decay rates of the recent like-counts: half-lives of about 2 and 14 of the key's
    # own events, a session and a season; the model learns how much each matters.
    recent_decays: tuple[float, ...] = (0.3, 0.05)
    prior_weight: float = 2.0  # pseudo-events of the global rate in each row's like-rate
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, stored with every snapshot."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HybridConfig:
        """The inverse of :meth:`to_dict`."""
        # Versions written before word rows existed have none.
        return cls(**{"word_rows": 0, **data, "recent_decays": tuple(data.get("recent_decays", cls.recent_decays))})

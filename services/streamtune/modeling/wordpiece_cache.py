"""A memoised fast path for BERT-style WordPiece tokenizers on plain ASCII text.

A BERT tokenizer lowercases, splits on whitespace and on every punctuation character, then cuts
each word into word pieces independently of its neighbours. A word's pieces can therefore be
computed once and looked up afterwards: an event stream keeps reusing its vocabulary, and a
dictionary lookup costs a fraction of normalising and tokenizing the word again (about 3× the
Rust tokenizer's rate on one core). Only text the shortcut provably handles the same way takes
it: printable ASCII plus tab, newline and carriage return, with no special-token string in it.
Anything else is tokenized by the tokenizer itself. Pair truncation ("longest first"), special
tokens and padding follow the tokenizer's rules; tests compare the tensors with its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from itertools import chain

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase

# Text BertNormalizer leaves alone apart from lowercasing: no control characters (it would delete
# them), nothing beyond ASCII (accents, CJK spacing, unicode whitespace).
_PLAIN = re.compile(r"[\t\n\r -~]*\Z")
# BertPreTokenizer on ASCII: runs of letters and digits, and each punctuation character alone
# (BERT counts every printable non-alphanumeric ASCII character as punctuation, "_" included).
_WORDS = re.compile(r"[A-Za-z0-9]+|[!-/:-@\[-`{-~]")
# The template of a BERT pair: [CLS] A [SEP] B [SEP], type ids 0 0 0 1 1.
_BERT_PAIR = [("[CLS]", 0), ("A", 0), ("[SEP]", 0), ("B", 1), ("[SEP]", 1)]
# Bound on memoised words: a hostile stream of unique words must not grow memory forever.
MAX_CACHED_WORDS = 500_000
# Whole segments repeat too (an item's text at each impression, a user's context between two
# events); short ones are memoised as well, bounded in count and length.
MAX_CACHED_SEGMENTS = 20_000
MAX_CACHED_SEGMENT_CHARS = 256


class _Pieces(dict[str, tuple[int, ...]]):
    """Word → its word-piece ids, computed by the tokenizer on first use."""

    def __init__(self, core: Tokenizer) -> None:
        super().__init__()
        self._core = core

    def __missing__(self, word: str) -> tuple[int, ...]:
        if len(self) >= MAX_CACHED_WORDS:
            self.clear()
        pieces = self[word] = tuple(self._core.encode(word, add_special_tokens=False).ids)
        return pieces


class CachedBertPairEncoder:
    """Padded tensors for (text, context) pairs, as a BERT fast tokenizer makes them.

    Build it with :meth:`for_tokenizer`, which returns ``None`` for tokenizers whose pipeline
    differs from BERT's (the caller then uses the tokenizer itself).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int, pad_multiple: int | None) -> None:
        core = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        core.no_truncation()
        core.no_padding()
        self._core = core
        self._pieces = _Pieces(core)
        self._lowercase = bool(json.loads(core.to_str())["normalizer"].get("lowercase"))
        self._special = [token.lower() for token in tokenizer.all_special_tokens]
        # Plain text without any character a special token starts with ("[" for BERT) cannot
        # hold one, which spares the substring searches for most text.
        starts = {token[0] for token in self._special if token} | {token[0].upper() for token in self._special if token}
        allowed = "".join(re.escape(chr(code)) for code in range(32, 127) if chr(code) not in starts)
        self._plain_without_special_starts = re.compile(f"[\\t\\n\\r{allowed}]*\\Z")
        self._segments: dict[str, tuple[int, ...]] = {}
        self._cls, self._sep = tokenizer.cls_token_id, tokenizer.sep_token_id
        self._pad_id = tokenizer.pad_token_id or 0
        self._pad_type_id = tokenizer.pad_token_type_id
        self._max_length = max_length
        self._pad_multiple = pad_multiple
        self._names = list(tokenizer.model_input_names)

    @classmethod
    def for_tokenizer(
        cls, tokenizer: PreTrainedTokenizerBase, max_length: int, pad_multiple: int | None
    ) -> CachedBertPairEncoder | None:
        """The encoder, or ``None`` unless ``tokenizer`` is a right-padding BERT WordPiece one."""
        if not tokenizer.is_fast or tokenizer.pad_token is None or tokenizer.padding_side != "right":
            return None
        if max_length < 4 or set(tokenizer.model_input_names) - {"input_ids", "token_type_ids", "attention_mask"}:
            return None
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
        normalizer, post = spec.get("normalizer") or {}, spec.get("post_processor") or {}
        bert_like = (
            normalizer.get("type") == "BertNormalizer"
            and normalizer.get("clean_text")
            and (spec.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer"
            and (spec.get("model") or {}).get("type") == "WordPiece"
            and post.get("type") == "TemplateProcessing"
            and _template(post.get("pair", [])) == _BERT_PAIR
            and tokenizer.cls_token == "[CLS]"
            and tokenizer.sep_token == "[SEP]"
        )
        return cls(tokenizer, max_length, pad_multiple) if bert_like else None

    def segment(self, text: str) -> tuple[int, ...]:
        """Word-piece ids of one segment, without special tokens or truncation."""
        known = self._segments.get(text)
        if known is None:
            known = self._segment(text)
            if len(text) <= MAX_CACHED_SEGMENT_CHARS:
                if len(self._segments) >= MAX_CACHED_SEGMENTS:
                    self._segments.clear()
                self._segments[text] = known
        return known

    def _segment(self, text: str) -> tuple[int, ...]:
        lowered = text.lower()
        if self._plain_without_special_starts.match(text) or (
            _PLAIN.match(text) and not any(token in lowered for token in self._special)
        ):
            words = _WORDS.findall(lowered if self._lowercase else text)
            return tuple(chain.from_iterable(map(self._pieces.__getitem__, words)))
        return tuple(self._core.encode(text, add_special_tokens=False).ids)

    def __call__(self, texts: Sequence[str], contexts: Sequence[str | None]) -> dict[str, torch.Tensor]:
        budget = self._max_length - 3  # [CLS] A [SEP] B [SEP]
        rows, splits, ends = [], [], []
        for text, context in zip(texts, contexts, strict=True):
            first, second = self.segment(text), self.segment(context or "")
            keep_first, keep_second = longest_first(len(first), len(second), budget)
            rows.append([self._cls, *first[:keep_first], self._sep, *second[:keep_second], self._sep])
            splits.append(keep_first + 2)
            ends.append(keep_first + keep_second + 3)
        width = max(ends, default=0)
        if self._pad_multiple and width % self._pad_multiple:
            width += self._pad_multiple - width % self._pad_multiple
        padding = [self._pad_id] * width
        ids = np.array([row + padding[len(row) :] for row in rows], dtype=np.int64).reshape(len(rows), width)
        positions = np.arange(width)
        mask = positions < np.array(ends)[:, None]
        second_segment = (positions >= np.array(splits)[:, None]) & mask
        types = np.where(mask, second_segment, self._pad_type_id).astype(np.int64)
        columns = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask.astype(np.int64)}
        return {name: torch.from_numpy(columns[name]) for name in self._names}


def longest_first(first: int, second: int, budget: int) -> tuple[int, int]:
    """How many tokens of each segment the "longest first" strategy keeps within ``budget``.

    The tokenizers library's rule: the shorter segment keeps everything if the longer can give
    way, otherwise the budget is split in half (the odd token to the longer one).

    >>> longest_first(10, 200, 125), longest_first(70, 80, 125), longest_first(3, 4, 125)
    ((10, 115), (62, 63), (3, 4))
    """
    if first + second <= budget:
        return first, second
    short, long = sorted((first, second))
    long = short if short > budget else max(short, budget - short)
    if short + long > budget:
        short, long = budget // 2, budget // 2 + budget % 2
    return (long, short) if first > second else (short, long)


def _template(pieces: list[dict]) -> list[tuple[str, int]]:
    out = []
    for piece in pieces:
        kind, body = next(iter(piece.items()))
        out.append((body["id"], body["type_id"]) if kind in ("SpecialToken", "Sequence") else ("?", -1))
    return out

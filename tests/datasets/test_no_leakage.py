"""Nothing from an event's future may reach its text or context.

The converter builds history incrementally; these tests recompute every event's expected text
and context from scratch out of the whole log (an independent oracle that only looks backwards)
and demand equality on random logs full of same-second ties.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streamtune.datasets.history import TagBook, UserHistory
from streamtune.datasets.movielens import (
    POSITIVE_RATING,
    Movie,
    MovieLensData,
    Rating,
    TagApplication,
    item_text,
    replay_events,
)

PER_KIND = 2
MAX_TAGS = 2
MOVIES = {item: Movie(f"Film {item} (200{item})", ("Drama",) if item % 2 else ()) for item in range(1, 7)}

ratings_strategy = st.lists(
    st.tuples(
        st.integers(1, 4),  # user
        st.integers(1, 6),  # item
        st.integers(0, 12),  # second: small range, so many ties
        st.sampled_from([1.0, 2.5, 3.5, 4.0, 5.0]),
    ),
    max_size=40,
    unique_by=lambda row: (row[0], row[1]),
)
tags_strategy = st.lists(
    st.tuples(st.integers(1, 6), st.sampled_from(["dark", "Dark", "funny", "slow"]), st.integers(0, 12)),
    max_size=15,
)


def expected_context(log: list[Rating], event: Rating) -> str:
    earlier = [r for r in log if r.user_id == event.user_id and r.ts < event.ts]
    parts = []
    for kind, liked in (("liked", True), ("disliked", False)):
        titles = [MOVIES[r.item_id].title for r in earlier if (r.rating >= POSITIVE_RATING) == liked]
        if titles:
            parts.append(f"{kind}: " + "; ".join(reversed(titles[-PER_KIND:])))
    return " | ".join(parts)


def expected_text(tags: list[TagApplication], event: Rating) -> str:
    known: list[str] = []
    for application in tags:  # already in time order, file order within a second
        if application.item_id != event.item_id or application.ts > event.ts:
            continue
        if application.tag.casefold() not in {tag.casefold() for tag in known}:
            known.append(application.tag)
    return item_text(MOVIES[event.item_id], tuple(known[:MAX_TAGS]))


@settings(max_examples=150, deadline=None)
@given(rows=ratings_strategy, tag_rows=tags_strategy)
def test_text_and_context_only_use_the_past(rows: list[tuple], tag_rows: list[tuple]) -> None:
    log = sorted(Rating(ts, user, item, rating) for user, item, ts, rating in rows)
    tags = sorted((TagApplication(ts, item, tag) for item, tag, ts in tag_rows), key=lambda t: t.ts)
    data = MovieLensData(layout="ml-latest", ratings=log, movies=MOVIES, tags=tags)

    events = list(
        replay_events(
            data,
            limit=None,
            since_ms=None,
            history=UserHistory(per_kind=PER_KIND),
            tag_book=TagBook(max_tags=MAX_TAGS),
        )
    )

    assert len(events) == len(log)
    for event, rating in zip(events, log, strict=True):
        assert event["event_id"] == f"ml-{rating.user_id}-{rating.item_id}"
        assert event["context"] == expected_context(log, rating)
        assert event["text"] == expected_text(tags, rating)


@settings(max_examples=50, deadline=None)
@given(rows=ratings_strategy, tag_rows=tags_strategy, since=st.integers(0, 13))
def test_since_only_hides_events_not_history(rows: list[tuple], tag_rows: list[tuple], since: int) -> None:
    log = sorted(Rating(ts, user, item, rating) for user, item, ts, rating in rows)
    tags = sorted((TagApplication(ts, item, tag) for item, tag, ts in tag_rows), key=lambda t: t.ts)
    data = MovieLensData(layout="ml-latest", ratings=log, movies=MOVIES, tags=tags)

    def replay(since_ms: int | None) -> list[dict]:
        return list(
            replay_events(
                data,
                limit=None,
                since_ms=since_ms,
                history=UserHistory(per_kind=PER_KIND),
                tag_book=TagBook(max_tags=MAX_TAGS),
            )
        )

    assert replay(since * 1000) == [e for e in replay(None) if e["ts"] >= since * 1000]

"""A deterministic generator of a catalog and a clickstream that exercises every corner of SPEC §1-§3.

``generate(seed)`` returns ``(items, events)``: items are SPEC §2 dicts, events are SPEC §1 dicts with an
explicit ``event_id`` and a unix-seconds ``timestamp``, listed in *arrival order*: mostly by time, with about
15 % of the events arriving late (seconds to an hour) and a few exact re-sends of already-sent events (same
``event_id``, same content). :func:`time_ordered` and :func:`shuffled` give the other arrival orders.

What the stream covers, on purpose:

- ~5 weeks of history (34 days, under the engine's 35-day idempotency memory), so several 7-day windows,
  many 1-h windows and 15-min hops are crossed; the last hours are dense so that the recent and trending
  windows have content;
- timestamps exactly on window boundaries (multiples of 900, 3,600 and 604,800 s) and equal timestamps of one
  user (ties of ``user_history`` broken by ``event_id``);
- every default event type, skewed towards views; ``dwell_seconds`` on some events, ``session_id`` on most;
- catalog prices in all four tiers, including the exact bounds 25, 100 and 500, and items without a price or a
  brand; about 10 % of the items out of stock;
- events that override the catalog's ``category``/``brand``/``price``, and events of items that are not in the
  catalog (carrying their own attributes, sometimes none).

Everything derives from ``random.Random(seed)`` and a fixed end time in the past, so the output is identical
on every run and every timestamp is accepted by the engine (none is in the future).
"""

from __future__ import annotations

import math
import random
from typing import Any

DAY = 86_400.0
HOUR = 3_600.0
WEEK = 7 * DAY
SLIDE = 900.0

#: Default end of the stream (the largest timestamp): an arbitrary instant in December 2024, on no boundary.
DEFAULT_END_TS = 1_734_567_890.125
#: An end time that is a multiple of 604,800 (hence of 3,600 and 900): "now" opens a new 7-day window, the
#: current trending window is the one ending at the *next* slide boundary, and windows end exactly at
#: ``now - 3 h`` and ``now - 2 h``.
BOUNDARY_END_TS = 1_734_566_400.0
SPAN_SECONDS = 34 * DAY

EVENT_TYPES = ("view", "click", "add_to_cart", "wishlist", "save", "share", "purchase")
TYPE_WEIGHTS = {
    "view": 1.0,
    "click": 3.0,
    "add_to_cart": 5.0,
    "save": 5.0,
    "wishlist": 7.0,
    "share": 7.0,
    "purchase": 10.0,
}
_TYPE_FREQUENCIES = (0.52, 0.2, 0.07, 0.04, 0.06, 0.04, 0.07)

CATEGORIES = (
    "electronics",
    "books",
    "fashion",
    "home",
    "sports",
    "toys",
    "beauty",
    "grocery",
)
BRANDS = tuple(f"brand-{letter}" for letter in "abcdefghijklmno")
_SUBCATEGORIES = ("basic", "pro", "kids", "outdoor")
# Prices that land exactly on, just under and just over the tier bounds, plus spread values per tier.
_BOUND_PRICES = (0.0, 24.99, 25.0, 25.01, 99.99, 100.0, 100.01, 499.99, 500.0, 500.01)

Item = dict[str, Any]
EventDict = dict[str, Any]


def generate(
    seed: int = 7,
    n_users: int = 40,
    n_items: int = 300,
    n_events: int = 6000,
    end_ts: float = DEFAULT_END_TS,
) -> tuple[list[Item], list[EventDict]]:
    """A catalog and a clickstream in arrival order (see the module docstring)."""
    rng = random.Random(seed)
    items = _catalog(rng, n_items)
    by_id = {item["item_id"]: item for item in items}
    external = _external_items(rng, max(8, n_items // 15))
    users = [f"u{n:03d}" for n in range(n_users)]
    # Skewed activity: a few users have several hundred events (more than user_history keeps).
    activity = [1.0 / (rank + 1) ** 0.8 for rank in range(n_users)]
    tastes = {user: rng.sample(CATEGORIES, 3) for user in users}
    catalog_by_category: dict[str, list[Item]] = {c: [] for c in CATEGORIES}
    for item in items:
        catalog_by_category[item["category"]].append(item)

    start_ts = end_ts - SPAN_SECONDS
    timestamps = sorted(_timestamp(rng, start_ts, end_ts) for _ in range(n_events - 1))
    timestamps.append(end_ts)  # the clock ends exactly at end_ts
    used_ids: set[str] = set()
    events: list[EventDict] = []
    last_by_user: dict[str, EventDict] = {}
    for drawn in timestamps:
        user = rng.choices(users, weights=activity)[0]
        ts = drawn
        previous = last_by_user.get(user)
        if previous is not None and rng.random() < 0.04 and previous["timestamp"] <= ts:
            ts = previous["timestamp"]  # a tie with the same user's previous event
        event = _event(
            rng,
            user,
            ts,
            taste=tastes[user],
            catalog_by_category=catalog_by_category,
            external=external,
            by_id=by_id,
            used_ids=used_ids,
        )
        events.append(event)
        last_by_user[user] = event
    events.sort(key=lambda e: (e["timestamp"], e["event_id"]))
    return items, _arrival(rng, events)


def time_ordered(events: list[EventDict]) -> list[EventDict]:
    """The same events (re-sends included) in timestamp order."""
    return sorted(events, key=lambda e: (e["timestamp"], e["event_id"]))


def shuffled(events: list[EventDict], seed: int = 0) -> list[EventDict]:
    """The same events (re-sends included) in a random order."""
    out = list(events)
    random.Random(seed).shuffle(out)
    return out


def chunks(events: list[EventDict], size: int = 500) -> list[list[EventDict]]:
    """``events`` cut in consecutive batches of ``size``."""
    return [events[i : i + size] for i in range(0, len(events), size)]


def _catalog(rng: random.Random, n_items: int) -> list[Item]:
    items: list[Item] = []
    for n in range(n_items):
        category = CATEGORIES[n % len(CATEGORIES)] if n < len(CATEGORIES) else rng.choice(CATEGORIES)
        item: Item = {
            "item_id": f"i{n:04d}",
            "title": f"Item {n} ({category})",
            "category": category,
            "subcategory": rng.choice(_SUBCATEGORIES),
            "in_stock": rng.random() >= 0.1,
        }
        if rng.random() < 0.85:
            item["brand"] = rng.choice(BRANDS)
        price = _price(rng, n)
        if price is not None:
            item["price"] = price
        items.append(item)
    return items


def _price(rng: random.Random, n: int) -> float | None:
    if n < len(_BOUND_PRICES):
        return _BOUND_PRICES[n]
    roll = rng.random()
    if roll < 0.08:
        return None
    if roll < 0.16:
        return rng.choice(_BOUND_PRICES)
    tier = rng.randrange(4)
    low, high = ((1.0, 24.9), (25.0, 99.9), (100.0, 499.0), (500.0, 3000.0))[tier]
    return round(rng.uniform(low, high), 2)


def _external_items(rng: random.Random, count: int) -> list[Item]:
    """Items that events reference but the catalog does not hold; events carry their attributes."""
    out: list[Item] = []
    for n in range(count):
        item: Item = {"item_id": f"https://shop.example/x/{n}?ref=feed"}
        if n % 5 != 4:  # every fifth external item has no category at all
            item["category"] = rng.choice((*CATEGORIES, "garden"))
        if rng.random() < 0.7:
            item["brand"] = rng.choice((*BRANDS, "brand-zz"))
        if rng.random() < 0.7:
            item["price"] = rng.choice((*_BOUND_PRICES, round(rng.uniform(1, 900), 2)))
        out.append(item)
    return out


def _timestamp(rng: random.Random, start_ts: float, end_ts: float) -> float:
    roll = rng.random()
    if roll < 0.55:
        ts = rng.uniform(start_ts, end_ts)
    elif roll < 0.85:
        ts = rng.uniform(end_ts - 6 * HOUR, end_ts)
    else:
        ts = rng.uniform(end_ts - 2 * HOUR, end_ts)
    ts = round(ts, 3)
    snap = rng.random()
    if snap < 0.03:
        ts = math.floor(ts / SLIDE) * SLIDE
    elif snap < 0.05:
        ts = math.floor(ts / HOUR) * HOUR
    elif snap < 0.055:
        ts = math.floor(ts / WEEK) * WEEK
        if ts < start_ts:
            ts = math.ceil(start_ts / WEEK) * WEEK
    return min(max(ts, start_ts), end_ts - 0.001)


def _event(
    rng: random.Random,
    user: str,
    ts: float,
    *,
    taste: list[str],
    catalog_by_category: dict[str, list[Item]],
    external: list[Item],
    by_id: dict[str, Item],
    used_ids: set[str],
) -> EventDict:
    if rng.random() < 0.06:
        source = rng.choice(external)
    else:
        category = rng.choice(taste) if rng.random() < 0.75 else rng.choice(CATEGORIES)
        pool = catalog_by_category[category]
        # Popularity skew inside a category: low indexes are picked more often.
        source = pool[min(int(rng.expovariate(1 / 8)), len(pool) - 1)]
    event_type = rng.choices(EVENT_TYPES, weights=_TYPE_FREQUENCIES)[0]
    event_id = f"ev-{rng.getrandbits(40):010x}"
    while event_id in used_ids:
        event_id = f"ev-{rng.getrandbits(40):010x}"
    used_ids.add(event_id)
    event: EventDict = {
        "event_id": event_id,
        "user_id": user,
        "item_id": source["item_id"],
        "type": event_type,
        "timestamp": ts,
    }
    if rng.random() < 0.9:
        event["session_id"] = f"{user}-s{int(ts // (2 * HOUR))}"
    if rng.random() < 0.45:
        event["dwell_seconds"] = rng.choice(
            (0.0, round(rng.uniform(0.5, 300), 3), float(rng.randrange(1, 60)))
        )
    if source["item_id"] not in by_id:
        # Not in the catalog: the event carries the attributes (those the item has).
        for name in ("category", "brand", "price"):
            if name in source:
                event[name] = source[name]
    else:
        # A catalog item: sometimes the event describes it differently.
        roll = rng.random()
        if roll < 0.04:
            event["category"] = rng.choice(CATEGORIES)
        elif roll < 0.07:
            event["brand"] = rng.choice(BRANDS)
        elif roll < 0.10:
            event["price"] = rng.choice((*_BOUND_PRICES, round(rng.uniform(1, 900), 2)))
        elif roll < 0.11:
            event["category"] = source["category"]  # explicit but equal to the catalog's
            event["price"] = 42.0
    return event


def _arrival(rng: random.Random, events: list[EventDict]) -> list[EventDict]:
    """Mostly time order; ~15 % late by seconds to an hour; ~1 % re-sent later (same id and content)."""
    keyed: list[tuple[float, int, EventDict]] = []
    for n, event in enumerate(events):
        delay = 0.0
        if rng.random() < 0.15:
            delay = rng.choice((rng.uniform(1, 60), rng.uniform(60, HOUR)))
        keyed.append((event["timestamp"] + delay, n, event))
        if rng.random() < 0.01:
            resend_delay = delay + rng.choice((0.0, rng.uniform(1, 2 * HOUR)))
            keyed.append((event["timestamp"] + resend_delay, len(events) + n, dict(event)))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [event for _, _, event in keyed]

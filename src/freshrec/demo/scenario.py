"""A deterministic, realistic e-commerce demo: catalog, clickstream with planted preferences, and a spotlight.

`generate_scenario()` builds users with 1-3 favourite categories, 1-2 favourite brands and a preferred price
tier; their sessions (5-40 events) follow a funnel view >> click > add_to_cart > purchase over items whose
popularity is Zipf-like inside each category. A few items go viral for ~30 minutes, and some users (15%)
have a session whose intent drifts into a category they do not usually shop (~20 minutes, ending in a cart
or a buy). One of them, the *spotlight user*, drifts in the latter half of the stream (`spotlight_story`).
Pure standard library; the same arguments (with an explicit `start`) always give the same scenario.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from freshrec.demo.catalog_gen import CATEGORY_NAMES, TIERS, Catalog, generate_catalog, price_tier

EVENT_TYPES: tuple[str, ...] = ("view", "click", "add_to_cart", "wishlist", "save", "share", "purchase")
_TIER_WEIGHTS = (0.3, 0.4, 0.22, 0.08)
# chance to accept an item 0, 1, 2, 3 tiers away from the user's preferred tier
_TIER_ACCEPT = (0.75, 0.3, 0.08, 0.04)
_FAV_WEIGHTS = (0.5, 0.3, 0.2)
_FAV_MASS = 0.85  # share of sessions spent in favourite categories
_DRIFT_SHARE = 0.15
_SESSIONS_PER_6H = 7.0

# raw event: (timestamp, user index, sequence number, type, item index, dwell seconds or None, session id)
_Raw = tuple[float, int, int, str, int, float | None, str]


@dataclass(frozen=True)
class UserProfile:
    """The preferences planted in one user (ground truth for the demo and for tests)."""

    user_id: str
    favourite_categories: tuple[str, ...]
    favourite_brands: tuple[str, ...]
    price_tier: str
    drift_category: str | None = None
    drift_start: float | None = None


@dataclass(frozen=True)
class Scenario:
    items: list[dict[str, Any]]
    events: list[dict[str, Any]]
    spotlight_user: str
    spotlight_story: list[tuple[float, str]]
    users: list[UserProfile]
    start: float
    end: float
    seed: int

    def summary(self) -> dict[str, Any]:
        return summary(self)


def summary(scenario: Scenario) -> dict[str, Any]:
    """Counts for the demo banner."""
    tiers = Counter(price_tier(it["price"]) for it in scenario.items)
    types = Counter(e["type"] for e in scenario.events)
    return {
        "users": len(scenario.users),
        "items": len(scenario.items),
        "events": len(scenario.events),
        "sessions": len({e["session_id"] for e in scenario.events}),
        "categories": len({it["category"] for it in scenario.items}),
        "out_of_stock": sum(1 for it in scenario.items if not it["in_stock"]),
        "items_per_tier": {t: tiers[t] for t in TIERS},
        "events_per_type": {t: types[t] for t in EVENT_TYPES},
        "drifting_users": sum(1 for u in scenario.users if u.drift_category is not None),
        "spotlight_user": scenario.spotlight_user,
        "start": scenario.start,
        "end": scenario.end,
    }


@dataclass
class _User:
    idx: int
    uid: str
    favs: tuple[str, ...]
    cat_names: list[str]
    cat_weights: list[float]
    brands: tuple[str, ...]
    tier_idx: int
    n_sessions: int
    drift_cat: str | None = None
    drift_start: float | None = None
    drift_sids: list[str] = field(default_factory=list)
    purchased: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class _Burst:
    start: float
    length: float
    item: int
    category: str

    def intensity(self, t: float) -> float:
        """Chance that a visit at `t` goes to the viral item: ramps up to 0.18 mid-burst, then fades."""
        x = (t - self.start) / self.length
        return 0.0 if not 0.0 <= x <= 1.0 else 0.18 * (1.0 - abs(2.0 * x - 1.0))


class _Generator:
    def __init__(self, catalog: Catalog, seed: int, n_users: int, start: float, duration: float) -> None:
        self.catalog = catalog
        self.items = catalog.items
        self.rng = random.Random(f"freshrec-demo-events-{seed}")
        self.start, self.end, self.duration = start, start + duration, duration
        self.cats = [c for c in CATEGORY_NAMES if c in catalog.by_category]
        self.tier_index = [TIERS.index(t) for t in catalog.tiers]
        self.raw: list[_Raw] = []
        self.users = [self._make_user(i) for i in range(n_users)]
        self.bursts = self._make_bursts()

    def _make_user(self, idx: int) -> _User:
        rng = self.rng
        k = min(len(self.cats), rng.choices((1, 2, 3), weights=(0.35, 0.45, 0.2))[0])
        favs = tuple(rng.sample(self.cats, k))
        fav_w = _FAV_WEIGHTS[:k]
        weights = [_FAV_MASS * fav_w[favs.index(c)] / sum(fav_w) if c in favs else 0.0 for c in self.cats]
        others = len(self.cats) - k
        weights = [w if w else (1 - _FAV_MASS) / others for w in weights] if others else weights
        brand_pool = sorted({b for (c, b) in self.catalog.by_category_brand if c in favs[:2]})
        brands = tuple(rng.sample(brand_pool, min(len(brand_pool), rng.choice((1, 2)))))
        tier_idx = rng.choices(range(len(TIERS)), weights=_TIER_WEIGHTS)[0]
        n = round(rng.lognormvariate(0.0, 0.5) * _SESSIONS_PER_6H * self.duration / 21600)
        return _User(
            idx, f"user-{idx + 1:04d}", favs, self.cats, weights, brands, tier_idx, min(20, max(3, n))
        )

    def _make_bursts(self) -> list[_Burst]:
        rng, n = self.rng, max(1, round(self.duration / 7200))
        length = min(1800.0, self.duration / 4)
        bursts: list[_Burst] = []
        for j, cat in enumerate(rng.sample(self.cats, min(n, len(self.cats)))):
            center = self.start + self.duration * (j + 0.5 + rng.uniform(-0.15, 0.15)) / n
            item = self._in_stock_pick(cat, lambda i: self.tier_index[i] <= 1)
            b0 = min(max(self.start, center - length / 2), self.end - length)
            bursts.append(_Burst(b0, length, item, cat))
        return bursts

    def _in_stock_pick(self, cat: str, ok: Callable[[int], bool] | None = None) -> int:
        pool = self.catalog.by_category[cat]
        for _ in range(50):
            i = pool.pick(self.rng)
            if self.items[i]["in_stock"] and (ok is None or ok(i)):
                return i
        return next((i for i in pool.items if self.items[i]["in_stock"]), pool.items[0])

    def _draw_cat(self, u: _User) -> str:
        return self.rng.choices(u.cat_names, weights=u.cat_weights)[0]

    def _pick(self, u: _User, cat: str) -> int:
        """An item of `cat` for `u`: Zipf popularity, biased to favourite brands and the preferred tier."""
        rng = self.rng
        if u.brands and rng.random() < 0.3:
            pools = [self.catalog.by_category_brand.get((cat, b)) for b in u.brands]
            present = [p for p in pools if p is not None]
            if present:
                return rng.choice(present).pick(rng)
        pool = self.catalog.by_category[cat]
        i = pool.pick(rng)
        for _ in range(8):
            if rng.random() < _TIER_ACCEPT[abs(self.tier_index[i] - u.tier_idx)]:
                break
            i = pool.pick(rng)
        return i

    def schedule(self, u: _User, spotlight: bool) -> None:
        """Place the user's sessions in non-overlapping slots over the stream (a drift gets a triple slot)."""
        rng = self.rng
        n = u.n_sessions + (1 if u.drift_cat and not spotlight else 0)
        drift_slot = rng.randint(max(1, n // 3), n - 1) if u.drift_cat and not spotlight else -1
        span = (0.55 if spotlight else 1.0) * self.duration
        unit = span / (n + (2 if drift_slot >= 0 else 0))
        s0 = self.start
        for k in range(n):
            slot = unit * (3 if k == drift_slot else 1)
            t0 = s0 + rng.uniform(0, (0.2 if k == drift_slot else 0.5) * slot)
            mode = "drift" if k == drift_slot else "normal"
            self._session(u, f"s-{u.idx + 1:04d}-{k + 1:03d}", t0, s0 + slot - 1.0, mode=mode)
            s0 += slot
        if spotlight:  # drift into the least-touched other category, then return near the end
            seen = Counter(self.items[r[4]]["category"] for r in self.raw if r[1] == u.idx)
            viral = {b.category for b in self.bursts}
            options = [c for c in self.cats if c not in u.favs] or list(self.cats)
            rng.shuffle(options)
            u.drift_cat = min(options, key=lambda c: (seen[c], c in viral))
            sid = f"s-{u.idx + 1:04d}-{u.n_sessions + 1:03d}"
            t0 = self.start + self.duration * rng.uniform(0.7, 0.74)
            self._session(u, sid, t0, self.start + 0.85 * self.duration, mode="spotlight")
            sid = f"s-{u.idx + 1:04d}-{u.n_sessions + 2:03d}"
            t0 = self.start + self.duration * rng.uniform(0.88, 0.92)
            self._session(u, sid, t0, self.end - 1.0, mode="return")

    def _session(self, u: _User, sid: str, t0: float, t_limit: float, *, mode: str = "normal") -> None:
        """One session; `mode` is normal, drift (into `u.drift_cat`), spotlight (a long drift) or return."""
        rng, items = self.rng, self.items
        drift = mode != "normal"
        main = u.drift_cat if drift and u.drift_cat else self._draw_cat(u)
        lengths = {"drift": (15, 34), "spotlight": (26, 34), "return": (6, 12)}
        target = rng.randint(*lengths[mode]) if drift else int(rng.triangular(5, 36, 12))
        evs: list[tuple[float, str, int, float | None]] = []
        t = 0.0
        carted: list[int] = []
        clicked: list[int] = []
        while len(evs) < target:
            r = rng.random()
            cat = main if r < (0.9 if drift else 0.72) else self._draw_cat(u) if drift or r < 0.9 else None
            cat = cat or rng.choice(self.cats)
            burst = None if drift else next((b for b in self.bursts if b.intensity(t0 + t) > 0), None)
            boost = 1.5 if burst and burst.category in u.favs else 1.0
            viral = burst is not None and rng.random() < burst.intensity(t0 + t) * boost
            item = burst.item if burst and viral else self._pick(u, cat)
            loved = items[item]["category"] in u.favs or drift
            dwell = round(rng.lognormvariate(math.log(12), 0.7) * (1.5 if loved else 1.0), 1)
            evs.append((t, "view", item, dwell))
            t += dwell + rng.uniform(2, 8)
            if rng.random() >= (0.5 if viral else 0.45 if drift else 0.33):
                continue
            dwell = round(rng.lognormvariate(math.log(40), 0.6), 1)
            evs.append((t, "click", item, dwell))
            t += dwell + rng.uniform(2, 6)
            clicked.append(item)
            r = rng.random()
            kind, p_cart = None, 0.1 if drift else 0.26  # exploring shoppers cart less, wishlist more
            if r < p_cart:
                kind = "add_to_cart" if items[item]["in_stock"] and item not in carted else None
            elif r < p_cart + 0.1:
                kind = "wishlist" if r < p_cart + 0.05 else "save"
            if kind:
                evs.append((t, kind, item, None))
                t += rng.uniform(3, 15)
                if kind == "add_to_cart":
                    carted.append(item)
            if rng.random() < (0.15 if viral else 0.025):
                evs.append((t, "share", item, None))
                t += rng.uniform(3, 10)
        if drift and u.drift_cat:
            # A drift ends in the new category: the most-clicked item goes to the cart (and is bought).
            new = [i for i in clicked if items[i]["category"] == u.drift_cat and items[i]["in_stock"]]
            fresh = [i for i in new if i not in u.purchased]
            chosen = (
                Counter(fresh).most_common(1)[0][0]
                if fresh
                else self._in_stock_pick(u.drift_cat, lambda i: i not in u.purchased)
            )
            already = chosen in carted
            if not already:
                evs.append((t, "add_to_cart", chosen, None))
                t += rng.uniform(20, 90)
            if (mode == "spotlight" or already or rng.random() < 0.5) and chosen not in u.purchased:
                evs.append((t, "purchase", chosen, None))
                u.purchased.add(chosen)
            # Browsing a new category takes a while: stretch the session to ~15-25 minutes.
            scale = 1.0 if mode == "return" else rng.uniform(900, 1500) / max(t, 1.0)
        else:
            for item in carted:
                if item not in u.purchased and len(evs) < 40 and rng.random() < 0.5:
                    evs.append((t, "purchase", item, None))
                    u.purchased.add(item)
                    t += rng.uniform(5, 20)
            scale = 1.0
        span = evs[-1][0] * scale
        if span > t_limit - t0:
            scale *= (t_limit - t0) / span
        if drift:
            u.drift_start = u.drift_start if u.drift_sids else round(t0, 3)  # = its first event's timestamp
            u.drift_sids.append(sid)
        base = len(self.raw)
        self.raw.extend(
            (t0 + off * scale, u.idx, base + j, typ, item, dwell, sid)
            for j, (off, typ, item, dwell) in enumerate(evs)
        )


def generate_scenario(
    n_users: int = 200,
    n_items: int = 2000,
    seed: int = 7,
    start: float | None = None,
    duration_seconds: float = 6 * 3600,
) -> Scenario:
    """Build the demo: `n_items` products and a clickstream of `n_users` users over `duration_seconds`.

    `start` defaults to now - duration (floored to the minute), so every event lies in the past.
    """
    if n_users < 1 or n_items < 1 or duration_seconds <= 0:
        raise ValueError("n_users, n_items and duration_seconds must be positive")
    if start is None:
        start = float(math.floor((time.time() - duration_seconds) / 60) * 60)
    gen = _Generator(generate_catalog(n_items, seed), seed, n_users, float(start), float(duration_seconds))
    rng = gen.rng
    drifters = rng.sample(gen.users, max(1, math.ceil(_DRIFT_SHARE * n_users)))
    for u in drifters:
        u.drift_cat = rng.choice([c for c in gen.cats if c not in u.favs] or gen.cats)
    # The spotlight: a drifter with the fewest favourite categories (clearest taste), most active first.
    spot = min(drifters, key=lambda u: (len(u.favs), -u.n_sessions, u.idx))
    spot.n_sessions = 8
    for u in gen.users:
        gen.schedule(u, spotlight=u is spot)
    gen.raw.sort(key=lambda r: (r[0], r[1], r[2]))
    end = gen.end
    events: list[dict[str, Any]] = []
    for n, (ts, uidx, _seq, typ, item, dwell, sid) in enumerate(gen.raw):
        ev: dict[str, Any] = {
            "event_id": f"demo-{n + 1:06d}",
            "user_id": gen.users[uidx].uid,
            "item_id": gen.items[item]["item_id"],
            "type": typ,
            "timestamp": min(end, max(gen.start, round(ts, 3))),
            "session_id": sid,
        }
        if dwell is not None:
            ev["dwell_seconds"] = dwell
        events.append(ev)
    users = [
        UserProfile(u.uid, u.favs, u.brands, TIERS[u.tier_idx], u.drift_cat, u.drift_start) for u in gen.users
    ]
    story = _story(gen, spot, events)
    return Scenario(gen.items, events, spot.uid, story, users, gen.start, end, seed)


def _story(gen: _Generator, u: _User, events: list[dict[str, Any]]) -> list[tuple[float, str]]:
    """Milestones of the spotlight user's day, as (timestamp, sentence)."""
    by_id = {it["item_id"]: it for it in gen.items}
    mine = [e for e in events if e["user_id"] == u.uid]
    drift = [e for e in mine if e["session_id"] in u.drift_sids]
    before = [e for e in mine if not drift or e["timestamp"] < drift[0]["timestamp"]]

    def label(e: dict[str, Any]) -> str:
        it = by_id[e["item_id"]]
        return f"{it['title']} by {it['brand']} ({it['category']}, ${it['price']:,.2f})"

    def cat(e: dict[str, Any]) -> str:
        return str(by_id[e["item_id"]]["category"])

    fans = f"fan of {' and '.join(u.brands)}" if u.brands else "no favourite brand"
    intro = f"{u.uid} arrives: loves {' and '.join(u.favs)}, shops {TIERS[u.tier_idx]}, {fans}"
    story = [(mine[0]["timestamp"], intro)]
    story.extend((e["timestamp"], f"buys {label(e)}") for e in before if e["type"] == "purchase")
    if before:
        top, n_top = Counter(cat(e) for e in before).most_common(1)[0]
        share = f"{len(before)} interactions so far, {n_top / len(before):.0%} of them in {top}"
        story.append((before[-1]["timestamp"], f"preferences established: {share}"))
    if not drift or u.drift_cat is None:
        return story
    seen = sum(1 for e in before if cat(e) == u.drift_cat)
    novelty = f"only {seen} of {len(before)} events so far" if seen else "a category they never touched"
    bought = {e["item_id"] for e in drift if e["type"] == "purchase"}
    verbs = {"click": "clicks", "add_to_cart": "adds", "wishlist": "wishlists", "save": "saves"}
    told: set[tuple[str, str]] = set()  # (session, type): only the first click / cart of a session is told
    for e in drift:
        typ, sid = e["type"], e["session_id"]
        if (sid, "start") not in told:
            told.add((sid, "start"))
            first = sid == u.drift_sids[0]
            news = (
                f"starts browsing {u.drift_cat} ({novelty})"
                if first
                else f"comes back for more {u.drift_cat}"
            )
            story.append((e["timestamp"], news))
        again = (sid, typ) in told and (
            typ == "click" or (typ == "add_to_cart" and e["item_id"] not in bought)
        )
        if typ == "view" or again or (typ != "purchase" and cat(e) != u.drift_cat):
            continue
        told.add((sid, typ))
        if typ == "purchase":
            why = f": intent has drifted to {u.drift_cat}" if sid == u.drift_sids[0] else ""
            story.append((e["timestamp"], f"buys {label(e)}{why}"))
        else:
            cart = " to cart" if typ == "add_to_cart" else ""
            story.append((e["timestamp"], f"{verbs.get(typ, typ + 's')} {label(e)}{cart}"))
    return story

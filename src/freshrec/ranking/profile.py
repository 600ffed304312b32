"""``personalized`` and ``session``: the user's category, brand and price-tier profile (+ recent activity)."""

from __future__ import annotations

from dataclasses import dataclass

from freshrec.ranking.base import Features, Recommendation, Request, to_recommendations
from freshrec.ranking.grouped import GroupScore, explain_parts, group_of_item, rank_by_groups


@dataclass(slots=True)
class ProfileParts:
    """One user's profile as weighted parts of the personalized score."""

    category: dict[str, float]
    brand: dict[str, float]
    tier: dict[str, float]
    drift: dict[str, float]  # the drifting_to tier's boost (empty while the weight is 0)

    def personalized(self, category: str | None, brand: str | None, tier: str | None) -> float:
        return (
            (self.category.get(category, 0.0) if category is not None else 0.0)
            + (self.brand.get(brand, 0.0) if brand is not None else 0.0)
            + (self.tier.get(tier, 0.0) + self.drift.get(tier, 0.0) if tier is not None else 0.0)
        )

    def scores(self, scale: float = 1.0, extra: dict[str, float] | None = None) -> GroupScore:
        """:meth:`personalized` (times ``scale``, plus ``extra`` of the category) for every group at once."""
        tiers = {t: self.tier.get(t, 0.0) + self.drift.get(t, 0.0) for t in {*self.tier, *self.drift}}
        return GroupScore(self.category, self.brand, tiers, scale, extra or {})

    def tier_parts(self, tier: str | None, factor: float = 1.0) -> dict[str, float]:
        """The explanation of the tier part: conversion, and the drift boost when it is configured."""
        parts = {"price_tier_conversion": factor * self.tier.get(tier, 0.0) if tier else 0.0}
        if self.drift:
            parts["price_tier_drift"] = factor * self.drift.get(tier, 0.0) if tier else 0.0
        return parts


def drift_boost(features: Features, user_id: str, now: float) -> dict[str, float]:
    """``{tier: boost}`` for the user's drifting_to tier (SPEC §3 extension), when its weight is not 0."""
    weight = features.settings.strategies.personalized_tier_drift_weight
    if not weight or features.tier_drift is None:
        return {}
    drift = features.tier_drift.drift(features.store, user_id, now)
    if drift.drifting_to is None:
        return {}
    return {drift.drifting_to: weight * 100.0 * drift.share_change}


def profile_parts(features: Features, user_id: str, now: float) -> ProfileParts:
    s = features.settings.strategies
    store = features.store
    return ProfileParts(
        category={
            c: s.personalized_category_weight * a
            for c, a in features.category_profile.affinities(store, user_id).items()
        },
        brand={
            b: s.personalized_brand_weight * a
            for b, a in features.brand_profile.affinities(store, user_id).items()
        },
        tier={
            t: s.personalized_conversion_weight * rate
            for t, rate in features.price_sensitivity.conversion_rates(store, user_id).items()
            if rate is not None
        },
        drift=drift_boost(features, user_id, now),
    )


class Personalized:
    """0.4·category affinity + 0.3·brand affinity + 0.3·100·conversion rate of the item's price tier.

    With ``personalized_tier_drift_weight`` w, items of the user's ``drifting_to`` tier also get
    w·100·share change (``user_price_tier_drift``).
    """

    name = "personalized"

    def __init__(self, features: Features) -> None:
        self.features = features

    def recommend(self, request: Request) -> list[Recommendation]:
        assert request.user_id is not None
        parts = profile_parts(self.features, request.user_id, request.now)
        ranked = rank_by_groups(self.features, request, parts.scores(), set(parts.category), set(parts.brand))

        def explain(item_id: str) -> dict[str, object]:
            category, brand, tier = group_of_item(self.features, item_id)
            return explain_parts(
                {
                    "category_affinity": parts.category.get(category, 0.0) if category else 0.0,
                    "brand_affinity": parts.brand.get(brand, 0.0) if brand else 0.0,
                    **parts.tier_parts(tier),
                }
            )

        return to_recommendations(ranked, request, explain)


class Session:
    """0.4·personalized + 0.6·interactions with the item's category in the last 3 hours."""

    name = "session"

    def __init__(self, features: Features) -> None:
        self.features = features

    def recommend(self, request: Request) -> list[Recommendation]:
        assert request.user_id is not None
        f = self.features
        s = f.settings.strategies
        parts = profile_parts(f, request.user_id, request.now)
        recent = f.recent_activity.recent_scores(f.store, request.user_id, request.now)
        w_personal, w_recent = s.session_personalized_weight, s.session_recent_weight

        score = parts.scores(w_personal, {c: w_recent * v for c, v in recent.items()})
        ranked = rank_by_groups(f, request, score, set(parts.category) | set(recent), set(parts.brand))

        def explain(item_id: str) -> dict[str, object]:
            category, brand, tier = group_of_item(f, item_id)
            return explain_parts(
                {
                    "category_affinity": w_personal * parts.category.get(category, 0.0) if category else 0.0,
                    "brand_affinity": w_personal * parts.brand.get(brand, 0.0) if brand else 0.0,
                    **parts.tier_parts(tier, w_personal),
                    "session": w_recent * recent.get(category, 0.0) if category else 0.0,
                }
            )

        return to_recommendations(ranked, request, explain)

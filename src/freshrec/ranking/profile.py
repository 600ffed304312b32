"""``personalized`` and ``session``: the user's category, brand and price-tier profile (+ recent activity)."""

from __future__ import annotations

from dataclasses import dataclass

from freshrec.ranking.base import Features, Recommendation, Request, to_recommendations
from freshrec.ranking.grouped import explain_parts, group_of_item, rank_by_groups


@dataclass(slots=True)
class ProfileParts:
    """One user's profile as weighted parts of the personalized score."""

    category: dict[str, float]
    brand: dict[str, float]
    tier: dict[str, float]

    def personalized(self, category: str | None, brand: str | None, tier: str | None) -> float:
        return (
            (self.category.get(category, 0.0) if category is not None else 0.0)
            + (self.brand.get(brand, 0.0) if brand is not None else 0.0)
            + (self.tier.get(tier, 0.0) if tier is not None else 0.0)
        )


def profile_parts(features: Features, user_id: str) -> ProfileParts:
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
    )


class Personalized:
    """0.4·category affinity + 0.3·brand affinity + 0.3·100·conversion rate of the item's price tier."""

    name = "personalized"

    def __init__(self, features: Features) -> None:
        self.features = features

    def recommend(self, request: Request) -> list[Recommendation]:
        assert request.user_id is not None
        parts = profile_parts(self.features, request.user_id)
        ranked = rank_by_groups(
            self.features, request, parts.personalized, set(parts.category), set(parts.brand)
        )

        def explain(item_id: str) -> dict[str, object]:
            category, brand, tier = group_of_item(self.features, item_id)
            return explain_parts(
                {
                    "category_affinity": parts.category.get(category, 0.0) if category else 0.0,
                    "brand_affinity": parts.brand.get(brand, 0.0) if brand else 0.0,
                    "price_tier_conversion": parts.tier.get(tier, 0.0) if tier else 0.0,
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
        parts = profile_parts(f, request.user_id)
        recent = f.recent_activity.recent_scores(f.store, request.user_id, request.now)
        w_personal, w_recent = s.session_personalized_weight, s.session_recent_weight

        def score(category: str | None, brand: str | None, tier: str | None) -> float:
            base = w_personal * parts.personalized(category, brand, tier)
            return base + w_recent * recent.get(category, 0.0) if category is not None else base

        ranked = rank_by_groups(f, request, score, set(parts.category) | set(recent), set(parts.brand))

        def explain(item_id: str) -> dict[str, object]:
            category, brand, tier = group_of_item(f, item_id)
            return explain_parts(
                {
                    "category_affinity": w_personal * parts.category.get(category, 0.0) if category else 0.0,
                    "brand_affinity": w_personal * parts.brand.get(brand, 0.0) if brand else 0.0,
                    "price_tier_conversion": w_personal * parts.tier.get(tier, 0.0) if tier else 0.0,
                    "session": w_recent * recent.get(category, 0.0) if category else 0.0,
                }
            )

        return to_recommendations(ranked, request, explain)

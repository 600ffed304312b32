"""Every feature view of SPEC §3, built once for an engine, in the layout its state back end needs.

The embedded state keeps the per-user views in numpy columns applied a batch at a time
(:mod:`freshrec.views.columnar`); a networked store (Redis) keeps them on the state primitives, applied
per event. The remaining views are on the primitives in both layouts until they move to columns too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from freshrec.config import Settings
from freshrec.embeddings import FloatMatrix
from freshrec.state.keytable import KeyTable
from freshrec.views import brand, category, price, useritems
from freshrec.views.base import ItemAware, View
from freshrec.views.columnar import category as columnar_category
from freshrec.views.columnar import covisit as columnar_covisit
from freshrec.views.columnar import cross_category as columnar_cross_category
from freshrec.views.columnar import history as columnar_history
from freshrec.views.columnar import popularity as columnar_popularity
from freshrec.views.columnar import profile as columnar_profile
from freshrec.views.columnar import tier_drift as columnar_tier_drift
from freshrec.views.columnar import trending as columnar_trending
from freshrec.views.columnar.batch import ColumnarView, Vocabulary
from freshrec.views.covisit import BOUGHT, RECENT, AlsoBought, CoVisits
from freshrec.views.history import PURCHASES, UserHistory
from freshrec.views.interest import UserInterest
from freshrec.views.popularity import ItemPopularity
from freshrec.views.trending import ContentTrending

#: the order in which views are listed (``GET /v1/views``) and applied
ORDER = (
    "user_category_profile",
    "user_category_affinity",
    "user_brand_profile",
    "user_price_sensitivity",
    "user_recent_activity",
    "content_trending",
    "item_popularity",
    "co_visits",
    "also_bought",
    "user_items",
    "user_interest",
    "user_history",
    "category_cross_affinity",
    "user_price_tier_drift",
)
#: views only the embedded (columnar) state keeps
EMBEDDED_ONLY = ("category_cross_affinity", "user_price_tier_drift")
#: namespaces of a networked store whose keys are users (``retention.user_ttl_days`` expires them)
USER_NAMESPACES = (
    "user_category_profile",
    "user_category_affinity",
    "user_recent_activity",
    "user_brand_profile",
    "user_price_sensitivity",
    "user_items",
    "user_history",
    PURCHASES,
    RECENT,
    BOUGHT,
)


@dataclass
class ViewSet:
    """The views of one engine: those applied per event, those applied per batch, and the readers."""

    vocabulary: Vocabulary
    per_event: list[View] = field(default_factory=list)
    batched: list[ColumnarView] = field(default_factory=list)
    item_aware: list[ItemAware] = field(default_factory=list)
    by_name: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        return self.by_name[name]


def build_views(
    settings: Settings, vector_of: Callable[[str], FloatMatrix | None], columnar: bool, tiers: list[str]
) -> ViewSet:
    """The views of an engine; ``columnar`` for the embedded state."""
    vocabulary = Vocabulary(list(settings.events.weights), tiers)
    views = ViewSet(vocabulary)
    built: dict[str, Any] = {}
    if columnar:
        for cls in (
            columnar_category.UserCategoryProfile,
            columnar_category.UserCategoryAffinity,
            columnar_category.UserRecentActivity,
            columnar_profile.UserBrandProfile,
            columnar_profile.UserPriceSensitivity,
            columnar_profile.UserItems,
            columnar_cross_category.CategoryCrossAffinity,
            columnar_tier_drift.UserPriceTierDrift,
        ):
            view = cls(settings, vocabulary)
            built[view.name] = view
    else:
        built["user_category_profile"] = category.UserCategoryProfile(settings)
        built["user_category_affinity"] = category.UserCategoryAffinity(settings)
        built["user_recent_activity"] = category.UserRecentActivity(settings)
        built["user_brand_profile"] = brand.UserBrandProfile()
        built["user_price_sensitivity"] = price.UserPriceSensitivity()
        built["user_items"] = useritems.UserItems()
    trending: Any = columnar_trending.ContentTrending(settings, vocabulary) if columnar else None
    if trending is None:
        trending = ContentTrending(settings)
    popularity: Any = (
        columnar_popularity.ItemPopularity(settings, vocabulary) if columnar else ItemPopularity(settings)
    )
    built["content_trending"] = trending
    built["item_popularity"] = popularity
    built["co_visits"] = columnar_covisit.CoVisits(settings, vocabulary) if columnar else CoVisits(settings)
    if columnar:
        purchases = KeyTable({})  # (user, item): shared by user_history and also_bought
        built["also_bought"] = columnar_history.AlsoBought(settings, vocabulary, purchases)
        built["user_history"] = columnar_history.UserHistory(settings, vocabulary, purchases)
    else:
        built["also_bought"] = AlsoBought()
        built["user_history"] = UserHistory(settings)
    built["user_interest"] = UserInterest(vector_of, built["user_items"])
    for name in ORDER:
        if name not in built:
            continue  # EMBEDDED_ONLY on a networked store
        view = built[name]
        views.by_name[name] = view
        if columnar and name == "user_interest":
            continue  # derived from user_items at read time: nothing to apply
        if hasattr(view, "apply_batch"):
            views.batched.append(view)
        else:
            views.per_event.append(view)
    views.item_aware = [popularity] if columnar else [trending, popularity]
    return views

"""One settings model for the whole engine: a TOML file, then ``FRESHREC_...`` environment variables.

Every weight, window, retention and tier bound of the specification is a field here, and the defaults
are the specification's. Nested sections are set from the environment with a double underscore, for
example ``FRESHREC_VIEWS__DECAY_HALF_LIFE_SECONDS=86400`` or ``FRESHREC_SERVER__PORT=9000``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from freshrec.config_server import KafkaSettings, LimitSettings, ServerSettings

# the network-facing sections live in freshrec.config_server and are re-exported here
__all__ = ["KafkaSettings", "LimitSettings", "ServerSettings", "Settings", "load_settings"]

DAY = 86_400.0
HOUR = 3_600.0
MINUTE = 60.0

DEFAULT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 3.0,
    "add_to_cart": 5.0,
    "save": 5.0,
    "wishlist": 7.0,
    "share": 7.0,
    "purchase": 10.0,
}


class EventSettings(BaseModel):
    """What an event may be and how much each type weighs."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    max_batch: int = Field(10_000, ge=1, description="Most events accepted in one request.")
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="Largest request body accepted.")
    max_future_seconds: float = Field(
        5 * MINUTE, ge=0, description="How far ahead of now a timestamp may be."
    )
    max_properties_bytes: int = Field(4096, ge=0, description="Largest `properties` object, as JSON bytes.")
    dedup_retention_seconds: float = Field(
        35 * DAY,
        gt=0,
        description="How long an applied event_id is remembered for idempotency (from when it was applied).",
    )
    dedup_max_ids: int = Field(
        5_000_000, ge=1, description="Most event_ids remembered (the newest by event time are kept)."
    )

    @field_validator("weights")
    @classmethod
    def _weights_not_empty(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("at least one event type must be configured")
        return value


class PriceTierSettings(BaseModel):
    """Price tiers: ``budget < 25 <= mid-range < 100 <= premium < 500 <= luxury``."""

    model_config = ConfigDict(extra="forbid")

    names: list[str] = Field(default_factory=lambda: ["budget", "mid-range", "premium", "luxury"])
    bounds: list[float] = Field(default_factory=lambda: [25.0, 100.0, 500.0])

    @model_validator(mode="after")
    def _consistent(self) -> PriceTierSettings:
        if len(self.names) != len(self.bounds) + 1:
            raise ValueError("price tiers need exactly one more name than bounds")
        if any(b <= a for a, b in zip(self.bounds, self.bounds[1:], strict=False)):
            raise ValueError("price tier bounds must be increasing")
        return self


class ViewSettings(BaseModel):
    """Windows, retentions and decays of the feature views (SPEC §3)."""

    model_config = ConfigDict(extra="forbid")

    decay_half_life_seconds: float = Field(30 * DAY, gt=0)
    category_window_seconds: float = Field(7 * DAY, gt=0, description="user_category_affinity window.")
    category_windows_kept: int = Field(4, ge=1, description="user_category_affinity windows retained.")
    category_window_types: dict[str, float] = Field(
        default_factory=lambda: {"view": 1.0, "click": 3.0, "save": 5.0, "share": 7.0},
        description="Event types and weights of the windowed affinity score.",
    )
    activity_window_seconds: float = Field(HOUR, gt=0, description="user_recent_activity window.")
    activity_horizon_seconds: float = Field(
        3 * HOUR, gt=0, description="'recent' = window_end >= now - this."
    )
    trending_window_seconds: float = Field(2 * HOUR, gt=0)
    trending_slide_seconds: float = Field(15 * MINUTE, gt=0)
    trending_retention_seconds: float = Field(
        2 * HOUR, ge=0, description="How long a trending window is kept after it closes."
    )
    trending_view_weight: float = 1.0
    trending_click_weight: float = 2.0
    trending_unique_user_weight: float = 3.0
    history_length: int = Field(200, ge=1, description="user_history: last N interactions per user.")
    co_visit_window_seconds: float = Field(
        600.0, gt=0, description="co_visits: an after-event within this many seconds of a before-event."
    )
    co_visit_allowed_lateness_seconds: float = Field(
        600.0,
        ge=0,
        description="co_visits are exact for events at most this much older than the user's newest event; "
        "later ones are left out of co_visits (counted in /health). Per-user state spans window + lateness.",
    )
    tier_drift_recent_days: int = Field(
        7, ge=1, description="user_price_tier_drift: the recent window, in UTC days up to today's."
    )
    tier_drift_baseline_days: int = Field(
        30, ge=1, description="user_price_tier_drift: the baseline window, the days before the recent ones."
    )
    tier_drift_min_change: float = Field(
        0.2, ge=0, description="user_price_tier_drift: the share rise that makes a tier drifting_to."
    )
    tier_drift_min_recent_events: int = Field(
        5, ge=0, description="user_price_tier_drift: recent events (with a price) a drift needs."
    )

    @model_validator(mode="after")
    def _hop_divides_window(self) -> ViewSettings:
        ratio = self.trending_window_seconds / self.trending_slide_seconds
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError("trending_window_seconds must be a multiple of trending_slide_seconds")
        return self


class StrategySettings(BaseModel):
    """Weights of the strategies (SPEC §4)."""

    model_config = ConfigDict(extra="forbid")

    default: str = "hybrid"
    personalized_category_weight: float = 0.4
    personalized_brand_weight: float = 0.3
    personalized_conversion_weight: float = 30.0  # 0.3 · 100
    session_personalized_weight: float = 0.4
    session_recent_weight: float = 0.6
    trending_for_you_trending_weight: float = 0.4
    trending_for_you_affinity_weight: float = 0.6
    hybrid_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "session": 0.35,
            "personalized": 0.2,
            "trending_for_you": 0.1,
            "covisit": 0.2,
            "similar_content": 0.15,
            "cf": 0.2,
            "cross_category": 0.0,
        }
    )
    hybrid_fallback: list[str] = Field(
        default_factory=lambda: ["cf", "personalized", "similar_content", "trending"]
    )
    covisit_last_items: int = Field(5, ge=1, description="covisit for a user: from their last N items.")
    hybrid_candidates_per_source: int = Field(100, ge=1)
    hybrid_intent_every: int = Field(
        3, ge=0, description="Every n-th hybrid slot (2nd, 5th, ...) shows recent-session intent; 0 = off."
    )
    hybrid_intent_categories: int = Field(2, ge=1, description="Recent categories that get intent slots.")
    max_k: int = Field(500, ge=1)
    personalized_tier_drift_weight: float = Field(
        0.0,
        description="personalized: + this · 100 · share change for items of the user's drifting_to tier "
        "(user_price_tier_drift); 0 keeps the SPEC §4 score.",
    )
    cross_category_min_users: int = Field(
        2, ge=1, description="cross_category: users who bought in both A and B that a pair needs."
    )
    cross_category_min_lift: float = Field(
        1.0, ge=0, description="cross_category: a pair is used when its lift is above this."
    )


class EmbeddingSettings(BaseModel):
    """Item text embeddings and the vector index (similar_content, user_interest)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        "minilm",
        description="'minilm' (all-MiniLM-L6-v2 on onnxruntime), 'sentence-transformers:<model>', "
        "'precomputed:<dim>' (items carry `embedding`), or 'none'.",
    )
    text_fields: list[str] = Field(
        default_factory=lambda: ["title", "text"], description="Item fields embedded, joined by a newline."
    )
    batch_size: int = Field(64, ge=1)
    exact_threshold: int = Field(
        20_000, ge=0, description="Items up to which similarity search is exact; an ANN index above."
    )


class CFSettings(BaseModel):
    """Collaborative filtering: ALS (the ``implicit`` library) trained from every user's interactions."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Train and serve the `cf` strategy.")
    factors: int = Field(32, ge=1, le=1024)
    regularization: float = Field(40.0, ge=0)
    alpha: float = Field(2.0, gt=0, description="Confidence scale: confidence = alpha · f(summed weight).")
    confidence: Literal["linear", "sqrt", "log1p"] = Field(
        "sqrt", description="f: how a user's summed event weights on an item become confidence."
    )
    iterations: int = Field(15, ge=1)
    threads: int = Field(1, ge=0, description="Training threads (0 = all cores; 1 leaves a core to serving).")
    seed: int = 0
    retrain_every_seconds: float = Field(
        3600.0, ge=0, description="Retrain in the background this often (0 = only on demand)."
    )
    min_new_events: int = Field(
        1, ge=0, description="A scheduled retrain is skipped unless this many events arrived since the last."
    )
    fold_in: bool = Field(
        True, description="Recompute a user's factors from their current interactions on every request."
    )


class RankerSettings(BaseModel):
    """The learned ranker of ``hybrid``: LightGBM lambdarank over candidates of every source."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Train and serve the learned ranker (else the hand-set blend).")
    candidates_per_source: int = Field(50, ge=1, description="Candidates each source proposes.")
    max_queries: int = Field(1000, ge=10, description="Training: replay points sampled from the log.")
    warmup: float = Field(
        0.2, ge=0.0, lt=1.0, description="Training: share of the log replayed before the first replay point."
    )
    next_items: int = Field(10, ge=1, description="Training: the user's next N new items are positives.")
    returning_share: float = Field(
        0.5, ge=0.0, le=1.0, description="Training: share of replay points for returning (idle) users."
    )
    cf_checkpoints: int = Field(4, ge=1, description="Training: CF retrains inside the training replay.")
    trees: int = Field(300, ge=1)
    leaves: int = Field(31, ge=2)
    learning_rate: float = Field(0.05, gt=0)
    min_data_in_leaf: int = Field(50, ge=1)
    threads: int = Field(1, ge=0)
    seed: int = 0
    min_events: int = Field(1000, ge=1, description="No training before the log has this many events.")
    retrain_every_seconds: float = Field(
        21_600.0, ge=0, description="Retrain in the background this often (0 = only on demand)."
    )
    retrain_growth: float = Field(
        2.0, ge=1.0, description="Replay evaluation: retrain once the log has grown by this factor."
    )


class RetentionSettings(BaseModel):
    """Bounded state (embedded): idle users forgotten, the number of users and the state's bytes capped."""

    model_config = ConfigDict(extra="forbid")

    user_ttl_days: float | None = Field(
        None, gt=0, description="Forget a user whose newest event is older than this (engine clock)."
    )
    max_users: int | None = Field(
        None, ge=1, description="Above this many users, forget the least recently active (down to 95%)."
    )
    memory_budget_mb: float | None = Field(
        None,
        gt=0,
        description="Above this many MiB of state, forget the least recently active users (down to 95%).",
    )
    sweep_every_seconds: float = Field(
        3600.0, ge=0, description="How often (engine clock) idle users are looked for; 0: after every write."
    )


class StorageSettings(BaseModel):
    """The embedded data directory (SPEC §7)."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path | None = Field(
        None, description="Data directory of `serve` (None: ./freshrec-data; `--ephemeral` keeps nothing)."
    )
    fsync: bool = Field(True, description="fsync the log before acknowledging a write.")
    segment_bytes: int = Field(64 * 1024 * 1024, ge=4096)
    snapshot_every_events: int = Field(
        500_000, ge=1, description="Write a snapshot after this many events (or item changes) were logged."
    )


class CatalogPostgresSettings(BaseModel):
    """The catalog followed from a PostgreSQL table: a snapshot, then its logical-replication changes."""

    model_config = ConfigDict(extra="forbid")

    dsn: str | None = Field(
        None, description="libpq connection string or URL; set = the catalog follows `table` (embedded mode)."
    )
    table: str = Field("public.items", min_length=1, description="The items table, `schema.table`.")
    columns: dict[str, str | None] = Field(
        default_factory=dict,
        description="Table column -> item field (null or an empty string: ignored). Columns named like an "
        "item field map to it unless listed here; other columns are ignored.",
    )
    slot: str = Field(
        "freshrec_catalog", pattern=r"^[a-z0-9_]{1,63}$", description="Logical replication slot (pgoutput)."
    )
    publication: str = Field(
        "freshrec_catalog",
        pattern=r"^[a-z0-9_]{1,63}$",
        description="Publication of `table` (created if absent).",
    )
    poll_interval_seconds: float = Field(0.2, gt=0, description="How often the slot is read when idle.")
    max_changes: int = Field(10_000, ge=1, description="Most changes read from the slot at once.")


class FeatureSinkSettings(BaseModel):
    """Feature views upserted into PostgreSQL tables (a feature store's offline/online tables)."""

    model_config = ConfigDict(extra="forbid")

    dsn: str | None = Field(None, description="libpq connection string or URL; set = the sink runs.")
    views: list[str] = Field(
        default_factory=lambda: ["user_category_affinity", "user_category_profile", "content_trending"],
        min_length=1,
    )
    pg_schema: str = Field("public", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="Schema of the tables.")
    table_prefix: str = Field("freshrec_", pattern=r"^[a-z0-9_]{0,30}$", description="Table = prefix + view.")
    flush_interval_seconds: float = Field(1.0, gt=0, description="How often changed keys are written.")
    batch_keys: int = Field(1000, ge=1, description="Keys (users or items) written per transaction.")
    full_sync_every_seconds: float = Field(
        3600.0, ge=0, description="Rewrite every row this often (expired windows leave); 0 = only at start."
    )


class Settings(BaseSettings):
    """All of freshrec's settings."""

    model_config = SettingsConfigDict(env_prefix="FRESHREC_", env_nested_delimiter="__", extra="forbid")

    clock: Literal["wall", "event"] = Field(
        "wall", description="'wall' = now is wall-clock time; 'event' = the largest event time applied."
    )
    state: str = Field("memory://", description="State back end URL.")
    events: EventSettings = Field(default_factory=EventSettings)
    price_tiers: PriceTierSettings = Field(default_factory=PriceTierSettings)
    views: ViewSettings = Field(default_factory=ViewSettings)
    strategies: StrategySettings = Field(default_factory=StrategySettings)
    embeddings: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    cf: CFSettings = Field(default_factory=CFSettings)
    ranker: RankerSettings = Field(default_factory=RankerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    catalog_postgres: CatalogPostgresSettings = Field(default_factory=CatalogPostgresSettings)
    feature_sink: FeatureSinkSettings = Field(default_factory=FeatureSinkSettings)
    experiments: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Experiments declared at start-up, by id, each as the body of PUT /v1/experiments/{id}.",
    )

    @field_validator("experiments")
    @classmethod
    def _experiments(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from freshrec.experiments.model import ExperimentIn  # the package imports the settings

        for experiment_id, spec in value.items():
            try:
                ExperimentIn.model_validate(spec)
            except ValueError as exc:
                raise ValueError(f"experiment {experiment_id!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _extensions_are_embedded(self) -> Settings:
        if self.state.startswith("memory://"):
            return self
        used = []
        if self.strategies.hybrid_weights.get("cross_category", 0.0):
            used.append("strategies.hybrid_weights.cross_category")
        if self.strategies.personalized_tier_drift_weight:
            used.append("strategies.personalized_tier_drift_weight")
        if used:
            raise ValueError(
                f"{' and '.join(used)} need the views category_cross_affinity and user_price_tier_drift, "
                f"which the embedded state (memory://) keeps and {self.state.split('://')[0]}:// does not; "
                "set them to 0 or use the embedded state"
            )
        return self


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``config_file`` (TOML), overridden by the environment, then by ``overrides``.

    >>> load_settings(clock="event").clock
    'event'
    """
    file_values: dict[str, Any] = {}
    if config_file is not None:
        with config_file.open("rb") as fh:
            file_values = tomllib.load(fh)
    # raw environment values, validated once together with the file's (a constraint may span both)
    env_values = EnvSettingsSource(Settings, env_prefix="FRESHREC_", env_nested_delimiter="__")()
    merged = _deep_merge(_deep_merge(file_values, env_values), overrides)
    return Settings.model_validate(merged)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out

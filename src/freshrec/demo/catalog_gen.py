"""Deterministic generator of a plausible product catalog (SPEC §2) for the demo scenario.

Ten categories, each with subcategories (own price level and product nouns), brands (a few shared across
categories), adjectives for titles, tags and a blurb for the item text. Prices are log-normal around the
subcategory's median, so electronics are pricier than books and every price tier is represented.
Within a category, items get a Zipf-like popularity so that a few items attract most traffic.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from typing import Any

TIERS: tuple[str, ...] = ("budget", "mid-range", "premium", "luxury")


def price_tier(price: float) -> str:
    """SPEC §3 tiers: budget < 25 ≤ mid-range < 100 ≤ premium < 500 ≤ luxury."""
    if price < 25:
        return "budget"
    if price < 100:
        return "mid-range"
    if price < 500:
        return "premium"
    return "luxury"


@dataclass(frozen=True)
class CategorySpec:
    name: str
    share: float  # fraction of the catalog
    sigma: float  # log-normal spread of prices around the subcategory median
    subcategories: tuple[tuple[str, float, tuple[str, ...]], ...]  # (name, median price, nouns)
    brands: tuple[str, ...]
    adjectives: tuple[str, ...]
    suffixes: tuple[str, ...]
    tags: tuple[str, ...]
    blurb: str


_MODEL = ("", "", " 2", " 3", " Plus", " Mini")
CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec(
        "electronics",
        0.14,
        0.55,
        (
            ("audio", 120, ("Headphones", "Earbuds", "Bluetooth Speaker", "Soundbar")),
            ("computers", 650, ("Laptop", "Mechanical Keyboard", "Monitor", "Tablet")),
            ("phones", 90, ("Smartphone", "Fast Charger", "Power Bank", "Phone Case")),
            ("cameras", 520, ("Mirrorless Camera", "Action Camera", "Camera Lens", "Drone")),
            ("smart-home", 70, ("Smart Plug", "Video Doorbell", "Smart Thermostat", "Mesh Router")),
        ),
        ("Lumen", "Voltaic", "Nimbus Audio", "Arclight", "Pixelforge", "Quanta", "Helix"),
        ("Wireless", "Noise-Cancelling", "Ultra", "Compact", "Smart", "4K", "Pro"),
        ("", " Pro", " Max", " Mini", " X", " 2"),
        ("wireless", "bluetooth", "usb-c", "smart-home", "4k", "rechargeable"),
        "built for people who like their tech to just work",
    ),
    CategorySpec(
        "books",
        0.12,
        0.45,
        (
            ("fiction", 15, ("Novel", "Thriller", "Mystery", "Short Stories")),
            ("non-fiction", 19, ("Biography", "Memoir", "History", "Field Guide")),
            ("cookbooks", 28, ("Cookbook", "Baking Book", "Vegetarian Cookbook")),
            ("children", 11, ("Picture Book", "Bedtime Stories", "Activity Book")),
            ("sci-fi-fantasy", 16, ("Space Opera", "Fantasy Saga", "Graphic Novel")),
        ),
        ("Harbor Press", "Quill & Ink", "Lantern Books", "Redwood Publishing", "Paperkite", "Old Mill Press"),
        ("Midnight", "Hidden", "Illustrated", "Essential", "Complete", "Silent", "Last"),
        ("", "", " (Paperback)", " (Hardcover)", " Vol. 2"),
        ("bestseller", "paperback", "hardcover", "award-winner", "book-club", "debut"),
        "a page-turner for curious readers",
    ),
    CategorySpec(
        "home-kitchen",
        0.12,
        0.6,
        (
            ("cookware", 60, ("Skillet", "Dutch Oven", "Saucepan Set", "Wok")),
            ("appliances", 130, ("Blender", "Espresso Machine", "Air Fryer", "Stand Mixer")),
            ("bedding", 55, ("Duvet Cover", "Pillow Set", "Weighted Blanket")),
            ("decor", 35, ("Table Lamp", "Wall Clock", "Ceramic Vase", "Throw Rug")),
            ("storage", 22, ("Pantry Jars", "Shelf Organizer", "Laundry Basket")),
        ),
        ("Hearthstone", "Copperleaf", "Lumen", "Maison Blanc", "Kettle & Co", "Oakridge Home", "Brightnest"),
        ("Classic", "Handcrafted", "Nordic", "Everyday", "Artisan", "Minimalist"),
        _MODEL,
        ("dishwasher-safe", "non-stick", "cozy", "minimalist", "space-saving", "gift-idea"),
        "made for homes that get used every day",
    ),
    CategorySpec(
        "sports-outdoors",
        0.1,
        0.6,
        (
            ("running", 70, ("Running Shoe", "Running Vest", "Trail Socks")),
            ("camping", 120, ("Tent", "Sleeping Bag", "Camp Stove", "Headlamp")),
            ("cycling", 260, ("Road Bike", "Bike Helmet", "Cycling Jersey", "Bike Light")),
            ("fitness", 40, ("Yoga Mat", "Kettlebell", "Resistance Band Set", "Adjustable Dumbbell")),
            ("water-sports", 80, ("Kayak Paddle", "Dry Bag", "Wetsuit")),
        ),
        ("Trailhead", "Northwind", "Summit Gear", "Peakline", "Stride", "Apex Athletics", "Riverstone"),
        ("Trailblazer", "Summit", "Ultralight", "All-Terrain", "Velocity", "Alpine"),
        _MODEL,
        ("lightweight", "waterproof", "breathable", "trail", "training", "outdoor"),
        "tested on trails, roads and rainy weekends",
    ),
    CategorySpec(
        "fashion",
        0.12,
        0.6,
        (
            ("shoes", 85, ("Sneaker", "Leather Boot", "Loafer")),
            ("outerwear", 140, ("Rain Jacket", "Wool Coat", "Puffer Vest")),
            ("tops", 40, ("Linen Shirt", "Cotton Tee", "Cashmere Sweater")),
            ("accessories", 30, ("Leather Belt", "Canvas Tote", "Wool Scarf", "Sunglasses")),
            ("bags", 95, ("Backpack", "Weekender Bag", "Crossbody Bag")),
        ),
        (
            "Northwind",
            "Atelier Nove",
            "Thread & Loom",
            "Urban Fable",
            "Sable Row",
            "Kinfolk Supply",
            "Maison Blanc",
        ),
        ("Classic", "Slim-Fit", "Relaxed", "Heritage", "Tailored", "Vintage"),
        ("", "", " (Unisex)", " II"),
        ("organic-cotton", "slim-fit", "vegan-leather", "new-season", "wardrobe-staple", "unisex"),
        "cut to be worn season after season",
    ),
    CategorySpec(
        "beauty",
        0.08,
        0.55,
        (
            ("skincare", 30, ("Face Serum", "Night Cream", "Cleanser", "Sunscreen SPF 50")),
            ("makeup", 22, ("Lipstick", "Mascara", "Foundation")),
            ("haircare", 25, ("Shampoo", "Hair Oil", "Hair Dryer")),
            ("fragrance", 75, ("Eau de Parfum", "Body Mist")),
        ),
        ("Verdant", "Lumiere Lab", "Petal & Bloom", "Glow Theory", "Aurelia", "Clearwater"),
        ("Hydrating", "Radiant", "Gentle", "Velvet", "Botanical", "Overnight"),
        ("", "", " Duo", " Travel Size"),
        ("cruelty-free", "fragrance-free", "vegan", "sensitive-skin", "spf", "refillable"),
        "gentle enough for every day",
    ),
    CategorySpec(
        "toys-games",
        0.08,
        0.6,
        (
            ("board-games", 35, ("Strategy Board Game", "Party Game", "1000-Piece Puzzle")),
            ("building", 45, ("Building Brick Set", "Marble Run", "Magnetic Tiles")),
            ("outdoor-play", 30, ("Kite", "Water Blaster", "Kick Scooter")),
            ("plush", 18, ("Plush Bear", "Plush Dragon", "Plush Octopus")),
            ("video-games", 55, ("Game Controller", "Adventure Game", "Racing Game")),
        ),
        ("Brickhaven", "Playwell", "Tumble Toys", "Kite & Co", "Pixelforge", "Meeple House"),
        ("Deluxe", "Junior", "Epic", "Galactic", "Rainbow", "Family"),
        _MODEL,
        ("ages-3-plus", "ages-8-plus", "family", "stem", "two-player", "gift-idea"),
        "for rainy afternoons and family game nights",
    ),
    CategorySpec(
        "grocery",
        0.08,
        0.45,
        (
            ("coffee-tea", 14, ("Whole Bean Coffee", "Green Tea", "Cold Brew Pack")),
            ("snacks", 8, ("Trail Mix", "Dark Chocolate Bar", "Protein Bar Box")),
            ("pantry", 11, ("Olive Oil", "Pasta Sauce", "Wildflower Honey")),
            ("beverages", 9, ("Sparkling Water", "Kombucha", "Oat Milk")),
        ),
        ("Verdant", "Hearthstone", "Morning Ritual", "Golden Acre", "Kettle & Co", "Wildharvest"),
        ("Organic", "Single-Origin", "Small-Batch", "Artisan", "Fair-Trade", "Family-Size"),
        ("", "", " (6-Pack)", " Value Pack"),
        ("organic", "gluten-free", "fair-trade", "vegan", "bulk", "subscribe-and-save"),
        "good enough to restock every week",
    ),
    CategorySpec(
        "garden",
        0.08,
        0.6,
        (
            ("tools", 30, ("Pruning Shears", "Garden Trowel", "Hose Reel")),
            ("plants-seeds", 14, ("Herb Seed Kit", "Tomato Seedlings", "Succulent Trio")),
            ("outdoor-furniture", 240, ("Patio Chair", "Teak Bench", "Hammock")),
            ("watering", 35, ("Drip Irrigation Kit", "Watering Can", "Rain Barrel")),
            ("grills", 380, ("Charcoal Grill", "Pellet Smoker", "Gas Grill")),
        ),
        ("Verdant", "Greenthumb", "Northwind", "Terra Firma", "Oakridge Home", "Bloomfield"),
        ("Heavy-Duty", "Weatherproof", "Heirloom", "Cedar", "Ergonomic", "Backyard"),
        _MODEL,
        ("weatherproof", "raised-bed", "pollinator-friendly", "patio", "bbq", "water-saving"),
        "ready for long summer evenings outside",
    ),
    CategorySpec(
        "music",
        0.08,
        0.6,
        (
            ("vinyl", 28, ("Vinyl Record", "Vinyl Box Set", "Live Album")),
            ("instruments", 420, ("Acoustic Guitar", "Digital Piano", "Ukulele", "Drum Pad")),
            ("studio", 180, ("Studio Monitor", "Audio Interface", "Condenser Microphone")),
            ("accessories", 15, ("Guitar Strings", "Capo", "Instrument Stand")),
        ),
        ("Harmonia", "Nimbus Audio", "Redwood Strings", "Bluebird Records", "Fretwork", "Tempo"),
        ("Vintage", "Studio", "Live", "Acoustic", "Deluxe", "Remastered"),
        ("", "", " II", " Edition"),
        ("vinyl", "beginner", "studio", "limited-edition", "180g", "handmade"),
        "for people who listen closely",
    ),
)
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)
_SPEC = {c.name: c for c in CATEGORIES}
_GLOBAL_TAGS = ("bestseller", "new-arrival", "gift-idea", "eco-friendly", "staff-pick", "limited-edition")
_TIER_TARGET = {"budget": 14.99, "mid-range": 49.99, "premium": 199.99, "luxury": 799.99}


class Pool:
    """Items with cumulative popularity weights, sampled by bisection."""

    def __init__(self, items: list[int], weights: list[float]) -> None:
        self.items = items
        self.cum: list[float] = []
        total = 0.0
        for w in weights:
            total += w
            self.cum.append(total)

    def pick(self, rng: random.Random) -> int:
        i = bisect.bisect_right(self.cum, rng.random() * self.cum[-1])
        return self.items[min(i, len(self.items) - 1)]


@dataclass(frozen=True)
class Catalog:
    items: list[dict[str, Any]]
    tiers: list[str]  # price tier per item index
    by_category: dict[str, Pool]
    by_category_brand: dict[tuple[str, str], Pool]


def _price(rng: random.Random, median: float, sigma: float) -> float:
    raw = math.exp(rng.gauss(math.log(median), sigma))
    return max(0.99, round(raw) - 0.01) if raw >= 3 else round(raw, 1) + 0.09


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def generate_catalog(n_items: int, seed: int) -> Catalog:
    """`n_items` products; the same `(n_items, seed)` always gives the same catalog."""
    rng = random.Random(f"freshrec-demo-catalog-{seed}")
    cats = list(CATEGORY_NAMES[: min(n_items, len(CATEGORIES))])
    cats += rng.choices(CATEGORY_NAMES, weights=[c.share for c in CATEGORIES], k=n_items - len(cats))
    rng.shuffle(cats)
    items: list[dict[str, Any]] = []
    medians: list[float] = []
    for i, cat in enumerate(cats):
        spec = _SPEC[cat]
        sub, median, nouns = rng.choice(spec.subcategories)
        brand = rng.choices(spec.brands, weights=[1 / (j + 1) ** 0.7 for j in range(len(spec.brands))])[0]
        noun = rng.choice(nouns)
        adj = rng.choice([a for a in spec.adjectives if a.lower() not in noun.lower()])
        title = f"{adj} {noun}{rng.choice(spec.suffixes)}"
        tags = rng.sample(spec.tags + _GLOBAL_TAGS, rng.choice((1, 2, 2, 3)))
        item_id = f"sku-{i + 1:05d}"
        text = f"{_article(adj).capitalize()} {adj.lower()} {noun.lower()} by {brand}, {spec.blurb}."
        items.append(
            {
                "item_id": item_id,
                "title": title,
                "text": text,
                "url": f"https://shop.example.com/p/{item_id}",
                "category": cat,
                "subcategory": sub,
                "brand": brand,
                "price": _price(rng, median, spec.sigma),
                "in_stock": rng.random() >= 0.08,
                "tags": tags,
                "content_type": "product",
                "properties": {"rating": round(min(5.0, rng.gauss(4.2, 0.4)), 1)},
            }
        )
        medians.append(median)
    _cover_all_tiers(items, medians)
    tiers = [price_tier(it["price"]) for it in items]
    by_cat: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_cat.setdefault(it["category"], []).append(i)
    by_category: dict[str, Pool] = {}
    by_category_brand: dict[tuple[str, str], Pool] = {}
    for cat, idxs in by_cat.items():
        # Zipf-like popularity inside the category: rank r (random order) gets weight 1 / (r + 1)^1.1.
        weights = [1.0 / (r + 1) ** 1.1 for r in range(len(idxs))]
        by_category[cat] = Pool(idxs, weights)
        per_brand: dict[str, tuple[list[int], list[float]]] = {}
        for idx, w in zip(idxs, weights, strict=True):
            entry = per_brand.setdefault(items[idx]["brand"], ([], []))
            entry[0].append(idx)
            entry[1].append(w)
        for brand, (b_idxs, b_weights) in per_brand.items():
            by_category_brand[(cat, brand)] = Pool(b_idxs, b_weights)
    return Catalog(items, tiers, by_category, by_category_brand)


def _cover_all_tiers(items: list[dict[str, Any]], medians: list[float]) -> None:
    """Small catalogs may miss a tier: re-price the item whose subcategory fits that tier best."""
    if len(items) < len(TIERS):
        return
    for tier, target in _TIER_TARGET.items():
        counts = dict.fromkeys(TIERS, 0)
        for it in items:
            counts[price_tier(it["price"])] += 1
        if counts[tier]:
            continue
        candidates = [i for i, it in enumerate(items) if counts[price_tier(it["price"])] > 1]
        best = min(candidates, key=lambda i: (abs(math.log(medians[i] / target)), i))
        items[best]["price"] = target


def brands_of(category: str) -> tuple[str, ...]:
    return _SPEC[category].brands

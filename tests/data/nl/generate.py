"""Deterministic data for the sample schemas: the same rows for the same seed, on any machine.

    rows = generate("shop")          # {"customers": Rows(columns, [...]), ...}

Sized for tests that run in seconds (a few thousand rows a table), dated up to the day before
`TODAY`, the `today` every question of the question set is read against. Some rows are left
unreferenced on purpose (customers who never ordered, products never sold, users without a
session, agents without tickets, tickets never rated) so anti-joins have answers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

TODAY = date(2025, 6, 15)
START = datetime(2023, 1, 1)
END = datetime(2025, 6, 14, 23, 59, 59)
SEED = 20250615

T = TypeVar("T")


@dataclass(frozen=True)
class Rows:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def _split(*lines: str) -> list[str]:
    return [word for line in lines for word in line.split()]


def generate(schema: str, seed: int = SEED) -> dict[str, Rows]:
    """The rows of every table of `schema` ("shop", "web" or "support")."""
    generators: dict[str, Callable[[random.Random], dict[str, Rows]]] = {
        "shop": _shop,
        "web": _web,
        "support": _support,
    }
    return generators[schema](random.Random(f"{schema}:{seed}"))


COUNTRIES = {
    "Germany": 25,
    "France": 15,
    "United States": 12,
    "Netherlands": 11,
    "Spain": 9,
    "United Kingdom": 8,
    "Italy": 7,
    "Poland": 5,
}
FIRST_NAMES = _split(
    "Anna Ben Clara David Emma Felix Greta Hugo Ida Jonas Karla Leon Mia Noah Olga Paul",
    "Rosa Sven Tara Ugo Vera Willem Yara Zoe",
)
LAST_NAMES = _split(
    "Adler Becker Costa Dubois Eriksen Fischer Garcia Hansen Ivanova Jansen Kowalski Lopez",
    "Moreau Novak Olsen Peters Quinn Rossi Schmidt Torres Ursu Visser Weber Young",
)


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _moment(rng: random.Random, start: datetime = START, end: datetime = END) -> datetime:
    seconds = int((end - start).total_seconds())
    return start + timedelta(seconds=rng.randrange(seconds))


def _names(rng: random.Random, n: int) -> list[str]:
    pairs = [f"{f} {last}" for f in FIRST_NAMES for last in LAST_NAMES]
    return rng.sample(pairs, n)


def _skewed(rng: random.Random, items: Sequence[T]) -> list[float]:
    """Weights that make a few items much more frequent than the rest, without ties."""
    return [rng.paretovariate(1.2) + i * 1e-6 for i in range(len(items))]


def _money(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


# -- e-commerce ---------------------------------------------------------------------------------

CATEGORIES = {
    "Electronics": ("Headphones Keyboard Monitor Speaker Webcam Charger Router", (19, 480)),
    "Books": ("Novel Atlas Cookbook Biography Dictionary Anthology", (8, 45)),
    "Home & Garden": ("Lamp Planter Rug Kettle Toolbox Hammock", (12, 220)),
    "Toys": ("Puzzle Kite Robot Train Dollhouse", (9, 120)),
    "Sports": ("Racket Yoga-Mat Helmet Dumbbell Backpack Tent", (15, 260)),
    "Clothing": ("Jacket Scarf Sneakers Raincoat Sweater Gloves", (14, 180)),
}
ADJECTIVES = _split("Nordic Urban Classic Compact Deluxe Solar Alpine Coastal Royal Swift")


def _shop(rng: random.Random) -> dict[str, Rows]:
    names = _names(rng, 200)
    customers = []
    for i, name in enumerate(names, start=1):
        customers.append(
            (
                i,
                name,
                f"{name.lower().replace(' ', '.')}{i}@example.com",
                _pick(rng, COUNTRIES),
                "business" if rng.random() < 0.25 else "consumer",
                (_moment(rng, datetime(2022, 1, 1), datetime(2025, 5, 31))).date(),
            )
        )
    products: list[tuple[Any, ...]] = []
    for category, (nouns, (low, high)) in CATEGORIES.items():
        for noun in nouns.split():
            product_id = len(products) + 1
            name = f"{rng.choice(ADJECTIVES)} {noun.replace('-', ' ')}"
            products.append((product_id, name, category, _money(rng.uniform(low, high))))
    never_ordered = {p[0] for p in rng.sample(products, 5)}
    sold = [p for p in products if p[0] not in never_ordered]
    product_weights = _skewed(rng, sold)
    buyers = [c for c in customers if rng.random() > 0.12]
    buyer_weights = _skewed(rng, buyers)
    orders: list[tuple[Any, ...]] = []
    items: list[tuple[Any, ...]] = []
    for order_id in range(1, 1501):
        customer = rng.choices(buyers, weights=buyer_weights)[0]
        placed = _moment(rng)
        lines = []
        for product in _distinct_choices(rng, sold, product_weights, rng.randint(1, 4)):
            quantity = rng.choices([1, 2, 3, 4, 5], weights=[50, 25, 12, 8, 5])[0]
            lines.append((product[0], quantity, product[3]))
        total = sum((q * price for _, q, price in lines), Decimal("0.00"))
        orders.append(
            (
                order_id,
                customer[0],
                placed,
                _pick(rng, {"completed": 75, "pending": 10, "cancelled": 10, "refunded": 5}),
                _pick(rng, {"web": 55, "mobile": 35, "store": 10}),
                total,
            )
        )
        for product_id, quantity, price in lines:
            items.append((len(items) + 1, order_id, product_id, quantity, price))
    return {
        "customers": Rows(["id", "name", "email", "country", "segment", "signup_date"], customers),
        "products": Rows(["id", "name", "category", "price"], products),
        "orders": Rows(
            ["id", "customer_id", "order_date", "status", "channel", "total_amount"], orders
        ),
        "order_items": Rows(["id", "order_id", "product_id", "quantity", "unit_price"], items),
    }


def _distinct_choices(
    rng: random.Random, items: Sequence[T], weights: Sequence[float], n: int
) -> list[T]:
    chosen: list[T] = []
    while len(chosen) < n:
        item = rng.choices(items, weights=weights)[0]
        if item not in chosen:
            chosen.append(item)
    return chosen


# -- web analytics -------------------------------------------------------------------------------

PAGES = _split(
    "/ /pricing /features /blog /docs /signup /login /about /contact /careers /docs/install",
    "/docs/api /blog/launch /blog/roadmap /integrations /security /status /changelog",
    "/partners /customers /legal/privacy /legal/terms /help /download /webinars",
)


def _web(rng: random.Random) -> dict[str, Rows]:
    users = []
    for user_id in range(1, 301):
        users.append(
            (
                user_id,
                f"user{user_id}@example.org",
                _pick(rng, {"free": 70, "pro": 25, "enterprise": 5}),
                _moment(rng, START, datetime(2025, 6, 10)),
            )
        )
    active = [u for u in users if rng.random() > 0.13]
    active_weights = _skewed(rng, active)
    sessions = []
    for n in range(1, 3001):
        user = rng.choices(active, weights=active_weights)[0] if rng.random() < 0.7 else None
        sessions.append(
            (
                f"s{n:05d}",
                None if user is None else user[0],
                _moment(rng),
                _pick(rng, {"desktop": 55, "mobile": 38, "tablet": 7}),
                _pick(rng, {"Chrome": 60, "Safari": 22, "Firefox": 10, "Edge": 8}),
                _pick(rng, COUNTRIES),
                _pick(rng, {"google": 45, "direct": 25, "newsletter": 16, "facebook": 14}),
                int(min(3600, 10 + rng.lognormvariate(5, 1))),
            )
        )
    page_weights = [1 / (k + 1) ** 1.1 for k in range(len(PAGES))]
    views, events = [], []
    for n in range(1, 12001):
        session = rng.choice(sessions)
        offset = timedelta(seconds=rng.randrange(session[7] + 1))
        base_load = {"Chrome": 350, "Safari": 420, "Firefox": 480, "Edge": 400}[session[4]]
        views.append(
            (
                n,
                session[0],
                rng.choices(PAGES, weights=page_weights)[0],
                min(session[2] + offset, END),
                int(base_load * rng.lognormvariate(0, 0.5)),
            )
        )
    for n in range(1, 5001):
        session = rng.choice(sessions)
        kind = _pick(rng, {"click": 60, "add_to_cart": 20, "purchase": 12, "signup": 8})
        value = round(rng.uniform(5, 300), 2) if kind == "purchase" else 0.0
        offset = timedelta(seconds=rng.randrange(session[7] + 1))
        events.append((n, session[0], kind, min(session[2] + offset, END), value))
    return {
        "users": Rows(["user_id", "email", "plan", "signed_up_at"], users),
        "sessions": Rows(
            [
                "session_id",
                "user_id",
                "started_at",
                "device",
                "browser",
                "country",
                "source",
                "duration_seconds",
            ],
            sessions,
        ),
        "page_views": Rows(["id", "session_id", "url", "viewed_at", "load_time_ms"], views),
        "events": Rows(["id", "session_id", "event_type", "occurred_at", "value"], events),
    }


# -- customer support ----------------------------------------------------------------------------

TOPICS = _split("Invoice Refund Login Password Crash Export Upgrade Delivery Integration Billing")


def _support(rng: random.Random) -> dict[str, Rows]:
    teams = ["billing"] * 8 + ["technical"] * 11 + ["sales"] * 6
    agents = []
    for i, (name, team) in enumerate(zip(_names(rng, 25), teams, strict=True), start=1):
        agents.append(
            (i, name, team, _moment(rng, datetime(2019, 1, 1), datetime(2025, 5, 1)).date())
        )
    # Three recent hires have no tickets yet.
    working = agents[:-3]
    agent_weights = _skewed(rng, working)
    tickets: list[tuple[Any, ...]] = []
    ratings: list[tuple[Any, ...]] = []
    for ticket_id in range(1, 2501):
        created = _moment(rng)
        priority = _pick(rng, {"low": 35, "medium": 35, "high": 20, "urgent": 10})
        status = _pick(rng, {"open": 10, "pending": 10, "solved": 50, "closed": 30})
        agent = None if rng.random() < 0.05 else rng.choices(working, weights=agent_weights)[0][0]
        closed = None
        if status in ("solved", "closed"):
            closed = min(created + timedelta(hours=rng.uniform(0.5, 120)), END)
        response = {"urgent": 20, "high": 60, "medium": 180, "low": 400}[priority]
        tickets.append(
            (
                ticket_id,
                agent,
                f"customer{rng.randrange(1, 900)}@example.net",
                f"{rng.choice(TOPICS)} request #{ticket_id}",
                created,
                closed,
                priority,
                status,
                _pick(rng, {"email": 50, "chat": 30, "phone": 20}),
                int(response * rng.lognormvariate(0, 0.6)),
            )
        )
        if closed is not None and rng.random() < 0.55:
            rated = min(closed + timedelta(hours=rng.uniform(1, 72)), END)
            score = rng.choices([1, 2, 3, 4, 5], weights=[6, 8, 16, 35, 35])[0]
            ratings.append((len(ratings) + 1, ticket_id, score, rated))
    return {
        "agents": Rows(["id", "name", "team", "hired_on"], agents),
        "tickets": Rows(
            [
                "id",
                "agent_id",
                "customer_email",
                "subject",
                "created_at",
                "closed_at",
                "priority",
                "status",
                "channel",
                "first_response_minutes",
            ],
            tickets,
        ),
        "ratings": Rows(["id", "ticket_id", "score", "rated_at"], ratings),
    }

"""Schema linking on the sample schemas' catalogs (snapshots of their introspection): which
words call which tables, columns and values, how a question is cut into phrases, and how
each phrase's element is chosen."""

from __future__ import annotations

import pytest

from duet_agents.query.nl.lexicon import Lexicon, ValueRef, build_lexicon, describe
from duet_agents.query.nl.linking import link, unlinked
from duet_agents.query.nl.refusal import CannotAnswerError
from duet_agents.query.nl.resolve import resolve
from duet_agents.query.nl.schema import ColumnRef, SchemaView, TableRef
from duet_agents.query.nl.words import tokenize
from tests.data.nl.samples import catalog_snapshot, values_snapshot


@pytest.fixture(scope="module")
def shop() -> tuple[Lexicon, SchemaView]:
    catalog = catalog_snapshot("shop")
    return build_lexicon(catalog, values_snapshot("shop")), SchemaView(catalog)


@pytest.fixture(scope="module")
def support() -> tuple[Lexicon, SchemaView]:
    catalog = catalog_snapshot("support")
    return build_lexicon(catalog, values_snapshot("support")), SchemaView(catalog)


def best(lexicon: Lexicon, phrase: str) -> list[str]:
    """What a phrase calls, as its best candidates."""
    candidates = lexicon.match(tokenize(phrase))
    return [describe(c.element) for c in candidates if c.score == candidates[0].score]


def cut(lexicon: Lexicon, question: str) -> list[str]:
    tokens = tokenize(question)
    return [lk.text for lk in link(tokens, [True] * len(tokens), lexicon)]


def test_tables_by_name_plural_and_synonym(shop: tuple[Lexicon, SchemaView]) -> None:
    lexicon, _ = shop
    assert best(lexicon, "orders") == ["table orders"]
    assert best(lexicon, "order") == ["table orders"]
    assert best(lexicon, "order items") == ["table order_items"]
    assert best(lexicon, "clients") == ["table customers"]


def test_columns_by_name_comment_and_table(shop: tuple[Lexicon, SchemaView]) -> None:
    lexicon, _ = shop
    assert best(lexicon, "price") == ["column products.price"]
    assert best(lexicon, "product category") == ["column products.category"]
    # The comment says "the revenue of the order"; the synonym table says revenue ~ amount.
    assert best(lexicon, "revenue") == ["column orders.total_amount"]
    assert best(lexicon, "order value") == ["column orders.total_amount"]
    # A date column is named by its event.
    assert best(lexicon, "signed up") == ["column customers.signup_date"]


def test_a_key_is_not_called_by_its_table_name(shop: tuple[Lexicon, SchemaView]) -> None:
    lexicon, _ = shop
    called = {describe(c.element) for c in lexicon.match(tokenize("customers"))}
    assert "column orders.customer_id" not in called


def test_values_match_whole_and_in_the_singular(shop: tuple[Lexicon, SchemaView]) -> None:
    lexicon, _ = shop
    assert best(lexicon, "Germany") == ["value 'Germany' of customers.country"]
    assert best(lexicon, "home & garden") == ["value 'Home & Garden' of products.category"]
    assert best(lexicon, "cancelled") == ["value 'cancelled' of orders.status"]
    # Part of a value is not the value.
    assert best(lexicon, "kingdom") == []


def test_the_cut_prefers_strong_phrases(support: tuple[Lexicon, SchemaView]) -> None:
    lexicon, _ = support
    # Two strong links beat one weak one made of the same words.
    assert cut(lexicon, "solved tickets") == ["solved", "tickets"]
    # One phrase of a comment beats a name and a word of a comment.
    assert cut(lexicon, "satisfaction score") == ["satisfaction score"]
    assert cut(lexicon, "first response time") == ["first response time"]


def test_unlinked_words_are_reported_but_not_stop_words_or_fillers(
    shop: tuple[Lexicon, SchemaView],
) -> None:
    lexicon, _ = shop
    tokens = tokenize("what is the profit margin of orders placed")
    free = [True] * len(tokens)
    links = link(tokens, free, lexicon)
    assert [tokens[i].text for i in unlinked(tokens, free, links)] == ["profit", "margin"]


def test_resolution_prefers_elements_that_need_fewer_joins(
    shop: tuple[Lexicon, SchemaView],
) -> None:
    lexicon, view = shop
    tokens = tokenize("name of products")
    links = link(tokens, [True] * len(tokens), lexicon)
    assert {c.element for c in links[0].candidates} == {
        ColumnRef("shop", "customers", "name"),
        ColumnRef("shop", "products", "name"),
    }
    chosen = resolve(links, view)
    assert chosen[0].element == ColumnRef("shop", "products", "name")


def test_a_tie_between_elements_is_ambiguous() -> None:
    catalog = catalog_snapshot("web")
    lexicon, view = build_lexicon(catalog, values_snapshot("web")), SchemaView(catalog)
    # "signups" is users.signed_up_at or the events' type 'signup', equally.
    tokens = tokenize("signups")
    links = link(tokens, [True], lexicon)
    with pytest.raises(CannotAnswerError) as refused:
        resolve(links, view)
    assert refused.value.ambiguous == [
        ("signups", ["column users.signed_up_at", "value 'signup' of events.event_type"])
    ]


def test_value_refs_name_their_column() -> None:
    value = ValueRef(ColumnRef("shop", "orders", "status"), "cancelled")
    assert str(value) == "orders.status = 'cancelled'"
    assert describe(TableRef("shop", "orders")) == "table orders"

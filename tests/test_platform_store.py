"""The platform store (``PlatformContext.store``) on this run's backend (SQLite, or PostgreSQL
with ``SMSLAB_TEST_BACKEND=postgres``): each namespace apart, scans in bytewise order, a large
batch in one call, and every value read back as exactly what was written, whatever JSON it is."""

from __future__ import annotations

import asyncio
import itertools

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.storage import open_storage
from tests.pg_support import db_target

# text as a platform has it: no NUL (refused) and no lone surrogate (not Unicode text at all)
TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(TEXT),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(TEXT, max_size=8), inner, max_size=4),
    max_leaves=12)
KEYS = st.text(TEXT, max_size=12)


@pytest.fixture
async def storage(tmp_path):
    store = open_storage(db_target(tmp_path, "store.db"))
    await store.open()
    yield store
    await store.close()


async def _stored_text(storage, namespace: str) -> dict[str, str]:
    """The value column as the database holds it, read beside the store's own API."""
    sql = "SELECT key, value FROM platform_store WHERE namespace = '%s'" % namespace
    return {key: value for key, value in await storage.db.fetchall(sql)}


async def test_each_namespace_keeps_its_own_keys(storage):
    smpp, http = storage.platform_store("smpp"), storage.platform_store("http")
    await smpp.put_many({"idem/1": ["sm-1", "sm-2"], "idem/2": {"n": 1.5}, "other": None})
    await http.put_many({"idem/1": "http's"})
    assert await smpp.get_many(["idem/1", "idem/2", "missing"]) == {"idem/1": ["sm-1", "sm-2"], "idem/2": {"n": 1.5}}
    assert await http.get_many(["idem/1", "idem/2"]) == {"idem/1": "http's"}
    await smpp.put_many({"idem/1": "replaced"})
    await smpp.delete_many(["idem/2", "missing"])
    assert await smpp.scan() == [("idem/1", "replaced"), ("other", None)]
    assert await http.scan() == [("idem/1", "http's")]
    assert await smpp.get_many([]) == {} and await smpp.scan("nothing") == []


async def test_scans_go_in_bytewise_order_by_prefix_and_page(storage):
    store = storage.platform_store("p")
    keys = ["a%_1", "a%_2", "a%x", "aZ", "a_", "ab", "b", "B", "a"]
    await store.put_many({k: i for i, k in enumerate(keys)})
    # bytewise: upper case before lower, '%' and '_' are plain characters
    assert [k for k, _ in await store.scan()] == sorted(keys)
    assert [k for k, _ in await store.scan("a%_")] == ["a%_1", "a%_2"]
    assert [k for k, _ in await store.scan("a", limit=3)] == ["a", "a%_1", "a%_2"]
    assert [k for k, _ in await store.scan("a", limit=3, after="a%_2")] == ["a%x", "aZ", "a_"]


async def test_a_large_batch_is_written_in_one_call(storage):
    store = storage.platform_store("bulk")
    await store.put_many({f"k/{i:05d}": {"i": i} for i in range(5000)})
    got = await store.get_many([f"k/{i:05d}" for i in range(0, 5000, 7)])
    assert len(got) == len(range(0, 5000, 7)) and got["k/00007"] == {"i": 7}
    await store.delete_many([f"k/{i:05d}" for i in range(2500)])
    page = await store.scan("k/", limit=2)
    assert page == [("k/02500", {"i": 2500}), ("k/02501", {"i": 2501})]


async def test_values_come_back_with_their_types_and_every_digit(storage):
    """Top-level numbers and booleans too: SQLite's JSON functions would hand a bare 0.1 + 0.2
    back as a REAL with 15 digits, and ``true`` as 1."""
    store = storage.platform_store("p")
    values = {"f": 0.1 + 0.2, "t": 1.7e9 + 0.123456789, "yes": True, "no": False, "big": 2**63 - 1, "none": None,
              "text": 'a"b\\c é 😀\n\u2028', "": "an empty key", 'k"e.y$[0]': [], "nested": {"a": [2.5e-300, {}]}}
    await store.put_many(values)
    got = await store.get_many(list(values))
    assert got == values
    assert all(type(got[k]) is type(v) for k, v in values.items())
    assert await _stored_text(storage, "p") == {k: msgspec.json.encode(v).decode() for k, v in values.items()}


async def test_a_key_with_nul_is_refused_and_nothing_of_its_batch_is_written(storage):
    store = storage.platform_store("p")
    with pytest.raises(ValueError, match="NUL"):
        await store.put_many({"fine": 1, "a\0b": 2})
    assert await store.scan() == []


_namespaces = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.dictionaries(KEYS, JSON, max_size=8))
def test_any_json_value_is_stored_as_the_encoder_wrote_it(tmp_path, items):
    namespace = f"p{next(_namespaces)}"  # one database for the test, a namespace per example

    async def roundtrip():
        store = open_storage(db_target(tmp_path, "store.db"))
        await store.open()
        try:
            await store.platform_store(namespace).put_many(items)
            return await _stored_text(store, namespace), await store.platform_store(namespace).get_many(list(items))
        finally:
            await store.close()

    stored, got = asyncio.run(roundtrip())
    assert stored == {k: msgspec.json.encode(v).decode() for k, v in items.items()}
    assert got == items

"""The SQLite platform store (``PlatformContext.store``): each namespace apart, and every value
read back as exactly what was written, whatever JSON it is (the PostgreSQL store's own tests are
in test_postgres_storage.py)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.storage import open_storage

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@pytest.fixture
async def storage(tmp_path):
    store = open_storage(str(tmp_path / "gateway.db"))
    await store.open()
    yield store
    await store.close()


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
    rows = dict(await storage.db.fetchall("SELECT key, value FROM platform_store WHERE namespace = 'p'"))
    assert rows == {k: msgspec.json.encode(v).decode() for k, v in values.items()}


async def test_a_key_with_nul_is_refused_and_nothing_of_its_batch_is_written(storage):
    store = storage.platform_store("p")
    with pytest.raises(ValueError, match="NUL"):
        await store.put_many({"fine": 1, "a\0b": 2})
    assert await store.scan() == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.dictionaries(st.text(st.characters(blacklist_characters="\0"), max_size=12), JSON, max_size=8))
def test_any_json_value_is_stored_as_the_encoder_wrote_it(tmp_path_factory, items):
    async def roundtrip():
        store = open_storage(str(tmp_path_factory.mktemp("ps") / "gateway.db"))
        await store.open()
        try:
            await store.platform_store("p").put_many(items)
            rows = dict(await store.db.fetchall("SELECT key, value FROM platform_store WHERE namespace = 'p'"))
            got = await store.platform_store("p").get_many(list(items))
        finally:
            await store.close()
        return rows, got

    rows, got = asyncio.run(roundtrip())
    assert rows == {k: msgspec.json.encode(v).decode() for k, v in items.items()}
    assert got == items

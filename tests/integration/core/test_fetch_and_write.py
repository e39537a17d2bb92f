"""The lazy read's write (`fetch_and_write`): the copy is fetched while round trip 1 (fence
and row lock) runs on another thread, and it keeps `guarded_write`'s guard and fence: a copy
no newer than the stored row is not written, a fenced or unmappable one is not written and
says why, and no transaction is left open whatever happens."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from test_guarded_write import set_control, stored, version_doc

from lazyshift.core.guarded_write import fetch_and_write


@pytest.fixture
def beside():
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool.submit
    pool.shutdown()


def test_writes_a_missing_copy_and_skips_an_older_one(conn, beside):
    done = fetch_and_write(conn, "k:a", lambda: version_doc("k:a", 3, 2), beside, epoch=1)
    assert (done.applied, done.fenced, done.invalid) == (True, None, None)
    assert stored(conn, "k:a")["version"] == 3
    assert not conn.in_transaction
    # the stored row is newer: nothing written, the fetched copy still handed back
    done = fetch_and_write(conn, "k:a", lambda: version_doc("k:a", 2), beside, epoch=1)
    assert (done.applied, done.doc["version"]) == (False, 2)
    assert stored(conn, "k:a")["version"] == 3
    # an older stored row is replaced, children and all
    done = fetch_and_write(conn, "k:a", lambda: version_doc("k:a", 5, 1), beside, epoch=1)
    assert done.applied
    got = stored(conn, "k:a")
    assert (got["version"], len(got["items"])) == (5, 1)
    assert not conn.in_transaction


def test_nothing_to_fetch_or_fetch_fails(conn, beside):
    assert fetch_and_write(conn, "k:none", lambda: None, beside, epoch=1).doc is None
    assert not conn.in_transaction

    def broken():
        raise RuntimeError("MongoDB went away")

    with pytest.raises(RuntimeError, match="went away"):
        fetch_and_write(conn, "k:none", broken, beside, epoch=1)
    assert not conn.in_transaction
    assert stored(conn, "k:none") is None


def test_fenced_and_unmappable_copies_are_not_written(conn, connect, beside):
    bad = version_doc("k:bad", 1) | {"price": {"amount": "1e3", "currency": "EUR"}}
    done = fetch_and_write(conn, "k:bad", lambda: bad, beside, epoch=1)
    assert (done.applied, done.doc is bad) == (False, True)
    assert done.invalid
    assert stored(conn, "k:bad") is None
    set_control(connect(), epoch=2, state="draining")
    done = fetch_and_write(conn, "k:f", lambda: version_doc("k:f", 1), beside, epoch=2)
    assert done.fenced is not None and done.fenced.state == "draining"
    assert done.doc["key"] == "k:f" and not done.applied
    assert stored(conn, "k:f") is None
    assert not conn.in_transaction

#!/usr/bin/env bash
# Builds FerretDB v1.24.2 (MongoDB wire protocol, embedded SQLite backend) into $GOBIN.
# A plain `go install ...@v1.24.2` yields a binary that panics at start: the module zip ships an
# empty build/version/version.txt (upstream fills it with `bin/task gen-version`). So we fetch the
# module through the Go proxy, write the version file into a private copy and `go install` from it.
#
# Six fixes are applied to that copy, as one patch (ferretdb-lazyshift.patch;
# LAZYSHIFT_FERRETDB_STOCK=1 skips it). The binary's package name carries the patch's hash, so a
# changed patch rebuilds and an unchanged one is reused (idempotent).
# 1. _id lookups: v1.24.2's SQLite backend creates its unique _id index on
#    `_ferretdb_sjson->"_id"` but looks documents up by `_ferretdb_sjson->'$._id'`; SQLite matches
#    index expressions textually, so every lookup, replace and delete by _id scanned the whole
#    table (measured at ~2000 shipments: 17 ms per find and 41 ms per replace, growing with the
#    collection, versus ~1 ms with the index). The lookup is spelled like the index now, and
#    is used for any filter whose `_id` equals one string or ObjectID (`{_id: k}` or
#    `{_id: {$eq: k}}`), whatever other conditions it has (stock: only a one-key filter), for
#    find, explain, update/replace, findAndModify and delete alike: a compare-and-swap
#    `{_id: k, version: n}` is one indexed lookup (the handler still applies the whole filter).
#    So is `{_id: {$in: [...]}}` of up to 1000 strings/ObjectIDs (a batch's reads by key).
# 2. _id ranges sorted by _id (the backfill's and verify's read): stock FerretDB decodes every
#    document of the collection, filters and sorts them in memory before the first batch (74 s
#    and 2.9 GB at 100k shipments). With the patch, a filter whose `_id` condition is only
#    $gt/$gte/$lt/$lte/$eq on strings, sorted on `_id`, is answered by SQLite from an index on
#    `_ferretdb_sjson->>'$._id'` (the string as TEXT: SQLite's binary order is MongoDB's
#    byte order of strings), streamed in order. Only string _ids can match such a filter, so
#    the order is exact; the handler still applies the whole filter. The index is created with
#    each collection, and for existing collections when a database is opened.
# 3. Atomic conditional writes: update, findAndModify and delete match their filter in one
#    SQLite transaction and write in another, so two concurrent `{_id: k, version: n}`
#    replaces could both match and both write (a lost update). A per-collection lock in the
#    handler spans the match and the write (inserts need none: the unique index decides).
# 4. Cheaper reads of stored documents (CPU per document; measured with a private pprof
#    listener on 20k shipments, loaded 2-core machine): a plain scan cost FerretDB ~1.3 ms CPU
#    per shipment, more than half of it in sjson decoding (a json.Decoder with its own buffer
#    and copy per value, strings decoded the generic way) and ~10% in leak tracking (a stack
#    and a finalizer per iterator, row set and transaction, in a process-wide pprof profile;
#    a debug aid). The patch decodes with one json.Unmarshal per value, takes a string that
#    needs no unescaping as it is, and tracks leaks in debug builds only: ~0.7-0.8 ms per
#    shipment (-40%); an `_id: {$in}` read -40%. (Unknown fields in a stored schema are no
#    longer refused, and corrupt-data error texts differ; FerretDB writes both.)
# 5. WAL checkpoints every 10000 pages (~40 MB) instead of 1000, unless the URL sets
#    wal_autocheckpoint: an update statement is one small commit, and a checkpoint copies a
#    page once however often it was rewritten since the last one. Replaces -30% CPU, inserts
#    -15%.
# 6. Batched compare-and-swaps: stock FerretDB answers an `update` command of N statements with
#    N read transactions and N write transactions (a client batch's bulk of `{_id, version,
#    source_rev}` replaces cost ~2x an insert each in FerretDB CPU). When every statement of
#    the command replaces one document by an exact string/ObjectID `_id` (no operators, upsert
#    or multi), the handler now reads the documents of up to 1000 distinct `_id`s with one
#    `_id IN (...)` query, matches and applies each statement in order to the newest copy of
#    its document (the stock common.UpdateDocument: a repeated `_id` sees the statements
#    before it; per-statement n/nModified as before), and writes the replaced documents with
#    one UpdateAll (one transaction), all under the collection's write lock (fix 3), held
#    across the whole command. A failing statement leaves those before it written and stops
#    the command, as stock does. Reads and writes are separate transactions (one SQLite
#    transaction spanning both deadlocked against FerretDB's collection registry lock).
#    Measured with apply_many on the ingest bench's 3000 messages (private pprof listener,
#    loaded 2-core machine): FerretDB CPU per message 0.64-0.67 -> 0.42-0.51 ms; what is left
#    of a replace is decoding the stored document (~22%) and the write itself.
# Two concurrent cursors do not contend inside FerretDB: under two scanning clients a mutex
# profile shows ~0.2 s of lock wait in 20 s, a block profile none, and goroutine dumps show
# the cursors' connections waiting for the clients' next getMore. When FerretDB used only
# ~0.6 of a core for two backfill workers, the machine's two cores were oversubscribed (load
# 6-10): per-document CPU is what this patch can lower, and did.
# Mongo-mode client ingest is not FerretDB-bound either: FerretDB used ~0.4 of a core during it
# (profile: insert 40%, update 28%, find 9%), and its rate did not move with fix 4. Nor with
# fix 6: in the ingest bench (3000 messages, load 7-8, old and new stacks alternated three
# times) FerretDB's CPU per message fell 0.83 -> 0.64 ms, while the client's own CPU stayed
# ~0.65 ms per message and the msg/s did not rise: the client (one GIL for parsing and
# writing, starved on a loaded 2-core machine) sets the pace.
# Wire protocol and storage format are unchanged.
set -euo pipefail
VERSION=v1.24.2
GOBIN=${GOBIN:-$(go env GOPATH)/bin}
BIN=$GOBIN/ferretdb
PATCH=$(dirname "$(readlink -f "$0")")/ferretdb-lazyshift.patch
PACKAGE=release-lazyshift-$(sha256sum "$PATCH" | cut -c1-12)
[[ ${LAZYSHIFT_FERRETDB_STOCK:-0} == 1 ]] && PACKAGE=release
if [[ -x $BIN ]] && "$BIN" --version 2>/dev/null | grep -q "version: $VERSION" &&
   "$BIN" --version 2>/dev/null | grep -q "package: $PACKAGE\$"; then
  exit 0
fi
SRC=$(GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$VERSION" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
WORK=$(mktemp -d)
trap 'chmod -R u+w "$WORK"; rm -rf "$WORK"' EXIT
cp -r "$SRC" "$WORK/ferretdb"
chmod -R u+w "$WORK/ferretdb"
echo "$VERSION" > "$WORK/ferretdb/build/version/version.txt"
echo "$PACKAGE" > "$WORK/ferretdb/build/version/package.txt"
if [[ $PACKAGE != release ]]; then
  patch -s -p1 -d "$WORK/ferretdb" < "$PATCH" ||
    { echo "ferretdb.sh: $PATCH does not apply to FerretDB $VERSION" >&2; exit 1; }
fi
(cd "$WORK/ferretdb" && GOBIN=$GOBIN GOFLAGS=-mod=mod go install ./cmd/ferretdb)
"$BIN" --version

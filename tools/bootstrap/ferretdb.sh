#!/usr/bin/env bash
# Builds FerretDB v1.24.2 (MongoDB wire protocol, embedded SQLite backend) into $GOBIN.
# A plain `go install ...@v1.24.2` yields a binary that panics at start: the module zip ships an
# empty build/version/version.txt (upstream fills it with `bin/task gen-version`). So we fetch the
# module through the Go proxy, write the version file into a private copy and `go install` from it.
#
# One fix is applied to that copy (LAZYSHIFT_FERRETDB_STOCK=1 skips it): v1.24.2's SQLite
# backend creates its unique _id index on `_ferretdb_sjson->"_id"` but looks documents up by
# `_ferretdb_sjson->'$._id'`; SQLite matches index expressions textually, so every lookup,
# replace and delete by _id scans the whole table (EXPLAIN QUERY PLAN: SCAN vs SEARCH USING
# INDEX). Measured at ~2000 shipments: 17 ms per find and 41 ms per replace, growing with the
# collection, versus ~1 ms with the index. The fix spells the lookup like the index
# (`->'_id'`, the same JSON value); wire protocol and storage format are unchanged.
set -euo pipefail
VERSION=v1.24.2
GOBIN=${GOBIN:-$(go env GOPATH)/bin}
BIN=$GOBIN/ferretdb
PACKAGE=release-lazyshift-idindex
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
  META=$WORK/ferretdb/internal/backends/sqlite/metadata/metadata.go
  grep -q "IDColumn = DefaultColumn + \"->'\$._id'\"" "$META" ||
    { echo "ferretdb.sh: expected IDColumn line not found in $META" >&2; exit 1; }
  sed -i "s|IDColumn = DefaultColumn + \"->'\$._id'\"|IDColumn = DefaultColumn + \"->'_id'\"|" "$META"
fi
(cd "$WORK/ferretdb" && GOBIN=$GOBIN GOFLAGS=-mod=mod go install ./cmd/ferretdb)
"$BIN" --version

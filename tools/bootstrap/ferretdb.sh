#!/usr/bin/env bash
# Builds FerretDB v1.24.2 (MongoDB wire protocol, embedded SQLite backend) into $GOBIN.
# A plain `go install ...@v1.24.2` yields a binary that panics at start: the module zip ships an
# empty build/version/version.txt (upstream fills it with `bin/task gen-version`). So we fetch the
# module through the Go proxy, write the version file into a private copy and `go install` from it.
set -euo pipefail
VERSION=v1.24.2
GOBIN=${GOBIN:-$(go env GOPATH)/bin}
BIN=$GOBIN/ferretdb
if [[ -x $BIN ]] && "$BIN" --version 2>/dev/null | grep -q "version: $VERSION"; then
  exit 0
fi
SRC=$(GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$VERSION" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
WORK=$(mktemp -d)
trap 'chmod -R u+w "$WORK"; rm -rf "$WORK"' EXIT
cp -r "$SRC" "$WORK/ferretdb"
chmod -R u+w "$WORK/ferretdb"
echo "$VERSION" > "$WORK/ferretdb/build/version/version.txt"
echo "release" > "$WORK/ferretdb/build/version/package.txt"
(cd "$WORK/ferretdb" && GOBIN=$GOBIN GOFLAGS=-mod=mod go install ./cmd/ferretdb)
"$BIN" --version

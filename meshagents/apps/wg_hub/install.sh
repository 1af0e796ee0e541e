#!/bin/sh
# install.sh TOKEN [--dir DIR] [--hub URL] [--python PY] [-- ENROLL-OPTION...]
#
# Installs the meshagents device agent from the hub that issued TOKEN, then enrolls with it.
#   1. reads bundle_sha256 from TOKEN (signed by the operator; the enrollment checks the signature);
#   2. fetches <hub>/install/bundles/<bundle_sha256>.json and refuses it unless its SHA-256 is that;
#   3. fetches every file the manifest lists and refuses any whose SHA-256 differs;
#   4. makes a venv in DIR (default ~/.local/share/meshagents, /opt/meshagents as root) and
#      installs with pip --no-index from the verified files only;
#   5. hands over to `meshagents enroll --token TOKEN ENROLL-OPTION...`.
# Nothing is installed before every check passed. Exit 0 enrolled, 2 bad usage, 3 refused
# (a hash does not match), 1 any other failure. Needs: sh, python3 with venv, curl or wget.
set -eu

die() { echo "install.sh: $2" >&2; exit "$1"; }
TOKEN="" DIR="" HUB="" PY="python3"
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR="$2"; shift 2 ;;
        --hub) HUB="$2"; shift 2 ;;
        --python) PY="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        mat1.*) TOKEN="$1"; shift ;;
        *) die 2 "unknown argument $1 (install.sh TOKEN [--dir DIR] [--hub URL] [-- ENROLL-OPTION...])" ;;
    esac
done
[ -n "$TOKEN" ] || die 2 "the enrollment token (mat1....) is required"
if [ -z "$DIR" ]; then
    if [ "$(id -u)" = 0 ]; then DIR=/opt/meshagents; else DIR="${XDG_DATA_HOME:-$HOME/.local/share}/meshagents"; fi
fi

# the token's payload: base64url of canonical JSON, so a field is one "key":"value" pair
payload=$(printf '%s' "$TOKEN" | cut -d. -f2 | tr '_-' '/+')
case $(( ${#payload} % 4 )) in 2) payload="$payload==" ;; 3) payload="$payload=" ;; esac
json=$(printf '%s' "$payload" | base64 -d 2>/dev/null) || die 2 "the token is not readable (copy it whole)"
field() { printf '%s' "$json" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
WANT=$(field bundle_sha256)
printf '%s' "$WANT" | grep -Eq '^[0-9a-f]{64}$' \
    || die 3 "the token names no install bundle (bundle_sha256): ask the operator for a token made with one"
[ -n "$HUB" ] || HUB=$(field hub_endpoint)
[ -n "$HUB" ] || die 2 "the token names no hub: pass --hub URL"
HUB="${HUB%/}"

if command -v curl >/dev/null 2>&1; then fetch() { curl -fsS --retry 2 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then fetch() { wget -q -O "$2" "$1"; }
else die 1 "needs curl or wget"; fi
if command -v sha256sum >/dev/null 2>&1; then sha() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then sha() { shasum -a 256 "$1" | cut -d' ' -f1; }
else sha() { "$PY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }; fi
command -v "$PY" >/dev/null 2>&1 || die 1 "needs $PY (Python 3.11 or newer, with its venv module)"

work=$(mktemp -d "${TMPDIR:-/tmp}/meshagents-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "==> install.sh: [1/4] bundle manifest $WANT from $HUB" >&2
fetch "$HUB/install/bundles/$WANT.json" "$work/manifest.json" || die 1 "cannot fetch the bundle manifest from $HUB"
GOT=$(sha "$work/manifest.json")
[ "$GOT" = "$WANT" ] || die 3 "REFUSED: the bundle manifest's SHA-256 is $GOT, the token says $WANT (changed on the hub or on the way); nothing installed"

# one "name sha256 size" line per file (the manifest is checked, so python only reads it)
"$PY" - "$work/manifest.json" >"$work/files" <<'EOF'
import json, re, sys
m = json.load(open(sys.argv[1]))
assert m["type"] == "meshagents.install_bundle.v1", m["type"]
for f in m["files"]:
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*\.whl", f["name"]) and re.fullmatch(r"[0-9a-f]{64}", f["sha256"])
    print(f["name"], f["sha256"], f["size"])
print("PROJECT", m["project"], m["extra"])
EOF
n=$(grep -vc '^PROJECT ' "$work/files")
echo "==> install.sh: [2/4] $n files, each checked against the manifest" >&2
mkdir "$work/wheels"
grep -v '^PROJECT ' "$work/files" >"$work/list"
while read -r name want _size; do
    fetch "$HUB/install/files/$want" "$work/wheels/$name" || die 1 "cannot fetch $name"
    got=$(sha "$work/wheels/$name")
    [ "$got" = "$want" ] || die 3 "REFUSED: $name has SHA-256 $got, the manifest says $want; nothing installed"
done <"$work/list"
read -r _ project extra <<EOF
$(grep '^PROJECT ' "$work/files")
EOF

echo "==> install.sh: [3/4] venv $DIR/venv: $project[$extra] from the checked files only" >&2
mkdir -p "$DIR"
[ -x "$DIR/venv/bin/python" ] || "$PY" -m venv "$DIR/venv" || die 1 "$PY -m venv failed (Debian: apt install python3-venv)"
"$DIR/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
    --find-links "$work/wheels" "$work/wheels/$project[$extra]" || die 1 "pip install from the bundle failed"
"$DIR/venv/bin/meshagents" --version >&2

echo "==> install.sh: [4/4] enroll" >&2
if "$DIR/venv/bin/meshagents" enroll --help >/dev/null 2>&1; then
    exec "$DIR/venv/bin/meshagents" enroll --token "$TOKEN" "$@"
fi
# a package without the enroll command: its enrollment pipeline
pipe=$(ls "$DIR"/venv/lib/python3*/site-packages/meshagents/pipelines/enroll_device)
exec "$pipe" --token "$TOKEN" "$@"

#!/bin/sh
# install.sh TOKEN [--dir DIR] [--hub URL] [--python PY] [--operator-key KEY] [-- ENROLL-OPTION...]
#
# Installs the meshagents device agent from the hub that issued TOKEN, then enrolls with it.
#   1. checks TOKEN's structure and its operator's ed25519 signature (with --operator-key KEY,
#      or MESHAGENTS_OPERATOR_KEY, that it is KEY's), then reads bundle_sha256 from it;
#   2. fetches <hub>/install/bundles/<bundle_sha256>.json and refuses it unless its SHA-256 is that;
#   3. fetches every file the manifest lists and refuses any whose SHA-256 differs;
#   4. makes a venv in DIR (default ~/.local/share/meshagents, /opt/meshagents as root) and
#      installs with pip --no-index from the verified files only, then removes pip and
#      setuptools from it (the agent does not run them; `agent upgrade` re-bootstraps pip);
#   5. hands over to `meshagents enroll --token TOKEN ENROLL-OPTION...`.
# Nothing is fetched before the token checks out, nothing installed before every check passed.
# Exit 0 enrolled, 2 bad usage, 3 refused (the token or a hash), 1 any other failure.
# Needs: sh, python3 with venv, curl or wget.
set -eu

die() { echo "install.sh: $2" >&2; exit "$1"; }
TOKEN="" DIR="" HUB="" PY="python3" PIN="${MESHAGENTS_OPERATOR_KEY:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR="$2"; shift 2 ;;
        --hub) HUB="$2"; shift 2 ;;
        --python) PY="$2"; shift 2 ;;
        --operator-key) PIN="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        mat1.*) TOKEN="$1"; shift ;;
        *) die 2 "unknown argument $1 (install.sh TOKEN [--dir DIR] [--hub URL] [--operator-key KEY] [-- ENROLL-OPTION...])" ;;
    esac
done
[ -n "$TOKEN" ] || die 2 "the enrollment token (mat1....) is required"
if [ -z "$DIR" ]; then
    if [ "$(id -u)" = 0 ]; then DIR=/opt/meshagents; else DIR="${XDG_DATA_HOME:-$HOME/.local/share}/meshagents"; fi
fi

command -v "$PY" >/dev/null 2>&1 || die 1 "needs $PY (Python 3.11 or newer, with its venv module)"

# 1. the token, checked before anything is fetched or installed: its structure, and the
# operator's ed25519 signature over it (pure Python below: no package is installed yet). With
# --operator-key (or MESHAGENTS_OPERATOR_KEY) the token must be that operator's too; without
# it, the key the token names (the hub checks that one at /enroll, before spending the token).
# So an edited token (another bundle_sha256, another hub) is refused here, not after its
# bundle's code ran. Prints "<bundle_sha256> <hub_endpoint>".
checked=$("$PY" - "$TOKEN" "$PIN" <<'PYEOF'
# --- token check (tests/unit/apps/wg_hub/test_install_token_check.py runs this block) ---
import base64, hashlib, json, re, sys, time

def refuse(why):
    print("install.sh: REFUSED: the token " + why + "; nothing installed, the token not used", file=sys.stderr)
    sys.exit(3)

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

def _x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    return P - x if (x & 1) != sign else x

def _point(b):
    y = int.from_bytes(b, "little")
    x = _x(y & ((1 << 255) - 1), y >> 255)
    return None if x is None else (x, y & ((1 << 255) - 1), 1, x * (y & ((1 << 255) - 1)) % P)

def _add(a, b):
    e1, f1 = (a[1] - a[0]) * (b[1] - b[0]) % P, (a[1] + a[0]) * (b[1] + b[0]) % P
    c, d = 2 * a[3] * b[3] * D % P, 2 * a[2] * b[2] % P
    e, f, g, h = f1 - e1, d - c, d + c, f1 + e1
    return (e * f % P, g * h % P, f * g % P, e * h % P)

def _mul(s, pt):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _add(q, pt)
        pt, s = _add(pt, pt), s >> 1
    return q

_GY = 4 * pow(5, P - 2, P) % P
_G = (_x(_GY, 0), _GY, 1, _x(_GY, 0) * _GY % P)

def ed25519_verify(public, message, signature):
    """RFC 8032 verification (cofactorless), for one token: slow, but only the stdlib."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a, r = _point(public), _point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    lhs, rhs = _mul(s, _G), _add(r, _mul(h, a))
    return (lhs[0] * rhs[2] - rhs[0] * lhs[2]) % P == 0 and (lhs[1] * rhs[2] - rhs[1] * lhs[2]) % P == 0

def b64url(text):
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

def check(token, pin, now):
    """(bundle_sha256, hub_endpoint) of a well-formed token signed by its operator key (and by
    PIN when given); SystemExit(3) otherwise."""
    parts = token.strip().split(".")
    if len(token) > 4096 or len(parts) != 3 or parts[0] != "mat1":
        refuse("is not an enrollment token (mat1.<payload>.<signature>): copy it whole")
    try:
        raw, sig = b64url(parts[1]), b64url(parts[2])
        body = json.loads(raw.decode("utf-8"))
    except ValueError:
        refuse("is not readable (copy it whole)")
    if not isinstance(body, dict) or len(sig) != 64:
        refuse("is malformed")
    if json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() != raw:
        refuse("payload is not in canonical form (edited?)")
    kind = "meshagents.enrollment_token.v1"
    want = {"type": str, "token_id": str, "device_name": str, "hub_endpoint": str, "operator_key": str,
            "issued_at": int, "expires_at": int}
    for key, typ in want.items():
        if not isinstance(body.get(key), typ) or isinstance(body.get(key), bool):
            refuse("has no valid " + key)
    if body["type"] != kind:
        refuse("is of type " + body["type"] + ", not an enrollment token")
    try:
        public = base64.b64decode(body["operator_key"], validate=True)
    except ValueError:
        refuse("names an unreadable operator key")
    if pin and body["operator_key"] != pin:
        refuse("is signed by operator key " + body["operator_key"] + ", not the pinned " + pin)
    message = b"meshagents-sig-v1\x00" + kind.encode() + b"\x00" + raw
    if not ed25519_verify(public, message, sig):
        refuse("signature does not match its content (edited or damaged)")
    bundle = body.get("bundle_sha256")
    if not isinstance(bundle, str) or not re.fullmatch(r"[0-9a-f]{64}", bundle):
        print("install.sh: the token names no install bundle (bundle_sha256): ask the operator for a"
              " token made with one", file=sys.stderr)
        sys.exit(3)
    if body["expires_at"] + 300 < now:  # 5 min of slack: the hub's clock decides (enroll pre-checks it)
        print("install.sh: the token expired at %d (now %d): ask the operator for a new one"
              % (body["expires_at"], now), file=sys.stderr)
        sys.exit(3)
    hub = body["hub_endpoint"]
    if hub and not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?", hub):
        refuse("names an unusable hub endpoint")
    return bundle, body["hub_endpoint"]

if __name__ == "__main__":
    print(*check(sys.argv[1], sys.argv[2], int(time.time())))
# --- end of token check ---
PYEOF
) || exit $?
WANT=${checked%% *}
[ -n "$HUB" ] || HUB=${checked#* }
[ -n "$HUB" ] || die 2 "the token names no hub: pass --hub URL"
HUB="${HUB%/}"

if command -v curl >/dev/null 2>&1; then fetch() { curl -fsS --retry 2 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then fetch() { wget -q -O "$2" "$1"; }
else die 1 "needs curl or wget"; fi
if command -v sha256sum >/dev/null 2>&1; then sha() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then sha() { shasum -a 256 "$1" | cut -d' ' -f1; }
else sha() { "$PY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }; fi

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
# pip and setuptools are not needed to run the agent (18 MB of the venv): removed, and
# `meshagents agent upgrade` brings pip back for its run with the stdlib's ensurepip
"$DIR/venv/bin/python" -m pip uninstall --quiet --disable-pip-version-check --yes pip setuptools >/dev/null 2>&1 \
    || echo "install.sh: note: could not remove pip/setuptools from the venv (harmless)" >&2
"$DIR/venv/bin/meshagents" --version >&2

echo "==> install.sh: [4/4] enroll" >&2
if "$DIR/venv/bin/meshagents" enroll --help >/dev/null 2>&1; then
    exec "$DIR/venv/bin/meshagents" enroll --token "$TOKEN" "$@"
fi
# a package without the enroll command: its enrollment pipeline
pipe=$(ls "$DIR"/venv/lib/python3*/site-packages/meshagents/pipelines/enroll_device)
exec "$pipe" --token "$TOKEN" "$@"

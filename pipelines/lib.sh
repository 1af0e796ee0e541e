# shellcheck shell=bash
# Shared by the pipelines (source it): run catalog functions as named steps, locally
# or on FN_HOST over SSH, stopping at the first failure with the step named.
#
#   source "$(dirname "$0")/lib.sh"
#   parse_host_flag "$@"; set -- "${PIPELINE_ARGS[@]}"
#   keys=$(step "make the hub key" fn_run wg_keygen)
#   step "configure wg0" fn_run wg_hub_setup --interface wg0 >/dev/null

FN="${FN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/fn}"
FN_HOST="${FN_HOST:-}"
PIPELINE_NAME="${PIPELINE_NAME:-$(basename "$0")}"
export FN_CALLER="${FN_CALLER:-pipeline:$PIPELINE_NAME}"

# fn_run ID [--param value ...]: one catalog call, on FN_HOST when set.
fn_run() {
    if [ -n "$FN_HOST" ]; then
        "$FN" run --host "$FN_HOST" "$@"
    else
        "$FN" run "$@"
    fi
}

# fn_local ID ...: always on this machine (signing with the operator key stays local).
fn_local() { "$FN" run "$@"; }

# step "what" CMD ...: run CMD, print its stdout; on failure name the step and exit.
step() {
    local name="$1"; shift
    echo "==> $PIPELINE_NAME: $name${FN_HOST:+ (on $FN_HOST)}" >&2
    local out rc=0
    out=$("$@") || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "$PIPELINE_NAME: step '$name' failed (exit $rc)" >&2
        exit "$rc"
    fi
    printf '%s\n' "$out"
}

# parse_host_flag "$@": takes --host HOST out of the arguments into FN_HOST;
# the rest is left in PIPELINE_ARGS.
parse_host_flag() {
    PIPELINE_ARGS=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --host) FN_HOST="$2"; shift 2 ;;
            --host=*) FN_HOST="${1#--host=}"; shift ;;
            *) PIPELINE_ARGS+=("$1"); shift ;;
        esac
    done
}

# json_get FIELD: read one field of the JSON on stdin (jq when present, else python3).
json_get() {
    if command -v jq >/dev/null 2>&1; then
        jq -er ".$1"
    else
        python3 -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print(v if isinstance(v,str) else json.dumps(v))' "$1"
    fi
}

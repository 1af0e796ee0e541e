# shellcheck shell=bash
# Shared by the pipelines (source it): run catalog functions as named steps, locally
# or on FN_HOST over SSH, stopping at the first failure with the step named.
#
#   source "$(dirname "$0")/lib.sh"
#   parse_host_flag "$@"; set -- "${PIPELINE_ARGS[@]}"
#   keys=$(step "make the hub key" fn_run wg_keygen)
#   step "configure wg0" fn_run wg_hub_setup --interface wg0 >/dev/null

# FN: the checkout's ./fn when run from a checkout (pipelines/ is a link to meshagents/pipelines/,
# so .. is the checkout), else the installed program next to this Python (meshagents/pipelines/
# inside site-packages), else `meshagents` on PATH.
_fn_default() {
    local here; here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    if [ -x "$here/../fn" ]; then echo "$here/../fn"; return; fi
    if [ -x "$here/../../fn" ]; then echo "$here/../../fn"; return; fi
    local bin; bin="$(cd "$here/../../../../.." 2>/dev/null && pwd)/bin/meshagents"
    if [ -x "$bin" ]; then echo "$bin"; return; fi
    command -v meshagents || echo meshagents
}
FN="${FN:-$(_fn_default)}"
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
# Progress goes to stderr: "==> NAME: [n/m] what", then the step's time. m is STEPS_TOTAL
# when the pipeline sets it. The counter lives in a file because `x=$(step ...)` runs
# the step in a subshell. FN_QUIET=1 (or --quiet, see parse_host_flag) silences it.
_STEP_COUNTER="${_STEP_COUNTER:-$(mktemp "${TMPDIR:-/tmp}/fn-steps.XXXXXX")}"
trap 'rm -f "$_STEP_COUNTER"' EXIT
_now() { date +%s.%N; }
step() {
    local name="$1"; shift
    local n; n=$(( $(cat "$_STEP_COUNTER" 2>/dev/null || echo 0) + 1 )); echo "$n" >"$_STEP_COUNTER"
    local of="${STEPS_TOTAL:+/$STEPS_TOTAL}"
    [ -n "${FN_QUIET:-}" ] || echo "==> $PIPELINE_NAME: [$n$of] $name${FN_HOST:+ (on $FN_HOST)}" >&2
    local out rc=0 t0; t0=$(_now)
    out=$("$@") || rc=$?
    local took; took=$(awk -v a="$t0" -v b="$(_now)" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" -ne 0 ]; then
        echo "$PIPELINE_NAME: step [$n$of] '$name' failed after ${took}s (exit $rc)" >&2
        exit "$rc"
    fi
    [ -n "${FN_QUIET:-}" ] || echo "    done in ${took}s" >&2
    printf '%s\n' "$out"
}

# usage_from_header FIRST LAST [STATUS]: print the script's header comment lines as help
# (to stdout with status 0 for --help, to stderr with 2 for bad usage) and exit.
usage_from_header() {
    local status="${3:-2}"
    if [ "$status" -eq 0 ]; then sed -n "$1,$2p" "$0" | sed 's/^# \{0,1\}//'; else sed -n "$1,$2p" "$0" | sed 's/^# \{0,1\}//' >&2; fi
    exit "$status"
}

# parse_host_flag "$@": takes --host HOST (and --quiet) out of the arguments into
# FN_HOST (FN_QUIET); the rest is left in PIPELINE_ARGS.
parse_host_flag() {
    PIPELINE_ARGS=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --host) FN_HOST="$2"; shift 2 ;;
            --host=*) FN_HOST="${1#--host=}"; shift ;;
            --quiet) export FN_QUIET=1; shift ;;
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

# shellcheck shell=bash
# Sourced by provision_wg_hub with --host: the whole production hub on a Debian 12 host
# (meshagents/hubhost/). Every step is one catalog call on the host (or here, for the
# operator key and your operator configuration) and prints what it changed, or "unchanged".

[ "$PUBLIC_HOST_SET" = 1 ] || PUBLIC_HOST=0.0.0.0
SPEC=(--matrix "$MATRIX" --interface "$INTERFACE" --public-port "$PUBLIC_PORT" --operator-port "$OPERATOR_PORT"
      --ssh-port "$SSH_PORT" --operator "$OPERATOR")
[ -n "$DOMAIN" ] && SPEC+=(--domain "$DOMAIN")
[ -n "$TLS" ] && SPEC+=(--tls "$TLS")
[ -n "$SERVER_NAME" ] && SPEC+=(--server-name "$SERVER_NAME")
[ -n "$HOMESERVER" ] && SPEC+=(--homeserver "$HOMESERVER")
[ -n "$REG_SECRET" ] && SPEC+=(--registration-secret-file "$REG_SECRET")
NAME="${SERVER_NAME:-$DOMAIN}"
if [ -z "$NAME" ]; then
    echo "provision_wg_hub: --host needs --domain (or --server-name): the hub's Matrix server name" >&2
    usage
fi
TLS_ON=1
{ [ "$TLS" = off ] || { [ -z "$TLS" ] && [ -z "$DOMAIN" ]; }; } && TLS_ON=0
[ -n "$ENDPOINT" ] || ENDPOINT="${DOMAIN:-$NAME}:51820"
[ "${#APPROVERS[@]}" -gt 0 ] || APPROVERS=(--approvers "@$OPERATOR:$NAME")
if [ "$TLS_ON" = 1 ]; then
    [ "$PUBLIC_HOST_SET" = 1 ] || PUBLIC_HOST=127.0.0.1   # Caddy in front: /enroll only via https
    PUBLIC_URL=(--public-url "https://$DOMAIN")
else
    PUBLIC_URL=()
fi
if [ "$MATRIX" = embedded ]; then DEVICE_HS="http://10.42.0.1:8008"; else DEVICE_HS="$HOMESERVER"; fi

STEPS_TOTAL=$([ "$MATRIX" = embedded ] && echo 14 || echo 12)

# said: print what a step's JSON says it changed and restarted (or "unchanged")
said() {
    python3 -c '
import json, sys
d = json.loads(sys.stdin.read() or "{}")
ch = d.get("changed") or []
ch = list(ch) if isinstance(ch, list) else []  # a bare true comes with changed_keys
ch += d.get("changed_keys") or []
rs = d.get("restarted") or []
if not ch and not rs:
    print("    unchanged", file=sys.stderr)
for c in ch:
    print("    changed:", c, file=sys.stderr)
for r in rs:
    print("   ", r, file=sys.stderr)
if d.get("note"):
    print("    note:", d["note"], file=sys.stderr)
'
}
apply_part() { fn_run hub_host_apply --part "$1" "${SPEC[@]}" "${@:2}"; }

if [ "$DRY_RUN" = 1 ]; then
    echo "would provision $FN_HOST: packages, release, base, wg_hub_setup, firewall, synapse, tls, keys," \
        "hub config, matrix, services (${SPEC[*]})" >&2
    exit 0
fi

step "Debian packages" apply_part packages | said
step "the code release (/opt/meshagents)" apply_part release | said
step "users and directories" apply_part base | said
step "the mesh interface $INTERFACE (kernel WireGuard, wg-quick config, boot unit)" \
    fn_run wg_hub_setup "${WG_ARGS[@]}" --endpoint "$ENDPOINT" \
    --service-ports "$OPERATOR_PORT" --service-ports 8008 --service-ports 8080 --service-ports 8766 | said
step "the host firewall (public: UDP 51820, SSH, $([ "$TLS_ON" = 1 ] && echo 443 || echo "$PUBLIC_PORT"))" \
    apply_part firewall | said
if [ "$MATRIX" = embedded ]; then
    wheels=$(step "Synapse's wheels for the host" "$FN" hub ship-homeserver --host "$FN_HOST")
    wheels_dir=$(printf '%s' "$wheels" | json_get wheels_dir)
    step "Synapse on PostgreSQL" apply_part synapse --wheels-dir "$wheels_dir" | said
fi
step "TLS (Caddy)" apply_part tls | said
op=$(step "operator key (stays on this machine)" fn_local operator_key_init)
op_pub=$(printf '%s' "$op" | json_get public_key)
ctl=$(step "controller key (on the hub: signs request envelopes)" fn_run controller_key_init)
ctl_pub=$(printf '%s' "$ctl" | json_get public_key)
recorded=$(step "record the controller key and approvers in your operator configuration" \
    fn_local operator_config_write --controllers "$ctl_pub" "${APPROVERS[@]}")
if [ "$(printf '%s' "$recorded" | json_get differs 2>/dev/null || echo '[]')" != "[]" ]; then
    echo "provision_wg_hub: your operator configuration ($(printf '%s' "$recorded" | json_get path)) differs" \
        "from this hub's controller key or approvers; kept as it is — edit it if the change is yours" >&2
fi
step "hub service config $HUB_CONFIG (merged: hand edits stay)" fn_run hub_config_write --path "$HUB_CONFIG" \
    "${WG_ARGS[@]}" --public-host "$PUBLIC_HOST" --public-port "$PUBLIC_PORT" --operator-port "$OPERATOR_PORT" \
    --endpoint "$ENDPOINT" "${PUBLIC_URL[@]}" "${APPROVERS[@]}" --manifest-signing offline \
    --operator-public-key "$op_pub" --matrix-server-name "$NAME" --matrix-homeserver-url "$DEVICE_HS" | said
accounts=$(step "Matrix: settings, the bot's and the operator's accounts, the bot's config" \
    apply_part matrix --operator-key "$op_pub")
printf '%s' "$accounts" | said
password=$(printf '%s' "$accounts" | json_get operator_password 2>/dev/null || true)
if [ -n "$password" ] && [ "$password" != null ]; then
    opdir=$(dirname "$(printf '%s' "$recorded" | json_get path)")
    creds="$opdir/matrix-$FN_HOST.json"
    (umask 077; printf '%s' "$accounts" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(json.dumps({"homeserver": d["homeserver"], "user_id": d["operator"], "password": d["operator_password"]}))
' > "$creds")
    echo "provision_wg_hub: your Matrix account $(printf '%s' "$accounts" | json_get operator): password in $creds (0600; the hub keeps no copy)" >&2
fi
step "services (meshagents-*.service: hub, bot, dashboard)" apply_part services | said
echo "provision_wg_hub: done. $FN hub status --host $FN_HOST; manifests wait for: pipelines/sign_pending_manifests --host $FN_HOST" >&2

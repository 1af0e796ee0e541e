"""The Caddyfile in front of Synapse and /enroll (pure).

``acme``: Caddy gets a certificate for the domain by itself (ports 80 and 443 open);
``internal``: Caddy's own CA signs it (tests, or a closed network: the clients pin
that CA, ``hub_host_status`` prints where it is). Element finds the homeserver through
``/.well-known/matrix/client``.
"""

from __future__ import annotations

import json

from meshagents.hubhost import spec as S


def caddyfile(spec: S.HostSpec) -> str:
    assert spec.domain is not None and spec.tls != "off"
    well_known = json.dumps({"m.homeserver": {"base_url": spec.client_homeserver}}, separators=(",", ":"))
    glob = ["{", "\tadmin localhost:2019"]
    if spec.tls == "internal":
        glob += ["\tlocal_certs", "\tskip_install_trust"]
    glob.append("}")
    site = [
        f"{spec.domain} {{",
        *(["\ttls internal"] if spec.tls == "internal" else []),
        "\thandle /.well-known/matrix/client {",
        "\t\theader Content-Type application/json",
        '\t\theader Access-Control-Allow-Origin "*"',
        f"\t\trespond `{well_known}` 200",
        "\t}",
        "\thandle /_matrix/* {",
        f"\t\treverse_proxy 127.0.0.1:{spec.synapse_port}",
        "\t}",
        "\thandle /_synapse/client/* {",
        f"\t\treverse_proxy 127.0.0.1:{spec.synapse_port}",
        "\t}",
        "\thandle /enroll* {",
        f"\t\treverse_proxy 127.0.0.1:{spec.public_port}",
        "\t}",
        "\thandle /healthz {",
        f"\t\treverse_proxy 127.0.0.1:{spec.public_port}",
        "\t}",
        "\thandle {",
        "\t\trespond 404",
        "\t}",
        "}",
    ]
    head = "# written by provision_wg_hub (meshagents/hubhost/caddy.py)"
    return "\n".join([head, *glob, "", *site]) + "\n"

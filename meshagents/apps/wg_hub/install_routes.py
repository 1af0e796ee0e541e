"""``/install`` on the hub's enroll listener: install.sh, bundle manifests and their files.

All three are public (a device has no credentials before it enrolls) and all are
checked on the device, not trusted: the manifest against the SHA-256 in the operator-signed
token, each file against the manifest (meshagents/apps/wg_hub/install_bundle.py).

    register(app, store)    # adds GET /install/install.sh, /install/bundles/{sha}.json,
                            #      /install/files/{sha}
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Path
from fastapi.responses import FileResponse, PlainTextResponse

from meshagents.apps.wg_hub.install_bundle import BundleStore, installer_text

SHA = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


def register(app: FastAPI, store: BundleStore) -> None:
    @app.get("/install/install.sh", response_class=PlainTextResponse)
    def install_sh() -> PlainTextResponse:
        """The installer (POSIX sh): fetch, check, install, enroll."""
        return PlainTextResponse(installer_text(), media_type="text/x-shellscript")

    @app.get("/install/bundles/{sha256}.json")
    def bundle(sha256: SHA) -> FileResponse:
        """A bundle manifest, by the SHA-256 of its bytes (the token carries it)."""
        return FileResponse(store.manifest(sha256), media_type="application/json")

    @app.get("/install/files/{sha256}")
    def bundle_file(sha256: SHA) -> FileResponse:
        """A wheel of a bundle, by its SHA-256 (the manifest names it)."""
        return FileResponse(store.file(sha256), media_type="application/octet-stream")

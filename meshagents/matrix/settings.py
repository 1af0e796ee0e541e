"""Where the Matrix functions find their homeserver and the account they act as.

``$FN_STATE_DIR/matrix/settings.toml`` (or the file named by ``FN_MATRIX_SETTINGS``)::

    homeserver = "http://10.42.0.1:8008"      # client-server API base URL
    server_name = "hub.example"                # the part after ':' in user ids
    operators = ["@alice:hub.example"]         # admins of every device room
    bot = "@bot:hub.example"                   # moderator of every device room
    actor = "bot"                              # account the functions act as (see below)
    # needed only to create accounts (matrix_account_provision):
    registration_shared_secret_file = "/var/lib/meshagents/matrix/registration_secret"

Accounts live in ``$FN_STATE_DIR/matrix/accounts/<localpart>/``: ``credentials.json``
(0600: homeserver, user_id, password), ``cross_signing.json`` (0600 seeds shared by
all devices of that account) and ``stores/<purpose>/`` (one nio store per device, so
the bot app and a one-shot function never share a crypto store). Device accounts
keep theirs in the device's state directory instead (``devices/<name>/matrix/``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StrictStr

from meshagents.configfile import validate
from meshagents.errors import FnError
from meshagents.fsutil import read_json, write_private
from meshagents.matrix.client import ClientConfig
from meshagents.state import state_dir


def matrix_dir() -> Path:
    path = state_dir() / "matrix"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def settings_path() -> Path:
    env = os.environ.get("FN_MATRIX_SETTINGS")
    return Path(env) if env else matrix_dir() / "settings.toml"


def _none_if_empty(value: Any) -> Any:
    return value or None


class MatrixSettings(BaseModel):
    """The settings file (other keys are ignored); errors name the file, key and type."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    homeserver: Annotated[StrictStr, AfterValidator(lambda url: url.rstrip("/"))]
    server_name: StrictStr
    operators: tuple[StrictStr, ...] = ()
    bot: Annotated[StrictStr | None, BeforeValidator(_none_if_empty)] = None
    actor: Annotated[StrictStr | None, BeforeValidator(_none_if_empty)] = None
    registration_shared_secret_file: Annotated[Path | None, BeforeValidator(_none_if_empty)] = None

    def shared_secret(self) -> str:
        if self.registration_shared_secret_file is None:
            raise FnError(
                "matrix_not_configured",
                "registration_shared_secret_file is not set in the Matrix settings; "
                "create the account on your homeserver yourself",
            )
        try:
            return self.registration_shared_secret_file.read_text().strip()
        except OSError as exc:
            raise FnError(
                "matrix_not_configured", f"cannot read {self.registration_shared_secret_file}"
            ) from exc


def load_settings() -> MatrixSettings:
    path = settings_path()
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FnError("matrix_not_configured", f"no Matrix settings at {path} (see docs/matrix.md)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise FnError("matrix_not_configured", f"{path}: {exc}") from exc
    return validate(MatrixSettings, data, source=str(path), code="matrix_not_configured")


def account_dir(localpart: str) -> Path:
    path = matrix_dir() / "accounts" / localpart
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def device_matrix_dir(device_name: str) -> Path:
    """The Matrix part of a device's state directory."""
    path = state_dir() / "devices" / device_name / "matrix"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@dataclass(frozen=True)
class Credentials:
    homeserver: str
    user_id: str
    password: str

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(
            path, {"homeserver": self.homeserver, "user_id": self.user_id, "password": self.password}
        )

    @classmethod
    def load(cls, path: Path) -> Credentials:
        data = read_json(path)
        if data is None:
            raise FnError("matrix_no_credentials", f"no Matrix credentials at {path}")
        return cls(str(data["homeserver"]), str(data["user_id"]), str(data["password"]))

    def client_config(self, account_root: Path, purpose: str, **kw: Any) -> ClientConfig:
        """A ClientConfig with the account's shared seeds and a store of its own per purpose."""
        return ClientConfig(
            homeserver=self.homeserver,
            user_id=self.user_id,
            password=self.password,
            store_dir=account_root / "stores" / purpose,
            cross_signing_path=account_root / "cross_signing.json",
            **kw,
        )


def actor_credentials(settings: MatrixSettings, credentials: Path | None = None) -> tuple[Credentials, Path]:
    """The credentials the functions act with, and the account root next to them."""
    if credentials is not None:
        return Credentials.load(credentials), credentials.parent
    if not settings.actor:
        raise FnError("matrix_not_configured", "no actor account in the Matrix settings")
    root = account_dir(settings.actor)
    return Credentials.load(root / "credentials.json"), root

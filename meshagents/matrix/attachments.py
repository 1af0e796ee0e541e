"""Encrypted attachments, as the Matrix spec's "Sending encrypted attachments" says, and
the media repository calls that carry them.

Pure part (no I/O)::

    ciphertext, info = encrypt(data)              # nio's AES-256-CTR: random 256-bit key,
                                                  # 128-bit IV with its low 64 bits zero,
                                                  # SHA-256 of the ciphertext, JWK key, v2
    ref = parse_file(obj) -> EncryptedFile        # a ``file`` object from an event, checked
    data = decrypt(ciphertext, ref) -> bytes      # hash checked first (attachment_hash_mismatch)
    file_message(name=, data_size=, mimetype=, file=, reply_to=) -> m.room.message content
    is_binary(data) -> bool                       # NUL or not UTF-8: sent as a file, never inline
    mxc_parts("mxc://server/id") -> ("server", "id")

I/O on a started ``MatrixClient`` (its nio session and access token)::

    await upload(client, ciphertext, filename=) -> "mxc://..."
    await download(client, url, max_bytes=) -> ciphertext          # authenticated media first
    await upload_encrypted(client, data, filename=) -> EncryptedFile
    await send_file(client, room, data, name=, mimetype=, reply_to=) -> (event id, EncryptedFile)
    await fetch_file(client, ref, max_bytes=) -> plaintext          # download + decrypt

The encryption itself is nio's (``nio.crypto.attachments``), not ours. Stable codes:
``attachment_invalid`` (a malformed ``file`` object), ``attachment_hash_mismatch``,
``attachment_too_large``, ``attachment_upload_failed``, ``attachment_download_failed``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from nio.crypto.attachments import decrypt_attachment, encrypt_attachment
from nio.exceptions import EncryptionError

from meshagents.errors import FnError
from meshagents.matrix.client import MatrixClient

_MXC = re.compile(r"^mxc://([A-Za-z0-9.:\-\[\]]{1,255})/([A-Za-z0-9_\-]{1,255})$")
_B64 = re.compile(r"^[A-Za-z0-9+/_\-]+$")
MAX_NAME_CHARS = 255


@dataclass(frozen=True)
class EncryptedFile:
    """The spec's ``EncryptedFile``: where the ciphertext is and how to open it."""

    url: str
    key: str  # the JWK's ``k``: unpadded url-safe base64 of 32 bytes
    iv: str  # unpadded base64 of 16 bytes
    sha256: str  # unpadded base64 of the ciphertext's SHA-256

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "key": {
                "kty": "oct",
                "key_ops": ["encrypt", "decrypt"],
                "alg": "A256CTR",
                "k": self.key,
                "ext": True,
            },
            "iv": self.iv,
            "hashes": {"sha256": self.sha256},
            "v": "v2",
        }


def _b64_bytes(text: Any, size: int, what: str) -> str:
    if not isinstance(text, str) or not _B64.fullmatch(text.rstrip("=")):
        raise FnError("attachment_invalid", f"{what} is not base64")
    raw = text.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        decoded = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FnError("attachment_invalid", f"{what} is not base64") from exc
    if len(decoded) != size:
        raise FnError("attachment_invalid", f"{what} is {len(decoded)} bytes, not {size}")
    return text


def mxc_parts(url: Any) -> tuple[str, str]:
    match = _MXC.fullmatch(url) if isinstance(url, str) else None
    if match is None:
        raise FnError("attachment_invalid", "the file's url is not an mxc:// URI")
    return match.group(1), match.group(2)


def parse_file(obj: Any) -> EncryptedFile:
    """The ``file`` object of an ``m.file`` event (or of an envelope), strictly checked."""
    if not isinstance(obj, dict):
        raise FnError("attachment_invalid", "no encrypted file object (an unencrypted upload?)")
    if obj.get("v") != "v2":
        raise FnError("attachment_invalid", "only version v2 encrypted files are supported")
    mxc_parts(obj.get("url"))
    key = obj.get("key")
    if not isinstance(key, dict) or key.get("alg") != "A256CTR" or key.get("kty") != "oct":
        raise FnError("attachment_invalid", "the key is not an A256CTR JWK")
    ops = key.get("key_ops")
    if not isinstance(ops, list) or "decrypt" not in ops:
        raise FnError("attachment_invalid", "the key may not decrypt")
    hashes = obj.get("hashes")
    if not isinstance(hashes, dict):
        raise FnError("attachment_invalid", "no hashes")
    return EncryptedFile(
        url=str(obj["url"]),
        key=_b64_bytes(key.get("k"), 32, "the key"),
        iv=_b64_bytes(obj.get("iv"), 16, "the iv"),
        sha256=_b64_bytes(hashes.get("sha256"), 32, "the sha256 hash"),
    )


def encrypt(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """(ciphertext, the decryption info without ``url``), by nio."""
    ciphertext, info = encrypt_attachment(data)
    return ciphertext, info


def decrypt(ciphertext: bytes, ref: EncryptedFile) -> bytes:
    """The plaintext; the ciphertext's SHA-256 must match ``ref.sha256`` (nio checks it)."""
    try:
        plain: bytes = decrypt_attachment(ciphertext, ref.key, ref.sha256, ref.iv)
    except EncryptionError as exc:
        if "SHA-256" in str(exc):
            raise FnError("attachment_hash_mismatch", "the downloaded file's SHA-256 does not match") from exc
        raise FnError("attachment_invalid", f"cannot decrypt the file: {exc}") from exc
    return plain


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_binary(data: bytes) -> bool:
    if b"\x00" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def safe_name(name: str) -> str:
    """A file name fit for a room: no path, printable, at most 255 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(ch if ch.isprintable() else "_" for ch in base).strip() or "file"
    return clean[:MAX_NAME_CHARS]


def file_message(
    *, name: str, data_size: int, mimetype: str, file: EncryptedFile, reply_to: str | None = None,
    body: str | None = None,
) -> dict[str, Any]:
    """``m.room.message`` content of an encrypted ``m.file``."""
    content: dict[str, Any] = {
        "msgtype": "m.file",
        "body": body or name,
        "filename": name,
        "info": {"size": data_size, "mimetype": mimetype},
        "file": file.to_json(),
    }
    if reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


# ---------------------------------------------------------------------- I/O


async def _session(client: MatrixClient) -> tuple[aiohttp.ClientSession, bool]:
    nio_client = client.nio_client
    session = getattr(nio_client, "client_session", None)
    if isinstance(session, aiohttp.ClientSession) and not session.closed:
        return session, False
    return aiohttp.ClientSession(), True


def _headers(client: MatrixClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.nio_client.access_token}"}


async def upload(client: MatrixClient, ciphertext: bytes, *, filename: str) -> str:
    """POST the (already encrypted) bytes to the media repository; the mxc URI."""
    base = client.nio_client.homeserver.rstrip("/")
    url = f"{base}/_matrix/media/v3/upload?filename={quote(safe_name(filename))}"
    session, own = await _session(client)
    try:
        async with session.post(
            url,
            data=ciphertext,
            headers={**_headers(client), "Content-Type": "application/octet-stream"},
            timeout=aiohttp.ClientTimeout(total=120),
        ) as resp:
            answer = await resp.json(content_type=None)
            if resp.status == 413:
                raise FnError("attachment_too_large", "the homeserver refused the file as too large")
            if resp.status != 200 or not isinstance(answer, dict) or "content_uri" not in answer:
                raise FnError("attachment_upload_failed", f"upload answered {resp.status}: {answer}")
            return str(answer["content_uri"])
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        raise FnError("attachment_upload_failed", f"upload failed: {type(exc).__name__}") from exc
    finally:
        if own:
            await session.close()


async def download(client: MatrixClient, url: str, *, max_bytes: int) -> bytes:
    """The bytes at ``url`` (mxc), at most ``max_bytes``; the authenticated media API
    (Synapse serves new media only there), then the legacy one for older servers."""
    server, media_id = mxc_parts(url)
    base = client.nio_client.homeserver.rstrip("/")
    paths = (
        f"/_matrix/client/v1/media/download/{quote(server)}/{quote(media_id)}",
        f"/_matrix/media/v3/download/{quote(server)}/{quote(media_id)}",
    )
    session, own = await _session(client)
    try:
        for path in paths:
            async with session.get(
                base + path, headers=_headers(client), timeout=aiohttp.ClientTimeout(total=120)
            ) as resp:
                if resp.status in (404, 405) and path is paths[0]:
                    continue  # no authenticated media on this server
                if resp.status != 200:
                    raise FnError("attachment_download_failed", f"download of {url} answered {resp.status}")
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise FnError("attachment_too_large", f"{url} is over {max_bytes} bytes")
                out = bytearray()
                async for chunk in resp.content.iter_chunked(65536):
                    out += chunk
                    if len(out) > max_bytes:
                        raise FnError("attachment_too_large", f"{url} is over {max_bytes} bytes")
                return bytes(out)
        raise FnError("attachment_download_failed", f"no media API served {url}")
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise FnError("attachment_download_failed", f"download failed: {type(exc).__name__}") from exc
    finally:
        if own:
            await session.close()


async def upload_encrypted(client: MatrixClient, data: bytes, *, filename: str) -> EncryptedFile:
    """Encrypt ``data`` (nio) and upload the ciphertext; the file object to send."""
    ciphertext, info = await asyncio.to_thread(encrypt, data)
    mxc = await upload(client, ciphertext, filename=filename)
    return parse_file({**info, "url": mxc})


async def send_file(
    client: MatrixClient,
    room: str,
    data: bytes,
    *,
    name: str,
    mimetype: str = "application/octet-stream",
    reply_to: str | None = None,
    body: str | None = None,
) -> tuple[str, EncryptedFile]:
    """Encrypt, upload, and send ``data`` as an ``m.file`` (a reply when ``reply_to``)."""
    ref = await upload_encrypted(client, data, filename=name)
    content = file_message(
        name=safe_name(name), data_size=len(data), mimetype=mimetype, file=ref, reply_to=reply_to, body=body
    )
    event_id = await client.send_custom(room, "m.room.message", content)
    return event_id, ref


async def fetch_file(client: MatrixClient, ref: EncryptedFile, *, max_bytes: int) -> bytes:
    """Download and decrypt; the ciphertext hash is checked before decryption."""
    ciphertext = await download(client, ref.url, max_bytes=max_bytes)
    return await asyncio.to_thread(decrypt, ciphertext, ref)


# ------------------------------------------------------- a file in a signed envelope

FILE_ARG = "file"  # the fs.write argument that names an uploaded file instead of "content"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FileArg:
    """An uploaded file as the bot signs it into an ``fs.write`` envelope: where it is,
    how to open it (from the operator's own ``m.file`` event), and what the plaintext
    must hash to, so the device checks the bytes it downloads itself."""

    file: EncryptedFile
    sha256: str  # hex SHA-256 of the plaintext
    size: int
    name: str

    def to_arg(self) -> str:
        """The argument's value: compact JSON with sorted keys (one string, so the
        manifest's ``texts`` constraint applies and the envelope stays canonical)."""
        return json.dumps(
            {"url": self.file.url, "key": self.file.key, "iv": self.file.iv, "hash": self.file.sha256,
             "sha256": self.sha256, "size": self.size, "name": self.name},
            sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        )

    def describe(self) -> str:
        return f"{self.name}, {self.size} bytes, sha256 {self.sha256}"


def parse_file_arg(text: Any) -> FileArg:
    """The inverse of :meth:`FileArg.to_arg`; ``attachment_invalid`` for anything else."""
    if not isinstance(text, str):
        raise FnError("attachment_invalid", "the file argument is not a string")
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise FnError("attachment_invalid", "the file argument is not JSON") from exc
    keys = {"url", "key", "iv", "hash", "sha256", "size", "name"}
    if not isinstance(obj, dict) or set(obj) != keys:
        raise FnError("attachment_invalid", f"the file argument must hold exactly {sorted(keys)}")
    size, sha, name = obj["size"], obj["sha256"], obj["name"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise FnError("attachment_invalid", "the file size is not a whole number")
    if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
        raise FnError("attachment_invalid", "the file sha256 is not 64 hex digits")
    if not isinstance(name, str) or safe_name(name) != name:
        raise FnError("attachment_invalid", "the file name is not a plain name")
    ref = parse_file({"url": obj["url"], "key": {"kty": "oct", "alg": "A256CTR", "key_ops": ["decrypt"],
                                                 "k": obj["key"]},
                      "iv": obj["iv"], "hashes": {"sha256": obj["hash"]}, "v": "v2"})
    return FileArg(ref, sha, size, name)


def file_of_event(content: Any) -> tuple[EncryptedFile, str, int | None]:
    """(file, name, declared size) of an ``m.file`` / ``m.image`` ... message content;
    ``not_a_file`` when it is no upload, ``attachment_invalid`` when not encrypted."""
    if not isinstance(content, dict) or content.get("msgtype") not in ("m.file", "m.image", "m.video",
                                                                         "m.audio"):
        raise FnError("not_a_file", "the replied-to message is not an uploaded file")
    if "file" not in content:
        raise FnError("attachment_invalid", "the file was uploaded unencrypted (use an encrypted room)")
    ref = parse_file(content["file"])
    raw_name = content.get("filename") or content.get("body") or "file"
    info = content.get("info")
    size = info.get("size") if isinstance(info, dict) else None
    declared = size if isinstance(size, int) and not isinstance(size, bool) else None
    return ref, safe_name(str(raw_name)), declared


def verify_plaintext(data: bytes, arg: FileArg) -> None:
    """The downloaded plaintext is the one signed: ``file_size_mismatch`` / ``file_hash_mismatch``."""
    if len(data) != arg.size:
        raise FnError("file_size_mismatch", f"the file is {len(data)} bytes, the envelope says {arg.size}")
    if sha256_hex(data) != arg.sha256:
        raise FnError("file_hash_mismatch", "the file's SHA-256 is not the one in the signed envelope")

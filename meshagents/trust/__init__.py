"""Trust core: canonical JSON, keys, manifests, tokens, envelopes, nonces, audit chain, rotation.

Modules (each lists its public API in its docstring):

    canonical   canonical JSON bytes, strict parser, strict base64
    signing     domain-separated detached ed25519 signatures
    models      pydantic models of everything signed or hashed
    keystore    file (0600) and `pass` key stores, FN_KEYSTORE
    constraints executable whitelist and realpath prefix checks
    manifest    sign / verify / SerialStore / decide
    tokens      enrollment tokens, compact text, QR
    envelope    sign / verify with the fixed check order
    noncestore  persistent nonces
    audit       AuditLog hash chain with signed checkpoints
    rotation    operator key rotation and the trust anchor
    schemas     export of the models' JSON Schemas to docs/schemas/

See docs/protocol.md for the wire formats and the reasoning.
"""

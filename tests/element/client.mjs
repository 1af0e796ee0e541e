// Element's own crypto stack as a test client: matrix-js-sdk with its Rust crypto
// (matrix-sdk-crypto-wasm), the stack Element Web runs, with Element's current
// defaults: device isolation "exclude insecure devices" (OnlySignedDevicesIsolationMode).
//
// Driven from pytest (tests/element/driver.py) over a JSON-lines protocol:
//   stdin:  {"id": 1, "op": "login", ...}        one command per line
//   stdout: {"id": 1, "ok": true, ...}           one answer per command, same id
//           {"id": 1, "ok": false, "error": "..."}
// Everything the SDK logs goes to stderr, never stdout. Ops: see `ops` below.

import * as readline from "node:readline";

import * as sdk from "matrix-js-sdk";
import {
    AllDevicesIsolationMode,
    decodeRecoveryKey,
    OnlySignedDevicesIsolationMode,
} from "matrix-js-sdk/lib/crypto-api/index.js";
import { logger } from "matrix-js-sdk/lib/logger.js";

// The SDK logs to console.log by default, which is our protocol channel.
for (const level of ["trace", "debug", "info", "log", "warn", "error"]) {
    logger[level] = (...args) => {
        if (process.env.ELEMENT_CLIENT_DEBUG || level === "error") console.error(`[sdk ${level}]`, ...args);
    };
}
console.log = (...args) => console.error("[log]", ...args);
console.info = console.log;
console.debug = console.log;
console.warn = (...args) => console.error("[warn]", ...args);

let client = null;
let login = null; // {homeserver, user, password}
let secretStorageKey = null; // Uint8Array, decoded from the recovery key
const events = []; // every timeline event seen, in arrival order
const changed = new Set(); // waiters woken on each new or decrypted event

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function wake() {
    for (const fn of [...changed]) fn();
}

function summary(ev) {
    const content = ev.getContent() || {};
    const rel = content["m.relates_to"] || {};
    return {
        event_id: ev.getId(),
        room_id: ev.getRoomId(),
        sender: ev.getSender(),
        type: ev.getType(),
        encrypted: ev.isEncrypted(),
        // still m.room.encrypted: no room key (yet); a failure once the SDK gave up
        undecryptable: ev.isDecryptionFailure() || ev.getType() === "m.room.encrypted",
        decryption_failure: ev.decryptionFailureReason || null,
        content,
        body: typeof content.body === "string" ? content.body : null,
        in_reply_to: (rel["m.in_reply_to"] || {}).event_id || null,
        session_id: (ev.getWireContent() || {}).session_id || null, // the Megolm session
        relates_to: rel.event_id || null,
    };
}

function matches(ev, m) {
    const s = summary(ev);
    if (m.event_id && s.event_id !== m.event_id) return false;
    if (m.room_id && s.room_id !== m.room_id) return false;
    if (m.type && s.type !== m.type) return false;
    if (m.type_in && !m.type_in.includes(s.type)) return false;
    if (m.sender && s.sender !== m.sender) return false;
    if (m.in_reply_to && s.in_reply_to !== m.in_reply_to) return false;
    if (m.has_key && !(m.has_key in s.content)) return false;
    if (m.body_contains && !(s.body || "").includes(m.body_contains)) return false;
    if (m.not_body_prefix && (s.body || "").startsWith(m.not_body_prefix)) return false;
    if (m.after && events.indexOf(ev) <= m.after) return false;
    // Undecryptable events match only when asked for: the test wants to see the failure.
    if (s.undecryptable && !m.undecryptable_ok) return false;
    if (s.type === "m.room.encrypted" && !s.undecryptable && !m.undecryptable_ok) return false;
    return true;
}

async function waitFor(m, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const hit = events.find((ev) => matches(ev, m));
        if (hit) {
            // a failure may be decrypted a moment later once the key arrives: give it that moment
            if (hit.isDecryptionFailure() && m.undecryptable_ok && m.settle_ms) {
                await new Promise((r) => setTimeout(r, m.settle_ms));
            }
            return summary(hit);
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timeout: no event matching ${JSON.stringify(m)}`);
        await new Promise((resolve) => {
            const done = () => {
                changed.delete(done);
                clearTimeout(timer);
                resolve();
            };
            const timer = setTimeout(done, Math.min(left, 1000));
            changed.add(done);
        });
    }
}

function passwordAuth(makeRequest) {
    return async (session) =>
        makeRequest({
            type: "m.login.password",
            identifier: { type: "m.id.user", user: login.user },
            password: login.password,
            session,
        });
}

// Our device's new signature comes back with the next key query of our own user.
async function untilVerified() {
    for (let i = 0; i < 60; i++) {
        const st = await ops.status();
        if (st.device_verified) return st;
        await sleep(500);
    }
    return ops.status();
}

const ops = {
    // Log in with a brand-new device and start syncing, as Element does on a new session.
    // isolation "only_signed" (default): Element's "exclude insecure devices" (MSC4153); the
    // SDK then refuses to send at all from a session that is not cross-signed. "all": the
    // setting off, as Element ships it today; an unverified session can send.
    async login({ homeserver, user, password, device_name, isolation }) {
        login = { homeserver, user, password };
        const tmp = sdk.createClient({ baseUrl: homeserver });
        const resp = await tmp.loginRequest({
            type: "m.login.password",
            identifier: { type: "m.id.user", user },
            password,
            initial_device_display_name: device_name || "Element-stack test client",
        });
        client = sdk.createClient({
            baseUrl: homeserver,
            userId: resp.user_id,
            deviceId: resp.device_id,
            accessToken: resp.access_token,
            cryptoCallbacks: {
                // How Element answers "Verify with Recovery Key": the key decoded from the text.
                getSecretStorageKey: async ({ keys }) => {
                    if (!secretStorageKey) return null;
                    const ids = Object.keys(keys);
                    return [ids[0], secretStorageKey];
                },
            },
        });
        await client.initRustCrypto({ useIndexedDB: false });
        client
            .getCrypto()
            .setDeviceIsolationMode(
                isolation === "all" ? new AllDevicesIsolationMode(false) : new OnlySignedDevicesIsolationMode(),
            );
        client.on(sdk.RoomEvent.Timeline, (ev) => {
            events.push(ev);
            wake();
        });
        client.on(sdk.MatrixEventEvent.Decrypted, () => wake());
        const prepared = new Promise((resolve, reject) => {
            client.on(sdk.ClientEvent.Sync, (state) => {
                if (state === "PREPARED" || state === "SYNCING") resolve();
                if (state === "ERROR") reject(new Error("sync error"));
            });
        });
        await client.startClient({ initialSyncLimit: 20 });
        await prepared;
        return { user_id: resp.user_id, device_id: resp.device_id };
    },

    // The state of this session as Element shows it.
    async status() {
        const crypto = client.getCrypto();
        const own = await crypto.getDeviceVerificationStatus(client.getUserId(), client.getDeviceId());
        const cs = await crypto.getCrossSigningStatus();
        return {
            device_verified: Boolean(own && own.crossSigningVerified),
            cross_signing_ready: await crypto.isCrossSigningReady(),
            secret_storage_ready: await crypto.isSecretStorageReady(),
            cross_signing_status: cs,
            backup_version: await crypto.getActiveSessionBackupVersion(),
            master_key: (await crypto.getCrossSigningKeyId()) || null,
        };
    },

    // "Verify with Recovery Key": only secret storage and the key the operator typed.
    async verify({ recovery_key }) {
        secretStorageKey = decodeRecoveryKey(recovery_key);
        const crypto = client.getCrypto();
        const me = client.getUserId();
        // importCrossSigningKeys checks the private keys against our published public
        // keys: those must have been downloaded first (Element has them from its sync).
        for (let i = 0; ; i++) {
            await crypto.getUserDeviceInfo([me], true);
            try {
                await crypto.bootstrapCrossSigning({});
                break;
            } catch (err) {
                if (i >= 20 || !String(err).includes("importCrossSigningKeys")) throw err;
                await sleep(500);
            }
        }
        await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
        await crypto.checkKeyBackupAndEnable();
        return untilVerified();
    },

    // "Reset cryptographic identity": new cross-signing keys (password auth, as Element asks).
    async reset_identity() {
        const crypto = client.getCrypto();
        await crypto.bootstrapCrossSigning({
            setupNewCrossSigning: true,
            authUploadDeviceSigningKeys: async (makeRequest) => {
                await passwordAuth(makeRequest)(undefined).catch(async (err) => {
                    const session = err && err.data && err.data.session;
                    if (!session) throw err;
                    await passwordAuth(makeRequest)(session);
                });
            },
        });
        return untilVerified();
    },

    async join({ room }) {
        const r = await client.joinRoom(room);
        // wait until our sync has the room and its encryption state
        for (let i = 0; i < 100 && !client.getRoom(r.roomId); i++) await new Promise((res) => setTimeout(res, 100));
        return { room_id: r.roomId };
    },

    async send({ room_id, body }) {
        const r = await client.sendTextMessage(room_id, body);
        return { event_id: r.event_id, mark: events.length - 1 };
    },

    async react({ room_id, event_id, key }) {
        const r = await client.sendEvent(room_id, "m.reaction", {
            "m.relates_to": { rel_type: "m.annotation", event_id, key },
        });
        return { event_id: r.event_id };
    },

    // The first event (seen since login) matching every given field.
    async wait_event({ match, timeout_ms }) {
        return { event: await waitFor(match || {}, timeout_ms || 30000) };
    },

    async events() {
        return { events: events.map(summary).map((e) => ({ ...e, content: undefined })) };
    },

    async stop() {
        if (client) client.stopClient();
        setTimeout(() => process.exit(0), 50);
        return {};
    },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
    if (!line.trim()) return;
    let req;
    try {
        req = JSON.parse(line);
    } catch (err) {
        process.stdout.write(JSON.stringify({ id: null, ok: false, error: `bad json: ${err}` }) + "\n");
        return;
    }
    const fn = ops[req.op];
    let answer;
    if (!fn) {
        answer = { id: req.id, ok: false, error: `unknown op ${req.op}` };
    } else {
        try {
            answer = { id: req.id, ok: true, ...(await fn(req)) };
        } catch (err) {
            answer = { id: req.id, ok: false, error: String((err && err.stack) || err) };
        }
    }
    process.stdout.write(JSON.stringify(answer) + "\n");
});
rl.on("close", () => {
    if (client) client.stopClient();
    process.exit(0);
});

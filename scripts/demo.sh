#!/usr/bin/env bash
# `make demo`: Yao's millionaires problem for two parties on a SIMULATED enclave.
#
# Everything runs on this machine: a model publisher signs the default model,
# an enclave (simulated SEV-SNP) serves it behind the untrusted host proxy, and
# two parties, each a separate process that knows only its own wealth, verify
# the enclave themselves, submit their sealed inputs and get the one answer.
# Run after `make model` (the Makefile does). Set TCME_MODEL=path.gguf for
# another model, TCME_DEMO_KEEP=1 to keep the work folder.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
tcme() { "$PY" -m tcme "$@"; }

MODEL=${TCME_MODEL:-}
if [ -z "$MODEL" ]; then
    MODEL=$(ls models/*.gguf 2>/dev/null | head -n 1 || true)
fi
if [ -z "$MODEL" ] || [ ! -f "$MODEL" ]; then
    echo "demo: no model found: run 'make model' first (or set TCME_MODEL=file.gguf)" >&2
    exit 2
fi

# Short path: the enclave listens on a Unix socket (path length is limited).
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tcme-demo.XXXXXX")
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "${TCME_DEMO_KEEP:-0}" = 1 ]; then
        echo "demo: work folder kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }
fail() {
    echo "demo: $*" >&2
    for log in "$WORK"/*.log; do
        [ -s "$log" ] && { echo "--- $(basename "$log") (last lines)" >&2; tail -n 15 "$log" >&2; }
    done
    exit 1
}

step "1. Model publisher: make a demo signing key and sign $(basename "$MODEL")"
tcme model keygen --out "$WORK/publisher" >/dev/null
tcme model sign "$MODEL" --key "$WORK/publisher/signing-key.pem" \
    --signature "$WORK/model.sig" --quiet
tcme model verify "$MODEL" --signature "$WORK/model.sig" \
    --public-key "$WORK/publisher/signing-key.pub.pem" --quiet --json >"$WORK/model.json"
ROOT_DIGEST=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["root_digest"])' "$WORK/model.json")
SIGNER=$("$PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["signer"]))' "$WORK/model.json")
echo "   model root digest $ROOT_DIGEST"
echo "   signer            $SIGNER"

step "2. Simulated hardware: a local SIMULATED ARK -> ASK -> VCEK chain (not AMD)"
tcme sim snp --out "$WORK/sim" >/dev/null
ARK_PIN=$("$PY" -c 'import sys,tomllib; print(tomllib.load(open(sys.argv[1],"rb"))["simulated_ark_sha256"][0])' "$WORK/sim/simulated-policy.toml")
MEASUREMENT=$("$PY" -c 'import sys,tomllib; print(tomllib.load(open(sys.argv[1],"rb"))["snp"]["allowed_measurements"][0])' "$WORK/sim/simulated-policy.toml")
echo "   simulated ARK sha256 $ARK_PIN (the parties pin this root)"
echo "   launch measurement   $MEASUREMENT (and this guest)"

step "3. Parties: keys, and the contract both agree to (examples/millionaires)"
for party in alice bob; do
    tcme session keygen --out "$WORK/$party.key" --name "$party" >/dev/null
done
DIGEST=$(tcme session contract --template examples/millionaires/contract.toml \
    --party-key "alice=$WORK/alice.key.pub.json" --party-key "bob=$WORK/bob.key.pub.json" \
    --out "$WORK/contract.json")
echo "   contract digest $DIGEST"
echo "   alice and bob each send one integer; the output 'richer' (first/second/equal)"
echo "   goes to both; greedy decoding (temperature 0, seed 42) constrained to those words"
for party in alice bob; do
    cat >"$WORK/$party.toml" <<EOF
# $party's own policy: what it checks before releasing its input (docs/security.md).
accept = ["sev-snp"]                      # only SEV-SNP evidence
allow_simulated = true                    # demo only: SIMULATED evidence proves nothing
simulated_ark_sha256 = ["$ARK_PIN"]       # ...and only from this simulated root

[snp]
allowed_measurements = ["$MEASUREMENT"]   # the launch identity of the (simulated) guest

[model]
root_digest = "$ROOT_DIGEST"
signer = $SIGNER

[contract]
file = "contract.json"
EOF
done

step "4. Start the enclave (SIMULATED) on a Unix socket and the host proxy on 127.0.0.1"
# Started with exec-style "$PY -m tcme" (not the shell function) so $! is the server itself.
"$PY" -m tcme enclave serve --simulated --sim-dir "$WORK/sim" --listen "unix:$WORK/enclave.sock" \
    --model "$MODEL" --signature "$WORK/model.sig" \
    --public-key "$WORK/publisher/signing-key.pub.pem" >"$WORK/enclave.log" 2>&1 &
PIDS+=($!)
"$PY" -m tcme host serve --listen 127.0.0.1:0 --enclave "unix:$WORK/enclave.sock" \
    --port-file "$WORK/host.port" >"$WORK/host.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    [ -s "$WORK/host.port" ] && break
    kill -0 "${PIDS[1]}" 2>/dev/null || fail "the host proxy did not start"
    sleep 0.1
done
[ -s "$WORK/host.port" ] || fail "the host proxy did not start"
HOST="127.0.0.1:$(cat "$WORK/host.port")"
echo "   host proxy at $HOST; waiting for the enclave to load the verified model..."
for _ in $(seq 1 240); do
    tcme host health "$HOST" >/dev/null 2>&1 && break
    kill -0 "${PIDS[0]}" 2>/dev/null || fail "the enclave exited"
    sleep 0.5
done
tcme host health "$HOST" >/dev/null 2>&1 || fail "the enclave did not become SERVING"
echo "   health: SERVING"

step "5. Alice proposes the session"
SESSION=$(tcme session create "$HOST" --contract "$WORK/contract.json" \
    --party alice --key "$WORK/alice.key")
echo "   session $SESSION"

step "6. Alice and Bob run as two separate processes; each knows only its own wealth"
run_party() {
    # The wealth is drawn inside this party's own process and never leaves it in plaintext.
    local party=$1
    local wealth
    wealth=$("$PY" -c 'import secrets; print(1_000_000 + secrets.randbelow(99_000_000))')
    echo "[$party] my wealth (known only to me): $wealth"
    tcme session run "$HOST" --session "$SESSION" --party "$party" \
        --key "$WORK/$party.key" --policy "$WORK/$party.toml" --value "$wealth" --wait 300
}
run_party alice >"$WORK/alice.out" 2>"$WORK/alice.err" &
ALICE=$!
run_party bob >"$WORK/bob.out" 2>"$WORK/bob.err" &
BOB=$!
STATUS=0
wait "$ALICE" || STATUS=1
wait "$BOB" || STATUS=1
for party in alice bob; do
    printf '\n-- %s --\n' "$party"
    cat "$WORK/$party.out"
    # Warnings (SIMULATED) and any rejection reason, without log noise.
    grep -E 'rejected|REJECTED|error' "$WORK/$party.err" || true
done
[ "$STATUS" = 0 ] || fail "a party did not get a verified answer"

step "Note"
cat <<'EOF'
   The enclave here is SIMULATED: its evidence is signed by a local chain, not AMD
   hardware, and each party accepted it only because its policy says allow_simulated.
   The default model is SmolLM2-135M-Instruct, a 135-million-parameter model: it is
   small and often answers comparisons wrongly, so the answer above may be wrong.
   What tcme guarantees is who learns what: each party saw only its own wealth and the
   answer, computed once by the signed model over both inputs, with a signed receipt.
EOF

step "Shutting down the proxy and the enclave"

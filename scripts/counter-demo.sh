#!/usr/bin/env bash
# The counter, with real processes: a hub (`mykey-hub serve`), a library node
# and a shop node (`mykey-node run`, synced over libp2p), pcscd with the vpcd
# virtual reader, and the vjpki virtual My Number card tapped at
# `mykey-node watch`. Works in a fresh temp dir; stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

cargo build --quiet --locked -p mykey-node -p mykey-hub -p mykey-tests --bins
B=$ROOT/target/debug
# Stop pcscd at the end only if this demo is the one that starts it.
started_pcscd=0
pgrep -x pcscd >/dev/null 2>&1 || started_pcscd=1
bash scripts/pcsc-up.sh

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$started_pcscd" = 0 ] || bash "$ROOT/scripts/pcsc-down.sh" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

# vpcd's second slot, so the demo never meets a test's card in the first.
READER="Virtual PCD 00 01"
PIN=1234
say() { printf '\n== %s\n' "$*"; }

say "a virtual My Number card on the reader"
"$B/vjpki" gen-certs --out card >/dev/null 2>&1
"$B/vjpki" serve --cert card/auth.der --ca-cert card/ca.der --key card/auth.key.pem \
  --pin "$PIN" --vpcd 127.0.0.1:35964 >/dev/null 2>&1 &
PIDS+=($!)
CARD=$("$B/mykey-node" card read --reader "$READER" --json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["card_key"])')
echo "card key read (certificate serial ${CARD##*:})"

say "the hub: Bunkyo-ku, a library, a shop, Hanako with 5000 pt"
H() { "$B/mykey-hub" --data hub "$@"; }
H init >/dev/null
H municipality add --code 131059 --name Bunkyo
H facility add --id bunkyo-lib --municipality 131059 --kind library --name "Bunkyo library"
H facility add --id shotengai-1 --municipality 131059 --kind shop --name "Shotengai shop"
H account register --my-key-id Hanako --municipality 131059 --card "$CARD"
H program create --id health --municipality 131059 --budget 100000
H grant --my-key-id Hanako --program health --points 5000
HUB_KEY=$(H id)
for n in lib shop; do "$B/mykey-node" init --data "$n" --hub-key "$HUB_KEY" >/dev/null; done
H node enrol --node "$("$B/mykey-node" id --data lib)" --facility bunkyo-lib --ops link,unlink \
  --card-limit 0 --exposure-limit 0 --pin-threshold 0 | sed -n 1p
H node enrol --node "$("$B/mykey-node" id --data shop)" --facility shotengai-1 --ops redeem \
  --card-limit 3000 --exposure-limit 20000 --pin-threshold 2000 | sed -n 1p

say "hub and nodes on loopback"
# Any free ports: an address in use is an error, and the demo must not
# depend on 8780/8781 being free on this machine.
H serve --listen /ip4/127.0.0.1/tcp/0 --http 127.0.0.1:0 >hub.out 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q '^listening on' hub.out && break; sleep 0.1; done
HUB_ADDR=$(sed -n 's/^listening on //p' hub.out | head -1)
for n in lib shop; do
  "$B/mykey-node" run --data "$n" --hub-addr "$HUB_ADDR" --listen /ip4/127.0.0.1/tcp/0 --http 127.0.0.1:0 >"$n.out" 2>&1 &
  PIDS+=($!)
done
synced() { [[ $("$B/mykey-node" lookup --data "$1" --card "$CARD") == registered* ]]; }
for _ in $(seq 200); do synced lib && synced shop && break; sleep 0.1; done
synced lib && synced shop || { echo "nodes did not sync with the hub" >&2; exit 1; }
"$B/mykey-node" link --data lib --card "$CARD" --number LIB-0042
settled() { [[ $("$B/mykey-node" status --data "$1") == *" 0 pending"* ]]; }
for _ in $(seq 100); do settled lib && break; sleep 0.1; done

tap() { "$B/mykey-node" --data "$1" watch --once --reader "$READER" "${@:2}" 2>/dev/null; }

say "library counter: tap"
tap lib
say "shop: tap, 500 pt (under the PIN threshold)"
printf '500\n' | tap shop --trusted-ca card/ca.der
say "shop: tap, 2500 pt with the right PIN"
printf '2500\n%s\n' "$PIN" | tap shop --pin-stdin --trusted-ca card/ca.der
say "shop: tap, 2500 pt with a wrong PIN"
printf '2500\n0000\n' | tap shop --pin-stdin --trusted-ca card/ca.der
say "shop: tap, 3000 pt with the right PIN (over what is left)"
printf '3000\n%s\n' "$PIN" | tap shop --pin-stdin --trusted-ca card/ca.der

say "the hub's view once the shop has synced"
for _ in $(seq 100); do settled shop && break; sleep 0.1; done
H balance --my-key-id Hanako

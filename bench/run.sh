#!/usr/bin/env bash
# Run the execd benchmarks from a clean machine and put the results into
# docs/BENCHMARKS.md (between the results markers).
#
#   bash bench/run.sh            full run (1 GiB stream, 1000-process fan-out)
#   SMOKE=1 bash bench/run.sh    tiny sizes, no ssh, report to stdout only (CI)
#
# The OpenSSH baseline runs against a throwaway sshd on a loopback port with
# throwaway keys; it is stopped and removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=${REPS:-300}
stream_mib=${STREAM_MIB:-1024}
fanout=${FANOUT:-1000}
if [ -n "${SMOKE:-}" ]; then
    reps=5; stream_mib=4; fanout=20; copy_mib=4; copy_files=50
fi
copy_mib=${copy_mib:-${COPY_MIB:-512}}
copy_files=${copy_files:-${COPY_FILES:-5000}}

cargo build --release --locked -q
bench=(./target/release/execd bench --reps "$reps" --stream-mib "$stream_mib" --fanout "$fanout"
    --copy-mib "$copy_mib" --copy-files "$copy_files")

if [ -n "${SMOKE:-}" ]; then
    "${bench[@]}"
    exit 0
fi

if ! command -v sshd >/dev/null 2>&1 || ! command -v ssh >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null
fi
sshd_bin=$(command -v sshd || echo /usr/sbin/sshd)
work=$(mktemp -d)
cleanup() {
    if [ -f "$work/sshd.pid" ]; then kill "$(cat "$work/sshd.pid")" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/client_key"
cp "$work/client_key.pub" "$work/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
PidFile $work/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
CONF
mkdir -p /run/sshd
"$sshd_bin" -f "$work/sshd_config"

results="$work/results.md"
"${bench[@]}" --ssh-port "$port" --ssh-user "$(id -un)" --ssh-key "$work/client_key" \
    --markdown-out "$results"

doc=docs/BENCHMARKS.md
python3 - "$doc" "$results" <<'PY'
import sys
doc, results = sys.argv[1], sys.argv[2]
new = open(results).read().strip()
text = open(doc).read()
start, end = "<!-- results -->", "<!-- /results -->"
i, j = text.index(start) + len(start), text.index(end)
open(doc, "w").write(text[:i] + "\n" + new + "\n" + text[j:])
PY
echo "wrote $doc"

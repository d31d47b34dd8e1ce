#!/bin/bash
# deb_check.sh DEB: the package's life on this machine, as an operator lives it
# (docs/install.md): dpkg -i; in an empty directory outside the repo `warden init hello`,
# `warden test hello`, `warden run hello "hi" --llm mock:...`; the unit verified and its
# ExecStart line run as the warden user over TLS (a CA and a certificate made here); then
# dpkg -r and dpkg -P leave nothing behind. Needs root: skips with a message otherwise.
set -euo pipefail
deb=$(readlink -f "$1")
say() { echo "deb-check: $*"; }
fail() { echo "deb-check: FAILED: $*" >&2; exit 1; }
if [ "$(id -u)" != 0 ]; then say "skipped: dpkg -i needs root"; exit 0; fi
if dpkg-query -W -f='${Status}' warden 2>/dev/null | grep -q installed; then
    fail "a warden package is installed already; dpkg -P warden first"
fi
for p in /etc/warden /var/lib/warden /var/log/warden /usr/bin/warden; do
    [ ! -e "$p" ] || fail "$p exists before the install"
done
! getent passwd warden >/dev/null || fail "a user warden exists before the install"

work=$(mktemp -d /tmp/warden-deb.XXXXXX)
chmod 755 "$work"
srv_pid=""
cleanup() {
    [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null || true
    dpkg -P warden >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

dpkg -i "$deb" >/dev/null || fail "dpkg -i"
say "installed: $(warden --version)"
[ "$(stat -c %U /var/lib/warden)" = warden ] && [ "$(stat -c %U /var/log/warden)" = warden ] ||
    fail "/var/lib/warden and /var/log/warden are not the warden user's"
unit=/lib/systemd/system/warden.service
systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
man -w warden >/dev/null && man -w warden-policy >/dev/null || fail "the man pages are not found"
[ -f /usr/share/bash-completion/completions/warden ] || fail "no bash completion"
warden help --home | grep -qx /usr/share/warden || fail "warden's home is not /usr/share/warden"

# an agent from nothing, outside the repo, with the environment of a new shell
cd "$work"
clean_env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8)
"${clean_env[@]}" warden init hello >/dev/null || fail "warden init hello"
"${clean_env[@]}" warden test hello || fail "warden test hello"
out=$("${clean_env[@]}" warden run hello "hi" --llm mock:hello/scenarios/hello.yaml) || fail "warden run hello: $out"
grep -q "Hello! I am hello" <<<"$out" || fail "warden run printed: $out"
say "init, test and run work in $work"
[ "$(stat -c %U /var/log/warden/audit.jsonl)" = warden ] || fail "the audit log root made is not the service's"
warden audit verify >/dev/null || fail "warden audit verify"

# TLS: a CA and a server certificate for localhost, made here
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
    -days 2 -subj /CN=deb-check-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout tls.key -out tls.csr \
    -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext
openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out tls.pem -days 2 -extfile ext 2>/dev/null
chown warden tls.key tls.pem
# the unit's command line, as the unit's user, with its environment file and the TLS files
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
set -a
# shellcheck disable=SC1091
. /etc/default/warden
set +a
WARDEN_LISTEN=127.0.0.1:0 WARDEN_TLS_CERT=$work/tls.pem WARDEN_TLS_KEY=$work/tls.key \
    setpriv --reuid=warden --regid=warden --init-groups $exec_start 2>serve.err &
srv_pid=$!
for _ in $(seq 100); do grep -q serving serve.err 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's|.*serving https://127.0.0.1:\([0-9]*\)/.*|\1|p' serve.err)
[ -n "$port" ] || fail "warden serve did not start: $(cat serve.err)"
code=$(curl -s -o health.json -w '%{http_code}' --cacert ca.pem "https://localhost:$port/healthz")
[ "$code" = 200 ] || fail "GET https://localhost:$port/healthz: $code $(cat health.json)"
if curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; then fail "plain HTTP was answered"; fi
kill -TERM "$srv_pid"
wait "$srv_pid" || fail "warden serve exited $? after SIGTERM"
srv_pid=""
say "the unit's command line served https://localhost:$port/ as user warden"

cd /
dpkg -r warden >/dev/null || fail "dpkg -r"
[ ! -e /usr/bin/warden ] && [ ! -e /usr/share/warden ] && [ ! -e "$unit" ] || fail "dpkg -r left files"
[ -f /etc/warden/policy.yaml ] || fail "dpkg -r removed the conffile"
dpkg -P warden >/dev/null || fail "dpkg -P"
for p in /etc/warden /etc/default/warden /var/lib/warden /var/log/warden /usr/lib/warden \
    /usr/share/man/man1/warden.1.gz; do
    [ ! -e "$p" ] || fail "dpkg -P left $p"
done
! getent passwd warden >/dev/null && ! getent group warden >/dev/null || fail "dpkg -P left the warden user"
say "dpkg -r and dpkg -P left the system clean"

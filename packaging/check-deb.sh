#!/usr/bin/env bash
# Check a framewire .deb without installing it on this machine: unpack it
# into a throwaway root and look at what it would install, then run the
# packaged binary against the packaged config. Used by `./dev deb`.
set -euo pipefail
deb="$1"
root=$(mktemp -d)
trap '[ -z "${pid:-}" ] || kill "$pid" 2>/dev/null || true; rm -rf "$root"' EXIT
fail() { echo "check-deb: $*" >&2; exit 1; }

dpkg-deb -x "$deb" "$root/fs"
dpkg-deb -e "$deb" "$root/control"

# Files in place, with their modes.
for f in usr/bin/framewire etc/framewire/framewire.toml usr/lib/systemd/system/framewire.service \
         usr/share/doc/framewire/examples/framewire.socket usr/share/doc/framewire/copyright; do
    [ -e "$root/fs/$f" ] || fail "missing /$f"
done
[ -x "$root/fs/usr/bin/framewire" ] || fail "/usr/bin/framewire is not executable"
[ "$(stat -c %a "$root/fs/etc/framewire/framewire.toml")" = 644 ] || fail "config mode"

# Control data: dependencies, the config kept across upgrades, the
# maintainer scripts (the user, and systemd's enable/start snippets).
grep -q '^Depends:.*adduser' "$root/control/control" || fail "Depends lacks adduser"
grep -qx /etc/framewire/framewire.toml "$root/control/conffiles" || fail "config is not a conffile"
grep -q 'adduser --system --group' "$root/control/postinst" || fail "postinst makes no framewire user"
grep -q 'adduser framewire video' "$root/control/postinst" || fail "postinst does not add the user to video"
grep -q 'deb-systemd-helper' "$root/control/postinst" || fail "postinst does not enable the unit"
sh -n "$root/control/postinst" || fail "postinst: syntax"
for s in prerm postrm; do [ ! -e "$root/control/$s" ] || sh -n "$root/control/$s" || fail "$s: syntax"; done

# The unit starts what the package installs, the way framewire expects.
unit="$root/fs/usr/lib/systemd/system/framewire.service"
grep -qx 'ExecStart=/usr/bin/framewire serve --config /etc/framewire/framewire.toml' "$unit" || fail "ExecStart"
grep -qx 'Type=notify' "$unit" || fail "Type=notify"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$unit" 2>&1 | grep -v 'framewire.service: Command /usr/bin/framewire is not executable' || true
fi

# The packaged binary serves with the packaged config (paths moved into
# the throwaway root; loopback and a free port).
mkdir -p "$root/media" "$root/cache"
"$root/fs/usr/bin/framewire" --version | grep -q '^framewire ' || fail "--version"
"$root/fs/usr/bin/framewire" serve --config "$root/fs/etc/framewire/framewire.toml" \
    --listen 127.0.0.1:0 --media "$root/media" --cache-dir "$root/cache" --admin off >"$root/out" 2>"$root/err" &
pid=$!
for _ in $(seq 1 300); do grep -q 'listening on' "$root/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^framewire listening on //p' "$root/out")
[ -n "$url" ] || { cat "$root/err" >&2; fail "the packaged binary did not start with the packaged config"; }
curl -sf "$url/api/state" | grep -q '"cameras"' || fail "no state from $url"
kill -TERM "$pid"
wait "$pid" || fail "did not exit 0 on SIGTERM"
pid=
echo "check-deb: $deb: ok ($(dpkg-deb -f "$deb" Version), $(du -h "$deb" | cut -f1))"

#!/usr/bin/env bash
# Set up a Debian/Ubuntu machine to build, run and test gcr. Idempotent: run it again at will.
#   provision.sh          packages + npm ci + build (a developer VM, see gcr.lima.yaml)
#   provision.sh --ci     the same, non-interactive, as .ci/run uses it
# Needs root for apt-get (uses sudo when not root).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

# What gcr and its tests use:
#   busybox-static   the demo image and the test root filesystems
#   docker-registry  the real distribution registry the pull tests push to (on 127.0.0.1)
#   skopeo umoci     the peers that pull tests compare against
#   crun runc bubblewrap hyperfine conmon   the peers bench/start and bench/monitor compare against
#   slirp4netns passt nftables iptables iproute2   networking (rootless, NAT, published ports)
#   uidmap           newuidmap/newgidmap for rootless id ranges
#   gcc libc6-dev    static probe programs the tests compile
#   util-linux bsdutils zstd jq socat shellcheck openssl python3 time curl   test tooling
packages=(busybox-static docker-registry skopeo umoci crun runc bubblewrap hyperfine
  slirp4netns passt nftables iptables iproute2 uidmap gcc libc6-dev shellcheck util-linux bsdutils
  zstd jq socat conmon openssl python3 time curl
  nodejs ca-certificates)

# Debian's and Ubuntu's nodejs ship npm separately (NodeSource's includes it).
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "provision: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian registry package starts a service listening on all interfaces; the tests run
# their own instance on 127.0.0.1, so stop the packaged one where systemd runs it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  $sudo systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

cd "$here"
# Bun comes from the npm registry as a pinned devDependency: npm ci is the only JS install step.
if [ ! -x node_modules/.bin/bun ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
node_modules/.bin/bun scripts/build.ts

#!/usr/bin/env bash
# Install everything Wellcar needs on a Debian 12 machine: Debian packages, a virtualenv
# in .venv and the Python packages. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# postgresql: the scale-out tests; the rest: disk images (sfdisk, sgdisk, mtools), /usr images
# (mkfs.erofs, veritysetup), package sets (mmdebstrap), the delta peers in bench/ (zstd, bsdiff),
# and booting images: QEMU with OVMF, systemd-boot, FAT for the ESP, ssh into the guest,
# systemctl --root for the image's units; chromium (and a font) for the console's browser
# tests, which Playwright drives (its own browser download is not used); tftpd-hpa for
# Ignition's tftp:// sources; xorriso for the live ISO; grub-common and grub-pc-bin for
# the image's BIOS boot (grub-mkimage, GRUB's i386-pc modules; on the host, not in the image);
# dpkg-dev, patch, gpg, gpgv and Debian's keyring for `wellcar packages` (docs/packages.md).
# cpio reads back the live media's customization archives in the tests.
DEBIAN_PACKAGES=(python3 python3-venv python3-dev gcc postgresql postgresql-client
    fdisk gdisk mtools erofs-utils cryptsetup-bin mmdebstrap zstd bsdiff
    qemu-system-x86 qemu-utils ovmf systemd-boot-efi dosfstools openssh-client e2fsprogs
    systemd chromium fonts-liberation tftpd-hpa xorriso grub-common grub-pc-bin
    dpkg-dev patch gpg gpgv debian-archive-keyring cpio)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The tests start their own throw-away clusters; the distribution's default one is not needed.
    if command -v pg_lsclusters >/dev/null; then
        $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
    fi
fi

# The console's sign-in tests run a real OpenID Connect provider (oidc-provider from the npm
# registry, pinned by tests/console/oidc_provider/package-lock.json) under node.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "setup: installing Debian packages: nodejs npm"
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
oidc_src=tests/console/oidc_provider
oidc_dir=build/oidc-provider
if [[ ! -d $oidc_dir/node_modules ]] || ! cmp -s "$oidc_src/package-lock.json" "$oidc_dir/package-lock.json"; then
    echo "setup: installing the test OIDC provider into $oidc_dir"
    mkdir -p "$oidc_dir"
    cp "$oidc_src/package.json" "$oidc_src/package-lock.json" "$oidc_dir/"
    (cd "$oidc_dir" && npm ci --silent --no-audit --no-fund >/dev/null)
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.wellcar-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    echo "setup: installing Python packages into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    touch "$stamp"
fi
echo "setup: ready (.venv/bin/wellcar)"

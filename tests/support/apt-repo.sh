#!/usr/bin/env bash
# Builds a signed APT repository from a folder of .deb files, with Debian's own tools, laid out
# as the Debian archive is:
#
#   OUT/pool/COMPONENT/<l or libl>/<source>/<package>_<version>_<arch>.deb
#   OUT/dists/SUITE/COMPONENT/binary-ARCH/Packages, Packages.gz, Packages.xz   (dpkg-scanpackages)
#   OUT/dists/SUITE/Release                (apt-ftparchive release: MD5Sum, SHA1, SHA256, SHA512)
#   OUT/dists/SUITE/InRelease              (clearsigned Release)
#   OUT/dists/SUITE/Release.gpg            (detached signature of Release)
#   OUT/archive-keyring.gpg, .asc          (the signing key's public half, binary and armored)
#
# The signing key lives in the key folder (--key-dir, a GnuPG home), generated there on first use;
# it is never put under OUT. Without --key-dir a temporary one is used and removed.
#
# Indexes and Release are deterministic: stanzas sorted by dpkg-scanpackages, gzip without a
# name or time, a fixed Release date (--date, else SOURCE_DATE_EPOCH, else 2024-01-01). The key
# is random, so signatures differ from one key to the next.
#
# Usage:
#   apt-repo.sh [options] OUT [DEB_DIR]
#     Copies the .debs of DEB_DIR (all, or those named by --package) into OUT's pool, replacing
#     any other version of the same package and architecture, then indexes the whole pool and
#     signs. Without DEB_DIR it re-indexes and re-signs what the pool holds.
#   apt-repo.sh --sign-only [options] OUT
#     Signs OUT's existing Release again, with the key of --key-dir (exported to --keyring).
#
# Options:
#   --suite S         suite and codename (default: stable)
#   --component C     component (default: main)
#   --arch A          architecture of the index (default: dpkg --print-architecture)
#   --package NAME    take only this package from DEB_DIR (repeatable); a name not found fails
#   --key-dir DIR     GnuPG home holding the signing key (created with a new key when empty)
#   --key-algo ALGO   algorithm of a new key, as gpg --quick-gen-key takes it (default: rsa3072)
#   --keyring PATH    where the public key goes (default: OUT/archive-keyring.gpg; the armored
#                     copy is PATH with .asc in place of .gpg)
#   --date EPOCH      the Release file's date, in seconds since the epoch
#   --valid-until EPOCH  a Valid-Until field (none by default): a date after which clients refuse
#                     the Release as expired
#   --sign-only       only sign the existing Release again
set -euo pipefail

suite=stable
component=main
arch=
key_dir=
key_algo=rsa3072
keyring=
date_epoch=${SOURCE_DATE_EPOCH:-1704067200}
valid_until=
sign_only=0
only=()
positional=()
while (($#)); do
  case "$1" in
    --suite) suite=$2; shift 2 ;;
    --component) component=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --package) only+=("$2"); shift 2 ;;
    --key-dir) key_dir=$2; shift 2 ;;
    --key-algo) key_algo=$2; shift 2 ;;
    --keyring) keyring=$2; shift 2 ;;
    --date) date_epoch=$2; shift 2 ;;
    --valid-until) valid_until=$2; shift 2 ;;
    --sign-only) sign_only=1; shift ;;
    -h | --help) sed -n '2,39p' "$0"; exit 0 ;;
    --*) echo "apt-repo.sh: unknown option $1" >&2; exit 2 ;;
    *) positional+=("$1"); shift ;;
  esac
done
if ((${#positional[@]} < 1 || ${#positional[@]} > 2)); then
  echo "usage: apt-repo.sh [options] OUT [DEB_DIR] (see --help)" >&2
  exit 2
fi
for tool in dpkg-deb dpkg-scanpackages apt-ftparchive gpg gzip xz; do
  command -v "$tool" >/dev/null || { echo "apt-repo.sh: $tool is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
done
out=$(mkdir -p "${positional[0]}" && cd "${positional[0]}" && pwd)
deb_dir=${positional[1]:-}
[[ -n $arch ]] || arch=$(dpkg --print-architecture)
[[ -n $keyring ]] || keyring=$out/archive-keyring.gpg
dists=$out/dists/$suite

tmp=$(mktemp -d)
cleanup() {
  if [[ -n ${GNUPGHOME:-} ]]; then gpgconf --homedir "$GNUPGHOME" --kill all >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The pool folder of a package, as the Debian archive names it: by source package, under its
# first letter (or "lib" and the next one).
pool_dir() {
  local source=$1 prefix
  if [[ $source == lib?* ]]; then prefix=${source:0:4}; else prefix=${source:0:1}; fi
  echo "pool/$component/$prefix/$source"
}

# Prints "PACKAGE VERSION ARCH SOURCE" of a .deb, from one read of its control file.
deb_fields() {
  dpkg-deb --field "$1" Package Version Architecture Source | awk -F': ' '
    { f[$1] = $2 }
    END { s = f["Source"]; sub(/ .*/, "", s); if (s == "") s = f["Package"]; print f["Package"], f["Version"], f["Architecture"], s }'
}

add_debs() {
  local f name version deb_arch source dest want
  local -A wanted=()
  for want in "${only[@]}"; do wanted[$want]=1; done
  local picked=0
  shopt -s nullglob
  for f in "$deb_dir"/*.deb; do
    read -r name version deb_arch source < <(deb_fields "$f")
    [[ -n $name && -n $version && -n $deb_arch ]] || { echo "apt-repo.sh: $f is not a .deb with Package, Version and Architecture" >&2; exit 1; }
    if ((${#only[@]})); then
      [[ -n ${wanted[$name]:-} ]] || continue
      wanted[$name]=done
    fi
    dest=$out/$(pool_dir "$source")
    mkdir -p "$dest"
    # One version of a package and architecture at a time, as in a suite of the archive.
    [[ -d $out/pool ]] && find "$out/pool" -name "${name}_*_${deb_arch}.deb" -delete
    cp "$f" "$dest/${name}_${version#*:}_${deb_arch}.deb"
    picked=$((picked + 1))
  done
  shopt -u nullglob
  local missing=()
  for want in "${only[@]}"; do [[ ${wanted[$want]} == done ]] || missing+=("$want"); done
  if ((${#missing[@]})); then
    echo "apt-repo.sh: no .deb in $deb_dir for ${missing[*]}" >&2
    exit 1
  fi
  if ((picked == 0)); then
    echo "apt-repo.sh: no .deb files in $deb_dir" >&2
    exit 1
  fi
}

index() {
  local bin=$dists/$component/binary-$arch
  mkdir -p "$bin"
  # Every stanza names its file relative to OUT, so this runs there.
  (cd "$out" && dpkg-scanpackages --multiversion --arch "$arch" pool 2>"$tmp/scan.log") > "$tmp/Packages" || {
    cat "$tmp/scan.log" >&2
    exit 1
  }
  [[ -s $tmp/Packages ]] || { echo "apt-repo.sh: the pool of $out holds no package for $arch" >&2; exit 1; }
  mv "$tmp/Packages" "$bin/Packages"
  gzip -9nc "$bin/Packages" > "$bin/Packages.gz"
  xz -9c "$bin/Packages" > "$bin/Packages.xz"
  rm -f "$dists/Release" "$dists/InRelease" "$dists/Release.gpg"
  (cd "$dists" && apt-ftparchive \
    -o APT::FTPArchive::Release::Origin="galley-test" \
    -o APT::FTPArchive::Release::Label="galley-test" \
    -o APT::FTPArchive::Release::Suite="$suite" \
    -o APT::FTPArchive::Release::Codename="$suite" \
    -o APT::FTPArchive::Release::Architectures="$arch" \
    -o APT::FTPArchive::Release::Components="$component" \
    -o APT::FTPArchive::Release::Date="$(LC_ALL=C date -u -d "@$date_epoch" '+%a, %d %b %Y %H:%M:%S UTC')" \
    -o APT::FTPArchive::Release::Description="galley test repository" \
    release .) > "$tmp/Release"
  # apt-ftparchive dates Valid-Until only relative to the clock (ValidTime), so it is written here,
  # after Date, as the archive places it.
  if [[ -n $valid_until ]]; then
    local until
    until=$(LC_ALL=C date -u -d "@$valid_until" '+%a, %d %b %Y %H:%M:%S UTC')
    awk -v v="Valid-Until: $until" '{ print } /^Date: / { print v }' "$tmp/Release" > "$tmp/Release.valid"
    mv "$tmp/Release.valid" "$tmp/Release"
  fi
  mv "$tmp/Release" "$dists/Release"
}

sign() {
  [[ -f $dists/Release ]] || { echo "apt-repo.sh: $dists/Release does not exist" >&2; exit 1; }
  if [[ -z $key_dir ]]; then key_dir=$tmp/gnupg; fi
  mkdir -p "$key_dir"
  chmod 700 "$key_dir"
  export GNUPGHOME=$key_dir
  local gpg=(gpg --batch --quiet --no-tty --pinentry-mode loopback --passphrase '')
  if ! "${gpg[@]}" --list-secret-keys 2>/dev/null | grep -q .; then
    "${gpg[@]}" --quick-gen-key "galley test archive <archive@galley.invalid>" "$key_algo" sign never 2>/dev/null
  fi
  rm -f "$dists/InRelease" "$dists/Release.gpg"
  "${gpg[@]}" --digest-algo SHA256 --clearsign --output "$dists/InRelease" "$dists/Release"
  "${gpg[@]}" --digest-algo SHA256 --detach-sign --output "$dists/Release.gpg" "$dists/Release"
  mkdir -p "$(dirname "$keyring")"
  "${gpg[@]}" --export --output "$tmp/keyring.gpg"
  "${gpg[@]}" --armor --export --output "$tmp/keyring.asc"
  mv "$tmp/keyring.gpg" "$keyring"
  mv "$tmp/keyring.asc" "${keyring%.gpg}.asc"
}

if ((sign_only)); then
  sign
  exit 0
fi
if [[ -n $deb_dir ]]; then add_debs; fi
[[ -d $out/pool ]] || { echo "apt-repo.sh: $out has no pool; give a DEB_DIR" >&2; exit 1; }
index
sign

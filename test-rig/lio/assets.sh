#!/usr/bin/env bash
# Host-side assets of the LIO rig. Sourced by up.sh; also runnable:
#   assets.sh deps      install missing host packages (apt-get; idempotent)
#   assets.sh kernel    download + extract the Debian kernel into the cache
#   assets.sh initrd F  build the guest initramfs into F
# The kernel is the package linux-image-amd64 depends on, fetched with
# `apt-get download` and unpacked with `dpkg-deb -x` into $CACHE (nothing
# is installed). The cache is shared by all rigs of the checkout.
# shellcheck shell=bash

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lio_deps() {
    local missing=() p sudo=
    for p in "${LIO_DEPS[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
            missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    log "installing ${missing[*]}"
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}" >&2
}

# Sets KVER (e.g. 6.1.0-56-amd64) and KTREE (the extracted package root).
lio_kernel() {
    local pkg deb
    mkdir -p "$CACHE"
    # Serialize downloads and extraction between concurrent up.sh runs.
    exec 8>"$CACHE/.lock"
    flock 8
    # The cached choice is reused offline; SANMOVER_LIO_REFRESH=1 asks apt again.
    if [[ -s $CACHE/package && ${SANMOVER_LIO_REFRESH:-} != 1 ]]; then
        pkg=$(cat "$CACHE/package")
    else
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
            sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n1)
        [[ -n $pkg ]] || die "apt-cache depends linux-image-amd64 names no kernel package (apt-get update?)"
        echo "$pkg" >"$CACHE/package"
    fi
    KTREE=$CACHE/$pkg
    if [[ ! -e $KTREE/.done ]]; then
        local t0=$SECONDS
        rm -rf "$KTREE" "$CACHE/dl"
        mkdir -p "$CACHE/dl"
        log "downloading $pkg"
        # _apt cannot write into most dirs; download as ourselves.
        (cd "$CACHE/dl" && apt-get download -o APT::Sandbox::User=root "$pkg" >&2) ||
            die "apt-get download $pkg failed"
        deb=$(find "$CACHE/dl" -name '*.deb' | head -n1)
        dpkg-deb -x "$deb" "$KTREE.tmp" || die "dpkg-deb -x $deb failed"
        mv "$KTREE.tmp" "$KTREE"
        rm -rf "$CACHE/dl"
        : >"$KTREE/.done"
        log "kernel $pkg ready in $((SECONDS - t0)) s"
    fi
    KVER=$(find "$KTREE/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -n1)
    [[ -n $KVER && -e $KTREE/boot/vmlinuz-$KVER ]] || die "no vmlinuz/modules in $KTREE"
    [[ -e $KTREE/lib/modules/$KVER/modules.dep ]] || depmod -b "$KTREE" "$KVER" ||
        die "depmod on $KTREE failed"
    exec 8>&-
    KERNEL=$KTREE/boot/vmlinuz-$KVER
}

# lio_initrd OUT GUEST_SETUP_FILE: busybox initramfs with the modules of
# LIO_MODULES and their dependencies, the guest scripts and the setup.
lio_initrd() {
    local out=$1 setup=$2 root m line ko base seen=" " required
    root=$(mktemp -d "$STATE/initrd.XXXXXX")
    mkdir -p "$root/bin" "$root/etc" "$root/lib/modules"
    cp /bin/busybox "$root/bin/busybox"
    if command -v file >/dev/null && file -L "$root/bin/busybox" | grep -q dynamic; then
        die "/bin/busybox is dynamically linked (install busybox-static)"
    fi
    cp "$LIO_DIR/guest/init" "$root/init"
    cp "$LIO_DIR/guest/rig" "$root/bin/rig"
    cp "$setup" "$root/etc/rig-setup.sh"
    cat >"$root/etc/rig.conf" <<CONF
IQN=$IQN
LUN_DIR=$GUEST_LUN_DIR
TMPFS_MB=$GUEST_TMPFS_MB
SNAP_DIR=$GUEST_SNAP_DIR
CONF
    : >"$root/lib/modules/order"
    for m in "${LIO_MODULES[@]}"; do
        # --show-depends lists dependencies (and soft dependencies) first.
        while read -r line; do
            ko=${line#insmod }
            ko=${ko%% *}
            [[ $ko == /* ]] || continue
            base=$(basename "$ko")
            base=${base%.xz}
            base=${base%.zst}
            base=${base%.gz}
            [[ $seen == *" $base "* ]] && continue
            seen+="$base "
            # Only the modules named in LIO_MODULES must load; soft
            # dependencies such as crct10dif-pclmul may fail under TCG.
            required=0
            [[ " ${LIO_MODULES[*]} " == *" ${base%.ko} "* ]] && required=1
            # busybox insmod cannot read compressed modules: decompress here.
            case $ko in
            *.ko.xz) xz -dc "$ko" >"$root/lib/modules/$base" ;;
            *.ko.zst) zstd -qdc "$ko" >"$root/lib/modules/$base" ;;
            *.ko.gz) gzip -dc "$ko" >"$root/lib/modules/$base" ;;
            *) cp "$ko" "$root/lib/modules/$base" ;;
            esac
            echo "$base $required" >>"$root/lib/modules/order"
        done < <(modprobe -d "$KTREE" -S "$KVER" --show-depends "$m" 2>&1 || echo "ERR")
        [[ $seen == *" $m.ko "* || $seen == *" ${m//-/_}.ko "* ]] ||
            die "module $m not found in $KTREE (kernel $KVER)"
    done
    lio_add_sanmover "$root"
    (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
    mv "$out.tmp" "$out"
    rm -rf "$root"
}

# lio_add_sanmover ROOT: the sanmover binary (stripped) and the shared
# libraries it needs, at their own paths, so the guest can run the TCMU
# handler. $SANMOVER_BIN, else the checkout's target/debug/sanmover; without
# one the rig comes up without TCMU and `rig tcmu-start` says why.
lio_add_sanmover() {
    local root=$1 bin lib
    bin=${SANMOVER_BIN:-$LIO_DIR/../../target/debug/sanmover}
    if [[ ! -x $bin ]]; then
        log "no sanmover binary at $bin: the guest has no TCMU handler (cargo build first)"
        return 0
    fi
    strip -o "$root/bin/sanmover" "$bin" || die "strip $bin failed"
    while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done < <(ldd "$bin" | grep -o '/[^ ]*' | sort -u)
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    case ${1:-} in
    deps) lio_deps ;;
    kernel)
        lio_kernel
        echo "$KERNEL"
        ;;
    initrd)
        [[ -n ${2:-} && -n ${3:-} ]] || die "usage: assets.sh initrd OUT SETUP"
        mkdir -p "$STATE"
        lio_kernel
        lio_initrd "$2" "$3"
        ;;
    *) die "usage: assets.sh deps | kernel | initrd OUT SETUP" ;;
    esac
fi

#!/usr/bin/env bash
# Run a shell command in the LIO rig's guest (busybox sh, root) over the
# control serial port; prints its output and exits with its status.
# Usage: ctl.sh 'CMD'      e.g. ctl.sh 'ls /sys/kernel/config/target/core/fileio_0'
# Timeout: SANMOVER_LIO_CTL_TIMEOUT (s, default 120) -> exit 124.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 1)) || die "usage: ctl.sh 'CMD'"
[[ -S $CTL_SOCK ]] || die "no control socket $CTL_SOCK (rig not up?)"
ctl "$1"

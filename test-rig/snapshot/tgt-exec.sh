#!/usr/bin/env bash
# Example snapshot script for `sanmover backup --mode serverless
# --snapshot exec:test-rig/snapshot/tgt-exec.sh[,env=RIG.ENV]`, driving the
# tgt rig the way a script would drive an array's own CLI. The contract
# (argv[1] = operation, JSON job on stdin, JSON answer on stdout) is in
# docs/snapshot-exec.md.
#
# create: cp --reflink=always of the source LU's backing file (the rig
#         keeps them on a reflink XFS), as DIR/xsnap-JOB.img
# map:    a new target IQN-xsnap-JOB12 with that file as LUN 1, read-only,
#         its own scsi_id, bound to the job's initiator only
# unmap:  delete that target;  delete: remove the file
# Every operation is idempotent. Options (job.options): env=RIG.ENV or
# control=N (else $SANMOVER_RIG_ENV), fail=OP (fail that operation: for
# fault tests).
set -euo pipefail

op=${1:-}
input=$(cat)

# JSON string of $1 (escapes backslash, quote, and control characters as
# spaces; enough for paths and messages).
jstr() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$(printf '%s' "$s" | tr '\000-\037' ' ')"
}

fail() {
    printf '{"error": %s}\n' "$(jstr "$*")"
    exit 1
}

# One python3 call turns the input into shell variables, and answers are
# written with printf (create runs while the application is frozen: keep
# it quick).
fields=$(python3 -c '
import json, shlex, sys
d = json.loads(sys.argv[1])
job, opts = d["job"], d["job"].get("options") or {}
snap = d.get("snapshot") or {}
v = {
    "job_id": job["job_id"].replace("-", ""),
    "source_url": job["source_url"],
    "initiator": job["initiator"],
    "want_fail": opts.get("fail", ""),
    "control": opts.get("control", ""),
    "envf": opts.get("env", ""),
    "snap_path": (snap.get("info") or {}).get("path", ""),
}
for k, x in v.items():
    print("%s=%s" % (k, shlex.quote(str(x))))
' "$input") || fail "input is not the expected JSON"
job_id='' source_url='' initiator='' want_fail='' control='' envf='' snap_path=''
eval "$fields"
[[ $want_fail != "$op" ]] || fail "$op refused on purpose (fail=$op)"

if [[ -z $control ]]; then
    envf=${envf:-${SANMOVER_RIG_ENV:-}}
    [[ -n $envf && -r $envf ]] || fail "no tgtd control port: give control=N or env=RIG.ENV"
    control=$(sed -n 's/^SANMOVER_RIG_TGT_CONTROL=//p' "$envf" | head -n1)
fi
[[ $control =~ ^[0-9]+$ ]] || fail "bad control port '$control'"

# iscsi://HOST:PORT/IQN/LUN
rest=${source_url#iscsi://}
portal=${rest%%/*}
rest=${rest#*/}
src_iqn=${rest%/*}
src_lun=${rest##*/}
snap_iqn=$src_iqn-xsnap-${job_id:0:12}
scsi_id=e${job_id:0:31}
designator=6${job_id:0:31}

tadm() { tgtadm -C "$control" "$@"; }

# tid_of IQN: the tid of the target with that name, or nothing.
tid_of() {
    tadm --op show --mode target | sed -n "s/^Target \([0-9]*\): $1\$/\1/p"
}

# backing_path IQN LUN
backing_path() {
    tadm --op show --mode target | awk -v iqn="$1" -v lun="$2" '
        /^Target / { in_t = ($3 == iqn) }
        in_t && $1 == "LUN:" { in_l = ($2 == lun) }
        in_t && in_l && /Backing store path:/ { print $4; exit }'
}

case $op in
create)
    src=$(backing_path "$src_iqn" "$src_lun")
    [[ -n $src && $src != None ]] || fail "no backing file for $src_iqn LUN $src_lun on tgtd $control"
    path=$(dirname "$src")/xsnap-$job_id.img
    if [[ ! -e $path ]]; then
        err=$(cp --reflink=always "$src" "$path.part" 2>&1) || {
            rm -f "$path.part"
            fail "cp --reflink=always: $err"
        }
        mv "$path.part" "$path"
    fi
    printf '{"handle": %s, "info": {"path": %s, "control": %s}}\n' \
        "$(jstr "$path")" "$(jstr "$path")" "$control"
    ;;
map)
    path=$snap_path
    [[ -n $path ]] || fail "map: the snapshot has no info.path"
    tid=$(tid_of "$snap_iqn")
    if [[ -z $tid ]]; then
        tid=$(tadm --op show --mode target | sed -n 's/^Target \([0-9]*\):.*/\1/p' | sort -n | tail -n1)
        tid=$((${tid:-0} + 1))
        tadm --lld iscsi --op new --mode target --tid "$tid" -T "$snap_iqn" >&2 ||
            fail "cannot create target $snap_iqn"
    fi
    if [[ -z $(backing_path "$snap_iqn" 1) ]]; then
        tadm --lld iscsi --op new --mode logicalunit --tid "$tid" --lun 1 -b "$path" >&2 ||
            fail "cannot add $path as LUN 1"
    fi
    tadm --lld iscsi --op update --mode logicalunit --tid "$tid" --lun 1 \
        --params "readonly=1,vendor_id=IET,product_id=XSNAPSHOT,product_rev=0001,scsi_sn=XS-${job_id:0:12},scsi_id=$scsi_id" >&2 ||
        fail "cannot set the LU's parameters"
    if ! tadm --op show --mode target | sed -n "/^Target $tid:/,/^Target /p" | grep -qxF "        $initiator"; then
        tadm --lld iscsi --op bind --mode target --tid "$tid" --initiator-name "$initiator" >&2 ||
            fail "cannot bind $initiator"
    fi
    printf '{"url": %s, "designator": %s, "read_only": true}\n' \
        "$(jstr "iscsi://$portal/$snap_iqn/1")" "$(jstr "$designator")"
    ;;
unmap)
    tid=$(tid_of "$snap_iqn")
    if [[ -n $tid ]]; then
        tadm --lld iscsi --op delete --force --mode target --tid "$tid" >&2 ||
            fail "cannot delete target $tid"
    fi
    echo '{}'
    ;;
delete)
    [[ -z $snap_path ]] || rm -f "$snap_path" "$snap_path.part"
    echo '{}'
    ;;
*)
    fail "unknown operation '$op' (create, map, unmap, delete)"
    ;;
esac

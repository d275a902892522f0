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

fail() {
    python3 -c 'import json,sys; print(json.dumps({"error": sys.argv[1]}))' "$*"
    exit 1
}

# j EXPR: a value from the input JSON (python expression over `d`).
j() {
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); v=eval(sys.argv[2]); print("" if v is None else v)' \
        "$input" "$1"
}

job_id=$(j 'd["job"]["job_id"].replace("-", "")')
source_url=$(j 'd["job"]["source_url"]')
initiator=$(j 'd["job"]["initiator"]')
want_fail=$(j 'd["job"]["options"].get("fail")')
[[ $want_fail != "$op" ]] || fail "$op refused on purpose (fail=$op)"

control=$(j 'd["job"]["options"].get("control")')
if [[ -z $control ]]; then
    envf=$(j 'd["job"]["options"].get("env")')
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
    python3 -c 'import json,sys; print(json.dumps({"handle": sys.argv[1], "info": {"path": sys.argv[1], "control": int(sys.argv[2])}}))' \
        "$path" "$control"
    ;;
map)
    path=$(j 'd["snapshot"]["info"]["path"]')
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
    python3 -c 'import json,sys; print(json.dumps({"url": sys.argv[1], "designator": sys.argv[2], "read_only": True}))' \
        "iscsi://$portal/$snap_iqn/1" "$designator"
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
    path=$(j '(d.get("snapshot") or {}).get("info", {}).get("path")')
    [[ -z $path ]] || rm -f "$path" "$path.part"
    echo '{}'
    ;;
*)
    fail "unknown operation '$op' (create, map, unmap, delete)"
    ;;
esac

//! `lio` provider (docs/snapshot-lio.md): a snapshot of a fileio LUN of
//! Linux LIO, made on the storage host itself through configfs, by a
//! [`CommandRunner`] (the LIO rig's control channel, or ssh to a real host).
//!
//! - create: `cp --reflink=always` of the source's backing file next to it
//!   (instant and copy-on-write on XFS or btrfs); `method=copy` makes a full
//!   `cp` instead, which is NOT copy-on-write and takes as long as reading
//!   the LUN (the application stays quiesced meanwhile). The copy becomes a
//!   new fileio backstore `sm-<job>` with a unit serial of its own: LIO
//!   derives the 16-byte NAA of VPD 0x83 from the serial's leading hex
//!   digits, and the job id's make it differ from every other LUN's.
//! - map: a new TPG LUN for it, mapped in the backup server's ACL only,
//!   with the ACL mapping's `write_protect` set (the backup server sees it
//!   read-only; no other initiator sees it at all).
//! - unmap: every ACL mapping of it, then the TPG LUN; delete: unmap, the
//!   backstore, the file. All idempotent: what is gone already is skipped.
//!
//! Options (`--snapshot lio:k=v,...`):
//! - `runner=rig|ssh` and the runner's own options (see
//!   [`super::runner::runner_from_options`]);
//! - `target=IQN` (default: the target of the source URL), `tpg=N` (1);
//! - `source=[HBA/]BACKSTORE`: the source's backstore, when the LUN number
//!   of the URL is not how the backup server's ACL maps it;
//! - `dir=PATH`: where the snapshot file goes (default: the source file's dir);
//! - `method=reflink|copy` (default reflink);
//! - `portal=HOST:PORT`: the portal in the mapped LUN's URL (default: the
//!   source URL's, right when the host is reached through the same address).

use std::collections::BTreeMap;

use serde_json::json;

use super::runner::{runner_from_options, sh_quote, CommandRunner};
use super::{failed, Failure, MappedLun, ProviderError, Snapshot, SnapshotJob, SnapshotProvider};
use crate::transport::url::{DeviceUrl, IscsiUrl};

/// LIO's default IEEE company id (`wwn/company_id`), the OUI in its NAAs.
pub const LIO_COMPANY_ID: u32 = 0x001405;

/// How the snapshot file is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `cp --reflink=always`: point in time, copy-on-write, instant.
    Reflink,
    /// Plain `cp`: a full copy (point in time only while quiesced).
    Copy,
}

/// The 16-byte NAA IEEE Registered Extended designator (SPC-4 7.8.6.6.5)
/// LIO reports in VPD 0x83 for a unit serial: NAA 6, the 24-bit company
/// id, then the first 25 hex digits of the serial (other characters
/// skipped), zero-padded. Same derivation as the kernel's
/// spc_gen_naa_6h_vendor_specific().
pub fn lio_naa(serial: &str, company_id: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = 0x60 | ((company_id >> 20) & 0xf) as u8;
    b[1] = (company_id >> 12) as u8;
    b[2] = (company_id >> 4) as u8;
    b[3] = ((company_id & 0xf) << 4) as u8;
    // 25 nibbles: the low one of byte 3 (nibble 7), then bytes 4..16.
    let digits = serial.chars().filter_map(|c| c.to_digit(16));
    for (nibble, d) in (7usize..32).zip(digits) {
        let byte = nibble / 2;
        if nibble % 2 == 0 {
            b[byte] |= (d as u8) << 4;
        } else {
            b[byte] |= d as u8;
        }
    }
    b
}

/// The unit serial of a snapshot: the job id, whose random leading hex
/// digits give it an NAA of its own.
pub fn snapshot_serial(job: &SnapshotJob) -> String {
    job.job_id.hyphenated().to_string()
}

/// The job's source is not an address this provider can use.
fn bad_source(op: &'static str, job: &SnapshotJob, reason: String) -> ProviderError {
    let url = job.source_url.clone();
    failed(op, Failure::Source { url, reason })
}

/// The backstore name of a job's snapshot.
pub fn snapshot_name(job: &SnapshotJob) -> String {
    format!("sm-{}", &job.job_id.simple().to_string()[..16])
}

/// A designator as given ("naa.60014…", "0x60…", "60014…") reduced to
/// lower-case hex, for comparing.
pub fn normalize_designator(d: &str) -> String {
    let d = d.trim();
    let d = d
        .strip_prefix("naa.")
        .or_else(|| d.strip_prefix("0x"))
        .unwrap_or(d);
    d.to_ascii_lowercase()
}

/// A name that goes into configfs paths: no `/`, no whitespace, not `.`/`..`.
pub(crate) fn check_name(what: &str, s: &str) -> Result<(), ProviderError> {
    let ok = !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ProviderError::Spec(format!(
            "{what} {s:?} has characters configfs names cannot carry"
        )))
    }
}

/// What the probe found out about the source backstore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// HBA dir under core/ (fileio_N).
    pub hba: String,
    /// Backstore name.
    pub name: String,
    /// Backing file.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// Unit serial (VPD 0x80, source of the NAA).
    pub serial: String,
    /// Logical block size.
    pub block_size: u32,
    /// IEEE company id of the NAA.
    pub company_id: u32,
}

impl SourceInfo {
    /// Parse the probe script's `key=value` lines.
    pub fn parse(text: &str) -> Result<SourceInfo, String> {
        let kv: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let get = |k: &str| {
            kv.get(k)
                .copied()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("the probe did not report {k}: {text}"))
        };
        let company = kv.get("company_id").copied().unwrap_or("");
        let company_id = if company.is_empty() {
            LIO_COMPANY_ID
        } else {
            u32::from_str_radix(company.trim_start_matches("0x"), 16)
                .map_err(|_| format!("company_id {company:?} is not hex"))?
        };
        Ok(SourceInfo {
            hba: get("hba")?.to_string(),
            name: get("name")?.to_string(),
            file: get("file")?.to_string(),
            size: get("size")?
                .parse()
                .map_err(|_| format!("size is not a number: {text}"))?,
            serial: get("serial")?.to_string(),
            block_size: get("block_size")?
                .parse()
                .map_err(|_| format!("block_size is not a number: {text}"))?,
            company_id,
        })
    }

    /// Hex of the NAA LIO shows for this backstore.
    pub fn naa_hex(&self) -> String {
        hex::encode(lio_naa(&self.serial, self.company_id))
    }
}

/// Settings from the spec options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LioConfig {
    /// Target IQN (default: the source URL's).
    pub target: Option<String>,
    /// TPG tag.
    pub tpg: u32,
    /// Source backstore, `[HBA/]NAME` (a bare NAME is looked up in
    /// every HBA).
    pub source: Option<String>,
    /// Directory for the snapshot file.
    pub dir: Option<String>,
    /// Reflink or full copy.
    pub method: Method,
    /// Portal for the mapped LUN's URL.
    pub portal: Option<String>,
}

impl LioConfig {
    /// From the `lio:` options (the runner's are read by the runner).
    pub fn from_options(o: &BTreeMap<String, String>) -> Result<LioConfig, ProviderError> {
        let tpg = match o.get("tpg") {
            Some(t) => t
                .parse()
                .map_err(|_| ProviderError::Spec(format!("tpg={t} is not a number")))?,
            None => 1,
        };
        let method = match o.get("method").map(String::as_str).unwrap_or("reflink") {
            "reflink" => Method::Reflink,
            "copy" => Method::Copy,
            m => return Err(ProviderError::Spec(format!("method={m}: reflink or copy"))),
        };
        if let Some(t) = o.get("target") {
            check_name("target", t)?;
        }
        if let Some(s) = o.get("source") {
            let (hba, name) = s.split_once('/').unwrap_or(("-", s));
            check_name("source", hba)?;
            check_name("source", name)?;
        }
        if let Some(d) = o.get("dir") {
            if !d.starts_with('/') || d.contains('\n') || d.contains(',') {
                return Err(ProviderError::Spec(format!("dir={d}: an absolute path")));
            }
        }
        Ok(LioConfig {
            target: o.get("target").cloned(),
            tpg,
            source: o.get("source").cloned(),
            dir: o.get("dir").cloned(),
            method,
            portal: o.get("portal").cloned(),
        })
    }
}

/// Snapshots of LIO fileio LUNs, made on the storage host.
pub struct LioProvider {
    runner: Box<dyn CommandRunner>,
    cfg: LioConfig,
}

impl std::fmt::Debug for LioProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LioProvider")
            .field("runner", &self.runner.describe())
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// Head of every script: strict, configfs root, an error helper.
const BASE_HEAD: &str = "set -e\nT=/sys/kernel/config/target\n\
    die() { echo \"$*\" >&2; exit 1; }\n\
    [ -d \"$T/core\" ] || die \"no LIO configfs at $T (target_core_mod loaded, configfs mounted?)\"\n";

/// [`BASE_HEAD`] plus `$TPG`, the target portal group's dir.
pub(crate) fn script_head(target: &str, tpg: u32) -> String {
    format!("{BASE_HEAD}TPG=$T/iscsi/{}/tpgt_{tpg}\n", sh_quote(target))
}

/// The first symlink target in DIR (configfs links: ACL -> TPG LUN,
/// TPG LUN -> backstore; their names are arbitrary).
pub(crate) const FIRST_LINK: &str = "first_link() { for f in \"$1\"/*; do [ -L \"$f\" ] && { readlink \"$f\"; return 0; }; done; return 0; }\n";

/// Shell that, given $D (a backstore dir, with $HBA and $NAME), removes
/// every ACL mapping and TPG LUN pointing at it. Idempotent.
const UNMAP_BODY: &str = r#"for l in "$TPG"/lun/lun_*; do
    [ -d "$l" ] || continue
    hit=
    for f in "$l"/*; do
        [ -L "$f" ] || continue
        case $(readlink "$f") in */core/$HBA/$NAME) hit=$f ;; esac
    done
    [ -n "$hit" ] || continue
    n=${l##*/lun_}
    for m in "$TPG"/acls/*/lun_*; do
        [ -d "$m" ] || continue
        for f in "$m"/*; do
            [ -L "$f" ] || continue
            case $(readlink "$f") in */lun/lun_$n) rm "$f" ;; esac
        done
        [ -n "$(first_link "$m")" ] || rmdir "$m" 2>/dev/null || true
    done
    rm "$hit"
    rmdir "$l"
    echo "unmapped TPG LUN $n"
done
"#;

impl LioProvider {
    /// Build from the spec options: the runner, then the LIO settings.
    pub fn new(options: &BTreeMap<String, String>) -> Result<Self, ProviderError> {
        let runner =
            runner_from_options(options).map_err(|e| ProviderError::Spec(e.to_string()))?;
        Ok(Self::with_runner(runner, LioConfig::from_options(options)?))
    }

    /// With a given runner (tests, embedding).
    pub fn with_runner(runner: Box<dyn CommandRunner>, cfg: LioConfig) -> Self {
        LioProvider { runner, cfg }
    }

    fn run(&mut self, op: &'static str, script: &str) -> Result<String, ProviderError> {
        log::debug!("lio {op} via {}:\n{script}", self.runner.describe());
        self.runner.run(script).map_err(|e| failed(op, e))
    }

    fn source_url(job: &SnapshotJob, op: &'static str) -> Result<IscsiUrl, ProviderError> {
        match DeviceUrl::parse(&job.source_url) {
            Ok(DeviceUrl::Iscsi(u)) => Ok(u),
            Ok(_) => Err(bad_source(
                op,
                job,
                "the lio provider needs an iscsi:// source".into(),
            )),
            Err(e) => Err(bad_source(op, job, e.to_string())),
        }
    }

    fn target(&self, job: &SnapshotJob, op: &'static str) -> Result<String, ProviderError> {
        let t = match &self.cfg.target {
            Some(t) => t.clone(),
            None => Self::source_url(job, op)?.target.clone(),
        };
        check_name("target", &t)?;
        Ok(t)
    }

    /// The script that finds the source backstore and prints its facts.
    pub fn probe_script(&self, job: &SnapshotJob) -> Result<String, ProviderError> {
        let url = Self::source_url(job, "create")?;
        let target = self.target(job, "create")?;
        check_name("initiator", &job.initiator)?;
        let mut s = script_head(&target, self.cfg.tpg);
        s.push_str(FIRST_LINK);
        s.push_str("[ -d \"$TPG\" ] || die \"no TPG $TPG on this host\"\n");
        match &self.cfg.source {
            Some(src) => match src.split_once('/') {
                Some((hba, name)) => {
                    s.push_str(&format!("D=$T/core/{}/{}\n", sh_quote(hba), sh_quote(name)));
                }
                // A bare name: whichever HBA holds it (one only).
                None => s.push_str(&format!(
                    "D=\nfor d in \"$T\"/core/*/{n}; do [ -d \"$d\" ] || continue; \
                     [ -z \"$D\" ] || die \"backstore {src} exists in several HBAs; name it HBA/{src}\"; D=$d; done\n\
                     [ -n \"$D\" ] || die \"no backstore {src}\"\n",
                    n = sh_quote(src)
                )),
            },
            None => {
                s.push_str(&format!(
                    "M=$TPG/acls/{ini}/lun_{lun}\n\
                     [ -d \"$M\" ] || die \"LUN {lun} is not mapped for {ini} in $TPG\"\n\
                     l=$(first_link \"$M\")\n\
                     [ -n \"$l\" ] || die \"ACL LUN {lun} of {ini} has no link\"\n\
                     b=$(first_link \"$TPG/lun/lun_${{l##*/lun_}}\")\n\
                     [ -n \"$b\" ] || die \"TPG LUN ${{l##*/lun_}} has no backstore\"\n\
                     D=$T/core/${{b#*/core/}}\n",
                    ini = sh_quote(&job.initiator),
                    lun = url.lun
                ));
            }
        }
        s.push_str(
            r#"[ -d "$D" ] || die "no backstore $D"
hba=${D%/*}; hba=${hba##*/}
case $hba in fileio_*) ;; *) die "backstore $hba/${D##*/} is not fileio: the lio provider snapshots fileio backstores only" ;; esac
echo "hba=$hba"
echo "name=${D##*/}"
sed -n 's/.* File: \([^ ]*\)  *Size: \([0-9]*\).*/file=\1\nsize=\2/p' "$D/info"
echo "serial=$(sed 's/^T10 VPD Unit Serial Number: //' "$D/wwn/vpd_unit_serial")"
echo "block_size=$(cat "$D/attrib/block_size")"
echo "company_id=$(cat "$D/wwn/company_id" 2>/dev/null || true)"
"#,
        );
        Ok(s)
    }

    /// The script that makes the copy and its backstore.
    pub fn create_script(&self, job: &SnapshotJob, src: &SourceInfo, file: &str) -> String {
        let mut s = BASE_HEAD.to_string();
        let cp = match self.cfg.method {
            Method::Reflink => "cp --reflink=always",
            Method::Copy => "cp",
        };
        s.push_str(&format!(
            "D=$T/core/{hba}/{name}\nSRCF={srcf}\nF={file}\n",
            hba = sh_quote(&src.hba),
            name = sh_quote(&snapshot_name(job)),
            srcf = sh_quote(&src.file),
            file = sh_quote(file),
        ));
        s.push_str(&format!(
            r#"if [ -d "$D" ] && [ "$(cat "$D/enable" 2>/dev/null)" = 1 ]; then echo exists; exit 0; fi
[ ! -d "$D" ] || rmdir "$D"
[ "$SRCF" != "$F" ] || die "snapshot file would be the source file"
rm -f "$F"
{cp} "$SRCF" "$F" || die "{cp} $SRCF $F failed"
mkdir "$D"
echo "fd_dev_name=$F,fd_dev_size={size}" >"$D/control"
echo 1 >"$D/enable"
[ "$(cat "$D/attrib/block_size")" = {bs} ] || echo {bs} >"$D/attrib/block_size"
echo {serial} >"$D/wwn/vpd_unit_serial"
echo created
"#,
            size = src.size,
            bs = src.block_size,
            serial = sh_quote(&snapshot_serial(job)),
        ));
        s
    }

    fn snap_field<'a>(
        snap: &'a Snapshot,
        k: &str,
        op: &'static str,
    ) -> Result<&'a str, ProviderError> {
        snap.info.get(k).and_then(|v| v.as_str()).ok_or_else(|| {
            failed(
                op,
                Failure::Missing(format!("snapshot record has no {k}: {}", snap.info)),
            )
        })
    }

    /// The script that exports the snapshot to the backup server only.
    pub fn map_script(&self, job: &SnapshotJob, snap: &Snapshot) -> Result<String, ProviderError> {
        let target = Self::snap_field(snap, "target", "map")?;
        let tpg = snap.info.get("tpg").and_then(|v| v.as_u64()).unwrap_or(1) as u32;
        let hba = Self::snap_field(snap, "hba", "map")?;
        check_name("initiator", &job.initiator)?;
        let mut s = script_head(target, tpg);
        s.push_str(FIRST_LINK);
        s.push_str(&format!(
            "HBA={}\nNAME={}\nINI={}\nD=$T/core/$HBA/$NAME\n",
            sh_quote(hba),
            sh_quote(&snap.handle),
            sh_quote(&job.initiator)
        ));
        s.push_str(
            r#"[ -d "$TPG" ] || die "no TPG $TPG on this host"
[ -d "$D" ] || die "no backstore $HBA/$NAME (deleted?)"
# With generated node ACLs (demo mode) every initiator sees every LUN.
[ "$(cat "$TPG/attrib/generate_node_acls")" = 0 ] || die "$TPG has generate_node_acls=1: any initiator would see the snapshot; masking needs explicit ACLs"
n=
for l in "$TPG"/lun/lun_*; do
    [ -d "$l" ] || continue
    for f in "$l"/*; do
        [ -L "$f" ] || continue
        case $(readlink "$f") in */core/$HBA/$NAME) n=${l##*/lun_} ;; esac
    done
done
# mkdir is the allocation: a number another job took meanwhile fails
# it, and the next one is tried.
if [ -z "$n" ]; then
    n=0
    until mkdir "$TPG/lun/lun_$n" 2>/dev/null; do
        n=$((n + 1))
        [ "$n" -lt 65536 ] || die "no free LUN number in $TPG"
    done
    ln -s "$D" "$TPG/lun/lun_$n/$NAME" || {
        rmdir "$TPG/lun/lun_$n"
        die "could not link $HBA/$NAME as TPG LUN $n"
    }
fi
[ -d "$TPG/acls/$INI" ] || mkdir "$TPG/acls/$INI" 2>/dev/null || [ -d "$TPG/acls/$INI" ]
m=
for a in "$TPG/acls/$INI"/lun_*; do
    [ -d "$a" ] || continue
    case $(first_link "$a") in */lun/lun_$n) m=${a##*/lun_} ;; esac
done
if [ -z "$m" ]; then
    # The TPG LUN's own number when free (initiators then see the numbers
    # the TPG uses), else the lowest free one.
    m=$n
    if ! mkdir "$TPG/acls/$INI/lun_$m" 2>/dev/null; then
        m=0
        until mkdir "$TPG/acls/$INI/lun_$m" 2>/dev/null; do
            m=$((m + 1))
            [ "$m" -lt 65536 ] || die "no free mapped LUN number for $INI"
        done
    fi
    ln -s "$TPG/lun/lun_$n" "$TPG/acls/$INI/lun_$m/map" || {
        rmdir "$TPG/acls/$INI/lun_$m"
        die "could not map TPG LUN $n for $INI"
    }
fi
# write_protect works on a linked mapping only (LIO ignores it before).
echo 1 >"$TPG/acls/$INI/lun_$m/write_protect"
[ "$(cat "$TPG/acls/$INI/lun_$m/write_protect")" = 1 ] || die "write_protect did not stick on $INI lun_$m"
# Nobody else may have it.
for a in "$TPG"/acls/*/lun_*; do
    [ -d "$a" ] || continue
    case $a in "$TPG/acls/$INI/"*) continue ;; esac
    case $(first_link "$a") in */lun/lun_$n) die "TPG LUN $n is also mapped in ${a%/lun_*}" ;; esac
done
echo "lun=$m"
"#,
        );
        Ok(s)
    }

    /// The script that removes every export of the snapshot.
    pub fn unmap_script(&self, snap: &Snapshot, op: &'static str) -> Result<String, ProviderError> {
        let target = Self::snap_field(snap, "target", op)?;
        let tpg = snap.info.get("tpg").and_then(|v| v.as_u64()).unwrap_or(1) as u32;
        let hba = Self::snap_field(snap, "hba", op)?;
        let mut s = script_head(target, tpg);
        s.push_str(FIRST_LINK);
        s.push_str(&format!(
            "HBA={}\nNAME={}\n",
            sh_quote(hba),
            sh_quote(&snap.handle)
        ));
        s.push_str("[ -d \"$TPG\" ] || exit 0\n");
        s.push_str(UNMAP_BODY);
        Ok(s)
    }

    /// The script that removes the snapshot (after unmapping it).
    pub fn delete_script(&self, snap: &Snapshot) -> Result<String, ProviderError> {
        let file = Self::snap_field(snap, "file", "delete")?;
        let source_file = Self::snap_field(snap, "source_file", "delete")?;
        // The catalog is data, not code: delete only a file of this
        // provider's naming (`sm-<16 hex>.img`, named after its backstore)
        // that is not the source LU's backing file.
        let own_name = snap.handle.len() == 19
            && snap.handle.starts_with("sm-")
            && snap.handle[3..].bytes().all(|b| b.is_ascii_hexdigit())
            && file.rsplit('/').next() == Some(&format!("{}.img", snap.handle));
        if file == source_file || !own_name {
            return Err(failed(
                "delete",
                Failure::Refused(format!(
                    "refusing to delete {file} (backstore {}): not a snapshot this provider made",
                    snap.handle
                )),
            ));
        }
        let mut s = self.unmap_script(snap, "delete")?;
        s.push_str(&format!(
            "D=$T/core/$HBA/$NAME\nF={}\n\
             if [ -d \"$D\" ]; then rmdir \"$D\" || die \"could not remove backstore $HBA/$NAME\"; fi\n\
             rm -f \"$F\"\necho deleted\n",
            sh_quote(file)
        ));
        Ok(s)
    }

    fn delete_quietly(&mut self, snap: &Snapshot) {
        if let Ok(s) = self.delete_script(snap) {
            if let Err(e) = self.run("delete", &s) {
                log::warn!("lio: cleaning up after a failed create: {e}");
            }
        }
    }

    /// The snapshot `create` makes for `job`, after checking the source
    /// backstore is the LUN the engine identified.
    fn locate(
        &mut self,
        op: &'static str,
        job: &SnapshotJob,
    ) -> Result<(Snapshot, SourceInfo), ProviderError> {
        let target = self.target(job, op)?;
        let probe = self.probe_script(job)?;
        let out = self.run(op, &probe)?;
        let src = SourceInfo::parse(&out).map_err(|reason| failed(op, Failure::Answer(reason)))?;
        // The backstore found must be the LUN the engine identified: a
        // snapshot of the wrong LUN would be a silent disaster.
        if let Some(want) = &job.source_designator {
            let want = normalize_designator(want);
            if want != src.naa_hex() {
                return Err(failed(
                    op,
                    Failure::Refused(format!(
                        "backstore {}/{} (serial {}, NAA {}) is not the source LUN (designator {want}); name it with source=HBA/NAME",
                        src.hba, src.name, src.serial, src.naa_hex()
                    )),
                ));
            }
        }
        let dir = match &self.cfg.dir {
            Some(d) => d.trim_end_matches('/').to_string(),
            None => match src.file.rsplit_once('/') {
                Some((d, _)) => d.to_string(),
                None => ".".to_string(),
            },
        };
        let name = snapshot_name(job);
        let file = format!("{dir}/{name}.img");
        let serial = snapshot_serial(job);
        let snap = Snapshot {
            handle: name,
            info: json!({
                "target": target,
                "tpg": self.cfg.tpg,
                "hba": src.hba,
                "file": file,
                "size": src.size,
                "serial": serial,
                "naa": hex::encode(lio_naa(&serial, src.company_id)),
                "method": match self.cfg.method { Method::Reflink => "reflink", Method::Copy => "copy" },
                "source_backstore": format!("{}/{}", src.hba, src.name),
                "source_file": src.file,
                "source_serial": src.serial,
                "runner": self.runner.describe(),
            }),
        };
        Ok((snap, src))
    }
}

impl SnapshotProvider for LioProvider {
    fn name(&self) -> &'static str {
        "lio"
    }

    fn create(&mut self, job: &SnapshotJob) -> Result<Snapshot, ProviderError> {
        let (snap, src) = self.locate("create", job)?;
        let file = Self::snap_field(&snap, "file", "create")?.to_string();
        let script = self.create_script(job, &src, &file);
        if let Err(e) = self.run("create", &script) {
            self.delete_quietly(&snap);
            return Err(e);
        }
        Ok(snap)
    }

    fn discard(&mut self, job: &SnapshotJob) -> Result<String, ProviderError> {
        let (snap, _) = self.locate("discard", job)?;
        // The delete script unmaps, removes the backstore and the file, each
        // only if there.
        let script = self.delete_script(&snap)?;
        self.run("discard", &script)?;
        Ok(format!(
            "backstore {} and its file removed if they were there",
            snap.handle
        ))
    }

    fn map(&mut self, job: &SnapshotJob, snap: &Snapshot) -> Result<MappedLun, ProviderError> {
        let script = self.map_script(job, snap)?;
        let out = self.run("map", &script)?;
        let lun: u64 = out
            .lines()
            .filter_map(|l| l.trim().strip_prefix("lun="))
            .next_back()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                failed(
                    "map",
                    Failure::Answer(format!("no LUN number in the answer: {out}")),
                )
            })?;
        let target = Self::snap_field(snap, "target", "map")?;
        let src = Self::source_url(job, "map")?;
        let portal = match &self.cfg.portal {
            Some(p) => p.clone(),
            None => src.portal(),
        };
        // The source's CHAP user carries over; a secret never goes into a
        // URL the catalog stores (SANMOVER_CHAP_PASSWORD supplies it).
        let user = src.user.map(|u| format!("{u}@")).unwrap_or_default();
        Ok(MappedLun {
            url: format!("iscsi://{user}{portal}/{target}/{lun}"),
            designator: snap
                .info
                .get("naa")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            read_only: true,
        })
    }

    fn unmap(&mut self, _job: &SnapshotJob, snap: &Snapshot) -> Result<(), ProviderError> {
        let script = self.unmap_script(snap, "unmap")?;
        self.run("unmap", &script).map(|_| ())
    }

    fn delete(&mut self, job: &SnapshotJob, snap: &Snapshot) -> Result<(), ProviderError> {
        if snap.handle != snapshot_name(job) {
            return Err(failed(
                "delete",
                Failure::Refused(format!(
                    "refusing to delete backstore {}: job {} names its snapshot {}",
                    snap.handle,
                    job.job_id,
                    snapshot_name(job)
                )),
            ));
        }
        let script = self.delete_script(snap)?;
        self.run("delete", &script).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::runner::RunnerError;
    use std::sync::{Arc, Mutex};

    /// A runner that records scripts and answers from a list.
    struct Scripted {
        seen: Arc<Mutex<Vec<String>>>,
        answers: Vec<Result<String, String>>,
    }

    impl CommandRunner for Scripted {
        fn run(&mut self, script: &str) -> Result<String, RunnerError> {
            self.seen.lock().unwrap().push(script.to_string());
            match self.answers.remove(0) {
                Ok(s) => Ok(s),
                Err(e) => Err(RunnerError::Failed {
                    what: "scripted".into(),
                    code: Some(1),
                    output: e,
                }),
            }
        }
        fn describe(&self) -> String {
            "scripted".into()
        }
    }

    fn job() -> SnapshotJob {
        SnapshotJob {
            job_id: uuid::Uuid::parse_str("3f2a9c1e-7b44-4d0a-9e55-0123456789ab").unwrap(),
            source_url: "iscsi://127.0.0.1:3262/iqn.2026-11.org.sanmover.lio:target/3".into(),
            source_designator: None,
            initiator: "iqn.2026-11.org.sanmover:backup-server".into(),
            options: BTreeMap::new(),
        }
    }

    const PROBE: &str = "hba=fileio_0\nname=prod\nfile=/snapfs/prod.img\nsize=4194304\n\
                         serial=5d3a0c1b-1111-4222-8333-444455556666\nblock_size=512\ncompany_id=0x001405\n";

    fn provider(answers: Vec<Result<String, String>>) -> (LioProvider, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let r = Scripted {
            seen: seen.clone(),
            answers,
        };
        let cfg = LioConfig::from_options(&BTreeMap::new()).unwrap();
        (LioProvider::with_runner(Box::new(r), cfg), seen)
    }

    #[test]
    fn naa_golden() {
        // The rig's LUN 0 (serial a0a05a4e-0000-4000-8000-000000000000):
        // 6 001405 then the serial's first 25 hex digits.
        assert_eq!(
            hex::encode(lio_naa(
                "a0a05a4e-0000-4000-8000-000000000000",
                LIO_COMPANY_ID
            )),
            "6001405a0a05a4e00004000800000000"
        );
        // A short serial is zero-padded; non-hex characters are skipped.
        assert_eq!(
            hex::encode(lio_naa("xyz-12", 0xabcdef)),
            "6abcdef1200000000000000000000000"
        );
    }

    #[test]
    fn serial_and_name_from_job() {
        let j = job();
        assert_eq!(snapshot_serial(&j), "3f2a9c1e-7b44-4d0a-9e55-0123456789ab");
        assert_eq!(snapshot_name(&j), "sm-3f2a9c1e7b444d0a");
        assert_eq!(normalize_designator("naa.6001405ABC"), "6001405abc");
        assert_eq!(normalize_designator("0x6001405abc"), "6001405abc");
    }

    #[test]
    fn probe_output_parses() {
        let s = SourceInfo::parse(PROBE).unwrap();
        assert_eq!(s.file, "/snapfs/prod.img");
        assert_eq!(s.size, 4 << 20);
        assert_eq!(s.company_id, LIO_COMPANY_ID);
        assert_eq!(s.naa_hex(), "60014055d3a0c1b11114222833344445");
        assert!(SourceInfo::parse("hba=fileio_0\n").is_err());
        assert!(SourceInfo::parse(&PROBE.replace("size=4194304", "size=x")).is_err());
    }

    #[test]
    fn probe_resolves_the_acl_lun() {
        let (p, _) = provider(vec![]);
        let s = p.probe_script(&job()).unwrap();
        assert!(
            s.contains("M=$TPG/acls/'iqn.2026-11.org.sanmover:backup-server'/lun_3"),
            "{s}"
        );
        assert!(s.contains("TPG=$T/iscsi/'iqn.2026-11.org.sanmover.lio:target'/tpgt_1"));
    }

    #[test]
    fn create_map_unmap_delete_sequence() {
        let (mut p, seen) = provider(vec![
            Ok(PROBE.into()),
            Ok("created\n".into()),
            Ok("lun=4\n".into()),
            Ok("unmapped TPG LUN 7\n".into()),
            Ok("deleted\n".into()),
        ]);
        let j = job();
        let snap = p.create(&j).unwrap();
        assert_eq!(snap.handle, "sm-3f2a9c1e7b444d0a");
        assert_eq!(snap.info["file"], "/snapfs/sm-3f2a9c1e7b444d0a.img");
        assert_eq!(snap.info["source_file"], "/snapfs/prod.img");
        let m = p.map(&j, &snap).unwrap();
        assert_eq!(
            m.url,
            "iscsi://127.0.0.1:3262/iqn.2026-11.org.sanmover.lio:target/4"
        );
        assert_eq!(
            m.designator.as_deref(),
            Some("60014053f2a9c1e7b444d0a9e5501234")
        );
        assert!(m.read_only);
        p.unmap(&j, &snap).unwrap();
        p.delete(&j, &snap).unwrap();
        let seen = seen.lock().unwrap();
        assert!(
            seen[1].contains("cp --reflink=always \"$SRCF\" \"$F\""),
            "{}",
            seen[1]
        );
        assert!(seen[1].contains("fd_dev_size=4194304"));
        assert!(seen[1]
            .contains("echo '3f2a9c1e-7b44-4d0a-9e55-0123456789ab' >\"$D/wwn/vpd_unit_serial\""));
        assert!(seen[2].contains("write_protect"));
        assert!(seen[4].contains("F='/snapfs/sm-3f2a9c1e7b444d0a.img'"));
        assert!(seen[4].contains("rmdir \"$D\""));
    }

    #[test]
    fn create_refuses_another_lun() {
        let (mut p, seen) = provider(vec![Ok(PROBE.into())]);
        let mut j = job();
        j.source_designator = Some("naa.6001405a0a05a4e00004000800000000".into());
        let e = p.create(&j).unwrap_err();
        assert!(e.to_string().contains("is not the source LUN"), "{e}");
        // Nothing was made: only the probe ran.
        assert_eq!(seen.lock().unwrap().len(), 1);
        let (mut p, _) = provider(vec![Ok(PROBE.into()), Ok("created".into())]);
        j.source_designator = Some("60014055D3A0C1B11114222833344445".into());
        p.create(&j).unwrap();
    }

    #[test]
    fn failed_create_cleans_up() {
        let (mut p, seen) = provider(vec![
            Ok(PROBE.into()),
            Err("cp: failed to clone: Operation not supported".into()),
            Ok("deleted".into()),
        ]);
        let e = p.create(&job()).unwrap_err();
        assert!(e.to_string().contains("Operation not supported"), "{e}");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(seen[2].contains("rm -f \"$F\""));
    }

    #[test]
    fn delete_refuses_foreign_files() {
        let (p, _) = provider(vec![]);
        let snap = Snapshot {
            handle: "prod".into(),
            info: json!({"target": "t", "hba": "fileio_0", "file": "/a.img", "source_file": "/b.img"}),
        };
        assert!(p.delete_script(&snap).is_err());
        let snap = Snapshot {
            handle: "sm-1".into(),
            info: json!({"target": "t", "hba": "fileio_0", "file": "/a.img", "source_file": "/a.img"}),
        };
        assert!(p.delete_script(&snap).is_err());
        // A snapshot name, but the file is not the snapshot's.
        let snap = Snapshot {
            handle: "sm-3f2a9c1e7b444d0a".into(),
            info: json!({"target": "t", "hba": "fileio_0", "file": "/snapfs/prod.img", "source_file": "/snapfs/other.img"}),
        };
        assert!(p.delete_script(&snap).is_err());
        let snap = Snapshot {
            handle: "sm-3f2a9c1e7b444d0a".into(),
            info: json!({"target": "t", "hba": "fileio_0", "file": "/snapfs/sm-3f2a9c1e7b444d0a.img", "source_file": "/snapfs/prod.img"}),
        };
        assert!(p.delete_script(&snap).is_ok());
    }

    #[test]
    fn options() {
        let mut o = BTreeMap::new();
        o.insert("method".to_string(), "copy".to_string());
        o.insert("tpg".to_string(), "2".to_string());
        o.insert("source".to_string(), "fileio_1/db".to_string());
        let c = LioConfig::from_options(&o).unwrap();
        assert_eq!(c.method, Method::Copy);
        assert_eq!(c.tpg, 2);
        for (k, v) in [
            ("method", "snap"),
            ("tpg", "x"),
            ("source", "a b"),
            ("dir", "rel/dir"),
            ("target", "../x"),
        ] {
            let mut o = BTreeMap::new();
            o.insert(k.to_string(), v.to_string());
            assert!(LioConfig::from_options(&o).is_err(), "{k}={v}");
        }
    }

    /// The scripts are valid sh (syntax only: `sh -n`).
    #[test]
    fn scripts_parse_as_sh() {
        let (p, _) = provider(vec![]);
        let j = job();
        let src = SourceInfo::parse(PROBE).unwrap();
        let snap = Snapshot {
            handle: snapshot_name(&j),
            info: json!({"target": "iqn.x:t", "tpg": 1, "hba": "fileio_0",
                         "file": "/snapfs/sm-3f2a9c1e7b444d0a.img", "source_file": "/snapfs/prod.img"}),
        };
        let named = |v: &str| {
            let mut o = BTreeMap::new();
            o.insert("source".to_string(), v.to_string());
            let cfg = LioConfig::from_options(&o).unwrap();
            let (q, _) = provider(vec![]);
            LioProvider::with_runner(q.runner, cfg)
                .probe_script(&job())
                .unwrap()
        };
        let bare = named("prod");
        assert!(bare.contains("\"$T\"/core/*/'prod'"), "{bare}");
        let full = named("fileio_2/prod");
        assert!(full.contains("D=$T/core/'fileio_2'/'prod'"), "{full}");
        for s in [
            p.probe_script(&j).unwrap(),
            bare,
            full,
            p.create_script(&j, &src, "/snapfs/sm-3f2a9c1e7b444d0a.img"),
            p.map_script(&j, &snap).unwrap(),
            p.unmap_script(&snap, "unmap").unwrap(),
            p.delete_script(&snap).unwrap(),
        ] {
            let out = std::process::Command::new("sh")
                .arg("-n")
                .arg("-c")
                .arg(&s)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{s}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

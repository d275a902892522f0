//! `tgt` provider: snapshots of LUNs served by a user-space tgtd whose
//! backing files sit on a reflink filesystem (the tgt rig's XFS).
//!
//! - create: `cp --reflink=always` of the source LU's backing file (found
//!   with `tgtadm --op show`): instant and copy-on-write;
//! - map: a new target holding that file as LUN 1, made read-only
//!   (`--params readonly=1`), with its own identity (`scsi_id`, so the
//!   16-byte NAA differs from the source's), then bound to the backup
//!   server's initiator name only (`--op bind --initiator-name`);
//! - unmap: delete that target (forced: our own session may linger);
//! - delete: remove the file.
//!
//! Options (`tgt:k=v,…`): `control=N` (tgtadm -C N; else `env=FILE`, a
//! rig.env with SANMOVER_RIG_TGT_CONTROL; else the port recorded with the
//! snapshot; else `$SANMOVER_RIG_ENV`), `dir=DIR`
//! (where the snapshot file goes; default next to the source file, and it
//! must be on the same reflink filesystem), `portal=HOST:PORT` (default the
//! source's), `tid=N` (target id for the export; default the first free),
//! `acl=ALL` (export to every initiator: only for demonstrating the
//! masking check, which then refuses the snapshot), `tgtadm=PATH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::{failed, Failure, MappedLun, ProviderError, Snapshot, SnapshotJob, SnapshotProvider};
use crate::transport::url::IscsiUrl;

/// Snapshots of LUNs served by a user-space tgtd.
#[derive(Debug, Clone)]
pub struct TgtProvider {
    control: Option<u16>,
    env: Option<PathBuf>,
    dir: Option<PathBuf>,
    portal: Option<String>,
    tid: Option<u32>,
    acl_all: bool,
    tgtadm: String,
}

/// One LU of `tgtadm --op show --mode target`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShownLun {
    /// "LUN: N".
    pub lun: u32,
    /// "Backing store path:", None for tgt's controller LUN 0.
    pub path: Option<String>,
    /// "Readonly: Yes".
    pub readonly: bool,
    /// "SCSI ID:" (tgt's `scsi_id` parameter).
    pub scsi_id: String,
}

/// One target of `tgtadm --op show --mode target`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShownTarget {
    /// Target id ("Target N:").
    pub tid: u32,
    /// Target IQN.
    pub name: String,
    /// Its LUNs, in the order shown.
    pub luns: Vec<ShownLun>,
    /// Initiator names (or ALL) under "ACL information".
    pub acl: Vec<String>,
}

/// Parse the text of `tgtadm --op show --mode target` (tgt 1.0.x layout:
/// "Target N: IQN", then indented sections).
pub fn parse_show(text: &str) -> Vec<ShownTarget> {
    let mut out: Vec<ShownTarget> = Vec::new();
    let mut in_acl = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = line.strip_prefix("Target ") {
            if let Some((n, name)) = rest.split_once(':') {
                if let Ok(tid) = n.trim().parse() {
                    out.push(ShownTarget {
                        tid,
                        name: name.trim().to_string(),
                        ..Default::default()
                    });
                    in_acl = false;
                    continue;
                }
            }
        }
        let Some(cur) = out.last_mut() else { continue };
        // Section headers sit at 4 spaces; their content deeper.
        let indent = line.len() - line.trim_start().len();
        if indent <= 4 && t.ends_with(':') {
            in_acl = t == "ACL information:";
            continue;
        }
        if in_acl {
            if !t.is_empty() {
                cur.acl.push(t.to_string());
            }
            continue;
        }
        if let Some(v) = t.strip_prefix("LUN: ") {
            if let Ok(lun) = v.trim().parse() {
                cur.luns.push(ShownLun {
                    lun,
                    ..Default::default()
                });
            }
        } else if let Some(lu) = cur.luns.last_mut() {
            if let Some(v) = t.strip_prefix("Backing store path: ") {
                let v = v.trim();
                lu.path = (v != "None" && !v.is_empty()).then(|| v.to_string());
            } else if let Some(v) = t.strip_prefix("Readonly: ") {
                lu.readonly = v.trim() == "Yes";
            } else if let Some(v) = t.strip_prefix("SCSI ID: ") {
                lu.scsi_id = v.trim().to_string();
            }
        }
    }
    out
}

fn missing(op: &'static str, what: String) -> ProviderError {
    failed(op, Failure::Missing(what))
}

fn file_failed(
    op: &'static str,
    what: &'static str,
    path: &std::path::Path,
    source: std::io::Error,
) -> ProviderError {
    let path = path.to_path_buf();
    failed(op, Failure::File { what, path, source })
}

/// KEY from a rig.env-style file.
fn env_file_value(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// Target name of a job's export: the source target's name plus the job.
fn export_iqn(src: &IscsiUrl, job: &SnapshotJob) -> String {
    let id = job.job_id.simple().to_string();
    format!("{}-snap-{}", src.target, &id[..12])
}

/// The `scsi_id` the export gets, and the designator tgt derives from it:
/// its 16-byte NAA is the 32 hex digits of scsi_id with the first nibble
/// replaced by 6 (seen on tgt 1.0.85). Leading digits come
/// from the job id, so the NAA differs from the source's early.
fn export_identity(job: &SnapshotJob) -> (String, String) {
    let id = job.job_id.simple().to_string();
    let scsi_id = format!("c{}", &id[..31]);
    let naa = format!("6{}", &scsi_id[1..]);
    (scsi_id, naa)
}

impl TgtProvider {
    /// Build from the spec options (see the module doc).
    pub fn new(options: &BTreeMap<String, String>) -> Result<Self, ProviderError> {
        let mut p = TgtProvider {
            control: None,
            env: None,
            dir: None,
            portal: None,
            tid: None,
            acl_all: false,
            tgtadm: "tgtadm".to_string(),
        };
        for (k, v) in options {
            match k.as_str() {
                "control" => {
                    p.control = Some(v.parse().map_err(|_| {
                        ProviderError::Spec(format!("tgt: control={v} is not a port number"))
                    })?)
                }
                // Read when an operation runs: cleanup may run after that
                // rig is gone, and then falls back to the snapshot's record.
                "env" => p.env = Some(PathBuf::from(v)),
                "dir" => p.dir = Some(PathBuf::from(v)),
                "portal" => p.portal = Some(v.clone()),
                "tid" => {
                    p.tid = Some(v.parse().map_err(|_| {
                        ProviderError::Spec(format!("tgt: tid={v} is not a number"))
                    })?)
                }
                "acl" if v == "ALL" => p.acl_all = true,
                "tgtadm" => p.tgtadm = v.clone(),
                _ => {
                    return Err(ProviderError::Spec(format!(
                    "tgt: unknown option {k}={v} (control, env, dir, portal, tid, acl=ALL, tgtadm)"
                )))
                }
            }
        }
        Ok(p)
    }

    /// The tgtd control port, first found of: `control=N`; the rig.env of
    /// `env=FILE`; the port recorded in the snapshot when it was made (so
    /// cleanup works after that env file is gone, and never asks another
    /// tgtd); `$SANMOVER_RIG_ENV`.
    fn control(&self, op: &'static str, snap: Option<&Snapshot>) -> Result<u16, ProviderError> {
        let from_file = |f: &Path| {
            env_file_value(f, "SANMOVER_RIG_TGT_CONTROL").and_then(|c| c.parse::<u16>().ok())
        };
        if let Some(c) = self.control {
            return Ok(c);
        }
        if let Some(c) = self.env.as_deref().and_then(from_file) {
            return Ok(c);
        }
        if let Some(c) = snap
            .and_then(|s| s.info.get("control"))
            .and_then(|c| c.as_u64())
            .and_then(|c| u16::try_from(c).ok())
        {
            return Ok(c);
        }
        if let Some(env) = &self.env {
            return Err(failed(
                op,
                Failure::Config(format!(
                    "env={}: no SANMOVER_RIG_TGT_CONTROL there (is the rig up?)",
                    env.display()
                )),
            ));
        }
        std::env::var_os("SANMOVER_RIG_ENV")
            .and_then(|f| from_file(Path::new(&f)))
            .ok_or_else(|| {
                failed(
                    op,
                    Failure::Config("no tgtd control port: give tgt:control=N or tgt:env=RIG.ENV, or set SANMOVER_RIG_ENV".into()),
                )
            })
    }

    fn tgtadm(
        &self,
        op: &'static str,
        control: u16,
        args: &[&str],
    ) -> Result<String, ProviderError> {
        let out = Command::new(&self.tgtadm)
            .arg("-C")
            .arg(control.to_string())
            .args(args)
            .output()
            .map_err(|source| {
                let program = self.tgtadm.clone();
                failed(op, Failure::Spawn { program, source })
            })?;
        if !out.status.success() {
            return Err(failed(
                op,
                Failure::Exited {
                    command: format!("tgtadm -C {control} {}", args.join(" ")),
                    said: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                },
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `tgtadm --lld iscsi --op VERB --mode MODE --tid TID REST...`
    fn on_target(
        &self,
        op: &'static str,
        control: u16,
        (verb, mode): (&str, &str),
        tid: u32,
        rest: &[&str],
    ) -> Result<String, ProviderError> {
        let tid = tid.to_string();
        let mut args = vec![
            "--lld", "iscsi", "--op", verb, "--mode", mode, "--tid", &tid,
        ];
        args.extend_from_slice(rest);
        self.tgtadm(op, control, &args)
    }

    /// Target `tid` as tgtd shows it now.
    fn shown_target(
        &self,
        op: &'static str,
        control: u16,
        tid: u32,
    ) -> Result<ShownTarget, ProviderError> {
        self.show(op, control)?
            .into_iter()
            .find(|t| t.tid == tid)
            .ok_or_else(|| missing(op, format!("target {tid} vanished")))
    }

    fn show(&self, op: &'static str, control: u16) -> Result<Vec<ShownTarget>, ProviderError> {
        Ok(parse_show(&self.tgtadm(
            op,
            control,
            &["--op", "show", "--mode", "target"],
        )?))
    }

    /// The tid of the target named `iqn`, made if missing. Without a
    /// `tid` option the first free number is taken; another job taking it
    /// at the same moment makes tgtadm refuse, and the next one is tried.
    fn export_target(&self, control: u16, iqn: &str) -> Result<u32, ProviderError> {
        const OP: &str = "map";
        let attempts = if self.tid.is_some() { 1 } else { 8 };
        let mut last = None;
        for _ in 0..attempts {
            let targets = self.show(OP, control)?;
            if let Some(t) = targets.iter().find(|t| t.name == iqn) {
                return Ok(t.tid);
            }
            let tid = match self.tid {
                Some(t) => t,
                None => targets.iter().map(|t| t.tid).max().unwrap_or(0) + 1,
            };
            match self.on_target(OP, control, ("new", "target"), tid, &["-T", iqn]) {
                Ok(_) => return Ok(tid),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| failed(OP, Failure::Missing("no target id".into()))))
    }

    fn source(op: &'static str, job: &SnapshotJob) -> Result<IscsiUrl, ProviderError> {
        IscsiUrl::parse(&job.source_url).map_err(|e| {
            let (url, reason) = (job.source_url.clone(), e.to_string());
            failed(op, Failure::Source { url, reason })
        })
    }

    fn snap_path(snap: &Snapshot) -> Option<PathBuf> {
        snap.info
            .get("path")
            .and_then(|p| p.as_str())
            .map(PathBuf::from)
    }

    /// Where `create` puts the snapshot for `job`: its record, the source
    /// LUN's backing file, the snapshot file and the partial copy's name.
    fn locate(
        &mut self,
        op: &'static str,
        job: &SnapshotJob,
    ) -> Result<(Snapshot, PathBuf, PathBuf, PathBuf), ProviderError> {
        let control = self.control(op, None)?;
        let src = Self::source(op, job)?;
        let targets = self.show(op, control)?;
        let t = targets
            .iter()
            .find(|t| t.name == src.target)
            .ok_or_else(|| missing(op, format!("tgtd {control} has no target {}", src.target)))?;
        let lu = t
            .luns
            .iter()
            .find(|l| l.lun == u32::from(src.lun))
            .ok_or_else(|| missing(op, format!("target {} has no LUN {}", src.target, src.lun)))?;
        let source_path = PathBuf::from(lu.path.as_deref().ok_or_else(|| {
            missing(
                op,
                format!("LUN {} of {} has no backing file", src.lun, src.target),
            )
        })?);
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => source_path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        let path = dir.join(format!("snap-{}.img", job.job_id.simple()));
        let snap = Snapshot {
            handle: path.display().to_string(),
            info: json!({
                "path": path,
                "source_path": source_path,
                "control": control,
                "target": export_iqn(&src, job),
            }),
        };
        let part = dir.join(format!("snap-{}.img.part", job.job_id.simple()));
        Ok((snap, source_path, path, part))
    }
}

impl SnapshotProvider for TgtProvider {
    fn name(&self) -> &'static str {
        "tgt"
    }

    fn create(&mut self, job: &SnapshotJob) -> Result<Snapshot, ProviderError> {
        const OP: &str = "create";
        let (snap, source_path, path, part) = self.locate(OP, job)?;
        if path.exists() {
            return Ok(snap);
        }
        // Copy to a temporary name and rename: a crash mid-copy never
        // leaves a file that looks like a finished snapshot.
        let out = Command::new("cp")
            .arg("--reflink=always")
            .arg(&source_path)
            .arg(&part)
            .output()
            .map_err(|source| {
                let program = "cp".to_string();
                failed(OP, Failure::Spawn { program, source })
            })?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&part);
            return Err(failed(
                OP,
                Failure::Exited {
                    command: format!(
                        "cp --reflink=always {} {}",
                        source_path.display(),
                        part.display()
                    ),
                    said: format!(
                        "{} (the snapshot needs a reflink filesystem such as XFS with reflink=1, source and snapshot on the same one)",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                },
            ));
        }
        std::fs::rename(&part, &path).map_err(|source| file_failed(OP, "rename", &part, source))?;
        Ok(snap)
    }

    fn discard(&mut self, job: &SnapshotJob) -> Result<String, ProviderError> {
        let (snap, _, path, part) = self.locate("discard", job)?;
        let mut found = Vec::new();
        if part.exists() {
            std::fs::remove_file(&part)
                .map_err(|source| file_failed("discard", "remove", &part, source))?;
            found.push(format!("partial copy {} removed", part.display()));
        }
        if path.exists() {
            self.unmap(job, &snap)?;
            self.delete(job, &snap)?;
            found.push(format!("snapshot {} deleted", path.display()));
        }
        Ok(if found.is_empty() {
            "no snapshot was made".to_string()
        } else {
            found.join("; ")
        })
    }

    fn map(&mut self, job: &SnapshotJob, snap: &Snapshot) -> Result<MappedLun, ProviderError> {
        const OP: &str = "map";
        let control = self.control(OP, Some(snap))?;
        let src = Self::source(OP, job)?;
        let path =
            Self::snap_path(snap).ok_or_else(|| missing(OP, "snapshot has no path".into()))?;
        let iqn = export_iqn(&src, job);
        let (scsi_id, naa) = export_identity(job);
        let tid = self.export_target(control, &iqn)?;
        let t = self.shown_target(OP, control, tid)?;
        if !t.luns.iter().any(|l| l.lun == 1) {
            let p = path.display().to_string();
            let lun = ["--lun", "1", "-b", &p];
            self.on_target(OP, control, ("new", "logicalunit"), tid, &lun)?;
        }
        // Read-only and the identity before any initiator may log in.
        let params = format!(
            "readonly=1,vendor_id=IET,product_id=SNAPSHOT,product_rev=0001,scsi_sn=SNAP-{},scsi_id={scsi_id}",
            &scsi_id[1..13]
        );
        let update = ["--lun", "1", "--params", &params];
        self.on_target(OP, control, ("update", "logicalunit"), tid, &update)?;
        let who = if self.acl_all { "ALL" } else { &job.initiator };
        if !t.acl.iter().any(|a| a == who) {
            let flag = if self.acl_all {
                "-I"
            } else {
                "--initiator-name"
            };
            self.on_target(OP, control, ("bind", "target"), tid, &[flag, who])?;
        }
        let lu = self
            .shown_target(OP, control, tid)?
            .luns
            .into_iter()
            .find(|l| l.lun == 1)
            .ok_or_else(|| missing(OP, format!("LUN 1 of target {tid} vanished")))?;
        let portal = self.portal.clone().unwrap_or_else(|| src.portal());
        Ok(MappedLun {
            url: format!("iscsi://{portal}/{iqn}/1"),
            designator: Some(naa),
            read_only: lu.readonly,
        })
    }

    fn unmap(&mut self, job: &SnapshotJob, snap: &Snapshot) -> Result<(), ProviderError> {
        const OP: &str = "unmap";
        let control = self.control(OP, Some(snap))?;
        let src = Self::source(OP, job)?;
        let iqn = export_iqn(&src, job);
        let targets = self.show(OP, control)?;
        if let Some(t) = targets.iter().find(|t| t.name == iqn) {
            self.on_target(OP, control, ("delete", "target"), t.tid, &["--force"])?;
        }
        Ok(())
    }

    fn delete(&mut self, job: &SnapshotJob, snap: &Snapshot) -> Result<(), ProviderError> {
        const OP: &str = "delete";
        let path = Self::snap_path(snap).unwrap_or_else(|| {
            // A snapshot recorded before create answered: derive the name.
            PathBuf::from(format!("snap-{}.img", job.job_id.simple()))
        });
        check_own_file(job, snap, &path)?;
        for p in [
            path.clone(),
            PathBuf::from(format!("{}.part", path.display())),
        ] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(file_failed(OP, "removing", &p, source)),
            }
        }
        Ok(())
    }
}

/// The catalog is data, not code: `delete` removes only the file this
/// provider names for `job` (`snap-<job id>.img`), and never the source
/// LU's backing file, whatever path the catalog row holds.
fn check_own_file(job: &SnapshotJob, snap: &Snapshot, path: &Path) -> Result<(), ProviderError> {
    let own = format!("snap-{}.img", job.job_id.simple());
    let refuse = |why: &str| {
        Err(failed(
            "delete",
            Failure::Refused(format!("refusing to delete {}: {why}", path.display())),
        ))
    };
    if path.file_name().and_then(|n| n.to_str()) != Some(own.as_str()) {
        return refuse(&format!("not this job's snapshot file ({own})"));
    }
    let source = snap.info.get("source_path").and_then(|p| p.as_str());
    let same = |s: &str| {
        let (a, b) = (Path::new(s), path);
        a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    };
    if source.is_some_and(same) {
        return refuse("it is the source LU's backing file");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_touches_only_this_jobs_snapshot_file() {
        let dir = tempfile::tempdir().unwrap();
        let job = SnapshotJob {
            job_id: uuid::Uuid::from_u128(0x1234),
            source_url: "iscsi://127.0.0.1/iqn.x:t/1".into(),
            source_designator: None,
            initiator: "iqn.x:i".into(),
            options: Default::default(),
        };
        let prod = dir.path().join("prod.img");
        std::fs::write(&prod, b"production").unwrap();
        let mut p = TgtProvider::new(&Default::default()).unwrap();
        // A catalog row pointing delete at the production file.
        let evil = Snapshot {
            handle: "x".into(),
            info: json!({ "path": prod, "source_path": prod }),
        };
        assert!(p.delete(&job, &evil).is_err());
        assert!(prod.exists());
        // A link named like the snapshot that leads to the source.
        let link = dir.path().join(format!("snap-{}.img", job.job_id.simple()));
        std::os::unix::fs::symlink(&prod, &link).unwrap();
        let sneaky = Snapshot {
            handle: "x".into(),
            info: json!({ "path": link, "source_path": prod }),
        };
        assert!(p.delete(&job, &sneaky).is_err());
        assert!(prod.exists());
        std::fs::remove_file(&link).unwrap();
        // The real snapshot file goes.
        std::fs::write(&link, b"snapshot").unwrap();
        let real = Snapshot {
            handle: "x".into(),
            info: json!({ "path": link, "source_path": prod }),
        };
        p.delete(&job, &real).unwrap();
        assert!(!link.exists() && prod.exists());
    }

    const SHOW: &str = "Target 1: iqn.2026-11.org.sanmover.rig:disk
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            Readonly: No
            Backing store type: null
            Backing store path: None
        LUN: 1
            Type: disk
            SCSI ID: d15a4e00000000000000000000000001
            Readonly: No
            Backing store type: rdwr
            Backing store path: /rig/data/disk1.img
    Account information:
    ACL information:
        ALL
Target 3: iqn.x-snap-0123
    System information:
        Driver: iscsi
    LUN information:
        LUN: 1
            Type: disk
            SCSI ID: c0123
            Readonly: Yes
            Backing store path: /rig/data/snap.img
    Account information:
    ACL information:
        iqn.me:backup
";

    #[test]
    fn show_is_parsed() {
        let t = parse_show(SHOW);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].tid, 1);
        assert_eq!(t[0].name, "iqn.2026-11.org.sanmover.rig:disk");
        assert_eq!(t[0].luns.len(), 2);
        assert_eq!(t[0].luns[0].path, None);
        assert_eq!(t[0].luns[1].path.as_deref(), Some("/rig/data/disk1.img"));
        assert!(!t[0].luns[1].readonly);
        assert_eq!(t[0].acl, vec!["ALL"]);
        assert_eq!(t[1].tid, 3);
        assert!(t[1].luns[0].readonly);
        assert_eq!(t[1].luns[0].scsi_id, "c0123");
        assert_eq!(t[1].acl, vec!["iqn.me:backup"]);
    }

    #[test]
    fn show_of_garbage_is_empty() {
        assert!(parse_show("").is_empty());
        assert!(parse_show("LUN: 1\nTarget x: y\n    ACL information:\n").is_empty());
    }

    #[test]
    fn identity_is_naa6_of_scsi_id() {
        let job = SnapshotJob {
            job_id: uuid::Uuid::parse_str("0123456789abcdef0123456789abcdef").unwrap(),
            source_url: "iscsi://127.0.0.1:3261/iqn.a:disk/1".into(),
            source_designator: None,
            initiator: "iqn.me".into(),
            options: BTreeMap::new(),
        };
        let (id, naa) = export_identity(&job);
        assert_eq!(id, "c0123456789abcdef0123456789abcde");
        assert_eq!(naa, "60123456789abcdef0123456789abcde");
        let src = IscsiUrl::parse(&job.source_url).unwrap();
        assert_eq!(export_iqn(&src, &job), "iqn.a:disk-snap-0123456789ab");
    }

    #[test]
    fn options_are_checked() {
        let o = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(TgtProvider::new(&o("control", "x")).is_err());
        assert!(TgtProvider::new(&o("nosuch", "1")).is_err());
        assert_eq!(
            TgtProvider::new(&o("control", "123")).unwrap().control,
            Some(123)
        );
        assert!(TgtProvider::new(&o("acl", "ALL")).unwrap().acl_all);
    }
}

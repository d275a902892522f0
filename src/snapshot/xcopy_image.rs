//! `xcopy-image` provider: the classic "image copy" of the production LUN,
//! made by the storage itself. `create` sends EXTENDED COPY block->block
//! commands (`engine::xcopy`, planner and driver, `Fallback::Never`: no
//! byte of the image crosses the backup server) that copy the whole source
//! into a spare LUN of the same size. The engine quiesces the application
//! before `create` and thaws it after, so the application is held for the
//! length of the copy; the engine reports that time.
//!
//! The spare is the snapshot: `map` hands out its URL and designator,
//! `unmap`/`delete` leave it in place for the next job (its content, an
//! image of production data, stays on the spare until overwritten).
//!
//! Options (`--snapshot xcopy-image:k=v,...`):
//! - `spare=URL` (required): the spare LUN, as the backup server reaches it;
//! - `copy-manager=URL`: the LUN that receives EXTENDED COPY (default: the
//!   source); `copy-manager-initiator=IQN`: the name of that session
//!   (default: the backup server's, which must see both LUNs);
//! - `mask=lio` plus runner options (`runner=rig|ssh`, see
//!   [`super::runner::runner_from_options`]), `tpg=N`: on Linux LIO, `map`
//!   checks that the spare is mapped in the backup server's ACL only and
//!   sets that mapping's `write_protect`; `unmap` clears it (so the next
//!   copy can write). Without `mask`, the spare must be given already
//!   masked to the backup server, and is reported writable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::lio::{check_name, normalize_designator, script_head, FIRST_LINK};
use super::runner::{runner_from_options, sh_quote, CommandRunner};
use super::{MappedLun, ProviderError, Snapshot, SnapshotJob, SnapshotProvider};
use crate::device::{Disk, Scsi};
use crate::engine::xcopy::{discover_limits, plan, run, Endpoint, Fallback};
use crate::transport::iscsi::IscsiOptions;
use crate::transport::url::DeviceUrl;
use crate::transport::{Connector, Transport};

/// Masking of the spare on an LIO target, through a runner.
struct LioMask {
    runner: Box<dyn CommandRunner>,
    tpg: u32,
}

/// Image copies by EXTENDED COPY into a spare LUN.
pub struct XcopyImageProvider {
    spare: String,
    copy_manager: Option<String>,
    copy_manager_initiator: Option<String>,
    mask: Option<LioMask>,
    /// Opens the source, spare and copy manager sessions, with the
    /// caller's session options (`--cmd-timeout` and the rest).
    sessions: Arc<dyn Connector + Send + Sync>,
}

impl std::fmt::Debug for XcopyImageProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XcopyImageProvider")
            .field("spare", &self.spare)
            .field("copy_manager", &self.copy_manager)
            .field("copy_manager_initiator", &self.copy_manager_initiator)
            .field("mask", &self.mask.as_ref().map(|m| m.runner.describe()))
            .finish()
    }
}

fn failed(op: &'static str, reason: impl Into<String>) -> ProviderError {
    ProviderError::Failed {
        op,
        reason: reason.into(),
    }
}

/// An error with its causes, "a: b: c".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

type Dev = Box<dyn Transport + Send>;

/// Open an iSCSI URL (under `initiator`) or a local SG device.
fn open(
    sessions: &dyn Connector,
    url: &str,
    initiator: &str,
    op: &'static str,
) -> Result<Dev, ProviderError> {
    sessions
        .open(url, initiator)
        .map_err(|e| failed(op, format!("opening {url} as {initiator}: {}", chain(&e))))
}

/// Block size, block count and best LU designator of a disk.
fn endpoint(d: &mut Disk<Dev>, what: &str) -> Result<(Endpoint, u64), ProviderError> {
    Endpoint::of(d).map_err(|e| failed("create", format!("{what}: {}", chain(&e))))
}

impl XcopyImageProvider {
    /// Build from the spec options, with default session options.
    pub fn new(o: &BTreeMap<String, String>) -> Result<Self, ProviderError> {
        Self::with_sessions(o, Arc::new(IscsiOptions::default()))
    }

    /// Build from the spec options; `sessions` opens every session the
    /// image copy needs.
    pub fn with_sessions(
        o: &BTreeMap<String, String>,
        sessions: Arc<dyn Connector + Send + Sync>,
    ) -> Result<Self, ProviderError> {
        let spare = o
            .get("spare")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ProviderError::Spec(
                    "xcopy-image needs spare=URL (the LUN that receives the image)".into(),
                )
            })?
            .clone();
        DeviceUrl::parse(&spare).map_err(|e| ProviderError::Spec(format!("spare={spare}: {e}")))?;
        if let Some(cm) = o.get("copy-manager") {
            DeviceUrl::parse(cm)
                .map_err(|e| ProviderError::Spec(format!("copy-manager={cm}: {e}")))?;
        }
        let mask = match o.get("mask").map(String::as_str) {
            None | Some("none") => None,
            Some("lio") => {
                let tpg = match o.get("tpg") {
                    Some(t) => t
                        .parse()
                        .map_err(|_| ProviderError::Spec(format!("tpg={t} is not a number")))?,
                    None => 1,
                };
                let runner =
                    runner_from_options(o).map_err(|e| ProviderError::Spec(e.to_string()))?;
                Some(LioMask { runner, tpg })
            }
            Some(m) => return Err(ProviderError::Spec(format!("mask={m}: lio or none"))),
        };
        Ok(XcopyImageProvider {
            spare,
            copy_manager: o.get("copy-manager").cloned(),
            copy_manager_initiator: o.get("copy-manager-initiator").cloned(),
            mask,
            sessions,
        })
    }

    /// The LIO script that checks the spare is mapped for the backup server
    /// only, and sets that mapping's write_protect to `wp`.
    pub fn mask_script(
        &self,
        job: &SnapshotJob,
        tpg: u32,
        wp: bool,
    ) -> Result<String, ProviderError> {
        let u = match DeviceUrl::parse(&self.spare) {
            Ok(DeviceUrl::Iscsi(u)) => u,
            _ => {
                return Err(ProviderError::Spec(
                    "mask=lio needs an iscsi:// spare".into(),
                ))
            }
        };
        check_name("target", &u.target)?;
        check_name("initiator", &job.initiator)?;
        let mut s = script_head(&u.target, tpg);
        s.push_str(FIRST_LINK);
        s.push_str(&format!(
            "INI={}\nM=$TPG/acls/$INI/lun_{}\nWP={}\n",
            sh_quote(&job.initiator),
            u.lun,
            u8::from(wp)
        ));
        s.push_str(
            r#"[ -d "$TPG" ] || die "no TPG $TPG on this host"
[ "$(cat "$TPG/attrib/generate_node_acls")" = 0 ] || die "$TPG has generate_node_acls=1: every initiator sees the spare"
[ -d "$M" ] || die "the spare is not mapped for $INI (no $M)"
l=$(first_link "$M")
[ -n "$l" ] || die "$M has no link"
n=${l##*/lun_}
for a in "$TPG"/acls/*/lun_*; do
    [ -d "$a" ] || continue
    case $a in "$TPG/acls/$INI/"*) continue ;; esac
    case $(first_link "$a") in */lun/lun_$n) die "the spare (TPG LUN $n) is also mapped for ${a%/lun_*}; it must be masked to $INI only" ;; esac
done
echo "$WP" >"$M/write_protect"
[ "$(cat "$M/write_protect")" = "$WP" ] || die "write_protect did not take $WP"
echo "tpg_lun=$n write_protect=$WP"
"#,
        );
        Ok(s)
    }

    fn set_write_protect(
        &mut self,
        job: &SnapshotJob,
        wp: bool,
        op: &'static str,
    ) -> Result<bool, ProviderError> {
        let Some(tpg) = self.mask.as_ref().map(|m| m.tpg) else {
            return Ok(false);
        };
        let script = self.mask_script(job, tpg, wp)?;
        let m = self.mask.as_mut().expect("checked above");
        m.runner
            .run(&script)
            .map_err(|e| failed(op, e.to_string()))?;
        Ok(true)
    }
    /// The source must be the job's LU, and the spare another LU of the
    /// same size: the designators (hex) of both.
    fn check_spare(
        &self,
        job: &SnapshotJob,
        (s_ep, s_blocks): (&Endpoint, u64),
        (d_ep, d_blocks): (&Endpoint, u64),
    ) -> Result<(String, String), ProviderError> {
        let s_hex = hex::encode(&s_ep.designator.value);
        let d_hex = hex::encode(&d_ep.designator.value);
        if let Some(want) = &job.source_designator {
            if normalize_designator(want) != s_hex {
                return Err(failed(
                    "create",
                    format!(
                        "{} shows designator {s_hex}, not the source's {want}",
                        job.source_url
                    ),
                ));
            }
        }
        if s_hex == d_hex {
            return Err(failed(
                "create",
                format!(
                    "the spare {} has the source's designator {s_hex}: it is the same LUN (or LIO serials that differ too late)",
                    self.spare
                ),
            ));
        }
        if s_blocks != d_blocks || s_ep.block_size != d_ep.block_size {
            return Err(failed(
                "create",
                format!(
                    "the spare has {d_blocks} blocks of {} bytes, the source {s_blocks} of {}: an image copy needs a spare of the same size",
                    d_ep.block_size.0, s_ep.block_size.0
                ),
            ));
        }
        Ok((s_hex, d_hex))
    }
}

impl SnapshotProvider for XcopyImageProvider {
    fn name(&self) -> &'static str {
        "xcopy-image"
    }

    fn create(&mut self, job: &SnapshotJob) -> Result<Snapshot, ProviderError> {
        // Writable for the copy; also checks the masking before any copying.
        self.set_write_protect(job, false, "create")?;
        let ini = job.initiator.as_str();
        let cm_url = self.copy_manager.clone().unwrap_or(job.source_url.clone());
        let cm_ini = self
            .copy_manager_initiator
            .clone()
            .unwrap_or(ini.to_string());
        let sessions = self.sessions.as_ref();
        let mut src = Disk::open(open(sessions, &job.source_url, ini, "create")?)
            .map_err(|e| failed("create", format!("source: {}", chain(&e))))?;
        let mut dst = Disk::open(open(sessions, &self.spare, ini, "create")?)
            .map_err(|e| failed("create", format!("spare: {}", chain(&e))))?;
        let mut cm = Scsi::new(open(sessions, &cm_url, &cm_ini, "create")?);
        let (s_ep, s_blocks) = endpoint(&mut src, "source")?;
        let (d_ep, d_blocks) = endpoint(&mut dst, "spare")?;
        let (s_hex, d_hex) = self.check_spare(job, (&s_ep, s_blocks), (&d_ep, d_blocks))?;
        let limits = discover_limits(&mut cm)
            .map_err(|e| failed("create", format!("copy manager limits: {}", chain(&e))))?;
        let p =
            plan(&s_ep, &d_ep, 0, 0, s_blocks, &limits).map_err(|e| failed("create", chain(&e)))?;
        let t0 = Instant::now();
        let report = run(
            &mut cm,
            &mut src,
            &mut dst,
            s_ep.block_size,
            &p,
            Fallback::Never,
        )
        .map_err(|e| {
            failed(
                "create",
                format!("EXTENDED COPY into the spare: {}", chain(&e)),
            )
        })?;
        let seconds = t0.elapsed().as_secs_f64();
        log::info!(
            "xcopy-image: {} bytes copied by the storage in {} commands, {seconds:.2} s",
            report.bytes,
            report.xcopy_commands
        );
        Ok(Snapshot {
            handle: self.spare.clone(),
            info: json!({
                "spare": self.spare,
                "spare_designator": d_hex,
                "source_designator": s_hex,
                "copy_manager": cm_url,
                "copy_manager_initiator": cm_ini,
                "blocks": s_blocks,
                "block_size": s_ep.block_size.0,
                "bytes": report.bytes,
                "xcopy_commands": report.xcopy_commands,
                "bytes_through_initiator": report.bytes_through_initiator,
                "data_bytes_through_initiator": report.data_bytes_through_initiator,
                "copy_seconds": seconds,
            }),
        })
    }

    fn map(&mut self, job: &SnapshotJob, snap: &Snapshot) -> Result<MappedLun, ProviderError> {
        let read_only = self.set_write_protect(job, true, "map")?;
        Ok(MappedLun {
            url: self.spare.clone(),
            designator: snap
                .info
                .get("spare_designator")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            read_only,
        })
    }

    fn unmap(&mut self, job: &SnapshotJob, _snap: &Snapshot) -> Result<(), ProviderError> {
        self.set_write_protect(job, false, "unmap").map(|_| ())
    }

    fn delete(&mut self, _job: &SnapshotJob, _snap: &Snapshot) -> Result<(), ProviderError> {
        // The spare is kept for the next image copy.
        Ok(())
    }

    fn discard(&mut self, _job: &SnapshotJob) -> Result<String, ProviderError> {
        Ok("nothing to remove: the spare LUN is kept for the next image copy".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &[(&str, &str)]) -> BTreeMap<String, String> {
        s.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn job() -> SnapshotJob {
        SnapshotJob {
            job_id: uuid::Uuid::nil(),
            source_url: "iscsi://127.0.0.1:3262/iqn.2026-11.org.sanmover.lio:target/0".into(),
            source_designator: None,
            initiator: "iqn.2026-11.org.sanmover:backup-server".into(),
            options: BTreeMap::new(),
        }
    }

    const SPARE: &str = "iscsi://127.0.0.1:3262/iqn.2026-11.org.sanmover.lio:target/5";

    #[test]
    fn spec_options() {
        assert!(XcopyImageProvider::new(&opts(&[])).is_err());
        assert!(XcopyImageProvider::new(&opts(&[("spare", "iscsi://h/x")])).is_err());
        assert!(XcopyImageProvider::new(&opts(&[("spare", SPARE), ("mask", "tgt")])).is_err());
        let p = XcopyImageProvider::new(&opts(&[("spare", SPARE)])).unwrap();
        assert!(p.mask.is_none());
        assert_eq!(p.spare, SPARE);
    }

    #[test]
    fn unmasked_map_is_the_spare() {
        let mut p = XcopyImageProvider::new(&opts(&[("spare", SPARE)])).unwrap();
        let snap = Snapshot {
            handle: SPARE.into(),
            info: json!({"spare_designator": "6001405aa"}),
        };
        let m = p.map(&job(), &snap).unwrap();
        assert_eq!(m.url, SPARE);
        assert_eq!(m.designator.as_deref(), Some("6001405aa"));
        assert!(!m.read_only);
        p.unmap(&job(), &snap).unwrap();
        p.delete(&job(), &snap).unwrap();
    }

    #[test]
    fn mask_script_names_the_spare_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("rig.env");
        std::fs::write(
            &env,
            "SANMOVER_LIO_CTL=/x/ctl.sh\nSANMOVER_LIO_STATE_DIR=/tmp/s\n",
        )
        .unwrap();
        let p = XcopyImageProvider::new(&opts(&[
            ("spare", SPARE),
            ("mask", "lio"),
            ("rig-env", env.to_str().unwrap()),
        ]))
        .unwrap();
        let s = p.mask_script(&job(), 1, true).unwrap();
        assert!(s.contains("M=$TPG/acls/$INI/lun_5\nWP=1\n"), "{s}");
        assert!(s.contains("INI='iqn.2026-11.org.sanmover:backup-server'"));
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

//! The serverless engine against an in-memory "array": a fake provider and
//! connector over memory disks, so every failure branch (identity
//! mismatch, a snapshot that is really the production LUN, masking,
//! provider failures) runs without a target, and the guard on the
//! production session is exercised directly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sanmover::catalog::{Catalog, SnapshotState};
use sanmover::device::{Disk, Tape};
use sanmover::engine::host::BackupOptions;
use sanmover::engine::progress::NoProgress;
use sanmover::engine::restore::{restore, RestoreOptions};
use sanmover::engine::serverless::{backup, Connector, Counted, ServerlessOptions, SessionStats};
use sanmover::engine::set_writer::SetRequest;
use sanmover::engine::volume::write_label;
use sanmover::engine::EngineError;
use sanmover::lu::{MemDisk, MemTape};
use sanmover::scsi::{BlockSize, Lba};
use sanmover::snapshot::{
    Failure, MappedLun, ProviderError, Snapshot, SnapshotJob, SnapshotProvider,
};
use sanmover::transport::memory::MemoryTransport;
use sanmover::transport::{Transport, TransportError};

const PROD: &str = "iscsi://127.0.0.1:3260/iqn.fake:prod/0";
const ME: &str = "iqn.fake:backup";
const BLOCKS: u64 = 2048;

#[derive(Default)]
struct Array {
    prod: Vec<u8>,
    snaps: HashMap<String, Vec<u8>>,
    /// url -> (snapshot handle, initiators allowed; "ALL" for everyone)
    exports: HashMap<String, (String, Vec<String>)>,
    fail: Option<&'static str>,
    acl_all: bool,
    /// Serve the export under this serial instead of its handle.
    serve_serial: Option<String>,
    promise_nothing: bool,
}

type Shared = Arc<Mutex<Array>>;

fn designator_of(serial: &str) -> String {
    let mut d = Disk::open(MemoryTransport::new(serial, MemDisk::new(serial, 1, 512))).unwrap();
    let di = d.scsi.device_identification().unwrap();
    hex::encode(&di.best_lu_designator().unwrap().value)
}

struct FakeProvider(Shared);

fn refused(op: &'static str) -> ProviderError {
    ProviderError::Failed {
        op,
        source: Failure::Refused(format!("{op} refused by the fake array")),
    }
}

impl SnapshotProvider for FakeProvider {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn create(&mut self, job: &SnapshotJob) -> Result<Snapshot, ProviderError> {
        let mut a = self.0.lock().unwrap();
        if a.fail == Some("create") {
            return Err(refused("create"));
        }
        let handle = format!("SNAP-{}", &job.job_id.simple().to_string()[..8]);
        let data = a.prod.clone();
        a.snaps.insert(handle.clone(), data);
        Ok(Snapshot {
            handle,
            info: serde_json::json!({}),
        })
    }
    fn map(&mut self, job: &SnapshotJob, snap: &Snapshot) -> Result<MappedLun, ProviderError> {
        let mut a = self.0.lock().unwrap();
        if a.fail == Some("map") {
            return Err(refused("map"));
        }
        let url = format!(
            "iscsi://127.0.0.1:3260/iqn.fake:{}/0",
            snap.handle.to_lowercase()
        );
        let acl = if a.acl_all {
            vec!["ALL".to_string()]
        } else {
            vec![job.initiator.clone()]
        };
        a.exports.insert(url.clone(), (snap.handle.clone(), acl));
        Ok(MappedLun {
            url,
            designator: (!a.promise_nothing).then(|| designator_of(&snap.handle)),
            read_only: true,
        })
    }
    fn unmap(&mut self, _job: &SnapshotJob, snap: &Snapshot) -> Result<(), ProviderError> {
        self.0
            .lock()
            .unwrap()
            .exports
            .retain(|_, (h, _)| *h != snap.handle);
        Ok(())
    }
    fn delete(&mut self, _job: &SnapshotJob, snap: &Snapshot) -> Result<(), ProviderError> {
        self.0.lock().unwrap().snaps.remove(&snap.handle);
        Ok(())
    }
}

struct FakeConnector(Shared);

impl Connector for FakeConnector {
    fn open(
        &self,
        url: &str,
        initiator: &str,
    ) -> Result<Box<dyn Transport + Send>, TransportError> {
        let a = self.0.lock().unwrap();
        let (serial, data) = if url == PROD {
            ("PROD".to_string(), a.prod.clone())
        } else if let Some((handle, acl)) = a.exports.get(url) {
            if !acl.iter().any(|x| x == initiator || x == "ALL") {
                return Err(TransportError::Login {
                    portal: "127.0.0.1:3260".into(),
                    target: url.into(),
                    reason: "Target not found".into(),
                });
            }
            let serial = a.serve_serial.clone().unwrap_or_else(|| handle.clone());
            (serial, a.snaps[handle].clone())
        } else {
            return Err(TransportError::Connect {
                portal: "127.0.0.1:3260".into(),
                reason: format!("no such LU {url}"),
            });
        };
        let mut d = MemDisk::new(&serial, BLOCKS, 512);
        d.data_mut().copy_from_slice(&data);
        Ok(Box::new(MemoryTransport::new(url, d)))
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    catalog: Catalog,
    array: Shared,
    tape: Tape<MemoryTransport<MemTape>>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
    let mut prod = vec![0u8; (BLOCKS * 512) as usize];
    let mut x = 0x1234_5678_9abc_def1u64;
    for b in prod.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let array = Arc::new(Mutex::new(Array {
        prod,
        ..Default::default()
    }));
    let mut tape = Tape::open(MemoryTransport::new("tape", MemTape::new("T", 64 << 20))).unwrap();
    write_label(&mut tape, "MEM001").unwrap();
    Setup {
        _dir: dir,
        catalog,
        array,
        tape,
    }
}

fn opts() -> ServerlessOptions {
    ServerlessOptions {
        spec: "fake".into(),
        source: PROD.into(),
        initiator: ME.into(),
        maskcheck_initiator: None,
        quiesce: None,
        thaw: None,
        backup: BackupOptions {
            set: SetRequest {
                tape_block: 64 * 1024,
                source_url: PROD.into(),
                tape_url: "mem://tape".into(),
                stop: Default::default(),
                ..Default::default()
            },
            queue_depth: 4,
            reservation_key: 1,
            keep_reservation: false,
        },
    }
}

fn run(s: &mut Setup) -> Result<sanmover::engine::serverless::ServerlessSummary, EngineError> {
    let mut p = FakeProvider(s.array.clone());
    backup(
        &FakeConnector(s.array.clone()),
        &mut p,
        &mut s.tape,
        &s.catalog,
        &opts(),
        &NoProgress,
    )
}

fn assert_nothing_left(s: &Setup) {
    let a = s.array.lock().unwrap();
    assert!(a.snaps.is_empty(), "snapshots left: {:?}", a.snaps.keys());
    assert!(a.exports.is_empty(), "exports left: {:?}", a.exports.keys());
}

fn assert_failed(s: &mut Setup, words: &str) {
    let e = run(s).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, EngineError::Serverless { .. }), "{text}");
    assert!(text.contains(words), "{words:?} not in {text}");
    let job = s.catalog.snapshot_jobs().unwrap().pop().unwrap();
    assert_eq!(job.state, SnapshotState::Failed);
    assert!(job.released);
    assert!(job.reason.unwrap().contains(words));
    assert_nothing_left(s);
}

#[test]
fn a_good_run_backs_up_the_snapshot_and_releases_it() {
    let mut s = setup();
    let r = run(&mut s).unwrap();
    assert_eq!(r.state, SnapshotState::Released);
    assert_eq!(r.masking.refused_by, "login");
    assert_eq!(Some(r.snapshot_designator.clone()), r.mapped.designator);
    assert_nothing_left(&s);
    let job = s.catalog.snapshot_job(r.job_id).unwrap();
    assert_eq!(job.state, SnapshotState::Released);
    assert_eq!(job.set_id, Some(r.backup.set.set_id));

    let prod = &r.sessions[0];
    assert_eq!(prod.role, "production");
    assert!(
        prod.commands.keys().all(|k| k == "12" || k == "91"),
        "{prod:?}"
    );
    assert_eq!(prod.bytes_out, 0);
    assert!(prod.bytes_in < 4096);

    let row = s.catalog.set(&r.backup.set.set_id.to_string()).unwrap();
    assert_eq!(row.info.source_url, PROD);
    assert_eq!(row.info.mode, "serverless");
    let mut target = Disk::open(MemoryTransport::new("t", MemDisk::new("T", BLOCKS, 512))).unwrap();
    restore(&mut s.tape, &row, &mut target, &at(0), &NoProgress).unwrap();
    let back = target.read(Lba(0), BLOCKS as u32, BlockSize(512)).unwrap();
    assert!(back == s.array.lock().unwrap().prod);
}

#[test]
fn provider_failures_are_recorded_and_released() {
    let mut s = setup();
    s.array.lock().unwrap().fail = Some("create");
    assert_failed(&mut s, "create refused");
    s.array.lock().unwrap().fail = Some("map");
    assert_failed(&mut s, "map refused");
    assert!(s.catalog.sets().unwrap().is_empty());
}

#[test]
fn an_export_everyone_sees_is_refused_before_a_byte_is_read() {
    let mut s = setup();
    s.array.lock().unwrap().acl_all = true;
    assert_failed(&mut s, "masking check failed");
    assert!(s.catalog.sets().unwrap().is_empty());
}

#[test]
fn a_snapshot_with_another_identity_is_refused() {
    let mut s = setup();
    s.array.lock().unwrap().serve_serial = Some("SOMETHING-ELSE".into());
    assert_failed(&mut s, "identity check");
    assert!(s.catalog.sets().unwrap().is_empty());
}

#[test]
fn a_snapshot_that_is_the_production_lun_is_refused() {
    let mut s = setup();
    {
        let mut a = s.array.lock().unwrap();
        a.serve_serial = Some("PROD".into());
        a.promise_nothing = true;
    }
    assert_failed(&mut s, "production LUN's own designator");
    assert!(s.catalog.sets().unwrap().is_empty());
}

#[test]
fn the_production_guard_refuses_reads_and_writes() {
    let stats = Arc::new(Mutex::new(SessionStats::default()));
    let lu = MemDisk::new("P", 16, 512);
    let t = Counted::new(
        MemoryTransport::new("p", lu),
        stats.clone(),
        Some(vec![0x12, 0x35, 0x91, 0x00]),
    );
    let mut d = Disk::open(t).unwrap();
    d.synchronize_cache().unwrap();
    let e = d.read(Lba(0), 1, BlockSize(512)).unwrap_err().to_string();
    assert!(e.contains("only gets INQUIRY"), "{e}");
    assert!(d.write(Lba(0), BlockSize(512), vec![0; 512]).is_err());
    let st = stats.lock().unwrap();
    assert_eq!(st.refused, 2);
    assert_eq!(st.bytes_out, 0);
    assert!(!st.commands.contains_key("88") && !st.commands.contains_key("8a"));
    assert!(st.commands.contains_key("12"));
}

/// Restore options: to `lba`, 4 writes in flight.
fn at(lba: u64) -> RestoreOptions {
    RestoreOptions {
        target_lba: Some(Lba(lba)),
        queue_depth: 4,
        overwrite_source: false,
    }
}

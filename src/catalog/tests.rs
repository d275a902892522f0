use std::ffi::OsString;
use std::path::PathBuf;

use rusqlite::params;
use uuid::Uuid;

use super::*;

/// An extent of `blocks` blocks from `lba`.
fn e(lba: u64, blocks: u64) -> Extent {
    (Lba(lba), BlockCount(blocks))
}

fn temp_catalog() -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = Catalog::open(&dir.path().join("catalog.db")).expect("open");
    (dir, cat)
}

fn volume(name: &str) -> VolumeRow {
    VolumeRow {
        id: Uuid::new_v4(),
        name: name.to_string(),
        created: 1_700_000_000,
        last_file: None,
    }
}

fn new_set(id: Uuid, vol: Uuid, file_number: u32, started: i64) -> SetInfo {
    SetInfo {
        id,
        volume: vol,
        file_number,
        mode: "host".into(),
        label: format!("set {file_number}"),
        source_url: "iscsi://127.0.0.1:3260/iqn.2024-01.test:disk/1".into(),
        source_designator: "naa.6001405abcdef".into(),
        lba: Lba(2048),
        blocks: BlockCount(4096),
        block_size: BlockSize(512),
        payload_size: 262_144,
        started,
        digest_algorithm: "blake3".into(),
        tape_block: None,
    }
}

fn outcome(state: SetState) -> SetOutcome {
    SetOutcome {
        state,
        records: 9,
        bytes: 2_097_152,
        digest: Some("ab".repeat(32)),
        ended: 1_700_000_100,
        seconds: 12.5,
        error: None,
    }
}

/// A set row as a rebuild scan would produce it.
fn scanned(vol: &VolumeRow, file_number: u32, state: SetState) -> SetRow {
    SetRow {
        info: SetInfo {
            id: Uuid::new_v4(),
            volume: vol.id,
            file_number,
            mode: "serverless".into(),
            label: String::new(),
            source_url: "iscsi://127.0.0.1/iqn.x/0".into(),
            source_designator: "naa.60014".into(),
            lba: Lba(0),
            blocks: BlockCount(100),
            block_size: BlockSize(4096),
            payload_size: 65_536,
            started: 1_700_000_000 + i64::from(file_number),
            digest_algorithm: "sha256".into(),
            tape_block: None,
        },
        outcome: SetOutcome {
            state,
            records: 7,
            bytes: 409_600,
            digest: Some("cd".repeat(32)),
            ended: 1_700_000_050,
            seconds: 3.25,
            error: None,
        },
        volume_name: vol.name.clone(),
        extents: vec![e(0, 60), e(80, 40)],
        expired: None,
        parts: Vec::new(),
    }
}

/// A pid that is certainly not running: a child that has exited and been
/// waited for.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

/// Set ids sharing a 4-hex-digit prefix, for prefix tests.
fn id_with_prefix(prefix: &str) -> Uuid {
    let rest = Uuid::new_v4().simple().to_string();
    Uuid::parse_str(&format!("{prefix}{}", &rest[prefix.len()..])).expect("uuid")
}

#[test]
fn state_names_round_trip() {
    for st in SetState::ALL {
        assert_eq!(st.as_str().parse::<SetState>().unwrap(), st);
        assert_eq!(
            serde_json::to_string(&st).unwrap(),
            format!("\"{}\"", st.as_str())
        );
    }
    assert!(matches!(
        "done".parse::<SetState>(),
        Err(CatalogError::Invalid(_))
    ));
}

#[test]
fn default_path_precedence() {
    let s = |v: &str| Some(OsString::from(v));
    assert_eq!(
        default_path_from(s("/c/cat.db"), s("/xdg"), s("/home/u")),
        PathBuf::from("/c/cat.db")
    );
    assert_eq!(
        default_path_from(None, s("/xdg"), s("/home/u")),
        PathBuf::from("/xdg/sanmover/catalog.db")
    );
    assert_eq!(
        default_path_from(s(""), s("/xdg"), s("/home/u")),
        PathBuf::from("/xdg/sanmover/catalog.db")
    );
    assert_eq!(
        default_path_from(None, None, s("/home/u")),
        PathBuf::from("/home/u/.local/share/sanmover/catalog.db")
    );
    // Empty or relative XDG_DATA_HOME is ignored (XDG base directory spec).
    assert_eq!(
        default_path_from(None, s(""), s("/home/u")),
        PathBuf::from("/home/u/.local/share/sanmover/catalog.db")
    );
    assert_eq!(
        default_path_from(None, s("rel/dir"), s("/home/u")),
        PathBuf::from("/home/u/.local/share/sanmover/catalog.db")
    );
    assert_eq!(
        default_path_from(None, None, None),
        PathBuf::from("sanmover-catalog.db")
    );
}

#[test]
fn open_creates_schema_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/catalog.db");
    let vol = volume("TAPE01");
    {
        let cat = Catalog::open(&path).unwrap();
        assert_eq!(cat.path(), path.as_path());
        let version: u32 = cat
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = cat
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = cat
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        cat.upsert_volume(&vol).unwrap();
    }
    // Reopening migrates nothing and keeps the data.
    let cat = Catalog::open(&path).unwrap();
    assert_eq!(schema::migrate(&cat.conn).unwrap(), SCHEMA_VERSION);
    assert_eq!(cat.volumes().unwrap(), vec![vol]);
}

#[test]
fn a_version_3_catalog_keeps_its_sha256_sets() {
    // A catalog written before the digest algorithm was recorded: its sets
    // are SHA-256 sets, and their digests stay where they were.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let (set, vol) = (Uuid::new_v4(), Uuid::new_v4());
    {
        let conn = Connection::open(&path).unwrap();
        for sql in &schema::MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 3").unwrap();
        conn.execute(
            "INSERT INTO volumes (id, name, created) VALUES (?1, 'OLD01', 1)",
            params![vol.hyphenated().to_string()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO sets (id, volume, state, file_number, mode, label, source_url, \
             source_designator, lba, blocks, block_size, payload_size, records, bytes, \
             sha256, started) VALUES (?1, ?2, 'complete', 1, 'host', '', 'u', 'd', 0, 8, \
             512, 4096, 1, 4096, ?3, 1)",
            params![
                set.hyphenated().to_string(),
                vol.hyphenated().to_string(),
                "ef".repeat(32)
            ],
        )
        .unwrap();
    }
    let cat = Catalog::open(&path).unwrap();
    let row = cat.set(&set.to_string()).unwrap();
    assert_eq!(row.info.digest_algorithm, "sha256");
    assert_eq!(row.outcome.digest, Some("ef".repeat(32)));
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    drop(Catalog::open(&path).unwrap());
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
            .unwrap();
    }
    let err = Catalog::open(&path).unwrap_err();
    assert!(matches!(err, CatalogError::Invalid(ref m) if m.contains("newer")));
}

#[test]
fn open_reports_unusable_parent() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Catalog::open(&file.join("sub/catalog.db")).unwrap_err();
    assert!(matches!(err, CatalogError::Io { .. }), "{err:?}");
}

#[test]
fn volumes_upsert_and_lookup() {
    let (_d, cat) = temp_catalog();
    let mut a = volume("A");
    let b = VolumeRow {
        created: a.created + 10,
        ..volume("B")
    };
    cat.upsert_volume(&b).unwrap();
    cat.upsert_volume(&a).unwrap();
    assert_eq!(cat.volume(a.id).unwrap(), Some(a.clone()));
    assert_eq!(cat.volume(Uuid::new_v4()).unwrap(), None);
    a.name = "A-renamed".into();
    a.last_file = Some(3);
    cat.upsert_volume(&a).unwrap();
    assert_eq!(cat.volumes().unwrap(), vec![a, b]);
}

#[test]
fn begin_finish_lifecycle() {
    let (_d, cat) = temp_catalog();
    let vol = volume("TAPE01");
    cat.upsert_volume(&vol).unwrap();
    let id = Uuid::new_v4();
    let ns = new_set(id, vol.id, 1, 1_700_000_001);
    cat.begin_set(&ns).unwrap();

    let row = cat.set(&id.to_string()).unwrap();
    assert_eq!(row.outcome.state, SetState::Running);
    assert_eq!(row.volume_name, "TAPE01");
    assert_eq!(row.extents, vec![e(2048, 4096)]);
    assert_eq!(
        (row.outcome.ended, row.outcome.seconds, row.outcome.records),
        (0, 0.0, 0)
    );
    assert_eq!(
        (
            row.info.lba,
            row.info.blocks,
            row.info.block_size,
            row.info.payload_size
        ),
        (Lba(2048), BlockCount(4096), BlockSize(512), 262_144)
    );
    let (pid, host): (i64, String) = cat
        .conn
        .query_row(
            "SELECT pid, host FROM sets WHERE id = ?1",
            [id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(pid, i64::from(std::process::id()));
    assert_eq!(host, cat.host());

    // The same set cannot begin twice; finishing as running is refused.
    assert!(matches!(cat.begin_set(&ns), Err(CatalogError::Invalid(_))));
    assert!(matches!(
        cat.finish_set(id, &outcome(SetState::Running)),
        Err(CatalogError::Invalid(_))
    ));

    let done = outcome(SetState::Complete);
    cat.finish_set(id, &done).unwrap();
    let row = cat.set(&id.to_string()).unwrap();
    assert_eq!(row.outcome.state, SetState::Complete);
    assert_eq!(row.outcome.records, done.records);
    assert_eq!(row.outcome.bytes, done.bytes);
    assert_eq!(row.outcome.digest, done.digest);
    assert_eq!(row.outcome.ended, done.ended);
    assert_eq!(row.outcome.seconds, done.seconds);
    assert_eq!(row.outcome.error, None);
    // The SetInfo fields survive unchanged.
    assert_eq!(
        (
            row.info.file_number,
            row.info.mode.as_str(),
            row.info.label.as_str(),
            row.info.started
        ),
        (1, "host", "set 1", 1_700_000_001)
    );
    assert_eq!(row.info.source_url, ns.source_url);
    assert_eq!(row.info.source_designator, ns.source_designator);

    // A finished set is not finished again.
    assert!(matches!(
        cat.finish_set(id, &outcome(SetState::Failed)),
        Err(CatalogError::Invalid(_))
    ));
    assert!(matches!(
        cat.finish_set(Uuid::new_v4(), &done),
        Err(CatalogError::NotFound(_))
    ));

    // A failure keeps its message.
    let id2 = Uuid::new_v4();
    cat.begin_set(&new_set(id2, vol.id, 2, 1_700_000_002))
        .unwrap();
    let failed = SetOutcome {
        error: Some("MEDIUM ERROR at block 7".into()),
        digest: None,
        ..outcome(SetState::Failed)
    };
    cat.finish_set(id2, &failed).unwrap();
    let row = cat.set(&id2.to_string()).unwrap();
    assert_eq!(row.outcome.state, SetState::Failed);
    assert_eq!(
        row.outcome.error.as_deref(),
        Some("MEDIUM ERROR at block 7")
    );
    assert_eq!(row.outcome.digest, None);

    let all = cat.sets().unwrap();
    assert_eq!(
        all.iter().map(|s| s.info.id).collect::<Vec<_>>(),
        vec![id, id2]
    );
}

#[test]
fn begin_set_needs_known_volume() {
    let (_d, cat) = temp_catalog();
    let err = cat
        .begin_set(&new_set(Uuid::new_v4(), Uuid::new_v4(), 1, 1))
        .unwrap_err();
    assert!(matches!(err, CatalogError::NotFound(ref m) if m.contains("volume")));
    assert!(cat.sets().unwrap().is_empty());
}

#[test]
fn sets_ordered_by_started() {
    let (_d, cat) = temp_catalog();
    let vol = volume("V");
    cat.upsert_volume(&vol).unwrap();
    let late = Uuid::new_v4();
    let early = Uuid::new_v4();
    cat.begin_set(&new_set(late, vol.id, 2, 200)).unwrap();
    cat.begin_set(&new_set(early, vol.id, 1, 100)).unwrap();
    let ids: Vec<Uuid> = cat.sets().unwrap().into_iter().map(|s| s.info.id).collect();
    assert_eq!(ids, vec![early, late]);
}

#[test]
fn reap_stale_fails_dead_and_keeps_live() {
    let (_d, cat) = temp_catalog();
    let vol = volume("TAPE01");
    cat.upsert_volume(&vol).unwrap();
    let dead = Uuid::new_v4();
    let live = Uuid::new_v4();
    let remote = Uuid::new_v4();
    let finished = Uuid::new_v4();
    for (i, id) in [dead, live, remote, finished].into_iter().enumerate() {
        cat.begin_set(&new_set(id, vol.id, i as u32 + 1, 100 + i as i64))
            .unwrap();
    }
    let gone = dead_pid();
    let set_pid_host = |id: Uuid, pid: u32, host: &str| {
        cat.conn
            .execute(
                "UPDATE sets SET pid = ?2, host = ?3 WHERE id = ?1",
                params![id.to_string(), pid, host],
            )
            .unwrap();
    };
    set_pid_host(dead, gone, cat.host());
    // `live` keeps this test process's pid.
    let other_host = format!("{}-elsewhere", cat.host());
    set_pid_host(remote, gone, &other_host);
    set_pid_host(finished, gone, cat.host());
    cat.finish_set(finished, &outcome(SetState::Complete))
        .unwrap();

    let reaped = cat.reap_stale().unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].info.id, dead);
    assert_eq!(reaped[0].outcome.state, SetState::Failed);
    let msg = format!("the process that ran it (pid {gone}) exited before finishing");
    assert_eq!(reaped[0].outcome.error.as_deref(), Some(msg.as_str()));
    assert_eq!(reaped[0].extents, vec![e(2048, 4096)]);

    let state = |id: Uuid| cat.set(&id.to_string()).unwrap().outcome.state;
    assert_eq!(state(dead), SetState::Failed);
    assert_eq!(state(live), SetState::Running);
    assert_eq!(state(remote), SetState::Running);
    assert_eq!(state(finished), SetState::Complete);

    // Nothing left to reap; a reaped set cannot then be finished.
    assert!(cat.reap_stale().unwrap().is_empty());
    assert!(matches!(
        cat.finish_set(dead, &outcome(SetState::Complete)),
        Err(CatalogError::Invalid(_))
    ));
}

#[test]
fn pid_liveness() {
    assert!(pid_alive(i64::from(std::process::id())));
    assert!(!pid_alive(i64::from(dead_pid())));
    // Never signal a process group or guess about impossible pids.
    assert!(pid_alive(0));
    assert!(pid_alive(-1));
    assert!(pid_alive(i64::MAX));
}

#[test]
fn set_lookup_by_prefix() {
    let (_d, cat) = temp_catalog();
    let vol = volume("TAPE01");
    cat.upsert_volume(&vol).unwrap();
    let a = id_with_prefix("abcd1");
    let b = id_with_prefix("abcd2");
    let c = id_with_prefix("0123");
    for (i, id) in [a, b, c].into_iter().enumerate() {
        cat.begin_set(&new_set(id, vol.id, i as u32 + 1, i as i64))
            .unwrap();
    }

    // Full UUID in the usual forms.
    assert_eq!(cat.set(&a.to_string()).unwrap().info.id, a);
    assert_eq!(cat.set(&a.simple().to_string()).unwrap().info.id, a);
    assert_eq!(cat.set(&a.to_string().to_uppercase()).unwrap().info.id, a);
    // Unique prefixes, any case, with or without hyphens.
    assert_eq!(cat.set("abcd1").unwrap().info.id, a);
    assert_eq!(cat.set("ABCD2").unwrap().info.id, b);
    assert_eq!(cat.set(" 0123 ").unwrap().info.id, c);
    let hyphenated = &b.to_string()[..11];
    assert_eq!(cat.set(hyphenated).unwrap().info.id, b);
    let plain = &b.simple().to_string()[..10];
    assert_eq!(cat.set(plain).unwrap().info.id, b);

    match cat.set("abcd") {
        Err(CatalogError::Ambiguous(m)) => {
            assert!(m.contains("matches 2 sets"), "{m}");
            assert!(m.contains(&a.to_string()), "{m}");
            assert!(m.contains(&b.to_string()), "{m}");
            assert!(!m.contains(&c.to_string()), "{m}");
        }
        other => panic!("expected Ambiguous, got {other:?}"),
    }
    match cat.set("ffff") {
        Err(CatalogError::NotFound(m)) => assert!(m.contains("'ffff'"), "{m}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match cat.set(&Uuid::new_v4().to_string()) {
        Err(CatalogError::NotFound(m)) => assert!(m.contains("no set"), "{m}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    for bad in ["abc", "", "a-b", "wxyz1234"] {
        assert!(
            matches!(cat.set(bad), Err(CatalogError::BadSetId(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn ambiguous_message_is_bounded() {
    let (_d, cat) = temp_catalog();
    let vol = volume("V");
    cat.upsert_volume(&vol).unwrap();
    for i in 0..12 {
        cat.begin_set(&new_set(id_with_prefix("beef"), vol.id, i, i64::from(i)))
            .unwrap();
    }
    match cat.set("beef") {
        Err(CatalogError::Ambiguous(m)) => {
            assert!(m.contains("matches 12 sets"), "{m}");
            assert!(m.contains("and 2 more"), "{m}");
        }
        other => panic!("expected Ambiguous, got {other:?}"),
    }
}

#[test]
fn replace_volume_sets_touches_only_that_volume() {
    let (_d, cat) = temp_catalog();
    let v1 = volume("TAPE01");
    let v2 = volume("TAPE02");
    cat.upsert_volume(&v1).unwrap();
    cat.upsert_volume(&v2).unwrap();
    let old1 = Uuid::new_v4();
    let keep2 = Uuid::new_v4();
    cat.begin_set(&new_set(old1, v1.id, 1, 10)).unwrap();
    cat.begin_set(&new_set(keep2, v2.id, 1, 11)).unwrap();
    cat.finish_set(old1, &outcome(SetState::Complete)).unwrap();
    cat.finish_set(keep2, &outcome(SetState::Complete)).unwrap();

    let v1_scanned = VolumeRow {
        last_file: Some(2),
        ..v1.clone()
    };
    let s1 = scanned(&v1_scanned, 1, SetState::Complete);
    let mut s2 = scanned(&v1_scanned, 2, SetState::Incomplete);
    s2.outcome.digest = None;
    cat.replace_volume_sets(&v1_scanned, &[s1.clone(), s2.clone()])
        .unwrap();

    assert_eq!(cat.volume(v1.id).unwrap(), Some(v1_scanned.clone()));
    assert_eq!(cat.sets_on_volume(v1.id).unwrap(), vec![s1, s2]);
    assert!(matches!(
        cat.set(&old1.to_string()),
        Err(CatalogError::NotFound(_))
    ));
    // The other volume's set is untouched, extents included.
    let other = cat.sets_on_volume(v2.id).unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].info.id, keep2);
    assert_eq!(other[0].outcome.state, SetState::Complete);
    assert_eq!(other[0].extents, vec![e(2048, 4096)]);
    let stray: i64 = cat
        .conn
        .query_row("SELECT count(*) FROM set_extents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stray, 2 + 2 + 1);

    // Replacing with nothing empties the volume but keeps it.
    cat.replace_volume_sets(&v1_scanned, &[]).unwrap();
    assert!(cat.sets_on_volume(v1.id).unwrap().is_empty());
    assert!(cat.volume(v1.id).unwrap().is_some());
    assert_eq!(cat.sets().unwrap().len(), 1);
}

#[test]
fn replace_volume_sets_refusals_change_nothing() {
    let (_d, cat) = temp_catalog();
    let v1 = volume("TAPE01");
    let v2 = volume("TAPE02");
    cat.upsert_volume(&v1).unwrap();
    cat.upsert_volume(&v2).unwrap();
    let on_v2 = scanned(&v2, 1, SetState::Complete);
    cat.replace_volume_sets(&v2, std::slice::from_ref(&on_v2))
        .unwrap();
    let before = cat.sets().unwrap();

    let wrong_volume = scanned(&v2, 1, SetState::Complete);
    let running = scanned(&v1, 1, SetState::Running);
    let mut moved = on_v2.clone();
    moved.info.volume = v1.id;
    moved.volume_name = v1.name.clone();
    let ok = scanned(&v1, 1, SetState::Complete);
    let cases: [&[SetRow]; 4] = [
        &[wrong_volume],
        &[running],
        &[ok.clone(), moved],
        &[ok.clone(), ok.clone()],
    ];
    for sets in cases {
        let err = cat.replace_volume_sets(&v1, sets).unwrap_err();
        assert!(matches!(err, CatalogError::Invalid(_)), "{err:?}");
        assert_eq!(cat.sets().unwrap(), before);
    }

    // A running set on the volume blocks a rebuild until it ends.
    let live = Uuid::new_v4();
    cat.begin_set(&new_set(live, v1.id, 5, 50)).unwrap();
    match cat.replace_volume_sets(&v1, &[]) {
        Err(CatalogError::Invalid(m)) => assert!(m.contains(&live.to_string()), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    cat.finish_set(live, &outcome(SetState::Failed)).unwrap();
    cat.replace_volume_sets(&v1, &[]).unwrap();
}

#[test]
fn extents_round_trip() {
    let (_d, cat) = temp_catalog();
    let vol = volume("TAPE01");
    let mut s = scanned(&vol, 1, SetState::Complete);
    s.extents = vec![e(u64::from(u32::MAX) + 5, 3), e(0, 1), e(1 << 40, 1 << 20)];
    let mut none = scanned(&vol, 2, SetState::Failed);
    none.extents.clear();
    none.outcome.error = Some("cut short".into());
    cat.replace_volume_sets(&vol, &[s.clone(), none.clone()])
        .unwrap();
    assert_eq!(cat.set(&s.info.id.to_string()).unwrap(), s);
    assert_eq!(cat.set(&none.info.id.to_string()).unwrap(), none);
    assert_eq!(cat.sets().unwrap(), vec![s, none]);
}

#[test]
fn set_row_serializes() {
    let vol = volume("TAPE01");
    let s = scanned(&vol, 1, SetState::Incomplete);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["state"], "incomplete");
    assert_eq!(v["id"], s.info.id.to_string());
    assert_eq!(v["volume_name"], "TAPE01");
    assert_eq!(v["extents"], serde_json::json!([[0, 60], [80, 40]]));
}

#[test]
fn two_connections_share_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    // Several connections create the new file at the same moment (the
    // switch to WAL answers BUSY without waiting; open must retry).
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                Catalog::open(&path).map(|_| ())
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread").expect("open");
    }

    let a = Catalog::open(&path).unwrap();
    let b = Catalog::open(&path).unwrap();
    let vol = volume("TAPE01");
    a.upsert_volume(&vol).unwrap();
    let id = Uuid::new_v4();
    a.begin_set(&new_set(id, vol.id, 1, 1)).unwrap();

    // A reader holding an open read transaction does not block the writer
    // (WAL), and sees its snapshot until it ends.
    b.conn.execute_batch("BEGIN").unwrap();
    assert_eq!(b.sets().unwrap()[0].outcome.state, SetState::Running);
    a.finish_set(id, &outcome(SetState::Complete)).unwrap();
    assert_eq!(b.sets().unwrap()[0].outcome.state, SetState::Running);
    b.conn.execute_batch("COMMIT").unwrap();
    assert_eq!(
        b.set(&id.to_string()).unwrap().outcome.state,
        SetState::Complete
    );

    // Writers on both connections interleave.
    let id2 = Uuid::new_v4();
    b.begin_set(&new_set(id2, vol.id, 2, 2)).unwrap();
    assert_eq!(a.sets().unwrap().len(), 2);
}

#[test]
fn v3_catalog_migrates_to_v4_keeping_sets_and_extents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let vol = volume("OLD001");
    let id = Uuid::new_v4();
    {
        // A catalog as a V3 build left it, with a set and two extents.
        let conn = Connection::open(&path).unwrap();
        for sql in &schema::MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 3").unwrap();
        conn.execute(
            "INSERT INTO volumes (id, name, created) VALUES (?1, ?2, 1)",
            params![vol.id.to_string(), vol.name],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO sets (id, volume, state, file_number, mode, label, source_url, \
             source_designator, lba, blocks, block_size, payload_size, records, bytes, \
             started) VALUES (?1, ?2, 'complete', 1, 'host', 'old', 'u', 'd', 5, 10, 512, \
             4096, 2, 5120, 7)",
            params![id.to_string(), vol.id.to_string()],
        )
        .unwrap();
        for (seq, lba) in [(0, 5), (1, 10)] {
            conn.execute(
                "INSERT INTO set_extents (set_id, seq, lba, blocks) VALUES (?1, ?2, ?3, 5)",
                params![id.to_string(), seq, lba],
            )
            .unwrap();
        }
    }
    let cat = Catalog::open(&path).unwrap();
    let version: u32 = cat
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let fk: i64 = cat
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1, "foreign keys are back on after the migration");
    let old = cat.set(&id.to_string()).unwrap();
    assert_eq!(old.outcome.state, SetState::Complete);
    assert_eq!((old.outcome.records, old.outcome.bytes), (2, 5120));
    assert_eq!(old.extents, vec![e(5, 5), e(10, 5)]);
    // The new state is accepted, an unknown one still is not.
    let new = Uuid::new_v4();
    cat.begin_set(&new_set(new, vol.id, 2, 8)).unwrap();
    cat.finish_set(new, &outcome(SetState::Interrupted))
        .unwrap();
    assert_eq!(
        cat.set(&new.to_string()).unwrap().outcome.state,
        SetState::Interrupted
    );
    assert!(cat
        .conn
        .execute(
            "UPDATE sets SET state = 'bogus' WHERE id = ?1",
            [new.to_string()]
        )
        .is_err());
}

#[test]
fn live_writer_names_a_running_set_of_another_live_process() {
    let (_d, cat) = temp_catalog();
    let vol = volume("TAPE01");
    cat.upsert_volume(&vol).unwrap();
    let id = Uuid::new_v4();
    cat.begin_set(&new_set(id, vol.id, 1, 1)).unwrap();
    // Our own running set is not "another" writer.
    assert_eq!(cat.live_writer(vol.id).unwrap(), None);
    // A live process that is not us: a child that sleeps.
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let set_pid = |pid: u32| {
        cat.conn
            .execute(
                "UPDATE sets SET pid = ?2 WHERE id = ?1",
                params![id.to_string(), pid],
            )
            .unwrap();
    };
    set_pid(child.id());
    let found = cat.live_writer(vol.id);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(found.unwrap(), Some((id, i64::from(child.id()))));
    // A dead one is not a writer.
    set_pid(dead_pid());
    assert_eq!(cat.live_writer(vol.id).unwrap(), None);
}

#[test]
fn replace_keeping_leaves_sets_in_unreadable_files() {
    let (_d, cat) = temp_catalog();
    let vol = volume("TAPE01");
    cat.upsert_volume(&vol).unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    cat.begin_set(&new_set(a, vol.id, 1, 1)).unwrap();
    cat.finish_set(a, &outcome(SetState::Complete)).unwrap();
    cat.begin_set(&new_set(b, vol.id, 2, 2)).unwrap();
    cat.finish_set(b, &outcome(SetState::Complete)).unwrap();
    // The scan read file 2 as a new set and could not read file 1.
    let c = scanned(&vol, 2, SetState::Complete);
    cat.replace_volume_sets_keeping(&vol, std::slice::from_ref(&c), &[1])
        .unwrap();
    let ids: Vec<Uuid> = cat.sets().unwrap().iter().map(|s| s.info.id).collect();
    assert_eq!(ids, vec![a, c.info.id]);
}

#[test]
fn rebuild_diff_names_dropped_changed_added_and_kept_sets() {
    let vol = volume("TAPE01");
    let a = scanned(&vol, 1, SetState::Complete);
    let b = scanned(&vol, 2, SetState::Complete);
    let c = scanned(&vol, 3, SetState::Complete);
    let d = scanned(&vol, 4, SetState::Complete);
    // The tape: a as it was, b now fails its check, c's file unreadable,
    // d gone, and a set the catalog never heard of.
    let mut b_bad = b.clone();
    b_bad.outcome.state = SetState::Failed;
    b_bad.outcome.digest = None;
    let e = scanned(&vol, 5, SetState::Interrupted);
    let known = [a.clone(), b.clone(), c.clone(), d.clone()];
    let diff = diff_volume(&known, &[a.clone(), b_bad, e.clone()], &[3]);
    assert!(diff.needs_force());
    assert_eq!(diff.dropped, vec![SetBrief::from(&d)]);
    assert_eq!(diff.kept_unreadable, vec![SetBrief::from(&c)]);
    assert_eq!(diff.added, vec![SetBrief::from(&e)]);
    assert_eq!(diff.changed.len(), 1);
    let fields: Vec<&str> = diff.changed[0].fields.iter().map(|f| f.field).collect();
    assert_eq!(fields, vec!["state", "digest"]);
    let text = diff.text();
    assert!(text.contains("would be deleted"), "{text}");
    assert!(
        text.contains("state: catalog complete, tape failed"),
        "{text}"
    );
    // The same sets again: nothing to ask about.
    let same = diff_volume(&known[..1], &[a], &[]);
    assert!(!same.needs_force());
    assert_eq!(same, VolumeDiff::default());
    // A reaped set (failed, nothing recorded) is filled in from the tape
    // unless the tape calls it complete.
    let mut reaped = scanned(&vol, 6, SetState::Failed);
    reaped.outcome.records = 0;
    reaped.outcome.bytes = 0;
    reaped.outcome.digest = None;
    let mut on_tape = reaped.clone();
    on_tape.outcome.state = SetState::Interrupted;
    on_tape.outcome.records = 9;
    on_tape.outcome.bytes = 9 << 20;
    let fill = diff_volume(
        std::slice::from_ref(&reaped),
        std::slice::from_ref(&on_tape),
        &[],
    );
    assert!(!fill.needs_force(), "{fill:?}");
    on_tape.outcome.state = SetState::Complete;
    let odd = diff_volume(&[reaped], &[on_tape], &[]);
    assert!(odd.needs_force(), "{odd:?}");
}

/// The catalog and its WAL files are the owner's alone (0600), also when
/// an older version left them readable by others.
#[test]
fn catalog_and_wal_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let (dir, cat) = temp_catalog();
    cat.upsert_volume(&volume("V1")).unwrap();
    let mode = |suffix: &str| {
        let p = dir.path().join(format!("catalog.db{suffix}"));
        std::fs::metadata(&p).map(|m| m.permissions().mode() & 0o777)
    };
    assert_eq!(mode("").unwrap(), 0o600);
    assert_eq!(mode("-wal").unwrap(), 0o600);
    assert_eq!(mode("-shm").unwrap(), 0o600);
    drop(cat);
    let db = dir.path().join("catalog.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _cat = Catalog::open(&db).unwrap();
    assert_eq!(mode("").unwrap(), 0o600);
}

#[test]
fn expire_marks_once_and_refuses_running_sets() {
    let (_d, cat) = temp_catalog();
    let vol = volume("TAPE01");
    cat.upsert_volume(&vol).unwrap();
    let id = Uuid::new_v4();
    cat.begin_set(&new_set(id, vol.id, 1, 1)).unwrap();
    // Still being written: refused, nothing recorded.
    assert!(matches!(
        cat.expire_set(id, 100),
        Err(CatalogError::Refused(_))
    ));
    assert_eq!(cat.set(&id.to_string()).unwrap().expired, None);
    cat.finish_set(id, &outcome(SetState::Complete)).unwrap();
    assert_eq!(cat.expire_set(id, 100).unwrap(), 100);
    // A second expire keeps the first date.
    assert_eq!(cat.expire_set(id, 200).unwrap(), 100);
    let row = cat.set(&id.to_string()).unwrap();
    assert_eq!(row.expired, Some(100));
    assert_eq!(row.outcome.state, SetState::Complete, "the state is kept");
    // JSON has the key only for expired sets.
    assert_eq!(serde_json::to_value(&row).unwrap()["expired"], 100);
    let other = Uuid::new_v4();
    cat.begin_set(&new_set(other, vol.id, 2, 2)).unwrap();
    let v = serde_json::to_value(cat.set(&other.to_string()).unwrap()).unwrap();
    assert!(v.get("expired").is_none(), "{v}");
    assert!(matches!(
        cat.expire_set(Uuid::new_v4(), 1),
        Err(CatalogError::NotFound(_))
    ));
}

#[test]
fn forget_removes_the_set_and_its_extents_only() {
    let (_d, cat) = temp_catalog();
    let vol = volume("TAPE01");
    cat.upsert_volume(&vol).unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    cat.begin_set(&new_set(a, vol.id, 1, 1)).unwrap();
    cat.begin_set(&new_set(b, vol.id, 2, 2)).unwrap();
    assert!(matches!(cat.forget_set(a), Err(CatalogError::Refused(_))));
    cat.finish_set(a, &outcome(SetState::Complete)).unwrap();
    cat.forget_set(a).unwrap();
    assert!(matches!(
        cat.set(&a.to_string()),
        Err(CatalogError::NotFound(_))
    ));
    let left: i64 = cat
        .conn
        .query_row(
            "SELECT count(*) FROM set_extents WHERE set_id = ?1",
            [a.to_string()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(cat.sets().unwrap().len(), 1);
    assert_eq!(cat.volumes().unwrap().len(), 1, "the volume stays");
    assert!(matches!(cat.forget_set(a), Err(CatalogError::NotFound(_))));
}

#[test]
fn rebuild_keeps_the_expiry_of_sets_it_finds_again() {
    let (_d, cat) = temp_catalog();
    let vol = volume("TAPE01");
    let (kept, gone) = (
        scanned(&vol, 1, SetState::Complete),
        scanned(&vol, 2, SetState::Complete),
    );
    cat.replace_volume_sets(&vol, &[kept.clone(), gone.clone()])
        .unwrap();
    cat.expire_set(kept.info.id, 500).unwrap();
    cat.expire_set(gone.info.id, 600).unwrap();
    // The tape shows the first set again (without any expiry: the tape
    // does not know), and not the second.
    cat.replace_volume_sets(&vol, std::slice::from_ref(&kept))
        .unwrap();
    assert_eq!(
        cat.set(&kept.info.id.to_string()).unwrap().expired,
        Some(500)
    );
    assert_eq!(cat.sets().unwrap().len(), 1);
    // Forgotten, then rebuilt: back without an expiry.
    cat.forget_set(kept.info.id).unwrap();
    cat.replace_volume_sets(&vol, std::slice::from_ref(&kept))
        .unwrap();
    assert_eq!(cat.set(&kept.info.id.to_string()).unwrap().expired, None);
}

#[test]
fn v4_catalog_migrates_to_the_latest_with_no_set_expired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    let vol = volume("OLD001");
    let id = Uuid::new_v4();
    {
        let conn = Connection::open(&path).unwrap();
        for sql in &schema::MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 4").unwrap();
        conn.execute(
            "INSERT INTO volumes (id, name, created) VALUES (?1, ?2, 1)",
            params![vol.id.to_string(), vol.name],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO sets (id, volume, state, file_number, mode, label, source_url, \
             source_designator, lba, blocks, block_size, payload_size, records, bytes, \
             started) VALUES (?1, ?2, 'interrupted', 1, 'host', 'old', 'u', 'd', 5, 10, 512, \
             4096, 2, 5120, 7)",
            params![id.to_string(), vol.id.to_string()],
        )
        .unwrap();
    }
    let cat = Catalog::open(&path).unwrap();
    let version: u32 = cat
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let old = cat.set(&id.to_string()).unwrap();
    assert_eq!(old.outcome.state, SetState::Interrupted);
    assert_eq!((old.outcome.records, old.outcome.bytes), (2, 5120));
    assert_eq!(old.expired, None);
    assert_eq!(cat.expire_set(id, 9).unwrap(), 9);
}

// ---- multi-volume sets (schema V8) ----

fn part(set: &SetRow, n: u32, vol: &VolumeRow, continues: bool) -> FoundPart {
    FoundPart {
        set_id: set.info.id,
        part: SetPart {
            part: n,
            volume: vol.id,
            volume_name: vol.name.clone(),
            file_number: 1,
            first_seq: u64::from(n - 1) * 7,
            records: 7,
            bytes: 409_600,
            // Schema V10: each part's block address round-trips.
            tape_block: Some(u64::from(n) * 1000),
        },
        outcome: (!continues).then(|| outcome(SetState::Complete)),
    }
}

#[test]
fn parts_rebuilt_in_any_order_join_and_a_gap_names_the_missing_part() {
    let (_d, cat) = temp_catalog();
    let (v1, v2, v3) = (volume("V1"), volume("V2"), volume("V3"));
    let mut first = scanned(&v1, 1, SetState::Incomplete);
    first.outcome.error = Some("set incomplete: continues on the next volume".into());
    let p1 = part(&first, 1, &v1, true);
    let p2 = part(&first, 2, &v2, true);
    let p3 = part(&first, 3, &v3, false);
    // The last part first: no set row yet, nothing to settle.
    cat.replace_volume(&v3, &[], &[], std::slice::from_ref(&p3))
        .unwrap();
    assert!(cat.sets().unwrap().is_empty());
    cat.replace_volume(
        &v1,
        std::slice::from_ref(&first),
        &[],
        std::slice::from_ref(&p1),
    )
    .unwrap();
    let row = cat.set(&first.info.id.to_string()).unwrap();
    assert_eq!(row.outcome.state, SetState::Incomplete);
    let err = row.outcome.error.unwrap();
    assert!(err.contains("part 2 is not in the catalog"), "{err}");
    // The middle part joins them: complete, counts of all three.
    cat.replace_volume(&v2, &[], &[], std::slice::from_ref(&p2))
        .unwrap();
    let row = cat.set(&first.info.id.to_string()).unwrap();
    assert_eq!(row.outcome.state, SetState::Complete);
    assert_eq!((row.outcome.records, row.outcome.bytes), (21, 3 * 409_600));
    assert_eq!(row.outcome.error, None);
    let parts: Vec<(u32, Uuid)> = row.parts.iter().map(|p| (p.part, p.volume)).collect();
    assert_eq!(parts, vec![(1, v1.id), (2, v2.id), (3, v3.id)]);
    assert_eq!(row.parts, vec![p1.part, p2.part, p3.part]);
    // Forgetting the set forgets its parts.
    cat.forget_set(first.info.id).unwrap();
    let n: i64 = cat
        .conn
        .query_row("SELECT count(*) FROM set_parts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn parts_written_by_a_backup_keep_the_outcome_the_writer_recorded() {
    let (_d, cat) = temp_catalog();
    let (v1, v2) = (volume("V1"), volume("V2"));
    cat.upsert_volume(&v1).unwrap();
    let id = Uuid::new_v4();
    cat.begin_set(&new_set(id, v1.id, 1, 1_700_000_000))
        .unwrap();
    let row = cat.set(&id.to_string()).unwrap();
    let parts = [part(&row, 1, &v1, true).part, part(&row, 2, &v2, true).part];
    // The second volume is recorded with the parts (its label was read
    // by the writer).
    cat.record_parts(id, &parts, std::slice::from_ref(&v2))
        .unwrap();
    cat.finish_set(id, &outcome(SetState::Complete)).unwrap();
    let row = cat.set(&id.to_string()).unwrap();
    assert_eq!(row.parts, parts);
    assert_eq!(row.outcome.state, SetState::Complete);
    assert_eq!(cat.volume(v2.id).unwrap().unwrap().name, "V2");
}

#[test]
fn v7_catalog_migrates_to_v8_with_no_tape_block_and_new_sets_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v7.db");
    let vol = volume("OLD007");
    let id = Uuid::new_v4();
    {
        let conn = Connection::open(&path).unwrap();
        for sql in &schema::MIGRATIONS[..7] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 7").unwrap();
        conn.execute(
            "INSERT INTO volumes (id, name, created) VALUES (?1, ?2, 1)",
            params![vol.id.to_string(), vol.name],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO sets (id, volume, state, file_number, mode, label, source_url, \
             source_designator, lba, blocks, block_size, payload_size, records, bytes, \
             started) VALUES (?1, ?2, 'complete', 1, 'host', 'old', 'u', 'd', 5, 10, 512, \
             4096, 2, 5120, 7)",
            params![id.to_string(), vol.id.to_string()],
        )
        .unwrap();
    }
    let cat = Catalog::open(&path).unwrap();
    let old = cat.set(&id.to_string()).unwrap();
    assert_eq!(
        old.info.tape_block, None,
        "a set from before V8 has no address"
    );
    assert_eq!(old.outcome.bytes, 5120);
    // A set recorded now keeps the block address it was given, and the
    // JSON shows it only when there is one.
    let mut set = new_set(Uuid::new_v4(), vol.id, 2, 1_700_000_000);
    set.tape_block = Some(4242);
    cat.begin_set(&set).unwrap();
    let row = cat.set(&set.id.to_string()).unwrap();
    assert_eq!(row.info.tape_block, Some(4242));
    let json = serde_json::to_value(&row).unwrap();
    assert_eq!(json["tape_block"], 4242, "{json}");
    let json_old = serde_json::to_value(&old).unwrap();
    assert!(json_old.get("tape_block").is_none(), "{json_old}");
}

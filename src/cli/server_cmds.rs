//! `sanmover server` (serve, `status`, `drives release`) and the host side
//! of `backup --server` and `restore --server`: the host asks the server
//! for a drive, runs today's engine on it over its own SAN path, reports
//! the set and releases the lease.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::args::{
    BackupArgs, BackupMode, DrivesOp, RestoreArgs, ServerArgs, ServerClientArgs, ServerOp,
    ServerRunArgs,
};
use super::backup_host::{backup_options, backup_text};
use super::exit::{self, UsageError};
use super::output::Out;
use super::progress::Bar;
use super::remote_modes;
use super::server_jobs::ServerlessRunner;
use super::server_span::ServerVolumes;
use super::sessions::{redacted, stop_on_signals, Sessions};
use super::sizes::check_tape_block;
use super::snapshots_cmds::release_stopped;
use crate::catalog::{SetRow, SetState};
use crate::device::Tape;
use crate::engine::host::{backup_spanning, BackupOptions};
use crate::engine::interrupt::StopFlag;
use crate::engine::restore::{restore_spanning, LoadPart, RestoreOptions};
use crate::engine::set_writer::NextVolume;
use crate::engine::EngineError;
use crate::scsi::Lba;
use crate::server::auth::Hosts;
use crate::server::client::Client;
use crate::server::http::{serve, HttpConfig, RequestBody};
use crate::server::jobs::{end_orphans, Jobs};
use crate::server::lifecycle::{run_leased, Leased};
use crate::server::scsi_library::ScsiLibrary;
use crate::server::service::{Grant, Service, Status};
use crate::server::state::Policy;
use crate::server::tls::server_config;
use crate::transport::Transport;

pub fn run(s: &Sessions, out: &Out, a: &ServerArgs) -> Result<u8> {
    match &a.op {
        None => serve_cmd(s, &a.run),
        Some(ServerOp::Status(c)) => status(out, c),
        Some(ServerOp::Drives {
            op:
                DrivesOp::Release {
                    drive,
                    force,
                    client,
                },
        }) => release_drive(out, *drive, *force, client),
    }
}

/// The client a command's options name.
pub(super) fn client(c: &ServerClientArgs) -> Result<Client> {
    let url = c
        .server
        .as_deref()
        .ok_or_else(|| UsageError("no server: give --server URL or set SANMOVER_SERVER".into()))?;
    let token = match &c.server_token_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            text.lines().next().unwrap_or("").trim().to_string()
        }
        None => std::env::var("SANMOVER_SERVER_TOKEN").map_err(|_| {
            UsageError("no credential: give --server-token-file FILE or set SANMOVER_SERVER_TOKEN=NAME:SECRET".into())
        })?,
    };
    Ok(Client::new(url, &token, c.server_ca.as_deref())?)
}

fn need<'a, T>(v: &'a Option<T>, what: &str) -> Result<&'a T> {
    v.as_ref()
        .ok_or_else(|| UsageError(format!("sanmover server needs {what}")).into())
}

fn serve_cmd(s: &Sessions, a: &ServerRunArgs) -> Result<u8> {
    let listen = *need(&a.listen, "--listen ADDR:PORT")?;
    let hosts_path = need(&a.hosts, "--hosts FILE")?;
    let library = need(&a.library, "--library DEV")?;
    if a.drives.is_empty() {
        bail!(UsageError(
            "sanmover server needs at least one --drive DEV".into()
        ));
    }
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(server_config(c, k)?),
        _ => None,
    };
    if !listen.ip().is_loopback() && tls.is_none() {
        bail!(UsageError(format!(
            "refusing to listen on {listen} beyond loopback without TLS: give --tls-cert and --tls-key"
        )));
    }
    let hosts = read_hosts(hosts_path)?;
    let lib = ScsiLibrary::open(library, &a.drives, s.connector(), s.initiator())
        .with_context(|| format!("library {}", redacted(library)))?;
    let specs = lib.drive_specs();
    let policy = Policy {
        lease_secs: a.lease_secs.max(1),
        idle_unload_secs: a.idle_unload,
        queue_secs: a.queue_timeout,
        poll_grace_secs: 30,
    };
    let svc = Service::start(s.catalog()?, Box::new(lib), &specs, policy)?;
    end_left_jobs(s, &svc)?;
    let robot = svc.spawn_robot(Duration::from_millis(500));
    let stop = stop_on_signals()?;
    let jobs = Some(server_jobs(s, &svc));
    let running = serve(
        svc.clone(),
        HttpConfig {
            listen,
            hosts,
            tls,
            jobs,
        },
    )?;
    let st = svc.status();
    // The first stdout line is the contract for scripts and tests.
    let mut o = std::io::stdout();
    writeln!(
        o,
        "sanmover server: listening on {}, {} drives, {} cartridges",
        running.addr,
        st.drives.len(),
        st.cartridges.len()
    )?;
    o.flush()?;
    while stop.raised().is_none() {
        std::thread::sleep(Duration::from_millis(200));
    }
    running.stop();
    svc.shutdown();
    let _ = robot.join();
    eprintln!("sanmover server: stopped");
    Ok(exit::OK)
}

/// What a previous server's own jobs left: their leases (released, sets
/// failed) and their snapshots (unmapped and deleted), said on stderr.
fn end_left_jobs(s: &Sessions, svc: &Service) -> Result<()> {
    for l in end_orphans(svc, s.catalog_path())? {
        log::warn!(
            "lease {} of a serverless job for {} ended: the server restarted while running it{}",
            l.id,
            l.host,
            l.set
                .map_or(String::new(), |id| format!("; set {id} failed"))
        );
    }
    for c in release_stopped(s)? {
        log::warn!("snapshot job {}: {}", c.job, c.outcome);
    }
    Ok(())
}

/// The jobs the server runs itself: serverless backups, with the
/// server's sessions, cataloged in its catalog.
fn server_jobs(s: &Sessions, svc: &Arc<Service>) -> Arc<Jobs> {
    let runner = Arc::new(ServerlessRunner {
        sessions: s.clone(),
    });
    Jobs::new(svc.clone(), runner, s.catalog_path().to_path_buf())
}

fn read_hosts(path: &Path) -> Result<Hosts> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).with_context(|| format!("hosts file {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        log::warn!(
            "hosts file {} is readable by others; chmod 600 it",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading hosts file {}", path.display()))?;
    Hosts::parse(&text).with_context(|| format!("hosts file {}", path.display()))
}

fn status(out: &Out, c: &ServerClientArgs) -> Result<u8> {
    let st = client(c)?.status()?;
    out.emit(&st, || status_text(&st));
    Ok(exit::OK)
}

fn status_text(st: &Status) -> String {
    let mut t = String::from("drives:\n");
    for (i, d) in st.drives.iter().enumerate() {
        let lease = st.leases.iter().find(|l| Some(l.id) == d.lease);
        t += &format!(
            "  {i}: {} (serial {}, element {}): {}{}{}\n",
            d.url,
            d.serial,
            d.element,
            d.holds.as_deref().map_or("empty".to_string(), |b| format!("holds {b}")),
            lease.map_or(String::new(), |l| format!(", lease {} to {} ({:?})", l.id, l.host, l.state)),
            d.fenced.as_ref().map_or(String::new(), |f| format!(
                ", FENCED since lease {} of {} expired (release with `server drives release {i} --force`)",
                f.lease, f.host
            )),
        );
    }
    t += &format!("queue: {} waiting\n", st.queue.len());
    for q in &st.queue {
        t += &format!("  {}. {} wants {:?}\n", q.position, q.host, q.want);
    }
    t += "cartridges:\n";
    for c in &st.cartridges {
        t += &format!(
            "  {} (home {}): {}{}{}\n",
            c.barcode,
            c.home,
            c.pool.text(),
            if c.missing {
                " MISSING from the library"
            } else {
                ""
            },
            c.note
                .as_deref()
                .map_or(String::new(), |n| format!(" ({n})"))
        );
    }
    t
}

fn release_drive(out: &Out, drive: usize, force: bool, c: &ServerClientArgs) -> Result<u8> {
    if !force {
        bail!(UsageError(format!(
            "releasing drive {drive} gives it to the next host although the host that held it may still be writing; add --force once you know that host is gone"
        )));
    }
    client(c)?.release_drive(drive)?;
    out.emit(
        &serde_json::json!({"drive": drive, "released": true}),
        || format!("drive {drive} released\n"),
    );
    Ok(exit::OK)
}

fn wait_note(pos: usize) {
    eprintln!("sanmover: waiting for a drive: position {pos} in the server's queue");
}

/// The lease lifecycle of this command, through the server `c` names;
/// its sets are cataloged in this host's catalog.
pub(super) fn leased(
    s: &Sessions,
    c: &ServerClientArgs,
    request: RequestBody,
    stop: StopFlag,
) -> Result<Leased> {
    Ok(Leased {
        broker: Arc::new(client(c)?),
        request,
        catalog: s.catalog_path().to_path_buf(),
        stop,
    })
}

/// [`run_leased`] with the queue position said on stderr.
pub(super) fn run_with_lease<T>(
    l: &Leased,
    mover: impl FnOnce(&Grant) -> Result<T>,
    set_of: impl Fn(&T) -> Option<uuid::Uuid>,
) -> Result<(Grant, T)> {
    let ended = run_leased(l, &mut wait_note, mover, set_of, tape_full)?;
    Ok((ended.grant, ended.result?))
}

/// The mover stopped at end of medium: its cartridge is full (also when
/// a multi-volume set got no next cartridge, or a third-party copy, which
/// cannot span, reached the end).
pub(super) fn tape_full(e: &anyhow::Error) -> bool {
    e.downcast_ref::<EngineError>().is_some_and(engine_full)
}

fn engine_full(e: &EngineError) -> bool {
    match e {
        EngineError::TapeFull { .. }
        | EngineError::NoNextVolume { .. }
        | EngineError::XcopyTapeFull { .. } => true,
        EngineError::Serverless { cause, .. } => engine_full(cause),
        _ => false,
    }
}

/// On a drive with PERSISTENT RESERVE: register the lease's key and hold
/// a WRITE EXCLUSIVE reservation, so that once the server fences this
/// host (PREEMPT AND ABORT) its next command is a RESERVATION CONFLICT.
/// It is not given up at the end: the server takes it back when the lease
/// is released, so the drive is never without a reservation.
pub(super) fn hold_drive<T: Transport>(tape: &mut Tape<T>, g: &Grant) -> Result<()> {
    if let Some(k) = g.reservation {
        tape.scsi
            .pr_claim(k.key, k.server_key)
            .with_context(|| format!("taking the reservation of drive {}", g.drive_url))?;
    }
    Ok(())
}

/// The engine's options on the granted drive: its address in the set
/// header, and the lease's reservation key where the drive has one.
pub(super) fn granted(mut opts: BackupOptions, g: &Grant) -> BackupOptions {
    opts.set.tape_url = g.drive_url.clone();
    if let Some(k) = g.reservation {
        opts.reservation_key = k.key;
        opts.keep_reservation = true;
    }
    opts
}

/// `backup --server URL`: a lease, the mode's engine on the granted
/// drive, the set reported, the lease released.
pub fn backup_remote(s: &Sessions, out: &Out, a: &BackupArgs) -> Result<u8> {
    match a.mode {
        BackupMode::Host => {}
        BackupMode::Xcopy => return remote_modes::backup_xcopy(s, out, a),
        BackupMode::Serverless => return remote_modes::backup_serverless(out, a),
    }
    let catalog = s.catalog()?;
    let mut source = s.disk(&a.source, "source")?;
    let opts = backup_options(s, a)?;
    let pool = a.pool.clone();
    let request = RequestBody::Backup {
        pool,
        copy_manager: None,
    };
    let l = leased(s, &a.remote, request, opts.set.stop)?;
    let cl = client(&a.remote)?;
    let mut cartridges = Vec::new();
    let mover = |grant: &Grant| -> Result<_> {
        let mut tape = s.tape(&grant.drive_url)?;
        hold_drive(&mut tape, grant)?;
        let disk_block = source.capacity()?.block_size.0;
        check_tape_block(&mut tape, a.block_size, Some(disk_block))?;
        let opts = granted(opts, grant);
        // At the end of a cartridge the set goes on with the next one the
        // server loads into this drive (a multi-volume set).
        let mut next = ServerVolumes::new(&cl, grant);
        let spanning = Some(&mut next as &mut dyn NextVolume<_>);
        let sum = backup_spanning(
            &mut source,
            None,
            (&mut tape, spanning),
            &catalog,
            &opts,
            &Bar::new(out),
        );
        cartridges = next.cartridges;
        Ok(sum?)
    };
    let (grant, sum) = run_with_lease(&l, mover, |sum| Some(sum.set.set_id))?;
    out.emit(&sum, || {
        format!(
            "{}  lease {} on drive {} (cartridge {})\n",
            backup_text(&sum),
            grant.lease.id,
            grant.drive_url,
            cartridges.join(", then ")
        )
    });
    Ok(exit::OK)
}

/// `restore SET --server URL`: the server loads the set's cartridge.
pub fn restore_remote(s: &Sessions, out: &Out, a: &RestoreArgs) -> Result<u8> {
    if a.tape.is_some() {
        bail!(UsageError(
            "--tape and --server do not go together: the server picks the drive".into()
        ));
    }
    let mut disk = s.disk(&a.target, "restore target")?;
    let request = RequestBody::Restore { set: a.set.clone() };
    let l = leased(s, &a.remote, request, stop_on_signals()?)?;
    let cl = client(&a.remote)?;
    let mover = |grant: &Grant| -> Result<_> {
        let row = granted_set(grant)?;
        let mut tape = s.tape(&grant.drive_url)?;
        hold_drive(&mut tape, grant)?;
        let opts = RestoreOptions {
            target_lba: a.lba.map(Lba),
            queue_depth: a.queue_depth,
            overwrite_source: a.force,
        };
        // The server loads each later part of a multi-volume set.
        let mut parts = ServerVolumes::new(&cl, grant);
        let loader = Some(&mut parts as &mut dyn LoadPart<_>);
        Ok(restore_spanning(
            &mut tape,
            loader,
            &row,
            &mut disk,
            &opts,
            &Bar::new(out),
        )?)
    };
    let (grant, sum) = run_with_lease(&l, mover, |_| None)?;
    let file = grant.set.as_ref().map_or(0, |r| r.info.file_number);
    out.emit(&sum, || {
        format!(
            "restore complete: set {} to {} from drive {} (cartridge {}, tape file {file})\n  {} bytes in {} records, {:.2} s, {:.1} MB/s\n  every record CRC and the set digest checked: {} {}\n",
            sum.set_id,
            redacted(&a.target),
            grant.drive_url,
            grant.lease.barcode,
            sum.bytes,
            sum.records,
            sum.seconds,
            sum.mbps,
            sum.digest_algorithm,
            sum.digest
        )
    });
    Ok(exit::OK)
}

/// The set a restore or verify lease was granted for, as the server
/// catalogs it; one that did not complete is read for what it holds.
pub(super) fn granted_set(grant: &Grant) -> Result<SetRow> {
    let row = grant
        .set
        .clone()
        .context("the server's grant names no set")?;
    if row.outcome.state != SetState::Complete {
        eprintln!(
            "sanmover: set {} is {}; reading what it holds",
            row.info.id, row.outcome.state
        );
    }
    Ok(row)
}

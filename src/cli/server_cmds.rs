//! `sanmover server` (serve, `status`, `drives release`) and the host side
//! of `backup --server` and `restore --server`: the host asks the server
//! for a drive, runs today's engine on it over its own SAN path, reports
//! the set and releases the lease.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::args::{
    BackupArgs, BackupMode, DrivesOp, RestoreArgs, ServerArgs, ServerClientArgs, ServerOp,
    ServerRunArgs, VerifyArgs,
};
use super::backup_host::{backup_options, backup_text};
use super::exit::{self, UsageError};
use super::output::Out;
use super::progress::Bar;
use super::restore_cmds::{compare_with, compared_disk, verify_text};
use super::server_span::{report_body, ServerVolumes};
use super::sessions::{redacted, stop_on_signals, Sessions};
use super::sizes::check_tape_block;
use crate::catalog::{Catalog, SetState};
use crate::device::Tape;
use crate::engine::host::backup_spanning;
use crate::engine::restore::{restore_spanning, verify_spanning, RestoreOptions};
use crate::engine::set_writer::NextVolume;
use crate::engine::EngineError;
use crate::scsi::Lba;
use crate::server::auth::Hosts;
use crate::server::client::{Client, Heartbeat, SetWatch};
use crate::server::http::{serve, HttpConfig, RequestBody};
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
fn client(c: &ServerClientArgs) -> Result<Client> {
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
    let robot = svc.spawn_robot(Duration::from_millis(500));
    let stop = stop_on_signals()?;
    let running = serve(svc.clone(), HttpConfig { listen, hosts, tls })?;
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

/// Heartbeats three times a lease period.
fn period(g: &Grant) -> Duration {
    Duration::from_millis((g.lease_secs * 1000 / 3).max(200))
}

fn wait_note(pos: usize) {
    eprintln!("sanmover: waiting for a drive: position {pos} in the server's queue");
}

/// On a drive with PERSISTENT RESERVE: register the lease's key and hold
/// a WRITE EXCLUSIVE reservation, so that once the server fences this
/// host (PREEMPT AND ABORT) its next command is a RESERVATION CONFLICT.
/// It is not given up at the end: the server takes it back when the lease
/// is released, so the drive is never without a reservation.
fn hold_drive<T: Transport>(tape: &mut Tape<T>, g: &Grant) -> Result<()> {
    if let Some(k) = g.reservation {
        tape.scsi
            .pr_claim(k.key, k.server_key)
            .with_context(|| format!("taking the reservation of drive {}", g.drive_url))?;
    }
    Ok(())
}

/// `backup --server URL --mode host`: a lease, the host engine on the
/// granted drive, the set reported, the lease released.
pub fn backup_remote(s: &Sessions, out: &Out, a: &BackupArgs) -> Result<u8> {
    if a.mode != BackupMode::Host {
        bail!(UsageError("--server works with --mode host only".into()));
    }
    let cl = client(&a.remote)?;
    let catalog = s.catalog()?;
    let mut source = s.disk(&a.source, "source")?;
    let grant = cl.acquire(
        &RequestBody::Backup {
            pool: a.pool.clone(),
        },
        wait_note,
    )?;
    let lease = grant.lease.id;
    let mut opts = backup_options(s, a)?;
    opts.set.tape_url = grant.drive_url.clone();
    if let Some(k) = grant.reservation {
        opts.reservation_key = k.key;
        opts.keep_reservation = true;
    }
    let watch = grant.volume.map(|volume| SetWatch {
        catalog: s.catalog_path().to_path_buf(),
        volume,
        since: crate::engine::now() as i64,
    });
    let hb = Heartbeat::start(cl.clone(), lease, period(&grant), watch, opts.set.stop);
    let mut next = ServerVolumes::new(&cl, &grant);
    let result = (|| -> Result<_> {
        let mut tape = s.tape(&grant.drive_url)?;
        hold_drive(&mut tape, &grant)?;
        let disk_block = source.capacity()?.block_size.0;
        check_tape_block(&mut tape, a.block_size, Some(disk_block))?;
        // At the end of a cartridge the set goes on with the next one the
        // server loads into this drive (a multi-volume set).
        let spanning = Some(&mut next as &mut dyn NextVolume<_>);
        Ok(backup_spanning(
            &mut source,
            None,
            (&mut tape, spanning),
            &catalog,
            &opts,
            &Bar::new(out),
        )?)
    })();
    let seen = hb.finish();
    let set_id = match &result {
        Ok(sum) => Some(sum.set.set_id),
        Err(_) => seen.map(|s| s.id),
    };
    if let Some(id) = set_id {
        report_set(&cl, lease, &catalog, id)?;
    }
    let full = matches!(&result, Err(e) if matches!(e.downcast_ref::<EngineError>(), Some(EngineError::TapeFull { .. })));
    // A set that failed (a fenced host's RESERVATION CONFLICT) is the
    // error to show; its lease is then gone at the server too.
    match (cl.release(lease, full), &result) {
        (Err(e), Err(_)) => eprintln!("sanmover: releasing lease {lease}: {e}"),
        (Err(e), Ok(_)) => return Err(e.into()),
        (Ok(()), _) => {}
    }
    let sum = result?;
    out.emit(&sum, || {
        format!(
            "{}  lease {lease} on drive {} (cartridge {})\n",
            backup_text(&sum),
            grant.drive_url,
            next.cartridges.join(", then ")
        )
    });
    Ok(exit::OK)
}

/// Report set `id` as this host's catalog has it (a multi-volume set's
/// parts included); a failed report is said, not fatal: the set is on
/// tape and in this host's catalog.
fn report_set(cl: &Client, lease: u64, catalog: &Catalog, id: uuid::Uuid) -> Result<()> {
    let row = catalog.set(&id.to_string())?;
    if let Err(e) = cl.report_body(lease, &report_body(catalog, &row)) {
        eprintln!("sanmover: reporting set {id} to the server failed: {e}");
    }
    Ok(())
}

/// `verify SET --server URL`: the server loads the set's cartridges, the
/// host reads and checks the set against the server's catalog.
pub fn verify_remote(s: &Sessions, out: &Out, a: &VerifyArgs) -> Result<u8> {
    if a.tape.is_some() {
        bail!(UsageError(
            "--tape and --server do not go together: the server picks the drive".into()
        ));
    }
    let cl = client(&a.remote)?;
    let grant = cl.acquire(&RequestBody::Restore { set: a.set.clone() }, wait_note)?;
    let lease = grant.lease.id;
    let row = grant
        .set
        .clone()
        .context("the server's grant names no set")?;
    let hb = Heartbeat::start(cl.clone(), lease, period(&grant), None, stop_on_signals()?);
    let mut parts = ServerVolumes::new(&cl, &grant);
    let result = (|| -> Result<_> {
        let mut disk = compared_disk(s, a, &row)?;
        let mut tape = s.tape(&grant.drive_url)?;
        hold_drive(&mut tape, &grant)?;
        let compare = compare_with(disk.as_mut(), a, &row);
        let loader = Some(&mut parts as &mut dyn crate::engine::restore::LoadPart<_>);
        Ok(verify_spanning(
            &mut tape,
            loader,
            &row,
            compare,
            &Bar::new(out),
        )?)
    })();
    drop(hb);
    cl.release(lease, false)?;
    let sum = result?;
    out.emit(&sum, || verify_text(&sum, a, &row));
    Ok(exit::OK)
}

/// `restore SET --server URL`: the server loads the set's cartridge.
pub fn restore_remote(s: &Sessions, out: &Out, a: &RestoreArgs) -> Result<u8> {
    if a.tape.is_some() {
        bail!(UsageError(
            "--tape and --server do not go together: the server picks the drive".into()
        ));
    }
    let cl = client(&a.remote)?;
    let mut disk = s.disk(&a.target, "restore target")?;
    let grant = cl.acquire(&RequestBody::Restore { set: a.set.clone() }, wait_note)?;
    let lease = grant.lease.id;
    let row = grant
        .set
        .clone()
        .context("the server's grant names no set")?;
    if row.outcome.state != SetState::Complete {
        eprintln!(
            "sanmover: set {} is {}; restoring what it holds",
            row.info.id, row.outcome.state
        );
    }
    let hb = Heartbeat::start(cl.clone(), lease, period(&grant), None, stop_on_signals()?);
    let mut parts = ServerVolumes::new(&cl, &grant);
    let result = (|| -> Result<_> {
        let mut tape = s.tape(&grant.drive_url)?;
        hold_drive(&mut tape, &grant)?;
        let opts = RestoreOptions {
            target_lba: a.lba.map(Lba),
            queue_depth: a.queue_depth,
            overwrite_source: a.force,
        };
        // The server loads each later part's cartridge into this drive.
        let loader = Some(&mut parts as &mut dyn crate::engine::restore::LoadPart<_>);
        Ok(restore_spanning(
            &mut tape,
            loader,
            &row,
            &mut disk,
            &opts,
            &Bar::new(out),
        )?)
    })();
    drop(hb);
    cl.release(lease, false)?;
    let sum = result?;
    out.emit(&sum, || {
        format!(
            "restore complete: set {} to {} from drive {} (cartridge {}, tape file {})\n  {} bytes in {} records, {:.2} s, {:.1} MB/s\n  every record CRC and the set digest checked: {} {}\n",
            sum.set_id,
            redacted(&a.target),
            grant.drive_url,
            grant.lease.barcode,
            row.info.file_number,
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

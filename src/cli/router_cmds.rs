//! `sanmover router`: the data router in the foreground. Our iSCSI target
//! serves one logical unit, the EXTENDED COPY copy manager, which resolves
//! CSCD designators to the LUs of the backend targets and moves the data
//! between them (disk to tape included).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::args::RouterArgs;
use super::exit::{self, UsageError};
use super::sessions::Sessions;
use crate::frontend::{
    BindError, ChapConfig, ConnLimits, Credentials, InitiatorSecret, Secret, Server, SharedLu,
    TargetConfig, TargetDef,
};
use crate::router::{
    Backends, CopyAcl, CopyCaps, CopyManager, CopyManagerConfig, CopyRights, HeldQuota,
    RouterLimits, RuleEntry,
};

/// The router's target name unless the config names another.
pub const DEFAULT_TARGET_NAME: &str = "iqn.2026-11.org.sanmover:router";

/// `--config FILE` (TOML). Every key is optional; the command line adds
/// backends and allowed initiators to the file's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterFile {
    pub target_name: Option<String>,
    pub serial: Option<String>,
    /// Size of the copy manager LU's own scratch disk, 512-byte blocks.
    pub own_blocks: Option<u64>,
    #[serde(default)]
    pub backends: Vec<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    pub chap_file: Option<PathBuf>,
    /// A file holding the CHAP secret for backend URLs that name a user
    /// without a password (one line; mode 0600).
    pub backend_secret_file: Option<PathBuf>,
    /// Copy rights: which initiator may name which backend LU.
    #[serde(default)]
    pub copy_rights: Vec<RuleEntry>,
    /// Named sets of initiators for `@NAME` in `copy_rights`.
    #[serde(default)]
    pub initiator_groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub connections: ConnectionsFile,
}

/// `[limits]`: what the copy manager advertises and enforces.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_cscds: Option<u16>,
    pub max_segments: Option<u16>,
    pub max_descriptor_list: Option<u32>,
    pub max_segment_bytes: Option<u32>,
    pub max_inline: Option<u32>,
    pub held_data_limit: Option<u32>,
    pub max_stream_transfer: Option<u32>,
    /// Per-command caps of EXTENDED COPY.
    pub max_copy_bytes: Option<u64>,
    pub max_copy_seconds: Option<u64>,
    /// Held results per I_T nexus.
    pub held_lists_per_nexus: Option<usize>,
    pub held_bytes_per_nexus: Option<usize>,
}

impl LimitsFile {
    fn apply(&self, mut l: RouterLimits) -> RouterLimits {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { l.$f = v; } )* };
        }
        set!(
            max_cscds,
            max_segments,
            max_descriptor_list,
            max_segment_bytes,
            max_inline,
            held_data_limit,
            max_stream_transfer
        );
        l
    }

    fn caps(&self) -> CopyCaps {
        CopyCaps {
            max_bytes: self.max_copy_bytes,
            max_time: self.max_copy_seconds.map(Duration::from_secs),
        }
    }

    fn held(&self) -> HeldQuota {
        let mut q = HeldQuota::default();
        if let Some(v) = self.held_lists_per_nexus {
            q.lists_per_nexus = v;
        }
        if let Some(v) = self.held_bytes_per_nexus {
            q.bytes_per_nexus = v;
        }
        q
    }
}

/// `[connections]`: what the iSCSI target lets its peers take.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsFile {
    pub max_connections: Option<usize>,
    pub max_per_source: Option<usize>,
    pub reserved: Option<usize>,
    pub login_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub send_timeout_secs: Option<u64>,
    pub memory_budget_mib: Option<usize>,
    pub memory_per_connection_mib: Option<usize>,
}

impl ConnectionsFile {
    fn apply(&self, mut l: ConnLimits) -> ConnLimits {
        let secs = |v: Option<u64>, d: Duration| v.map_or(d, |s| Duration::from_secs(s.max(1)));
        let mib = |v: Option<usize>, d: usize| v.map_or(d, |m| m.max(1) << 20);
        l.max_connections = self.max_connections.unwrap_or(l.max_connections);
        l.max_per_source = self.max_per_source.unwrap_or(l.max_per_source);
        l.reserved = self.reserved.unwrap_or(l.reserved);
        l.login_timeout = secs(self.login_timeout_secs, l.login_timeout);
        l.idle_timeout = secs(self.idle_timeout_secs, l.idle_timeout);
        l.send_timeout = secs(self.send_timeout_secs, l.send_timeout);
        l.memory_budget = mib(self.memory_budget_mib, l.memory_budget);
        l.memory_per_connection = mib(self.memory_per_connection_mib, l.memory_per_connection);
        l
    }
}

/// `--chap-file FILE` (TOML): one secret per initiator, optionally the
/// target's own for mutual CHAP, and whether discovery needs CHAP too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChapFile {
    #[serde(default)]
    discovery: bool,
    #[serde(default)]
    initiator: Vec<ChapInitiator>,
    target: Option<ChapUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChapInitiator {
    name: String,
    /// CHAP_N it answers with [default: its initiator name].
    user: Option<String>,
    secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChapUser {
    user: String,
    secret: String,
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{what} {}", path.display()))
}

/// A TOML file holding secrets: a syntax or type error names the line and
/// column and what was wrong, never the text there (toml's own message
/// quotes the line, and serde's quotes string values).
fn read_secret_toml<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let at = e.span().map_or(String::new(), |s| {
            let before = &text[..s.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" at line {line}, column {col}")
        });
        anyhow::anyhow!(
            "{what} {}{at}: {} (the text there is not shown: it may hold a secret)",
            path.display(),
            scrub_quoted(e.message())
        )
    })
}

/// `"…"` in place of every double-quoted part of a message.
fn scrub_quoted(msg: &str) -> String {
    let mut out = String::new();
    for (k, part) in msg.split('"').enumerate() {
        if k % 2 == 0 {
            out.push_str(part);
        } else {
            out.push_str("\"…\"");
        }
    }
    out.replace('\n', " ")
}

/// Warn when a file holding a secret is readable by others.
fn check_private(path: &Path, what: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("{what} {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        log::warn!(
            "{what} {} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// The backend CHAP secret: the file's first line. The error never quotes
/// the file's content.
fn read_backend_secret(path: &Path) -> Result<crate::transport::url::Secret> {
    check_private(path, "backend secret file")?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading backend secret file {}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        bail!(
            "backend secret file {}: the first line is empty",
            path.display()
        );
    }
    Ok(crate::transport::url::Secret::new(line))
}

/// The copy rights the config and `--insecure` give.
fn copy_rights(file: &RouterFile, insecure: bool) -> Result<CopyRights> {
    if file.copy_rights.is_empty() {
        if insecure {
            log::warn!(
                "--insecure and no [[copy_rights]]: every initiator may copy from and onto every backend LU"
            );
            return Ok(CopyRights::Insecure);
        }
        log::warn!("no [[copy_rights]] in the config: copies naming a backend LU are refused");
        return Ok(CopyRights::Closed);
    }
    let acl = CopyAcl::new(&file.copy_rights, &file.initiator_groups)
        .context("router config: copy_rights")?;
    for i in acl.initiators() {
        log::info!("copy rights for {}", crate::router::escaped(i));
    }
    Ok(CopyRights::Acl(acl))
}

fn read_chap(path: &Path) -> Result<ChapConfig> {
    check_private(path, "CHAP file")?;
    let f: ChapFile = read_secret_toml(path, "CHAP file")?;
    let initiators = f
        .initiator
        .into_iter()
        .map(|i| InitiatorSecret {
            credentials: Credentials {
                user: i.user.unwrap_or_else(|| i.name.clone()),
                secret: Secret::new(i.secret),
            },
            initiator: i.name,
        })
        .collect();
    let c = ChapConfig {
        initiators,
        target: f.target.map(|t| Credentials {
            user: t.user,
            secret: Secret::new(t.secret),
        }),
        discovery: f.discovery,
    };
    c.validate()
        .with_context(|| format!("CHAP file {}", path.display()))?;
    Ok(c)
}

/// Who may log in to one of our targets, and where it listens: the
/// access control `sanmover router` and `sanmover vtl` share.
pub(super) struct Access {
    pub listen: std::net::SocketAddr,
    pub allow: Vec<String>,
    pub chap_file: Option<PathBuf>,
    pub insecure: bool,
}

impl Access {
    /// The target configuration, checked: a listener off loopback without
    /// CHAP and an allow-list (and without --insecure) is a command-line
    /// matter (exit 1), refused before anything else is done.
    pub fn target(&self, limits: ConnLimits) -> Result<TargetConfig> {
        let chap = self.chap_file.as_deref().map(read_chap).transpose()?;
        let target = TargetConfig {
            allow: self.allow.clone(),
            chap,
            limits,
            insecure: self.insecure,
            ..TargetConfig::new(self.listen, Vec::new())
        };
        target.check().map_err(|e| match e {
            BindError::Insecure(..) => anyhow::Error::new(UsageError(e.to_string())),
            e => anyhow::Error::new(e).context(format!("listening on {}", self.listen)),
        })?;
        Ok(target)
    }
}

pub fn run(s: &Sessions, a: &RouterArgs) -> Result<u8> {
    let file: RouterFile = match &a.config {
        Some(p) => read_toml(p, "router config")?,
        None => RouterFile::default(),
    };
    let name = a
        .target_name
        .clone()
        .or(file.target_name.clone())
        .unwrap_or_else(|| DEFAULT_TARGET_NAME.to_string());
    let mut allow = file.allow.clone();
    allow.extend(a.allow.iter().cloned());
    let access = Access {
        listen: a.listen,
        allow,
        chap_file: a.chap_file.clone().or(file.chap_file.clone()),
        insecure: a.insecure,
    };
    // Refused before any backend is contacted.
    let mut target = access.target(file.connections.apply(ConnLimits::default()))?;
    let cfg = manager_config(&file, a.insecure)?;
    if a.insecure {
        eprintln!(
            "sanmover router: warning: --insecure: a non-loopback listener needs neither CHAP \
             nor an allow-list{}",
            if cfg.rights == CopyRights::Insecure {
                ", and copies are not access-controlled (no [[copy_rights]])"
            } else {
                ""
            }
        );
    }
    let backends = backends(s, a, &file)?;
    let cm: SharedLu = Arc::new(Mutex::new(CopyManager::new(cfg, backends)));
    target.targets = vec![TargetDef {
        name: name.clone(),
        luns: vec![(0, cm)],
    }];
    let server = Server::bind(target).with_context(|| format!("listening on {}", a.listen))?;
    // The first stdout line is the contract for scripts (test-rig/router).
    let mut out = std::io::stdout();
    writeln!(
        out,
        "sanmover router: listening on {}, target {name}, copy manager LUN 0",
        server.local_addr()
    )?;
    out.flush()?;
    server.run().context("serving")?;
    Ok(exit::OK)
}

fn manager_config(file: &RouterFile, insecure: bool) -> Result<CopyManagerConfig> {
    let defaults = CopyManagerConfig::default();
    Ok(CopyManagerConfig {
        serial: file.serial.clone().unwrap_or(defaults.serial),
        limits: file.limits.apply(defaults.limits),
        own_blocks: file.own_blocks.unwrap_or(defaults.own_blocks),
        rights: copy_rights(file, insecure)?,
        caps: file.limits.caps(),
        held: file.limits.held(),
    })
}

/// Log in to every backend target of the command line and the config file
/// and index their LUs.
fn backends(s: &Sessions, a: &RouterArgs, file: &RouterFile) -> Result<Backends> {
    let mut urls = file.backends.clone();
    urls.extend(a.backends.iter().cloned());
    let mut backends = Backends::new();
    backends.set_trace(s.trace_sink());
    if let Some(p) = &file.backend_secret_file {
        backends.set_secret(read_backend_secret(p)?);
    }
    backends
        .discover(&urls, s.initiator())
        .context("discovering the backend LUs")?;
    for b in backends.list() {
        log::info!(
            "backend {}: {} {}",
            b.name,
            b.device_type,
            b.designators
                .first()
                .map(|d| d.to_string())
                .unwrap_or_default()
        );
    }
    eprintln!(
        "sanmover router: {} backend LU(s) from {} target(s)",
        backends.len(),
        urls.len()
    );
    Ok(backends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_sets_limits_and_refuses_unknown_keys() {
        let f: RouterFile = toml::from_str(
            "target_name = \"iqn.x:r\"\nbackends = [\"iscsi://127.0.0.1:1/iqn.y\"]\n[limits]\nmax_segments = 16\n",
        )
        .unwrap();
        assert_eq!(f.target_name.as_deref(), Some("iqn.x:r"));
        let l = f.limits.apply(RouterLimits::default());
        assert_eq!(l.max_segments, 16);
        assert_eq!(l.max_cscds, RouterLimits::default().max_cscds);
        assert!(toml::from_str::<RouterFile>("colour = 1").is_err());
    }

    #[test]
    fn copy_rights_closed_acl_or_insecure() {
        let none = RouterFile::default();
        assert_eq!(copy_rights(&none, false).unwrap(), CopyRights::Closed);
        assert_eq!(copy_rights(&none, true).unwrap(), CopyRights::Insecure);
        let f: RouterFile = toml::from_str(
            "[[copy_rights]]\ninitiators = [\"iqn.a:b\"]\nlus = [{ target = \"iqn.x:t\", lun = 1, role = \"both\" }]\n",
        )
        .unwrap();
        assert!(matches!(copy_rights(&f, true).unwrap(), CopyRights::Acl(_)));
        let bad: RouterFile =
            toml::from_str("[[copy_rights]]\ninitiators = [\"@g\"]\nlus = []\n").unwrap();
        assert!(copy_rights(&bad, false).is_err());
    }

    /// Both halves of the config in one file: copy rights next to the
    /// per-command caps, held-results quotas and connection limits.
    #[test]
    fn config_file_takes_copy_rights_caps_and_connections_together() {
        let f: RouterFile = toml::from_str(concat!(
            "[[copy_rights]]\ninitiators = [\"@backup\"]\n",
            "lus = [{ target = \"iqn.x:t\", role = \"source\" }]\n",
            "[initiator_groups]\nbackup = [\"iqn.a:b\"]\n",
            "[limits]\nmax_copy_bytes = 4096\nheld_lists_per_nexus = 3\n",
            "[connections]\nmax_per_source = 2\n",
        ))
        .unwrap();
        let cfg = manager_config(&f, false).unwrap();
        assert!(matches!(cfg.rights, CopyRights::Acl(_)));
        assert_eq!(cfg.caps.max_bytes, Some(4096));
        assert_eq!(cfg.held.lists_per_nexus, 3);
        assert_eq!(f.connections.max_per_source, Some(2));
    }

    #[test]
    fn backend_secret_file_takes_the_first_line() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("sanmover-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("secret");
        std::fs::write(&p, "s3cret-of-16byte\nignored\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_backend_secret(&p).unwrap().expose(),
            "s3cret-of-16byte"
        );
        std::fs::write(&p, "\n").unwrap();
        let e = read_backend_secret(&p).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

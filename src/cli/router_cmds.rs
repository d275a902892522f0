//! `sanmover router`: the data router in the foreground. Our iSCSI target
//! serves one logical unit, the EXTENDED COPY copy manager, which resolves
//! CSCD designators to the LUs of the backend targets and moves the data
//! between them (disk to tape included).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::args::RouterArgs;
use super::exit;
use super::sessions::Sessions;
use crate::router::{
    Backends, CopyAcl, CopyManager, CopyManagerConfig, CopyRights, RouterLimits, RuleEntry,
};
use crate::target::{Chap, Server, SharedLu, TargetConfig, TargetDef};
use crate::transport::url::Secret;

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
}

/// `--chap-file FILE` (TOML): `user = "…"`, `secret = "…"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChapFile {
    user: String,
    secret: String,
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{what} {}", path.display()))
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
fn read_backend_secret(path: &Path) -> Result<Secret> {
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
    Ok(Secret::new(line))
}

/// The copy rights the config and `--insecure` give.
fn copy_rights(file: &RouterFile, insecure: bool) -> Result<CopyRights> {
    if file.copy_rights.is_empty() {
        if insecure {
            log::warn!(
                "--insecure and no [[copy_rights]]: every initiator may copy from and onto every backend LU"
            );
            eprintln!("sanmover router: WARNING: --insecure: copies are not access-controlled");
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

fn read_chap(path: &Path) -> Result<Chap> {
    check_private(path, "CHAP file")?;
    let c: ChapFile = read_toml(path, "CHAP file")?;
    // RFC 7143 12.1.3: secrets of at least 12 bytes are recommended;
    // refuse ones that are certainly wrong.
    if c.user.is_empty() || c.secret.is_empty() {
        bail!(
            "CHAP file {}: user and secret must not be empty",
            path.display()
        );
    }
    Ok(Chap {
        user: c.user,
        secret: c.secret,
    })
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
    let defaults = CopyManagerConfig::default();
    let cfg = CopyManagerConfig {
        serial: file.serial.clone().unwrap_or(defaults.serial),
        limits: file.limits.apply(defaults.limits),
        own_blocks: file.own_blocks.unwrap_or(defaults.own_blocks),
        rights: copy_rights(&file, a.insecure)?,
    };
    let mut allow = file.allow.clone();
    allow.extend(a.allow.iter().cloned());
    let chap = match a.chap_file.clone().or(file.chap_file.clone()) {
        Some(p) => Some(read_chap(&p)?),
        None => None,
    };
    let backends = backends(s, a, &file)?;
    let cm: SharedLu = Arc::new(Mutex::new(CopyManager::new(cfg, backends)));
    let server = Server::bind(TargetConfig {
        listen: a.listen,
        targets: vec![TargetDef {
            name: name.clone(),
            luns: vec![(0, cm)],
        }],
        allow,
        chap,
    })
    .with_context(|| format!("listening on {}", a.listen))?;
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

/// Log in to every backend target of the command line and the config file
/// and index their LUs.
fn backends(s: &Sessions, a: &RouterArgs, file: &RouterFile) -> Result<Backends> {
    let mut urls = file.backends.clone();
    urls.extend(a.backends.iter().cloned());
    let mut backends = Backends::new();
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

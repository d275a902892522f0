//! Device addresses: `iscsi://[user[%password]@]host[:port]/target-iqn/lun`
//! for a logical unit over iSCSI, `iscsi://host[:port]` for a portal
//! (discovery), or a local path (`/dev/sg3`, `/dev/nst0`).
//!
//! Parsed here in Rust rather than by libiscsi's `iscsi_parse_full_url`,
//! which copies the URL into a 256-byte buffer with `strncpy` and leaves it
//! unterminated at 255 bytes, and which cannot carry an `@` or `/` in a
//! password. The syntax is libiscsi's (so the URLs users already have keep
//! working): `%` or `:` separates user and password, the port defaults to
//! 3260, an IPv6 address goes in brackets, and only the target name is
//! percent-decoded. Query parameters (`?header_digest=...`) and `,tpgt`
//! suffixes are refused rather than ignored.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;

/// The iSCSI well-known port (RFC 7143 13.1).
pub const DEFAULT_PORT: u16 = 3260;

/// Highest LUN a URL may name: the 14-bit flat space (SAM-5 4.7.7).
pub const MAX_LUN: u16 = 16383;

/// Longest iSCSI name, in bytes (RFC 3722 3.1, RFC 7143 4.2.7.1).
pub const MAX_NAME_LEN: usize = 223;

/// Longest user name or password libiscsi stores (its `MAX_STRING_SIZE`).
pub const MAX_CREDENTIAL_LEN: usize = 255;

/// Longest URL accepted at all.
pub const MAX_URL_LEN: usize = 1024;

/// Where the CHAP secret comes from when the URL names a user without one.
pub const PASSWORD_ENV: &str = "SANMOVER_CHAP_PASSWORD";

const SCHEME: &str = "iscsi://";

/// Why a device address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// `url` is the input with any password replaced by `***` and control
    /// characters escaped.
    #[error("{url}: {reason}")]
    Invalid { url: String, reason: String },
}

/// A password or CHAP secret. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for handing to libiscsi.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What a device argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceUrl {
    Iscsi(IscsiUrl),
    /// A local device node (SG_IO, st).
    Path(PathBuf),
}

impl DeviceUrl {
    /// `iscsi://...` becomes [`DeviceUrl::Iscsi`]; anything without a
    /// `scheme://` is a path. Other schemes (`iser://`, `http://`) are refused.
    pub fn parse(s: &str) -> Result<DeviceUrl, UrlError> {
        if has_scheme(s, SCHEME) {
            return IscsiUrl::parse(s).map(DeviceUrl::Iscsi);
        }
        if let Some(i) = s.find("://") {
            let scheme = &s[..i];
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            {
                return Err(invalid(
                    s,
                    format!("unsupported scheme {scheme:?}: only iscsi:// URLs or device paths"),
                ));
            }
        }
        if s.is_empty() {
            return Err(invalid(s, "empty device address"));
        }
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(invalid(s, format!("control character {c:?} in path")));
        }
        if has_scheme(s, "iscsi:") {
            let rest = s[6..].trim_start_matches('/');
            return Err(invalid(
                s,
                format!("did you mean iscsi://{rest}? (two slashes after iscsi:)"),
            ));
        }
        // A bare word, or host:port/…, is a URL missing its scheme far more
        // often than a device node in the current directory.
        let first = s.split('/').next().unwrap_or("");
        if !s.contains('/') || first.contains(':') {
            return Err(invalid(
                s,
                format!(
                    "neither an iscsi:// URL nor a device path (/dev/sgN, /dev/nstN, \
                     /dev/sdX); did you mean iscsi://{}?",
                    if s.contains('/') {
                        s.to_string()
                    } else {
                        format!("{s}/TARGET-IQN/LUN")
                    }
                ),
            ));
        }
        Ok(DeviceUrl::Path(PathBuf::from(s)))
    }
}

impl fmt::Display for DeviceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceUrl::Iscsi(u) => u.fmt(f),
            DeviceUrl::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One logical unit behind an iSCSI target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiUrl {
    /// CHAP user name (taken literally, not percent-decoded).
    pub user: Option<String>,
    /// CHAP secret (taken literally). See [`IscsiUrl::password_from_env`].
    pub password: Option<Secret>,
    /// Host name or address; IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// The target's iSCSI name, percent-decoded.
    pub target: String,
    pub lun: u16,
}

impl IscsiUrl {
    /// Parse `iscsi://[user[%password]@]host[:port]/target-iqn/lun`.
    /// Reads no environment; see [`IscsiUrl::password_from_env`].
    pub fn parse(s: &str) -> Result<IscsiUrl, UrlError> {
        let rest = prelude(s)?;
        let (user, password, rest) = split_userinfo(s, rest)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => {
                return Err(invalid(
                    s,
                    "missing target name and LUN: expected iscsi://host[:port]/target-iqn/lun",
                ))
            }
        };
        let (host, port) = parse_host_port(s, authority)?;
        if path.contains('?') {
            return Err(invalid(s, "query parameters (?...) are not supported"));
        }
        let (raw_target, raw_lun) = match path.rsplit_once('/') {
            Some(p) => p,
            None if path.is_empty() => {
                return Err(invalid(
                    s,
                    "missing target name and LUN: expected iscsi://host[:port]/target-iqn/lun",
                ))
            }
            None => {
                return Err(invalid(
                    s,
                    "missing LUN: expected iscsi://host[:port]/target-iqn/lun, e.g. .../0",
                ))
            }
        };
        let target = parse_target(s, raw_target)?;
        let lun = parse_lun(s, raw_lun)?;
        Ok(IscsiUrl {
            user,
            password,
            host,
            port,
            target,
            lun,
        })
    }

    /// `host:port`, IPv6 in brackets: what libiscsi's connect takes.
    pub fn portal(&self) -> String {
        format_portal(&self.host, self.port)
    }

    /// Fill in the password from `SANMOVER_CHAP_PASSWORD` when the URL
    /// names a user but no password. A URL password wins.
    pub fn password_from_env(self) -> Self {
        let env = std::env::var(PASSWORD_ENV).ok();
        self.with_fallback_password(env)
    }

    /// [`IscsiUrl::password_from_env`] with the value passed in.
    pub fn with_fallback_password(mut self, secret: Option<String>) -> Self {
        if self.user.is_some() && self.password.is_none() {
            self.password = secret.filter(|p| !p.is_empty()).map(Secret::new);
        }
        self
    }

    /// The same URL without user and password (for logs and `describe`).
    pub fn without_credentials(&self) -> IscsiUrl {
        IscsiUrl {
            user: None,
            password: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for IscsiUrl {
    /// The URL with the password shown as `***`; the target name is
    /// re-encoded so that the output parses back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SCHEME)?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if self.password.is_some() {
                f.write_str("%***")?;
            }
            f.write_str("@")?;
        }
        write!(
            f,
            "{}/{}/{}",
            self.portal(),
            encode_target(&self.target),
            self.lun
        )
    }
}

/// A portal for discovery and LUN listing: `iscsi://host[:port][/]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalUrl {
    /// Host name or address; IPv6 without brackets.
    pub host: String,
    pub port: u16,
}

impl PortalUrl {
    pub fn parse(s: &str) -> Result<PortalUrl, UrlError> {
        let rest = prelude(s)?;
        if rest.contains('@') {
            return Err(invalid(
                s,
                "a portal URL takes no user or password (discovery runs without CHAP)",
            ));
        }
        let authority = match rest.find('/') {
            Some(i) if i + 1 == rest.len() => &rest[..i],
            Some(_) => {
                return Err(invalid(
                    s,
                    "a portal URL is iscsi://host[:port]; give a target and LUN only where a LUN is expected",
                ))
            }
            None => rest,
        };
        let (host, port) = parse_host_port(s, authority)?;
        Ok(PortalUrl { host, port })
    }

    /// `host:port`, IPv6 in brackets.
    pub fn portal(&self) -> String {
        format_portal(&self.host, self.port)
    }
}

impl fmt::Display for PortalUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.portal())
    }
}

impl From<&IscsiUrl> for PortalUrl {
    fn from(u: &IscsiUrl) -> Self {
        PortalUrl {
            host: u.host.clone(),
            port: u.port,
        }
    }
}

fn format_portal(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn has_scheme(s: &str, scheme: &str) -> bool {
    s.len() >= scheme.len()
        && s.is_char_boundary(scheme.len())
        && s[..scheme.len()].eq_ignore_ascii_case(scheme)
}

/// Checks common to every iSCSI URL; returns the part after the scheme.
fn prelude(s: &str) -> Result<&str, UrlError> {
    if !has_scheme(s, SCHEME) {
        return Err(invalid(s, "not an iscsi:// URL"));
    }
    if s.len() > MAX_URL_LEN {
        return Err(invalid(
            s,
            format!("{} bytes long; at most {MAX_URL_LEN}", s.len()),
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(invalid(s, format!("control character {c:?}")));
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace()) {
        return Err(invalid(s, format!("white space {c:?}")));
    }
    Ok(&s[SCHEME.len()..])
}

/// Splits `user[%password]@` off. The last `@` ends the user part (iSCSI
/// names and host names cannot hold one), so a password may contain `@`.
#[allow(clippy::type_complexity)]
fn split_userinfo<'a>(
    url: &str,
    rest: &'a str,
) -> Result<(Option<String>, Option<Secret>, &'a str), UrlError> {
    let Some(at) = rest.rfind('@') else {
        return Ok((None, None, rest));
    };
    let info = &rest[..at];
    let rest = &rest[at + 1..];
    // libiscsi accepts both `%` and `:` as separator; the first one wins.
    let (user, password) = match info.find(['%', ':']) {
        Some(i) => (&info[..i], Some(&info[i + 1..])),
        None => (info, None),
    };
    if user.is_empty() {
        return Err(invalid(url, "empty user name before '@'"));
    }
    if user.len() > MAX_CREDENTIAL_LEN {
        return Err(invalid(
            url,
            format!("user name longer than {MAX_CREDENTIAL_LEN} bytes"),
        ));
    }
    if user.contains('/') {
        return Err(invalid(url, "'/' in the user name"));
    }
    let password = match password {
        None => None,
        Some("") => {
            return Err(invalid(
                url,
                format!("empty password after the user name; omit it to use {PASSWORD_ENV}"),
            ))
        }
        Some(p) if p.len() > MAX_CREDENTIAL_LEN => {
            return Err(invalid(
                url,
                format!("password longer than {MAX_CREDENTIAL_LEN} bytes"),
            ))
        }
        Some(p) => Some(Secret::new(p)),
    };
    Ok((Some(user.to_string()), password, rest))
}

fn parse_host_port(url: &str, authority: &str) -> Result<(String, u16), UrlError> {
    if authority.is_empty() {
        return Err(invalid(url, "missing host"));
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return Err(invalid(
                url,
                "'[' without a closing ']' around the IPv6 address",
            ));
        };
        let addr = &inner[..close];
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(invalid(url, format!("{addr:?} is not an IPv6 address")));
        }
        let after = &inner[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => {
                return Err(invalid(
                    url,
                    format!("unexpected {after:?} after the IPv6 address"),
                ))
            }
        };
        (addr.to_string(), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(invalid(
                url,
                "an IPv6 address must be written in brackets: iscsi://[::1]:3260/...",
            ));
        }
        if host.is_empty() {
            return Err(invalid(url, "missing host"));
        }
        if host.len() > 253 {
            return Err(invalid(url, "host name longer than 253 bytes"));
        }
        if host.contains(',') || port.is_some_and(|p| p.contains(',')) {
            return Err(invalid(url, "',tpgt' portal suffixes are not supported"));
        }
        if let Some(c) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(invalid(url, format!("{c:?} in host name {host:?}")));
        }
        (host.to_string(), port)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some("") => return Err(invalid(url, "empty port after ':'")),
        Some(p) => match p.parse::<u16>() {
            Ok(0) => return Err(invalid(url, "port 0")),
            Ok(n) if p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(invalid(
                    url,
                    format!("port {p:?} is not a number in 1..=65535"),
                ))
            }
        },
    };
    Ok((host, port))
}

fn parse_target(url: &str, raw: &str) -> Result<String, UrlError> {
    if raw.is_empty() {
        return Err(invalid(url, "empty target name (IQN)"));
    }
    let bytes = percent_decode(raw).map_err(|e| invalid(url, e))?;
    let name = String::from_utf8(bytes)
        .map_err(|_| invalid(url, "target name is not UTF-8 after percent-decoding"))?;
    if name.is_empty() {
        return Err(invalid(url, "empty target name (IQN)"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(
            url,
            format!(
                "target name is {} bytes; iSCSI names have at most {MAX_NAME_LEN}",
                name.len()
            ),
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(url, format!("{c:?} in the target name")));
    }
    Ok(name)
}

fn parse_lun(url: &str, raw: &str) -> Result<u16, UrlError> {
    if raw.is_empty() {
        return Err(invalid(
            url,
            "missing LUN after the target name, e.g. .../iqn.2001-04.com.example:disk/0",
        ));
    }
    if !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(url, format!("LUN {raw:?} is not a decimal number")));
    }
    match raw.parse::<u32>() {
        Ok(n) if n <= MAX_LUN as u32 => Ok(n as u16),
        _ => Err(invalid(
            url,
            format!("LUN {raw} is out of range 0..={MAX_LUN}"),
        )),
    }
}

fn percent_decode(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or_else(|| {
                "'%' at the end of the target name; write %25 for a literal '%'".to_string()
            })?;
            let hex = std::str::from_utf8(hex).map_err(|_| "bad %-escape".to_string())?;
            let v = u8::from_str_radix(hex, 16)
                .map_err(|_| format!("bad %-escape %{hex} in the target name"))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Percent-encode what [`parse_target`] would otherwise read as syntax.
fn encode_target(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        if matches!(c, '%' | '/' | '?' | '@' | '#') {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The input made safe to print: password hidden, control characters
/// escaped, length bounded. For any URL-like text bound for a log or an
/// error message.
pub fn redact(s: &str) -> String {
    let mut shown = s.to_string();
    if has_scheme(s, SCHEME) {
        let rest = &s[SCHEME.len()..];
        if let Some(at) = rest.rfind('@') {
            let info = &rest[..at];
            if let Some(sep) = info.find(['%', ':']) {
                shown = format!("{}{}***{}", &s[..SCHEME.len()], &info[..=sep], &rest[at..]);
            }
        }
    }
    let mut out: String = shown.chars().flat_map(char::escape_debug).collect();
    if out.len() > 300 {
        let mut cut = 300;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

fn invalid(url: &str, reason: impl Into<String>) -> UrlError {
    UrlError::Invalid {
        url: redact(url),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const IQN: &str = "iqn.2024-01.org.sanmover:disk1";

    fn reason(s: &str) -> String {
        match IscsiUrl::parse(s) {
            Err(UrlError::Invalid { reason, .. }) => reason,
            Ok(u) => panic!("{s} parsed as {u:?}"),
        }
    }

    #[test]
    fn full_url() {
        let u =
            IscsiUrl::parse("iscsi://alice%s3cret@10.0.0.1:3261/iqn.2024-01.org.sanmover:disk1/3")
                .unwrap();
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("s3cret"));
        assert_eq!(u.host, "10.0.0.1");
        assert_eq!(u.port, 3261);
        assert_eq!(u.target, IQN);
        assert_eq!(u.lun, 3);
        assert_eq!(u.portal(), "10.0.0.1:3261");
    }

    #[test]
    fn defaults_and_minimal() {
        let u = IscsiUrl::parse(&format!("iscsi://host.example/{IQN}/0")).unwrap();
        assert_eq!(
            u,
            IscsiUrl {
                user: None,
                password: None,
                host: "host.example".into(),
                port: DEFAULT_PORT,
                target: IQN.into(),
                lun: 0
            }
        );
        assert_eq!(u.to_string(), format!("iscsi://host.example:3260/{IQN}/0"));
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert!(IscsiUrl::parse(&format!("ISCSI://h/{IQN}/0")).is_ok());
    }

    #[test]
    fn colon_separates_password_too() {
        let u = IscsiUrl::parse(&format!("iscsi://bob:pw@h/{IQN}/1")).unwrap();
        assert_eq!(u.user.as_deref(), Some("bob"));
        assert_eq!(u.password.unwrap().expose(), "pw");
    }

    #[test]
    fn password_may_hold_at_slash_percent() {
        let u = IscsiUrl::parse(&format!("iscsi://bob%p@s/w%rd@h:99/{IQN}/1")).unwrap();
        assert_eq!(u.password.unwrap().expose(), "p@s/w%rd");
        assert_eq!(u.host, "h");
        assert_eq!(u.port, 99);
    }

    #[test]
    fn user_without_password() {
        let u = IscsiUrl::parse(&format!("iscsi://bob@h/{IQN}/1")).unwrap();
        assert_eq!(u.user.as_deref(), Some("bob"));
        assert!(u.password.is_none());
        let u2 = u.clone().with_fallback_password(Some("fromenv".into()));
        assert_eq!(u2.password.unwrap().expose(), "fromenv");
        // Empty env value: still none.
        assert!(u
            .clone()
            .with_fallback_password(Some(String::new()))
            .password
            .is_none());
        assert!(u.with_fallback_password(None).password.is_none());
    }

    #[test]
    fn url_password_wins_over_env_and_no_user_no_password() {
        let u = IscsiUrl::parse(&format!("iscsi://bob%url@h/{IQN}/1")).unwrap();
        let u = u.with_fallback_password(Some("env".into()));
        assert_eq!(u.password.unwrap().expose(), "url");
        let u = IscsiUrl::parse(&format!("iscsi://h/{IQN}/1")).unwrap();
        assert!(u
            .with_fallback_password(Some("env".into()))
            .password
            .is_none());
    }

    #[test]
    fn ipv6_in_brackets() {
        let u = IscsiUrl::parse(&format!("iscsi://[::1]:3270/{IQN}/2")).unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 3270);
        assert_eq!(u.portal(), "[::1]:3270");
        let u = IscsiUrl::parse(&format!("iscsi://[fe80::1]/{IQN}/2")).unwrap();
        assert_eq!(u.portal(), "[fe80::1]:3260");
        assert!(reason(&format!("iscsi://::1/{IQN}/0")).contains("brackets"));
        assert!(reason(&format!("iscsi://[::1/{IQN}/0")).contains("closing"));
        assert!(reason(&format!("iscsi://[zz]/{IQN}/0")).contains("IPv6"));
        assert!(reason(&format!("iscsi://[::1]x/{IQN}/0")).contains("after"));
    }

    #[test]
    fn percent_decoded_target() {
        let u = IscsiUrl::parse("iscsi://h/iqn.2024-01.org.x%3Adisk%2fa/0").unwrap();
        assert_eq!(u.target, "iqn.2024-01.org.x:disk/a");
        // Display re-encodes what would be syntax, so it parses back.
        assert_eq!(IscsiUrl::parse(&u.to_string()).unwrap(), u);
        assert!(reason("iscsi://h/iqn%zz/0").contains("%-escape"));
        assert!(reason("iscsi://h/iqn%4/0").contains("%"));
        assert!(reason("iscsi://h/iqn%ff/0").contains("UTF-8"));
        assert!(reason("iscsi://h/iqn%0a/0").contains("target name"));
    }

    #[test]
    fn missing_or_bad_lun() {
        assert!(reason(&format!("iscsi://h/{IQN}")).contains("missing LUN"));
        assert!(reason(&format!("iscsi://h/{IQN}/")).contains("missing LUN"));
        assert!(reason(&format!("iscsi://h/{IQN}/x")).contains("not a decimal"));
        assert!(reason(&format!("iscsi://h/{IQN}/-1")).contains("not a decimal"));
        assert!(reason(&format!("iscsi://h/{IQN}/+1")).contains("not a decimal"));
        assert!(reason(&format!("iscsi://h/{IQN}/16384")).contains("out of range"));
        assert!(reason(&format!("iscsi://h/{IQN}/99999999999999999999")).contains("out of range"));
        assert_eq!(
            IscsiUrl::parse(&format!("iscsi://h/{IQN}/16383"))
                .unwrap()
                .lun,
            16383
        );
        // A trailing slash after the LUN leaves an empty LUN.
        assert!(reason(&format!("iscsi://h/{IQN}/0/")).contains("missing LUN"));
    }

    #[test]
    fn missing_parts() {
        assert!(reason("iscsi://h").contains("missing target"));
        assert!(reason("iscsi://h/").contains("missing target"));
        assert!(reason("iscsi://h//0").contains("empty target"));
        assert!(reason(&format!("iscsi:///{IQN}/0")).contains("missing host"));
        assert!(reason(&format!("iscsi://:3260/{IQN}/0")).contains("missing host"));
        assert!(reason(&format!("iscsi://@h/{IQN}/0")).contains("empty user"));
        assert!(reason(&format!("iscsi://u%@h/{IQN}/0")).contains("empty password"));
        assert!(reason(&format!("http://h/{IQN}/0")).contains("not an iscsi"));
    }

    #[test]
    fn bad_ports() {
        assert!(reason(&format!("iscsi://h:/{IQN}/0")).contains("empty port"));
        assert!(reason(&format!("iscsi://h:0/{IQN}/0")).contains("port 0"));
        assert!(reason(&format!("iscsi://h:65536/{IQN}/0")).contains("1..=65535"));
        assert!(reason(&format!("iscsi://h:+5/{IQN}/0")).contains("1..=65535"));
        assert!(reason(&format!("iscsi://h:abc/{IQN}/0")).contains("1..=65535"));
        assert!(reason(&format!("iscsi://h:3260,1/{IQN}/0")).contains("tpgt"));
        assert_eq!(
            IscsiUrl::parse(&format!("iscsi://h:65535/{IQN}/0"))
                .unwrap()
                .port,
            65535
        );
    }

    #[test]
    fn control_chars_space_and_length() {
        assert!(reason(&format!("iscsi://h/{IQN}\n/0")).contains("control"));
        assert!(reason(&format!("iscsi://h/{IQN}\0/0")).contains("control"));
        assert!(reason(&format!("iscsi://h/{IQN} x/0")).contains("white space"));
        assert!(reason(&format!("iscsi://h/{}/0", "a".repeat(224))).contains("at most 223"));
        assert!(IscsiUrl::parse(&format!("iscsi://h/{}/0", "a".repeat(223))).is_ok());
        assert!(reason(&format!("iscsi://h/{}/0", "a".repeat(2000))).contains("at most 1024"));
        assert!(reason(&format!("iscsi://{}/{IQN}/0", "h".repeat(254))).contains("253"));
        assert!(reason(&format!("iscsi://{}%p@h/{IQN}/0", "u".repeat(256))).contains("user name"));
        assert!(reason(&format!("iscsi://u%{}@h/{IQN}/0", "p".repeat(256))).contains("password"));
        assert!(reason(&format!("iscsi://h!/{IQN}/0")).contains("host name"));
        assert!(reason(&format!("iscsi://h/{IQN}/0?header_digest=crc32c")).contains("query"));
    }

    #[test]
    fn errors_never_show_the_password() {
        let e = IscsiUrl::parse("iscsi://bob%hunter2@h/iqn.x/zz").unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("bob%***@h"), "{text}");
        let e = IscsiUrl::parse("iscsi://bob:hunter2@h/iqn.x/\n").unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("\\n"), "{text}");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn display_and_debug_redact() {
        let u = IscsiUrl::parse(&format!("iscsi://bob%hunter2@h/{IQN}/5")).unwrap();
        let shown = u.to_string();
        assert_eq!(shown, format!("iscsi://bob%***@h:3260/{IQN}/5"));
        assert!(!format!("{u:?}").contains("hunter2"));
        assert_eq!(format!("{}", Secret::new("x")), "***");
        assert_eq!(format!("{:?}", Secret::new("x")), "Secret(***)");
        assert_eq!(
            u.without_credentials().to_string(),
            format!("iscsi://h:3260/{IQN}/5")
        );
    }

    #[test]
    fn device_url() {
        assert!(matches!(
            DeviceUrl::parse(&format!("iscsi://h/{IQN}/0")),
            Ok(DeviceUrl::Iscsi(_))
        ));
        assert_eq!(
            DeviceUrl::parse("/dev/nst0").unwrap(),
            DeviceUrl::Path(PathBuf::from("/dev/nst0"))
        );
        assert_eq!(
            DeviceUrl::parse("relative/sg").unwrap(),
            DeviceUrl::Path(PathBuf::from("relative/sg"))
        );
        assert!(DeviceUrl::parse("iser://h/x/0").is_err());
        assert!(DeviceUrl::parse("").is_err());
        assert!(DeviceUrl::parse("/dev/sg\x01").is_err());
        // Near-misses of a URL get a hint, never a file lookup.
        for bad in [
            "iscsi:/h/iqn.x/0",
            "iscsi:h/iqn.x/0",
            "sg0",
            "h:3260/iqn.x/0",
        ] {
            let e = DeviceUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains("did you mean iscsi://"), "{bad}: {e}");
        }
        assert!(DeviceUrl::parse(&format!("iscsi://h/{IQN}")).is_err());
        assert_eq!(
            DeviceUrl::parse("/dev/sg3").unwrap().to_string(),
            "/dev/sg3"
        );
    }

    #[test]
    fn portal_url() {
        let p = PortalUrl::parse("iscsi://10.1.1.1").unwrap();
        assert_eq!(
            p,
            PortalUrl {
                host: "10.1.1.1".into(),
                port: 3260
            }
        );
        assert_eq!(p.portal(), "10.1.1.1:3260");
        assert_eq!(p.to_string(), "iscsi://10.1.1.1:3260");
        assert_eq!(PortalUrl::parse("iscsi://h:3999/").unwrap().port, 3999);
        assert_eq!(
            PortalUrl::parse("iscsi://[::1]:5").unwrap().portal(),
            "[::1]:5"
        );
        assert!(PortalUrl::parse("iscsi://h/iqn.x/0").is_err());
        assert!(PortalUrl::parse("iscsi://u%p@h").is_err());
        assert!(PortalUrl::parse("iscsi://").is_err());
        assert!(PortalUrl::parse("iscsi://h:x").is_err());
        let u = IscsiUrl::parse(&format!("iscsi://[::1]:7/{IQN}/0")).unwrap();
        assert_eq!(PortalUrl::from(&u).portal(), "[::1]:7");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = DeviceUrl::parse(&s);
            let _ = IscsiUrl::parse(&s);
            let _ = PortalUrl::parse(&s);
        }

        #[test]
        fn parse_never_panics_iscsi_shaped(s in "iscsi://[a-z0-9%:@/\\[\\]\\.,?\\x00-\\x20\u{e9}]{0,80}") {
            let _ = IscsiUrl::parse(&s);
            let _ = PortalUrl::parse(&s);
        }

        #[test]
        fn display_round_trips(
            user in proptest::option::of("[a-z]{1,8}"),
            host in "[a-z][a-z0-9.-]{0,20}",
            port in 1u16..,
            target in "[ -~]{1,60}",
            lun in 0u16..=MAX_LUN,
        ) {
            prop_assume!(!target.contains(' '));
            let u = IscsiUrl { user, password: None, host, port, target, lun };
            prop_assert_eq!(IscsiUrl::parse(&u.to_string()).unwrap(), u);
        }
    }
}

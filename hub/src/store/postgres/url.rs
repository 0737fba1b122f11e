//! A PostgreSQL connection string, checked when read and shown only with
//! its password redacted.

use std::fmt;

/// A `postgres://` URL (or `key=value` connection string) that parsed.
/// Its `Display` and `Debug` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
}

/// Why a connection string was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "{shown} is not a PostgreSQL connection string ({reason}); write it as \
     postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
)]
pub struct UrlError {
    shown: String,
    reason: String,
}

impl DatabaseUrl {
    /// Checks a connection string.
    pub fn parse(s: &str) -> Result<DatabaseUrl, UrlError> {
        let fail = |reason: String| UrlError {
            shown: redact(s),
            reason,
        };
        if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
            return Err(fail("it does not start with postgres://".to_owned()));
        }
        let config: postgres::Config = s.parse().map_err(|e: postgres::Error| {
            // The client's message may quote the string: keep only its kind.
            fail(redact(&e.to_string()))
        })?;
        if config.get_hosts().is_empty() {
            return Err(fail("it names no host".to_owned()));
        }
        if config.get_dbname().is_none() {
            return Err(fail("it names no database".to_owned()));
        }
        Ok(DatabaseUrl { raw: s.to_owned() })
    }

    /// The string as given, password included: for the config file only.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    pub(super) fn config(&self) -> postgres::Config {
        // `parse` checked it.
        self.raw.parse().unwrap_or_default()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.raw))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// The string with any password replaced by `***`: the user-info password of
/// a URL and a `password=` query parameter.
pub fn redact(s: &str) -> String {
    let mut out = s.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            let (a, b) = (scheme_end + 3 + colon + 1, scheme_end + 3 + at);
            out.replace_range(a..b, "***");
        }
    }
    let lower = out.to_ascii_lowercase();
    if let Some(i) = lower.find("password=") {
        let start = i + "password=".len();
        let end = out[start..]
            .find(['&', ' '])
            .map_or(out.len(), |e| start + e);
        out.replace_range(start..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let cases = [
            (
                "postgres://hub:s3cret@db:5432/hub",
                "postgres://hub:***@db:5432/hub",
            ),
            ("postgres://hub@db/hub", "postgres://hub@db/hub"),
            (
                "postgres://db/hub?password=s3cret&sslmode=disable",
                "postgres://db/hub?password=***&sslmode=disable",
            ),
            ("postgresql://u:p%40ss@h/d", "postgresql://u:***@h/d"),
        ];
        for (given, shown) in cases {
            assert_eq!(redact(given), shown);
            let url = DatabaseUrl::parse(given).unwrap();
            assert_eq!(url.to_string(), shown);
            assert!(!format!("{url:?}").contains("s3cret"));
        }
    }

    #[test]
    fn bad_strings_are_refused_without_their_password() {
        for bad in [
            "mysql://u:s3cret@h/d",
            "postgres://u:s3cret@h",
            "postgres://u:s3cret@h:notaport/d",
        ] {
            let e = DatabaseUrl::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("s3cret"), "{e}");
            assert!(e.contains("postgres://USER"), "{e}");
        }
    }
}

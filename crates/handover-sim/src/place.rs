//! Where a simulation keeps its log: a data directory of the embedded sled store, or a
//! PostgreSQL database.

use std::fmt;
use std::path::PathBuf;

/// Where the log of a simulation lives. [`crate::simulate_at`] opens the store there itself:
/// the store must stamp records with the simulation's clock, which exists only once the run
/// starts.
///
/// `Display` and `Debug` never show a database password:
///
/// ```
/// use handover_sim::LogPlace;
///
/// let place = LogPlace::Database("postgres://sim:s3cret@db.example/handover".to_owned());
/// assert_eq!(place.to_string(), "database postgres://sim:***@db.example/handover");
/// assert!(!format!("{place:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogPlace {
    /// A data directory of the embedded sled store (created if missing).
    Dir(PathBuf),
    /// A PostgreSQL database, by its connection string (a `postgres://` URL or
    /// `key=value` pairs).
    Database(String),
}

impl fmt::Display for LogPlace {
    /// `data directory DIR`, or `database URL` with its password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogPlace::Dir(dir) => write!(f, "data directory {}", dir.display()),
            LogPlace::Database(url) => write!(f, "database {}", redact_password(url)),
        }
    }
}

impl fmt::Debug for LogPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogPlace::Dir(dir) => f.debug_tuple("Dir").field(dir).finish(),
            LogPlace::Database(url) => f
                .debug_tuple("Database")
                .field(&redact_password(url))
                .finish(),
        }
    }
}

/// The connection string with every password replaced by `***`: the one in a URL's user
/// information (`postgres://user:PASSWORD@host`), and any `password=` parameter, in a URL's
/// query or among `key=value` pairs.
fn redact_password(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let authority_start = scheme_end + 3;
        let authority_len = out[authority_start..]
            .find(['/', '?', '#'])
            .unwrap_or(out.len() - authority_start);
        let authority = &out[authority_start..authority_start + authority_len];
        // The last `@` ends the user information: an unencoded `@` in the password comes
        // before it.
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                out.replace_range(authority_start + colon + 1..authority_start + at, "***");
            }
        }
    }
    redact_parameter(&out)
}

/// Replaces the value of every `password=` parameter (case-insensitive), quoted or not, with
/// `***`.
fn redact_parameter(text: &str) -> String {
    const KEY: &str = "password=";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(KEY) {
        let key = search + found;
        // Only a whole key: at the start, or after a separator.
        let whole = key == 0 || matches!(text.as_bytes()[key - 1], b' ' | b'?' | b'&' | b'\t');
        let value_start = key + KEY.len();
        if !whole {
            search = value_start;
            continue;
        }
        let value_end = if text[value_start..].starts_with('\'') {
            // A quoted value ends at the next quote not escaped by a backslash.
            let mut end = text.len();
            let mut escaped = false;
            for (i, c) in text[value_start + 1..].char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = value_start + 1 + i + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            end
        } else {
            text[value_start..]
                .find([' ', '&', '\t', '#'])
                .map_or(text.len(), |i| value_start + i)
        };
        out.push_str(&text[rest..value_start]);
        out.push_str("***");
        rest = value_end;
        search = value_end;
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn passwords_are_hidden_wherever_the_connection_string_holds_them() {
        for (url, shown) in [
            (
                "postgres://sim:s3cret@db:5432/handover",
                "postgres://sim:***@db:5432/handover",
            ),
            ("postgres://sim@db/handover", "postgres://sim@db/handover"),
            ("postgresql://db/handover", "postgresql://db/handover"),
            ("postgres://sim:p@ss@db/h", "postgres://sim:***@db/h"),
            (
                "postgres://db/h?user=sim&password=s3cret&sslmode=require",
                "postgres://db/h?user=sim&password=***&sslmode=require",
            ),
            (
                "host=db user=sim password=s3cret dbname=h",
                "host=db user=sim password=*** dbname=h",
            ),
            (
                "host=db PASSWORD='s3 \\' cret' dbname=h",
                "host=db PASSWORD=*** dbname=h",
            ),
            ("host=db mypassword=x", "host=db mypassword=x"),
        ] {
            assert_eq!(redact_password(url), shown, "{url}");
        }
    }
}

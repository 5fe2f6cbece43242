//! Where a request names a path or a `cwd`, the seed protocol sends a plain
//! absolute path (`/tmp/x`) and today's codex clients send a `file://` URI
//! (`file:///tmp/x`). This module tells the two forms apart per value and
//! converts both ways: a URI is percent-decoded into a native path (only
//! `file` URIs, with an empty host or `localhost`, and an absolute path), and
//! a native path is encoded as a `file://` URI for replies in that dialect.

use std::path::Path;

/// Which form a path arrived in; replies use the same form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathForm {
    /// A plain path, as in the seed protocol.
    #[default]
    Plain,
    /// A `file://` URI, as today's codex clients send.
    FileUri,
}

/// Why a value that looks like a URI does not name a path on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathUriError {
    #[error("{value:?} is not a valid URI: {reason}")]
    Malformed { value: String, reason: String },
    #[error("unsupported URI scheme {scheme:?} in {value:?}: only file:// URIs name paths")]
    Scheme { value: String, scheme: String },
    #[error(
        "file URI {value:?} names host {host:?}: only an empty host or localhost is this machine"
    )]
    Host { value: String, host: String },
    #[error("file URI {value:?} is relative: expected file:///absolute/path")]
    Relative { value: String },
    #[error("file URI {value:?} has a query or fragment, which no path has")]
    QueryOrFragment { value: String },
    #[error("file URI {value:?} decodes to a path that is not UTF-8")]
    NotUtf8 { value: String },
    #[error("file URI {value:?} decodes to a path with a NUL byte")]
    Nul { value: String },
}

/// The scheme of `value` if it starts like a URI (`scheme:`), per RFC 3986:
/// a letter, then letters, digits, `+`, `-` or `.`. A plain path (absolute
/// or relative) has none.
fn scheme_of(value: &str) -> Option<&str> {
    let (scheme, _) = value.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    // A one-letter "scheme" is a Windows drive (`C:\x`), never a URI here.
    (valid && scheme.len() > 1).then_some(scheme)
}

/// Whether `value` is in the URI form (and so must be a valid `file://` URI).
pub fn is_uri(value: &str) -> bool {
    !value.starts_with('/') && scheme_of(value).is_some()
}

/// The native path `value` names, and the form it came in. Plain values are
/// returned unchanged (the handlers reject relative ones as before).
pub fn to_native(value: &str) -> Result<(String, PathForm), PathUriError> {
    if !is_uri(value) {
        return Ok((value.to_string(), PathForm::Plain));
    }
    let scheme = scheme_of(value).unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("file") {
        return Err(PathUriError::Scheme {
            value: value.to_string(),
            scheme: scheme.to_string(),
        });
    }
    // `file:rel` is relative; `file:/abs` and `file://host/abs` are not.
    if !value[scheme.len() + 1..].starts_with('/') {
        return Err(PathUriError::Relative {
            value: value.to_string(),
        });
    }
    let url = url::Url::parse(value).map_err(|err| PathUriError::Malformed {
        value: value.to_string(),
        reason: err.to_string(),
    })?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(PathUriError::QueryOrFragment {
            value: value.to_string(),
        });
    }
    if let Some(host) = url.host_str() {
        if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
            return Err(PathUriError::Host {
                value: value.to_string(),
                host: host.to_string(),
            });
        }
    }
    let path = url.to_file_path().map_err(|()| PathUriError::Malformed {
        value: value.to_string(),
        reason: "not a local file path".to_string(),
    })?;
    let path = path
        .into_os_string()
        .into_string()
        .map_err(|_| PathUriError::NotUtf8 {
            value: value.to_string(),
        })?;
    if path.contains('\0') {
        return Err(PathUriError::Nul {
            value: value.to_string(),
        });
    }
    Ok((path, PathForm::FileUri))
}

/// `path` as a `file://` URI (percent-encoded). A relative path cannot be a
/// file URI; it is returned as it is.
pub fn to_uri(path: &Path) -> String {
    url::Url::from_file_path(path)
        .map(String::from)
        .unwrap_or_else(|()| path.display().to_string())
}

/// `path` in `form`: unchanged for [`PathForm::Plain`], a URI otherwise.
pub fn in_form(path: &Path, form: PathForm) -> String {
    match form {
        PathForm::Plain => path.display().to_string(),
        PathForm::FileUri => to_uri(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(value: &str) -> Result<String, PathUriError> {
        to_native(value).map(|(path, _)| path)
    }

    #[test]
    fn plain_paths_pass_unchanged() {
        assert_eq!(
            to_native("/tmp/a b").unwrap(),
            ("/tmp/a b".to_string(), PathForm::Plain)
        );
        // Relative plain paths are left for the handlers to reject by name.
        assert_eq!(
            to_native("rel/x").unwrap(),
            ("rel/x".to_string(), PathForm::Plain)
        );
        // A colon later in a plain path is no scheme.
        assert_eq!(native("/a:b").unwrap(), "/a:b");
        assert!(!is_uri("C:\\x"));
    }

    #[test]
    fn file_uris_decode_to_paths() {
        assert_eq!(
            to_native("file:///tmp/x").unwrap(),
            ("/tmp/x".to_string(), PathForm::FileUri)
        );
        assert_eq!(native("file:///tmp/a%20b/%C3%A9").unwrap(), "/tmp/a b/é");
        assert_eq!(native("file://localhost/tmp/x").unwrap(), "/tmp/x");
        assert_eq!(native("FILE:///tmp/x").unwrap(), "/tmp/x");
        assert_eq!(native("file:/tmp/x").unwrap(), "/tmp/x");
        assert_eq!(native("file:///").unwrap(), "/");
    }

    #[test]
    fn other_schemes_are_rejected_by_name() {
        let err = native("http://example.com/tmp").unwrap_err();
        assert!(matches!(err, PathUriError::Scheme { ref scheme, .. } if scheme == "http"));
        assert!(err.to_string().contains("http://example.com/tmp"), "{err}");
    }

    #[test]
    fn remote_hosts_are_rejected() {
        let err = native("file://otherhost/tmp").unwrap_err();
        assert!(matches!(err, PathUriError::Host { ref host, .. } if host == "otherhost"));
        assert!(err.to_string().contains("otherhost"), "{err}");
    }

    #[test]
    fn relative_uris_are_rejected() {
        let err = native("file:tmp/x").unwrap_err();
        assert!(matches!(err, PathUriError::Relative { .. }), "{err}");
        assert!(err.to_string().contains("file:tmp/x"));
    }

    #[test]
    fn queries_nul_and_bad_utf8_are_rejected() {
        assert!(matches!(
            native("file:///tmp/x?y=1").unwrap_err(),
            PathUriError::QueryOrFragment { .. }
        ));
        assert!(matches!(
            native("file:///tmp/x#frag").unwrap_err(),
            PathUriError::QueryOrFragment { .. }
        ));
        assert!(matches!(
            native("file:///tmp/a%00b").unwrap_err(),
            PathUriError::Nul { .. }
        ));
        assert!(matches!(
            native("file:///tmp/%FF").unwrap_err(),
            PathUriError::NotUtf8 { .. }
        ));
    }

    #[test]
    fn paths_encode_back_to_uris() {
        assert_eq!(to_uri(Path::new("/tmp/a b")), "file:///tmp/a%20b");
        let path = "/tmp/é x/%y";
        assert_eq!(native(&to_uri(Path::new(path))).unwrap(), path);
        assert_eq!(in_form(Path::new("/t"), PathForm::Plain), "/t");
        assert_eq!(in_form(Path::new("/t"), PathForm::FileUri), "file:///t");
    }
}

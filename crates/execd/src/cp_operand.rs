//! The operands of `execd cp`: `ws://HOST:PORT:/path`, `wss://...`,
//! `:/path` (the default server) or a local path, each parsed into where it
//! lives and an absolute, normalised path there; and the path arithmetic
//! the copy needs (join, last component).

use std::path::Path;

use execd_client::manager::URL_VARIABLE;

/// Where an operand lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local,
    Remote(String),
}

/// A parsed operand: a location and an absolute, normalised path there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operand {
    pub location: Location,
    pub path: String,
}

impl Operand {
    /// How to name `path` (on this operand's side) in messages.
    pub fn show(&self, path: &str) -> String {
        match &self.location {
            Location::Local => path.to_string(),
            Location::Remote(url) => format!("{url}:{path}"),
        }
    }
}

/// Split an operand into where and what.
pub fn parse_operand(text: &str, default_url: Option<&str>) -> Result<Operand, String> {
    for scheme in ["ws://", "wss://"] {
        let Some(rest) = text.strip_prefix(scheme) else {
            continue;
        };
        // The authority (HOST:PORT, or [v6]:PORT) never holds ":/".
        let Some(split) = rest.find(":/") else {
            return Err(format!(
                "{text:?} names a server but no path; write {scheme}HOST:PORT:/path"
            ));
        };
        let url = format!("{scheme}{}", &rest[..split]);
        let path = normalize(&rest[split + 1..]);
        return Ok(Operand {
            location: Location::Remote(url),
            path,
        });
    }
    if let Some(path) = text.strip_prefix(':') {
        if !path.starts_with('/') {
            return Err(format!("{text:?}: a remote path must be absolute (:/path)"));
        }
        let Some(url) = default_url else {
            return Err(format!(
                "{text:?} refers to the default server, but neither --url nor {URL_VARIABLE} is set"
            ));
        };
        return Ok(Operand {
            location: Location::Remote(url.to_string()),
            path: normalize(path),
        });
    }
    if text.is_empty() {
        return Err("empty path".to_string());
    }
    let absolute = std::path::absolute(Path::new(text))
        .map_err(|err| format!("cannot resolve {text}: {err}"))?;
    let Some(absolute) = absolute.to_str() else {
        return Err(format!("{text:?} is not valid UTF-8"));
    };
    let mut path = normalize(absolute);
    // `..` names no entry; ask the filesystem what it is.
    if path.ends_with("/..") {
        if let Some(resolved) = std::fs::canonicalize(&path)
            .ok()
            .and_then(|p| p.to_str().map(normalize))
        {
            path = resolved;
        }
    }
    Ok(Operand {
        location: Location::Local,
        path,
    })
}

/// Collapse repeated slashes, drop `.` components and any trailing slash.
pub fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// `base/relative`, where an empty `relative` is `base` itself.
pub fn join(base: &str, relative: &str) -> String {
    if relative.is_empty() {
        base.to_string()
    } else if base.ends_with('/') {
        format!("{base}{relative}")
    } else {
        format!("{base}/{relative}")
    }
}

/// The last component of a normalised path (`None` for `/` and `..`).
pub fn file_name(path: &str) -> Option<&str> {
    path.rsplit('/')
        .next()
        .filter(|name| !name.is_empty() && *name != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str, path: &str) -> Operand {
        Operand {
            location: Location::Remote(url.to_string()),
            path: path.to_string(),
        }
    }

    #[test]
    fn operands_split_after_the_authority() {
        assert_eq!(
            parse_operand("ws://127.0.0.1:7878:/tmp/x", None),
            Ok(remote("ws://127.0.0.1:7878", "/tmp/x"))
        );
        assert_eq!(
            parse_operand("ws://[::1]:7878:/tmp//x/./y/", None),
            Ok(remote("ws://[::1]:7878", "/tmp/x/y"))
        );
        assert_eq!(
            parse_operand(":/etc", Some("ws://h:1")),
            Ok(remote("ws://h:1", "/etc"))
        );
        assert!(parse_operand(":/etc", None).is_err());
        assert!(parse_operand(":etc", Some("ws://h:1")).is_err());
        assert!(parse_operand("ws://127.0.0.1:7878", None).is_err());
        let local = parse_operand("/a/b/", None);
        assert_eq!(
            local,
            Ok(Operand {
                location: Location::Local,
                path: "/a/b".into()
            })
        );
        let relative = parse_operand("some/file", None).map(|o| o.path);
        assert!(relative.is_ok_and(|p| p.starts_with('/') && p.ends_with("/some/file")));
    }

    #[test]
    fn names_and_joins() {
        assert_eq!(file_name("/a/b"), Some("b"));
        assert_eq!(file_name("/"), None);
        assert_eq!(file_name("/a/.."), None);
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/a", "x/y"), "/a/x/y");
        assert_eq!(join("/a", ""), "/a");
        assert_eq!(normalize("//a/./b//"), "/a/b");
        assert_eq!(normalize("/"), "/");
    }
}

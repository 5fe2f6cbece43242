//! The bearer token that opens a WebSocket connection, on both ends: the
//! [`Token`] itself (validated, compared in constant time, never printed),
//! where it comes from (`--token-file`, `EXECD_TOKEN`, or the per-user
//! default file `$XDG_STATE_HOME/execd/token`, else
//! `~/.local/state/execd/token`), and creating that default file (256
//! random bits, hex, mode 0600 in a 0700 directory) so that `execd serve`
//! and `execd run` on one machine agree without configuration. Creation is
//! atomic (written aside, then hard-linked into place), so servers started
//! at the same moment end up sharing one token instead of overwriting each
//! other's.

use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

/// The variable holding a token (client and server).
pub const TOKEN_VARIABLE: &str = "EXECD_TOKEN";
/// Random bytes in a generated token (256 bits).
const GENERATED_BYTES: usize = 32;

/// A bearer token: printable ASCII without spaces, so it fits an HTTP header.
/// `Debug` does not show it.
#[derive(Clone)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token from {origin} is empty")]
    Empty { origin: String },
    #[error("the token from {origin} holds a space or a non-printable or non-ASCII character; it must fit an HTTP header")]
    BadCharacter { origin: String },
    #[error("cannot read the token file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("the token file {path} is not a regular file")]
    NotRegularFile { path: PathBuf },
    #[error(
        "the token file {path} is open to other users (mode {mode:04o}); run `chmod 600 {path}`"
    )]
    OpenToOthers { path: PathBuf, mode: u32 },
    #[error("the token file {path} belongs to uid {owner}, not to this user (uid {uid})")]
    WrongOwner { path: PathBuf, owner: u32, uid: u32 },
    #[error("cannot create the token file {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("no place for the default token file: neither XDG_STATE_HOME nor HOME is set, and this user has no home directory")]
    NoStateDirectory,
    #[error("cannot generate a random token: {0}")]
    Random(String),
}

impl Token {
    /// A token from text (surrounding whitespace trimmed); `origin` names
    /// where it came from in errors.
    pub fn new(text: &str, origin: &str) -> Result<Token, TokenError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TokenError::Empty {
                origin: origin.to_string(),
            });
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::BadCharacter {
                origin: origin.to_string(),
            });
        }
        Ok(Token(text.to_string()))
    }

    /// 256 random bits from the operating system, as 64 hex digits.
    pub fn generate() -> Result<Token, TokenError> {
        let mut bytes = [0u8; GENERATED_BYTES];
        getrandom::fill(&mut bytes).map_err(|err| TokenError::Random(err.to_string()))?;
        let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Token(hex))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time independent of where
    /// they differ (`subtle`; only a difference in length returns early,
    /// and the length of a token is no secret).
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }

    /// The value of an `Authorization` header carrying this token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

/// `EXECD_TOKEN`, if set and not empty.
pub fn from_env() -> Result<Option<Token>, TokenError> {
    match std::env::var(TOKEN_VARIABLE) {
        Ok(text) if !text.trim().is_empty() => Token::new(&text, TOKEN_VARIABLE).map(Some),
        _ => Ok(None),
    }
}

/// A token file given explicitly (`--token-file`): its content, trimmed.
pub fn read_file(path: &Path) -> Result<Token, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Token::new(&text, &path.display().to_string())
}

/// Where the default token file lives: `$XDG_STATE_HOME/execd/token`, else
/// `$HOME/.local/state/execd/token` (the home directory from the password
/// database when `HOME` is unset).
pub fn default_path() -> Result<PathBuf, TokenError> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    if let Some(state) = absolute("XDG_STATE_HOME") {
        return Ok(state.join("execd").join("token"));
    }
    let home = absolute("HOME")
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|user| user.dir)
        })
        .ok_or(TokenError::NoStateDirectory)?;
    Ok(home
        .join(".local")
        .join("state")
        .join("execd")
        .join("token"))
}

/// The default token file, if it exists. It must be a regular file of this
/// user that no one else may read or write, and hold a token.
pub fn read_default(path: &Path) -> Result<Option<Token>, TokenError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TokenError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !metadata.file_type().is_file() {
        return Err(TokenError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    let uid = nix::unistd::getuid().as_raw();
    if metadata.uid() != uid {
        return Err(TokenError::WrongOwner {
            path: path.to_path_buf(),
            owner: metadata.uid(),
            uid,
        });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TokenError::OpenToOthers {
            path: path.to_path_buf(),
            mode,
        });
    }
    read_file(path).map(Some)
}

/// The default token file's token, created first if there is none yet.
/// Returns the token and whether this call created the file.
pub fn load_or_create_default(path: &Path) -> Result<(Token, bool), TokenError> {
    if let Some(token) = read_default(path)? {
        return Ok((token, false));
    }
    let create_error = |source| TokenError::Create {
        path: path.to_path_buf(),
        source,
    };
    let directory = path.parent().unwrap_or(Path::new("/"));
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)
        .map_err(create_error)?;
    let token = Token::generate()?;
    // Written in full aside, then linked into place: a reader never sees a
    // half-written file, and a link never replaces a file another server
    // made meanwhile (then that one's token is used).
    let aside = directory.join(format!(
        ".token.{}.{}",
        std::process::id(),
        &Token::generate()?.as_str()[..16]
    ));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&aside)
        .and_then(|mut file| {
            file.write_all(format!("{}\n", token.as_str()).as_bytes())?;
            file.sync_all()
        });
    let linked = written.and_then(|()| std::fs::hard_link(&aside, path));
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok((token, true)),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => match read_default(path)? {
            Some(theirs) => Ok((theirs, false)),
            None => Err(create_error(err)),
        },
        Err(err) => Err(create_error(err)),
    }
}

/// The token a client sends when none is given explicitly: `EXECD_TOKEN`,
/// else the default file if it exists, and the latter only to a server on
/// this machine (`url`'s host is a loopback name or address), so that the
/// local server's token never travels to another host.
pub fn resolve_for_client(url: &str) -> Result<Option<Token>, TokenError> {
    if let Some(token) = from_env()? {
        return Ok(Some(token));
    }
    if !crate::host::url_is_loopback(url) {
        return Ok(None);
    }
    match default_path() {
        Ok(path) => read_default(&path),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_and_checked() {
        assert_eq!(Token::new("  abc\n", "t").unwrap().as_str(), "abc");
        assert!(matches!(
            Token::new(" \n", "t"),
            Err(TokenError::Empty { .. })
        ));
        assert!(matches!(
            Token::new("a b", "t"),
            Err(TokenError::BadCharacter { .. })
        ));
        assert!(matches!(
            Token::new("é", "t"),
            Err(TokenError::BadCharacter { .. })
        ));
    }

    #[test]
    fn generated_tokens_are_256_bit_hex_and_differ() {
        let (a, b) = (Token::generate().unwrap(), Token::generate().unwrap());
        assert_eq!(a.as_str().len(), 64);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.as_str(), b.as_str());
    }

    #[test]
    fn matching_is_exact() {
        let token = Token::new("secret", "t").unwrap();
        assert!(token.matches("secret"));
        assert!(!token.matches("secreT"));
        assert!(!token.matches("secret2"));
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    }
}

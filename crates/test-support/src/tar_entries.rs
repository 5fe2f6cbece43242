//! Tar streams built by hand for the tree-transfer tests: one entry at a
//! time, with any raw name, type and link target (hostile ones included,
//! which no archiver would write), and a whole stream sent to a fresh tree
//! through an environment's `open_write`.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use bytes::Bytes;
use execd_client::{Environment, WriteOptions};

/// One tar entry (old-style header, then the data padded to 512 bytes)
/// with the raw name `name`, of type `kind`, linking to `link` if given.
pub fn tar_entry(name: &[u8], kind: tar::EntryType, link: Option<&[u8]>, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    if let Some(link) = link {
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    }
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A hostile pair: a symlink `link` to the directory `outside`, then a file
/// `link/through` that would be written through it.
pub fn through_symlink(outside: &Path) -> Vec<u8> {
    let target = outside.as_os_str().as_bytes();
    let mut entries = tar_entry(b"link", tar::EntryType::Symlink, Some(target), b"");
    entries.extend(tar_entry(
        b"link/through",
        tar::EntryType::Regular,
        None,
        b"x",
    ));
    entries
}

/// `entries` and the end-of-archive blocks written as a tree (without
/// `preserve`) at `to` on `env`: the bytes written, or the error's text.
pub async fn send_tree(env: &Environment, to: &Path, mut entries: Vec<u8>) -> Result<u64, String> {
    let to = to.to_str().expect("test paths are UTF-8");
    let mut sink = env
        .fs
        .open_write(to, WriteOptions::tree(false))
        .await
        .map_err(|err| err.to_string())?;
    entries.extend_from_slice(&[0u8; 1024]);
    sink.write_piece(Bytes::from(entries))
        .await
        .map_err(|err| err.to_string())?;
    sink.finish().await.map_err(|err| err.to_string())
}

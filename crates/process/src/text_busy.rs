//! Retrying a start that the kernel refused with `ETXTBSY` ("Text file
//! busy"), a known race between fork and exec (Go's os/exec retries too).
//!
//! A program file that was just written (a script a client uploaded a
//! moment ago) is refused by exec while any process holds it open for
//! writing. Its writer may have closed it, yet a child forked meanwhile by
//! another thread of this process (another start) still holds a copy of
//! the write descriptor until its own exec closes it (`O_CLOEXEC`), which
//! takes moments. So the start is tried again a few times with a short,
//! bounded backoff; a file that stays open for writing still fails, with
//! the error of the last try. The waits block the calling thread (starts
//! already block until the program has exec'd).

use std::io;
use std::time::Duration;

/// How many times a start is tried in all.
const ATTEMPTS: u32 = 5;
/// The wait after the first busy refusal; each later wait doubles it
/// (2 + 4 + 8 + 16 = 30 ms at the most in all).
const FIRST_WAIT: Duration = Duration::from_millis(2);

/// Run `attempt` until it does anything but fail with `ETXTBSY`, at most
/// [`ATTEMPTS`] times, and return what the last try returned.
pub fn retry_text_busy<T>(mut attempt: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut wait = FIRST_WAIT;
    for _ in 1..ATTEMPTS {
        match attempt() {
            Err(err) if err.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(wait);
                wait *= 2;
            }
            result => return result,
        }
    }
    attempt()
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::*;

    fn busy() -> io::Error {
        io::Error::from_raw_os_error(libc::ETXTBSY)
    }

    #[test]
    fn a_start_busy_for_a_while_is_tried_again_until_it_succeeds() {
        let mut calls = 0;
        let result = retry_text_busy(|| {
            calls += 1;
            if calls < 3 {
                Err(busy())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(result.expect("third try succeeds"), 3);
    }

    #[test]
    fn a_start_busy_throughout_fails_with_etxtbsy_after_the_bounded_tries() {
        let mut calls = 0;
        let result: io::Result<()> = retry_text_busy(|| {
            calls += 1;
            Err(busy())
        });
        let err = result.expect_err("always busy");
        assert_eq!(err.raw_os_error(), Some(libc::ETXTBSY));
        assert_eq!(calls, ATTEMPTS);
    }

    #[test]
    fn other_errors_are_not_tried_again() {
        let mut calls = 0;
        let result: io::Result<()> = retry_text_busy(|| {
            calls += 1;
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        });
        assert_eq!(
            result.expect_err("enoent").raw_os_error(),
            Some(libc::ENOENT)
        );
        assert_eq!(calls, 1);
    }

    /// The kernel's own refusal: a script held open for writing cannot be
    /// exec'd; once the writer closes it (here: on the first refusal), the
    /// next try runs it.
    #[test]
    fn a_real_busy_script_runs_once_its_writer_has_closed_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("busy.sh");
        let mut writer = Some(File::create(&script).expect("create script"));
        if let Some(file) = writer.as_mut() {
            file.write_all(b"#!/bin/sh\nexit 7\n")
                .expect("write script");
            file.set_permissions(std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        let mut refusals = Vec::new();
        let status = retry_text_busy(|| {
            let spawned = Command::new(&script).spawn();
            if let Err(err) = &spawned {
                refusals.push(err.raw_os_error());
                writer = None;
            }
            spawned
        })
        .expect("runs on the second try")
        .wait()
        .expect("wait");
        // The first try is refused for sure; a child that another test
        // forked meanwhile may cause one more refusal, never another error.
        assert!(!refusals.is_empty(), "the first try is refused");
        assert!(
            refusals.iter().all(|errno| *errno == Some(libc::ETXTBSY)),
            "{refusals:?}"
        );
        assert_eq!(status.code(), Some(7));
    }
}

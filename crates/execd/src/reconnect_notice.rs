//! The one-line notices `execd run` and `execd shell` print on stderr while
//! the client library resumes a lost connection: `connection lost;
//! reconnecting…` when it is lost, `reconnected` once the session is back.
//! (When the session cannot be resumed, the command ends with exit 255 and
//! says why.)

use std::io::Write;

use execd_client::LinkState;
use tokio::sync::watch;

/// Print a notice, under `name` (`execd run`, `execd shell`), on every
/// change of `link` until it closes. In raw mode (`tty`) a line ends with
/// `\r\n`.
pub async fn report(mut link: watch::Receiver<LinkState>, tty: bool, name: String) {
    let end = if tty { "\r\n" } else { "\n" };
    let mut lost = false;
    while link.changed().await.is_ok() {
        let state = link.borrow_and_update().clone();
        let line = match state {
            LinkState::Reconnecting { .. } if !lost => {
                lost = true;
                "connection lost; reconnecting…"
            }
            LinkState::Connected if lost => {
                lost = false;
                "reconnected"
            }
            LinkState::Closed { .. } => return,
            _ => continue,
        };
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{name}: {line}{end}");
        let _ = stderr.flush();
    }
}

//! [`WriteIds`]: the `writeId`s of one process's recent writes and their
//! results, so that a client retrying a write (after a cut connection)
//! gets the first result back instead of writing twice. Bounded: the
//! oldest id is forgotten past [`MAX_WRITE_IDS`].

use std::collections::{HashMap, VecDeque};

use execd_protocol::process::WriteStatus;

/// Write ids remembered per process.
pub const MAX_WRITE_IDS: usize = 1024;

/// Recent write ids of one process, oldest first.
#[derive(Debug, Default)]
pub struct WriteIds {
    results: HashMap<String, WriteStatus>,
    order: VecDeque<String>,
}

impl WriteIds {
    /// The result of the write with this id, if it is remembered.
    pub fn get(&self, id: &str) -> Option<WriteStatus> {
        self.results.get(id).copied()
    }

    /// Remember a write's result (forgetting the oldest past the bound).
    pub fn remember(&mut self, id: &str, status: WriteStatus) {
        if self.results.insert(id.to_string(), status).is_some() {
            return;
        }
        self.order.push_back(id.to_string());
        while self.order.len() > MAX_WRITE_IDS {
            if let Some(old) = self.order.pop_front() {
                self.results.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_newest_ids_only() {
        let mut ids = WriteIds::default();
        for n in 0..=MAX_WRITE_IDS {
            ids.remember(&n.to_string(), WriteStatus::Accepted);
        }
        assert_eq!(ids.get("0"), None, "the oldest is forgotten");
        assert_eq!(ids.get("1"), Some(WriteStatus::Accepted));
        assert_eq!(
            ids.get(&MAX_WRITE_IDS.to_string()),
            Some(WriteStatus::Accepted)
        );
    }
}

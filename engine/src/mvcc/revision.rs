//! Revisions and how they are written as keys of the `key` bucket.
//!
//! A revision is `(main, sub)`: `main` counts write transactions (etcd's store revision), `sub`
//! counts changes within one. In the `key` bucket a revision is the 17-byte key
//! `main (8 bytes, big-endian) '_' sub (8 bytes, big-endian)`, followed by `'t'` (18 bytes)
//! when the revision is a tombstone (a delete). Big-endian makes the tree's byte order the
//! revision order, so a range over the bucket is a range over history.

use std::fmt;

/// Bytes of a revision key.
pub const REVISION_KEY_BYTES: usize = 17;
/// Bytes of a tombstone's revision key.
pub const TOMBSTONE_KEY_BYTES: usize = 18;
const SEPARATOR: u8 = b'_';
const TOMBSTONE_MARK: u8 = b't';

/// A point in the store's history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// The write transaction (etcd's store revision).
    pub main: i64,
    /// The change within it.
    pub sub: i64,
}

impl Revision {
    /// `(main, sub)`.
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// The bucket key of this revision (with the tombstone mark when `tombstone`).
    pub fn to_key(self, tombstone: bool) -> Vec<u8> {
        let mut k = Vec::with_capacity(TOMBSTONE_KEY_BYTES);
        k.extend_from_slice(&self.main.to_be_bytes());
        k.push(SEPARATOR);
        k.extend_from_slice(&self.sub.to_be_bytes());
        if tombstone {
            k.push(TOMBSTONE_MARK);
        }
        k
    }

    /// The first bucket key at or after main revision `main`.
    pub fn main_start_key(main: i64) -> Vec<u8> {
        Revision::new(main, 0).to_key(false)
    }

    /// Decodes a bucket key: the revision and whether it is a tombstone.
    pub fn from_key(k: &[u8]) -> Result<(Revision, bool), String> {
        let tombstone = match k.len() {
            REVISION_KEY_BYTES => false,
            TOMBSTONE_KEY_BYTES if k[17] == TOMBSTONE_MARK => true,
            n => return Err(format!("revision key of {n} bytes")),
        };
        if k[8] != SEPARATOR {
            return Err("revision key without its separator".into());
        }
        let mut main = [0u8; 8];
        let mut sub = [0u8; 8];
        main.copy_from_slice(&k[..8]);
        sub.copy_from_slice(&k[9..17]);
        let rev = Revision::new(i64::from_be_bytes(main), i64::from_be_bytes(sub));
        if rev.main < 0 || rev.sub < 0 {
            return Err(format!("negative revision {rev}"));
        }
        Ok((rev, tombstone))
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.main, self.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_revisions_and_round_trip() {
        let revs = [
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(2, 0),
            Revision::new(256, 3),
        ];
        let keys: Vec<Vec<u8>> = revs.iter().map(|r| r.to_key(false)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (r, k) in revs.iter().zip(&keys) {
            assert_eq!(Revision::from_key(k), Ok((*r, false)));
            assert_eq!(Revision::from_key(&r.to_key(true)), Ok((*r, true)));
        }
        assert!(Revision::from_key(b"short").is_err());
        let mut bad = keys[0].clone();
        bad[8] = b'x';
        assert!(Revision::from_key(&bad).is_err());
        let mut bad = Revision::new(1, 0).to_key(true);
        bad[17] = b'x';
        assert!(Revision::from_key(&bad).is_err());
    }
}

//! A key's value at one revision (etcd's `mvccpb.KeyValue`), and its encoding in the `key`
//! bucket: the protobuf wire format of `mvccpb.KeyValue`, so that a hash over the bucket
//! (HashKV) is computed over the same bytes etcd hashes.
//!
//! Fields (proto3, zero values omitted): 1 `key` bytes, 2 `create_revision` int64,
//! 3 `mod_revision` int64, 4 `version` int64, 5 `value` bytes, 6 `lease` int64.

/// A key's value at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The revision of the put that created this generation of the key.
    pub create_revision: i64,
    /// The revision of this version.
    pub mod_revision: i64,
    /// The key's version: 1 for the creating put, +1 for each later put.
    pub version: i64,
    /// The value.
    pub value: Vec<u8>,
    /// The lease the key is attached to, or 0.
    pub lease: i64,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_int(out: &mut Vec<u8>, field: u32, v: i64) {
    if v != 0 {
        put_varint(out, u64::from(field << 3));
        put_varint(out, v as u64);
    }
}

fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        put_varint(out, u64::from(field << 3 | 2));
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

/// Reads a varint at `*pos`, advancing it.
fn varint(b: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

impl KeyValue {
    /// The protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.key.len() + self.value.len() + 40);
        put_bytes(&mut out, 1, &self.key);
        put_int(&mut out, 2, self.create_revision);
        put_int(&mut out, 3, self.mod_revision);
        put_int(&mut out, 4, self.version);
        put_bytes(&mut out, 5, &self.value);
        put_int(&mut out, 6, self.lease);
        out
    }

    /// Decodes everything but the value (restoring the key index needs only these; skipping
    /// the value saves a copy of it per revision).
    pub fn decode_without_value(b: &[u8]) -> Result<KeyValue, String> {
        Self::decode_inner(b, false)
    }

    /// Decodes the protobuf encoding (unknown fields are skipped, as protobuf requires).
    pub fn decode(b: &[u8]) -> Result<KeyValue, String> {
        Self::decode_inner(b, true)
    }

    fn decode_inner(b: &[u8], with_value: bool) -> Result<KeyValue, String> {
        let mut kv = KeyValue::default();
        let mut pos = 0;
        while pos < b.len() {
            let tag = varint(b, &mut pos)?;
            let (field, wire) = (tag >> 3, tag & 7);
            match wire {
                0 => {
                    let v = varint(b, &mut pos)? as i64;
                    match field {
                        2 => kv.create_revision = v,
                        3 => kv.mod_revision = v,
                        4 => kv.version = v,
                        6 => kv.lease = v,
                        _ => {}
                    }
                }
                2 => {
                    let len =
                        usize::try_from(varint(b, &mut pos)?).map_err(|_| "length overflow")?;
                    let end = pos
                        .checked_add(len)
                        .filter(|&e| e <= b.len())
                        .ok_or("truncated bytes field")?;
                    match field {
                        1 => kv.key = b[pos..end].to_vec(),
                        5 if with_value => kv.value = b[pos..end].to_vec(),
                        _ => {}
                    }
                    pos = end;
                }
                1 => {
                    pos = pos
                        .checked_add(8)
                        .filter(|&e| e <= b.len())
                        .ok_or("truncated fixed64")?
                }
                5 => {
                    pos = pos
                        .checked_add(4)
                        .filter(|&e| e <= b.len())
                        .ok_or("truncated fixed32")?
                }
                w => return Err(format!("unsupported wire type {w}")),
            }
        }
        Ok(kv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_protobuf_bytes() {
        let kv = KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 300,
            version: 1,
            value: b"bar".to_vec(),
            lease: 0,
        };
        let b = kv.encode();
        // 0a 03 'foo' | 10 02 | 18 ac 02 | 20 01 | 2a 03 'bar'   (lease 0 omitted)
        assert_eq!(
            b,
            [
                0x0a, 3, b'f', b'o', b'o', 0x10, 2, 0x18, 0xac, 0x02, 0x20, 1, 0x2a, 3, b'b', b'a',
                b'r'
            ]
        );
        assert_eq!(KeyValue::decode(&b), Ok(kv));
        let neg = KeyValue {
            lease: -1,
            ..KeyValue::default()
        };
        assert_eq!(KeyValue::decode(&neg.encode()), Ok(neg));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(KeyValue::decode(&[0x0a, 10, 1]).is_err());
        assert!(KeyValue::decode(&[0x80; 11]).is_err());
        assert!(KeyValue::decode(&[0x0b]).is_err());
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = KeyValue::decode(&junk);
        }
    }
}

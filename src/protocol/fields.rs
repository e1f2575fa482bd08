//! The fields every message is built of: checked text and paths, the one
//! normalization of a requested path, and the bounds-checked cursor that
//! decodes them.

use super::limits::*;

pub(super) fn check_text(field: &'static str, s: &str, max: usize) -> Result<(), EncodeError> {
    if s.len() > max {
        return Err(EncodeError::TooLong { field, len: s.len(), max });
    }
    if s.contains('\0') {
        return Err(EncodeError::Nul(field));
    }
    Ok(())
}

pub(super) fn check_bytes(field: &'static str, b: &[u8], max: usize) -> Result<(), EncodeError> {
    if b.len() > max {
        return Err(EncodeError::TooLong { field, len: b.len(), max });
    }
    if b.contains(&0) {
        return Err(EncodeError::Nul(field));
    }
    Ok(())
}

/// A path field: any bytes but NUL, at most [`MAX_PATH_LEN`].
pub(super) fn path_bytes(field: &'static str, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    if bytes.len() > MAX_PATH_LEN {
        return Err(DecodeError::TooLong { field, len: bytes.len(), max: MAX_PATH_LEN });
    }
    if bytes.contains(&0) {
        return Err(DecodeError::BadText(field));
    }
    Ok(bytes.to_vec())
}

/// A requested path in the one form every request uses: `.` components and
/// empty ones (`//`, a trailing `/`) dropped, `..` kept (the server's
/// confined opener refuses it), a leading `/` kept (refused too). Nothing
/// left is `.`, the root.
///
/// ```text
/// ./sub//deep/  ->  sub/deep        .  ->  .        a/../b  ->  a/../b
/// ```
pub fn normalize_path(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    if path.starts_with(b"/") {
        out.push(b'/');
    }
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".") {
        if !out.is_empty() && out != b"/" {
            out.push(b'/');
        }
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

pub(super) fn text(field: &'static str, bytes: &[u8]) -> Result<String, DecodeError> {
    let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::BadText(field))?;
    if s.contains('\0') {
        return Err(DecodeError::BadText(field));
    }
    Ok(s.to_owned())
}

/// Cuts `s` to at most `max` bytes without splitting a character.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A bounds-checked little-endian cursor.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        match end {
            Some(end) => {
                let out = &self.buf[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(DecodeError::Truncated { needed: self.pos.saturating_add(n), got: self.buf.len() }),
        }
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(super) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(super) fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub(super) fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { expected: self.pos, got: self.buf.len() })
        }
    }
}

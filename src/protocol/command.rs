//! Command-queue messages, client → server: their kinds, tails and codec.

use std::fmt;

use super::{codes::*, fields::*, limits::*};

/// A message on the command queue, from a client to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Opens a session of `kind`: the server maps `region` (of `region_size`
    /// bytes) and opens the semaphores `items` and `spaces`, each named with
    /// a random part of its own.
    Open {
        client_pid: u32,
        region_size: u32,
        region: String,
        items: String,
        spaces: String,
        kind: SessionKind,
    },
    /// Asks for one file (its path: bytes, no NUL, not empty); the answer
    /// frames carry `seq`. The server sends its bytes from `offset` on (when
    /// `condition` allows; see [`GetCondition`]), and its `End` frame counts
    /// and hashes the whole file, the bytes before `offset` included.
    Get { client_pid: u32, seq: u32, region: String, path: Vec<u8>, offset: u64, condition: GetCondition },
    /// Asks for the list of served files at or below `prefix` (empty: the
    /// whole tree); the answer frames carry `seq`.
    List { client_pid: u32, seq: u32, region: String, prefix: Vec<u8> },
    /// Ends the session: the client's shutdown message.
    Close { client_pid: u32, region: String },
    /// Asks the server to stop, at once or after its open sessions
    /// ([`StopKind`]).
    Stop { client_pid: u32, kind: StopKind },
    /// Asks for the server's status; the answer frames carry `seq`.
    Status { client_pid: u32, seq: u32, region: String },
    /// Asks the server to stop sending the file of request `seq` (the client
    /// cannot keep it, a full disk say): the server ends that file with an
    /// `Error` frame of [`ReasonCode::Cancelled`] between two chunks, and the
    /// session goes on with the next request. A `seq` not being sent (done
    /// already, or not yet begun) is ignored.
    Cancel { client_pid: u32, seq: u32, region: String },
    /// On an upload session: the client sends the file `path` (bytes, no
    /// NUL, not empty; below the server's `--accept` directory) as `flags`
    /// ask; its frames, carrying `seq`, follow in the region as a fetch's
    /// answer does (`Start` with the size, mode, flags and mtime, `Data`,
    /// then `DataEnd` or `End`, or `Error` when the client gives it up),
    /// and the server answers in the region's header ([`UploadAnswer`]).
    Put { client_pid: u32, seq: u32, region: String, path: Vec<u8>, flags: PutFlags },
}

/// A file's size and modification time as `fstat` tells them: what a
/// [`GetCondition`] compares and a `Start` frame reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stamp {
    pub size: u64,
    /// Nanoseconds since the epoch (negative before 1970).
    pub mtime_ns: i64,
}

/// On what condition a [`Command::Get`] is served as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GetCondition {
    /// None: the file from the offset (the whole file when the offset is
    /// past its end).
    #[default]
    Always,
    /// Resuming: the offset holds only if the source still has this size
    /// and mtime; otherwise the whole file is sent. The `Start` frame says
    /// which (`StartFlags::FROM_OFFSET`).
    IfSame(Stamp),
    /// `--update`: when the source has this size and is not newer than
    /// this mtime, the answer is a `Start` frame with
    /// `StartFlags::UP_TO_DATE` and nothing after it; otherwise the file.
    UnlessUpToDate(Stamp),
}

impl GetCondition {
    fn encode(self, out: &mut Vec<u8>) {
        let (kind, stamp) = match self {
            GetCondition::Always => (0u8, Stamp::default()),
            GetCondition::IfSame(stamp) => (1, stamp),
            GetCondition::UnlessUpToDate(stamp) => (2, stamp),
        };
        out.push(kind);
        out.extend_from_slice(&stamp.size.to_le_bytes());
        out.extend_from_slice(&stamp.mtime_ns.to_le_bytes());
    }

    fn decode(r: &mut Reader<'_>) -> Result<GetCondition, DecodeError> {
        let kind = r.u8()?;
        let stamp = Stamp { size: r.u64()?, mtime_ns: r.u64()? as i64 };
        Ok(match kind {
            0 if stamp == Stamp::default() => GetCondition::Always,
            1 => GetCondition::IfSame(stamp),
            2 => GetCondition::UnlessUpToDate(stamp),
            _ => return Err(DecodeError::BadField("get condition")),
        })
    }
}

/// How a server is asked to stop: by a `Stop` message (its seq word) or a
/// signal (`shm_server` maps SIGQUIT to [`StopKind::Drain`], SIGINT, SIGTERM
/// and SIGHUP to [`StopKind::Now`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopKind {
    /// Cancel open sessions and stop (`shm_client --stop-server`).
    Now,
    /// Take no new session, let the open ones finish what they already
    /// asked for, then stop (`shm_client --stop-server --drain`).
    Drain,
}

impl StopKind {
    /// The word of a `Stop` message.
    fn code(self) -> u32 {
        match self {
            StopKind::Now => 0,
            StopKind::Drain => 1,
        }
    }

    /// The kind a `Stop` message's word names.
    fn from_code(code: u32) -> Result<StopKind, DecodeError> {
        match code {
            0 => Ok(StopKind::Now),
            1 => Ok(StopKind::Drain),
            _ => Err(DecodeError::BadField("stop kind")),
        }
    }
}

pub(super) const KIND_OPEN: u8 = 1;
pub(super) const KIND_GET: u8 = 2;
pub(super) const KIND_LIST: u8 = 3;
pub(super) const KIND_CLOSE: u8 = 4;
pub(super) const KIND_STOP: u8 = 5;
pub(super) const KIND_STATUS: u8 = 6;
pub(super) const KIND_OPEN_STATUS: u8 = 7;
pub(super) const KIND_CANCEL: u8 = 8;
pub(super) const KIND_OPEN_UPLOAD: u8 = 9;
pub(super) const KIND_PUT: u8 = 10;
/// Length of a Put's fields before its path: size, mode, flags.
const PUT_FIELDS_LEN: usize = 1;
const _: () = assert!(PUT_FIELDS_LEN <= GET_FIELDS_LEN, "a Put is no longer than a Get");

/// For the server's log (`-vv`): what the message asks, from whom.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Open { client_pid, region_size, region, kind: SessionKind::Transfer, .. } => {
                write!(f, "open from pid {client_pid}: region {region} ({region_size} bytes)")
            }
            Command::Open { client_pid, region_size, region, kind: SessionKind::Status, .. } => {
                write!(f, "open for the status from pid {client_pid}: region {region} ({region_size} bytes)")
            }
            Command::Open { client_pid, region_size, region, kind: SessionKind::Upload, .. } => {
                write!(f, "open for uploads from pid {client_pid}: region {region} ({region_size} bytes)")
            }
            Command::Put { client_pid, seq, region, path, .. } => write!(
                f,
                "put {} from pid {client_pid} (request {seq}, region {region})",
                crate::text::quote_bytes(path)
            ),
            Command::Get { client_pid, seq, region, path, offset, .. } => write!(
                f,
                "get {} from pid {client_pid} (request {seq}, region {region}{})",
                crate::text::quote_bytes(path),
                get_from_text(*offset)
            ),
            Command::List { client_pid, seq, region, prefix } if prefix.is_empty() => {
                write!(f, "list from pid {client_pid} (request {seq}, region {region})")
            }
            Command::List { client_pid, seq, region, prefix } => write!(
                f,
                "list {} from pid {client_pid} (request {seq}, region {region})",
                crate::text::quote_bytes(prefix)
            ),
            Command::Status { client_pid, seq, region } => {
                write!(f, "status from pid {client_pid} (request {seq}, region {region})")
            }
            Command::Close { client_pid, region } => {
                write!(f, "goodbye from pid {client_pid} (region {region})")
            }
            Command::Cancel { client_pid, seq, region } => {
                write!(f, "cancel of request {seq} from pid {client_pid} (region {region})")
            }
            Command::Stop { client_pid, kind: StopKind::Now } => write!(f, "stop from pid {client_pid}"),
            Command::Stop { client_pid, kind: StopKind::Drain } => {
                write!(f, "stop after the open sessions (drain) from pid {client_pid}")
            }
        }
    }
}

impl Command {
    /// The region this message is about, if any.
    pub fn region(&self) -> Option<&str> {
        match self {
            Command::Open { region, .. }
            | Command::Get { region, .. }
            | Command::List { region, .. }
            | Command::Status { region, .. }
            | Command::Cancel { region, .. }
            | Command::Put { region, .. }
            | Command::Close { region, .. } => Some(region),
            Command::Stop { .. } => None,
        }
    }

    /// Encodes the message.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] when a name or path breaks a limit that
    /// [`Command::decode`] would enforce, so that nothing is sent that the
    /// server would have to drop.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        // A tail of fields (an Open's names, a Get's fields and path).
        let mut fields = None;
        let (kind, pid, word, region, path) = match self {
            Command::Open { client_pid, region_size, region, items, spaces, kind } => {
                let kind = match kind {
                    SessionKind::Transfer => KIND_OPEN,
                    SessionKind::Status => KIND_OPEN_STATUS,
                    SessionKind::Upload => KIND_OPEN_UPLOAD,
                };
                fields = Some(encode_semaphore_names(items, spaces)?);
                (kind, *client_pid, *region_size, region.as_str(), &[][..])
            }
            Command::Get { client_pid, seq, region, path, offset, condition } => {
                fields = Some(encode_get_tail(*offset, *condition, path)?);
                (KIND_GET, *client_pid, *seq, region.as_str(), path.as_slice())
            }
            Command::List { client_pid, seq, region, prefix } => {
                (KIND_LIST, *client_pid, *seq, region.as_str(), prefix.as_slice())
            }
            Command::Close { client_pid, region } => (KIND_CLOSE, *client_pid, 0, region.as_str(), &[][..]),
            Command::Stop { client_pid, kind } => (KIND_STOP, *client_pid, kind.code(), "", &[][..]),
            Command::Status { client_pid, seq, region } => {
                (KIND_STATUS, *client_pid, *seq, region.as_str(), &[][..])
            }
            Command::Cancel { client_pid, seq, region } => {
                (KIND_CANCEL, *client_pid, *seq, region.as_str(), &[][..])
            }
            Command::Put { client_pid, seq, region, path, flags } => {
                fields = Some(encode_put_tail(*flags, path)?);
                (KIND_PUT, *client_pid, *seq, region.as_str(), path.as_slice())
            }
        };
        check_text("region name", region, MAX_NAME_LEN)?;
        check_bytes("path", path, MAX_PATH_LEN)?;
        let tail = fields.as_deref().unwrap_or(path);
        let mut out = Vec::with_capacity(MSG_HEADER_LEN + region.len() + tail.len());
        out.extend_from_slice(&MSG_MAGIC.to_le_bytes());
        out.push(PROTOCOL_VERSION);
        out.push(kind);
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&pid.to_le_bytes());
        out.extend_from_slice(&word.to_le_bytes());
        out.extend_from_slice(&(region.len() as u16).to_le_bytes());
        out.extend_from_slice(&(tail.len() as u16).to_le_bytes());
        out.extend_from_slice(region.as_bytes());
        out.extend_from_slice(tail);
        Ok(out)
    }

    /// Decodes one message.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] for anything that is not exactly one well-formed
    /// message of this version.
    pub fn decode(buf: &[u8]) -> Result<Command, DecodeError> {
        let mut r = Reader::new(buf);
        let magic = r.u32()?;
        if magic != MSG_MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
        let version = r.u8()?;
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let kind = r.u8()?;
        if r.u16()? != 0 {
            return Err(DecodeError::BadField("reserved"));
        }
        let client_pid = r.u32()?;
        let word = r.u32()?;
        let region_len = usize::from(r.u16()?);
        let path_len = usize::from(r.u16()?);
        if region_len > MAX_NAME_LEN {
            return Err(DecodeError::TooLong { field: "region name", len: region_len, max: MAX_NAME_LEN });
        }
        if path_len > MAX_TAIL_LEN {
            return Err(DecodeError::TooLong { field: "path", len: path_len, max: MAX_TAIL_LEN });
        }
        let expected = MSG_HEADER_LEN + region_len + path_len;
        if buf.len() < expected {
            return Err(DecodeError::Truncated { needed: expected, got: buf.len() });
        }
        if buf.len() > expected {
            return Err(DecodeError::TrailingBytes { expected, got: buf.len() });
        }
        let region = text("region name", r.bytes(region_len)?)?;
        let tail = r.bytes(path_len)?;
        let needs_region = kind != KIND_STOP;
        if needs_region == region.is_empty() {
            return Err(DecodeError::BadField("region name"));
        }
        if let Some(kind) = open_kind(kind) {
            let (items, spaces) = decode_semaphore_names(tail)?;
            return Ok(Command::Open { client_pid, region_size: word, region, items, spaces, kind });
        }
        if kind == KIND_GET {
            let (offset, condition, path) = decode_get_tail(tail)?;
            return Ok(Command::Get { client_pid, seq: word, region, path, offset, condition });
        }
        if kind == KIND_PUT {
            let (flags, path) = decode_put_tail(tail)?;
            return Ok(Command::Put { client_pid, seq: word, region, path, flags });
        }
        let path = path_bytes("path", tail)?;
        let path_ok = match kind {
            KIND_LIST => true,
            _ => path.is_empty(),
        };
        if !path_ok {
            return Err(DecodeError::BadField("path"));
        }
        if kind == KIND_CLOSE && word != 0 {
            return Err(DecodeError::BadField("seq"));
        }
        Ok(match kind {
            KIND_LIST => Command::List { client_pid, seq: word, region, prefix: path },
            KIND_CLOSE => Command::Close { client_pid, region },
            KIND_STOP => Command::Stop { client_pid, kind: StopKind::from_code(word)? },
            KIND_STATUS => Command::Status { client_pid, seq: word, region },
            KIND_CANCEL => Command::Cancel { client_pid, seq: word, region },
            other => return Err(DecodeError::UnknownKind(other)),
        })
    }
}
/// The session kind an Open message of kind byte `kind` opens; `None` for
/// the other messages.
pub(super) fn open_kind(kind: u8) -> Option<SessionKind> {
    match kind {
        KIND_OPEN => Some(SessionKind::Transfer),
        KIND_OPEN_STATUS => Some(SessionKind::Status),
        KIND_OPEN_UPLOAD => Some(SessionKind::Upload),
        _ => None,
    }
}

/// The tail of an Open: each semaphore name after its length byte.
/// The tail of a Get: its offset, its condition, its path (not empty:
/// [`decode_get_tail`] drops a Get without one).
pub(super) fn encode_get_tail(
    offset: u64,
    condition: GetCondition,
    path: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    check_path(path)?;
    let mut out = Vec::with_capacity(GET_FIELDS_LEN + path.len());
    out.extend_from_slice(&offset.to_le_bytes());
    condition.encode(&mut out);
    out.extend_from_slice(path);
    Ok(out)
}

/// [`encode_get_tail`] undone: a path that is present, any bytes but NUL,
/// at most [`MAX_PATH_LEN`] bytes.
pub(super) fn decode_get_tail(tail: &[u8]) -> Result<(u64, GetCondition, Vec<u8>), DecodeError> {
    if tail.is_empty() {
        return Err(DecodeError::BadField("path"));
    }
    let mut r = Reader::new(tail);
    let offset = r.u64()?;
    let condition = GetCondition::decode(&mut r)?;
    let path = path_bytes("path", r.rest())?;
    if path.is_empty() {
        return Err(DecodeError::BadField("path"));
    }
    Ok((offset, condition, path))
}

/// The tail of a Put: its flags, then its path (not empty:
/// [`decode_put_tail`] drops a Put without one).
pub(super) fn encode_put_tail(flags: PutFlags, path: &[u8]) -> Result<Vec<u8>, EncodeError> {
    check_path(path)?;
    let mut out = Vec::with_capacity(PUT_FIELDS_LEN + path.len());
    out.push(flags.bits());
    out.extend_from_slice(path);
    Ok(out)
}

/// [`encode_put_tail`] undone: known flags, a path that is present, any
/// bytes but NUL, at most [`MAX_PATH_LEN`] bytes.
pub(super) fn decode_put_tail(tail: &[u8]) -> Result<(PutFlags, Vec<u8>), DecodeError> {
    let mut r = Reader::new(tail);
    let flags = PutFlags::from_bits(r.u8()?).ok_or(DecodeError::BadField("put flags"))?;
    let path = path_bytes("path", r.rest())?;
    if path.is_empty() {
        return Err(DecodeError::BadField("path"));
    }
    Ok((flags, path))
}

/// The path of a Get or a Put: present, any bytes but NUL, at most
/// [`MAX_PATH_LEN`] bytes, as the decoders take it.
fn check_path(path: &[u8]) -> Result<(), EncodeError> {
    if path.is_empty() {
        return Err(EncodeError::Empty("path"));
    }
    check_bytes("path", path, MAX_PATH_LEN)
}

/// `, from byte N` for a Get that starts past the beginning, for the log.
pub(super) fn get_from_text(offset: u64) -> String {
    if offset == 0 {
        String::new()
    } else {
        format!(", from byte {offset}")
    }
}

pub(super) fn encode_semaphore_names(items: &str, spaces: &str) -> Result<Vec<u8>, EncodeError> {
    check_text("items semaphore name", items, MAX_NAME_LEN)?;
    check_text("spaces semaphore name", spaces, MAX_NAME_LEN)?;
    let mut tail = Vec::with_capacity(2 + items.len() + spaces.len());
    for name in [items, spaces] {
        // At most MAX_NAME_LEN bytes, checked above: it fits the byte.
        tail.push(name.len() as u8);
        tail.extend_from_slice(name.as_bytes());
    }
    Ok(tail)
}

/// The two semaphore names of an Open's tail: each non-empty, at most
/// [`MAX_NAME_LEN`] bytes, UTF-8 without NUL, and nothing after them.
pub(super) fn decode_semaphore_names(tail: &[u8]) -> Result<(String, String), DecodeError> {
    let mut r = Reader::new(tail);
    let mut name = |field: &'static str| -> Result<String, DecodeError> {
        let len = usize::from(r.u8()?);
        if len > MAX_NAME_LEN {
            return Err(DecodeError::TooLong { field, len, max: MAX_NAME_LEN });
        }
        let name = text(field, r.bytes(len)?)?;
        if name.is_empty() {
            return Err(DecodeError::BadField(field));
        }
        Ok(name)
    };
    let items = name("items semaphore name")?;
    let spaces = name("spaces semaphore name")?;
    r.finish()?;
    Ok((items, spaces))
}

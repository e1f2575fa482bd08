//! The relay (`shm_client --relay[=KIND]`): a local client of the server on
//! its host that forwards the session of a client on another host, which
//! reaches it through `RSH` as records on stdin and stdout ([`crate::client::link`]
//! has the stream's records and the other side). A transfer or status
//! relay forwards each request and copies its answer's frames back; an
//! upload relay pushes each file's frames into its own ring and sends the
//! server's answer back.

use std::io::{BufWriter, Read, Write};
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::time::Instant;

use crate::client::config::ClientConfig;
use crate::client::link::{
    encode_answer, ends_answer, spawn_reader, write_record, Record, Records, MAX_COMMAND_RECORD,
    MAX_FRAME_RECORD, MAX_UPLOAD_RECORD, RELAY_MAX_PAYLOAD,
};
use crate::client::session::{self, Opened, Session};
use crate::error::{Error, Result};
use crate::os::sys;
use crate::protocol::{Command, DataEnd, FrameHeader, FrameKind, Reply, SessionKind, FRAME_HEADER_LEN};
use crate::shm_region::ring::{Consumer, Producer, WAIT_SLICE};
use crate::transfer::send_file::FrameSink;

/// The relay of fetches and listings (`shm_client --relay`):
/// [`relay_session`] of a [`SessionKind::Transfer`].
///
/// # Errors
///
/// As [`relay_session`].
pub fn relay(config: &ClientConfig, input: impl Read + Send + 'static, output: impl Write) -> Result<()> {
    relay_session(config, SessionKind::Transfer, input, output)
}

/// [`relay_session`] over this process's standard input and output, the
/// way `shm_client --relay[=KIND]` runs: the output, when a pipe (as a
/// remote shell gives it), made to hold 1 MiB, so that the relay and the
/// remote shell each work through a piece while the other takes the one
/// before (the input keeps its size: an upload's bytes in flight, which a
/// full disk stops, stay as few).
///
/// # Errors
///
/// As [`relay_session`].
pub fn relay_stdio(config: &ClientConfig, kind: SessionKind) -> Result<()> {
    let (input, output) = (std::io::stdin(), std::io::stdout());
    sys::widen_pipe(&output, sys::RELAY_PIPE_BYTES);
    relay_session(config, kind, input, output.lock())
}

/// The relay (`shm_client --relay[=KIND]`): opens a session of `kind` with
/// the server of `config.queue`, then until `input` ends, forwards what
/// its records ask; then it closes the session. A transfer session takes
/// Get, List and Cancel, a status session Status, and every frame of each
/// answer is copied to `output`; an upload session takes each file's Put
/// and frames and writes the server's answer to `output`.
///
/// # Errors
///
/// The errors of opening the session ([`Client::connect`](crate::Client::connect)); [`Error::Protocol`] for a record that the
/// session's kind does not take where it came, or that does not decode
/// (a stream cut inside a record too); [`Error::Failed`] when the stream
/// ends between records inside an upload (the client left: the server
/// keeps nothing); the session's errors; [`Error::Os`] when `output`
/// cannot be written.
pub fn relay_session(
    config: &ClientConfig,
    kind: SessionKind,
    input: impl Read + Send + 'static,
    output: impl Write,
) -> Result<()> {
    match session::open(config, kind)? {
        Opened::Writes(session) => relay_uploads(session, spawn_reader(input, MAX_UPLOAD_RECORD), output),
        Opened::Reads(session) => {
            relay_requests(session, kind, spawn_reader(input, MAX_COMMAND_RECORD), output)
        }
    }
}

fn write_err(e: std::io::Error) -> Error {
    Error::os_named("write", "stdout", e)
}

fn client_stream(why: &str) -> Error {
    Error::Protocol(format!("the client's stream: {why}"))
}

/// Whether a relay of `kind` forwards `cmd`, and whether it asks for an
/// answer; `None` when it does not forward it.
fn forwarded(kind: SessionKind, cmd: &Command) -> Option<bool> {
    match (kind, cmd) {
        (SessionKind::Transfer, Command::Get { .. } | Command::List { .. })
        | (SessionKind::Status, Command::Status { .. }) => Some(true),
        (SessionKind::Transfer, Command::Cancel { .. }) => Some(false),
        _ => None,
    }
}

/// A transfer or status relay: each command forwarded, every frame of its
/// answer copied back.
fn relay_requests(
    mut client: Session<Consumer>,
    kind: SessionKind,
    mut commands: Records,
    output: impl Write,
) -> Result<()> {
    let mut output = BufWriter::with_capacity(64 << 10, output);
    let mut open_answers = 0usize;
    let mut buf = vec![0u8; client.max_payload()];
    let mut record = Vec::with_capacity(MAX_FRAME_RECORD);
    loop {
        let next = if open_answers == 0 {
            output.flush().map_err(write_err)?;
            Some(commands.recv().unwrap_or(Record::End))
        } else {
            match commands.try_recv() {
                Ok(r) => Some(r),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(Record::End),
            }
        };
        match next {
            Some(Record::Body(body)) => {
                let cmd = Command::decode(&body)
                    .map_err(|e| client_stream(&format!("a record that is no command: {e}")))?;
                let Some(asks) = forwarded(kind, &cmd) else {
                    return Err(Error::Protocol(format!("a {kind:?} relay forwards no {cmd}")));
                };
                client.forward(cmd)?;
                open_answers += usize::from(asks);
            }
            Some(Record::End) => {
                output.flush().map_err(write_err)?;
                return client.close();
            }
            Some(Record::Broken(why)) => return Err(client_stream(&why)),
            None => {}
        }
        if open_answers > 0 {
            let header = client.next_raw_frame(&mut buf)?;
            record.clear();
            record.extend_from_slice(&header.encode());
            record.extend_from_slice(&buf[..header.len as usize]);
            write_record(&mut output, &record).map_err(write_err)?;
            if ends_answer(header.kind, &buf[..header.len as usize]) {
                open_answers -= 1;
            }
        }
    }
}

/// An upload relay: for each file its Put, then its frames pushed into the
/// ring, and the server's answer sent back as soon as it shows.
fn relay_uploads(mut client: Session<Producer>, mut records: Records, output: impl Write) -> Result<()> {
    let mut output = BufWriter::new(output);
    // The region's answer word is read by seq: a Put of seq 0 (a region's
    // "none yet") or of the seq answered last would read an answer that is
    // not its own.
    let mut last_seq = 0u32;
    loop {
        let body = match records.recv().unwrap_or(Record::End) {
            Record::Body(body) => body,
            Record::End => return client.close(),
            Record::Broken(why) => return Err(client_stream(&why)),
        };
        if body.len() > MAX_COMMAND_RECORD {
            return Err(client_stream(&format!("a record of {} bytes where a Put was due", body.len())));
        }
        let put = Command::decode(&body)
            .map_err(|e| client_stream(&format!("a record that is no command where a Put was due: {e}")))?;
        let Command::Put { seq, .. } = put else {
            return Err(client_stream(&format!("a {put} where a Put was due")));
        };
        if seq == 0 || seq == last_seq {
            return Err(client_stream(&format!("a Put of request {seq}, which is no new request")));
        }
        last_seq = seq;
        client.forward(put)?;
        let mut answered = false;
        let mut answer = |word: u32| -> Result<()> {
            write_record(&mut output, &encode_answer(seq, word)).map_err(write_err)?;
            output.flush().map_err(write_err)
        };
        let mut last_record = Instant::now();
        loop {
            let ended = match records.recv_timeout(WAIT_SLICE) {
                Ok(Record::Body(body)) => {
                    last_record = Instant::now();
                    push_frame(&mut client, seq, &body)?
                }
                // Whole records up to here: the client left (interrupted,
                // killed), it sent no garbage. The server keeps nothing.
                Ok(Record::End) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Failed {
                        reason: crate::reason::FailReason::SessionLost,
                        text: format!("the client left: it ended inside upload {seq}; nothing kept"),
                    })
                }
                Ok(Record::Broken(why)) => return Err(client_stream(&why)),
                Err(RecvTimeoutError::Timeout) if client.is_cancelled() => return Err(Error::Cancelled),
                Err(RecvTimeoutError::Timeout) => {
                    // A client that stopped sending (stopped, its link
                    // hung) holds the session no longer than a stalled
                    // peer may; a server that died ends it at once.
                    client.server_alive()?;
                    let waited = last_record.elapsed();
                    if waited >= client.stall_limit() {
                        return Err(Error::Stalled { waited });
                    }
                    false
                }
            };
            if !answered {
                if let Some(word) = client.answer_to(seq)? {
                    // A refusal, or a failure for good: the client stops
                    // sending data at once.
                    answer(word)?;
                    answered = true;
                }
            }
            if ended {
                break;
            }
        }
        if !answered {
            let word = client.wait_for_answer(seq)?.code();
            answer(word)?;
        }
    }
}

/// Pushes the frame record `body` of upload `seq` into the ring, data cut
/// to its slots; whether it ended the file (its DataEnd or End, or the
/// Error of a file the client gave up).
fn push_frame(client: &mut Session<Producer>, seq: u32, body: &[u8]) -> Result<bool> {
    if body.len() < FRAME_HEADER_LEN {
        return Err(client_stream(&format!("a record of {} bytes, shorter than a frame header", body.len())));
    }
    let header = FrameHeader::decode(&body[..FRAME_HEADER_LEN], RELAY_MAX_PAYLOAD)
        .map_err(|e| client_stream(&format!("not a frame: {e}")))?;
    let payload = &body[FRAME_HEADER_LEN..];
    if payload.len() != header.len as usize {
        return Err(client_stream(&format!(
            "a frame of {} bytes in a record of {} payload bytes",
            header.len,
            payload.len()
        )));
    }
    if header.seq != seq {
        return Err(client_stream(&format!("a frame of request {} during upload {seq}", header.seq)));
    }
    let cap = client.max_payload();
    match header.kind {
        FrameKind::Data => {
            for piece in payload.chunks(cap) {
                client.send_data(seq, piece)?;
            }
            Ok(false)
        }
        // The last bytes and the end: in one frame where they fit this
        // ring's slot, else the bytes cut to it and the end after them.
        FrameKind::DataEnd => {
            let last = DataEnd::decode(payload)
                .map_err(|e| client_stream(&format!("a DataEnd frame that does not decode: {e}")))?;
            let bytes = &payload[..last.len as usize];
            if bytes.len() + DataEnd::TRAILER_LEN <= cap {
                client.send_data_end(seq, bytes, last.count, last.checksum)?;
            } else {
                for piece in bytes.chunks(cap) {
                    client.send_data(seq, piece)?;
                }
                client.send(seq, &Reply::End { count: last.count, checksum: last.checksum })?;
            }
            Ok(true)
        }
        // The file's start; its end; or the client giving it up (it
        // changed while it was sent: the server keeps nothing and answers
        // it). A frame of these kinds decodes to its own reply or not at
        // all.
        kind @ (FrameKind::Start | FrameKind::End | FrameKind::Error) => {
            let reply = Reply::decode(kind, payload)
                .map_err(|e| client_stream(&format!("an {kind:?} frame that does not decode: {e}")))?;
            client.send(seq, &reply)?;
            Ok(kind != FrameKind::Start)
        }
        other => Err(client_stream(&format!("a {other:?} frame in an upload"))),
    }
}

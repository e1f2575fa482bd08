//! The server's side of an upload: one file of a [`Command::Put`]
//! (crate::protocol::Command::Put) received from the ring into the
//! `--accept` directory, with every guarantee a fetch has on the client:
//! confined below the directory (its descriptor, plain components only, no
//! symlink followed: [`OutDir`]), verified (count and xxh3 of the bytes
//! received) before the name appears, replaced atomically, permission bits
//! without setuid, setgid or sticky, and nothing left under the name when
//! it fails.
//!
//! The client's sender is a fetch's ([`crate::transfer::send_file::send_source`]):
//! a `Start` frame (size, or that the size is unknown; mode; mtime),
//! `Data` frames and one `DataEnd` or `End` frame (count, xxh3) of the
//! request's seq, or instead of the end an `Error` frame when it gives the
//! file up (it changed while it was read: nothing is kept). A file of
//! unknown size (procfs, sysfs) is taken up to its `End` count, at most
//! [`MAX_UNKNOWN_SIZE`](crate::protocol::MAX_UNKNOWN_SIZE) bytes, as a
//! fetch's client takes it. The answer goes into the region's header
//! ([`Region::answer`](crate::shm_region::Region::answer)): as soon as the
//! file is refused or fails for good (a write fails, more bytes than
//! announced come; the client then stops sending and sends its `End`),
//! else after the `End`.

use std::io;

use xxhash_rust::xxh3::Xxh3;

use crate::choices::Clobber;
use crate::error::{Error, Result};
use crate::fs::output::{OutDir, OutputPath, Sink};
use crate::os::sys::IO_CHUNK;
use crate::protocol::{Frame, PutFlags, PutIfExists, ReasonCode, Reply, Stamp, UploadAnswer};
use crate::shm_region::ring::Consumer;
use crate::transfer::body::{
    read_body, Announced, Body, End, FrameSource, FromStart, Incoming, Mismatch, Report, Taking,
};
use crate::transfer::codes::io_reason;
use crate::transfer::send_file::up_to_date;
use crate::transfer::Meter;

/// One file a client uploads: what its `Put` said.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PutRequest<'a> {
    pub seq: u32,
    pub path: &'a [u8],
    pub flags: PutFlags,
}

/// What an upload's `Start` frame said.
#[derive(Debug, Clone, Copy)]
struct Started {
    size: Announced,
    mode: u32,
    mtime_ns: i64,
}

/// What became of an upload, for the server's log: the answer, and why
/// when it failed.
#[derive(Debug)]
pub(crate) struct Received {
    pub answer: UploadAnswer,
    pub bytes: u64,
    pub why: Option<String>,
}

/// An upload that ended without its `End` (or `Error`) frame: why (the
/// client left, the server stops, a stall, a broken frame), and the bytes
/// of it that came. Nothing of it is kept.
#[derive(Debug)]
pub(crate) struct Stopped {
    pub error: Error,
    pub bytes: u64,
}

/// The reason code of a failed create, write or rename ([`io_reason`]);
/// nothing there (the directory went away) is [`ReasonCode::Other`].
fn failure_code(e: &io::Error) -> ReasonCode {
    io_reason(e).unwrap_or(ReasonCode::Other)
}

/// Where the upload goes, or the answer that it does not.
fn target(
    accept: Option<&OutDir>,
    put: &PutRequest<'_>,
    start: &Started,
) -> std::result::Result<Sink, (UploadAnswer, String)> {
    let Some(dir) = accept else {
        return Err((UploadAnswer::NotAccepting, "the server takes no uploads (no --accept)".into()));
    };
    let out = OutputPath::below(put.path).map_err(|why| {
        let outside = put.path.starts_with(b"/") || put.path.split(|&b| b == b'/').any(|c| c == b"..");
        let code = if outside { ReasonCode::OutsideRoot } else { ReasonCode::InvalidPath };
        (UploadAnswer::Refused(code), why)
    })?;
    if let Err(e) = dir.check_in_place() {
        // Moved away (out of where the server was told to write): nothing
        // is created in it any more.
        return Err((UploadAnswer::Refused(failure_code(&e)), format!("the --accept directory: {e}")));
    }
    if dir.is_directory(&out) {
        // No file can take the name: refused before the data is sent.
        let why = format!("{}: a directory has that name", out.shown());
        return Err((UploadAnswer::Refused(ReasonCode::IsDirectory), why));
    }
    if put.flags.if_exists() == PutIfExists::Skip && dir.exists(&out) {
        return Err((UploadAnswer::Skipped, "exists".into()));
    }
    if let (true, Announced::Exactly(size)) = (put.flags.has(PutFlags::UNLESS_UP_TO_DATE), start.size) {
        let source = Stamp { size, mtime_ns: start.mtime_ns };
        if dir.stamp(&out).is_some_and(|copy| up_to_date(copy, source)) {
            return Err((UploadAnswer::UpToDate, "up to date".into()));
        }
    }
    dir.create(&out, start.mode)
        .map_err(|e| (refused_or_failed(failure_code(&e)), format!("{}: {e}", out.shown())))
}

/// The answer to a file that cannot be created or named for `code`: a
/// refusal where the path leads outside or names a directory, else a
/// failure.
fn refused_or_failed(code: ReasonCode) -> UploadAnswer {
    match code {
        ReasonCode::OutsideRoot | ReasonCode::IsDirectory | ReasonCode::NotRegular => {
            UploadAnswer::Refused(code)
        }
        ReasonCode::PermissionDenied
        | ReasonCode::NameTooLong
        | ReasonCode::InvalidPath
        | ReasonCode::Changed
        | ReasonCode::ReadFailed
        | ReasonCode::WrongSession
        | ReasonCode::OutOfResources
        | ReasonCode::TooLarge
        | ReasonCode::Cancelled
        | ReasonCode::Other => UploadAnswer::Failed(code),
    }
}

/// The code the server answers an upload the client gave up with: its own
/// where the client may say so (the source changed, a read failed, a file
/// of unknown size grew past its bound), else [`ReasonCode::Other`].
fn given_up_code(code: ReasonCode) -> ReasonCode {
    match code {
        ReasonCode::Changed | ReasonCode::ReadFailed | ReasonCode::TooLarge => code,
        ReasonCode::OutsideRoot
        | ReasonCode::IsDirectory
        | ReasonCode::NotRegular
        | ReasonCode::PermissionDenied
        | ReasonCode::NameTooLong
        | ReasonCode::InvalidPath
        | ReasonCode::WrongSession
        | ReasonCode::OutOfResources
        | ReasonCode::Cancelled
        | ReasonCode::Other => ReasonCode::Other,
    }
}

/// The server's end of an upload's ring as a receiver's source: stopping
/// the sender is answering the upload at once (its client then stops
/// sending and ends the file), and an upload is answered once.
struct UploadFrames<'c> {
    consumer: &'c mut Consumer,
    answered: bool,
}

impl UploadFrames<'_> {
    /// Answers upload `seq` in the region's header, unless it was answered
    /// already.
    fn answer(&mut self, seq: u32, answer: UploadAnswer) {
        if !self.answered {
            self.consumer.region().answer(seq, answer.code());
            self.answered = true;
        }
    }
}

impl FrameSource for UploadFrames<'_> {
    fn next_frame(&mut self, seq: u32, buf: &mut [u8]) -> Result<Frame> {
        let header = self.consumer.recv_into(buf)?;
        if header.seq != seq {
            return Err(Error::Protocol(format!("a frame of request {} during request {seq}", header.seq)));
        }
        Ok(Frame::decode(header.kind, &buf[..header.len as usize])?)
    }

    fn stop_sending(&mut self, seq: u32, why: ReasonCode) -> Result<()> {
        self.answer(seq, UploadAnswer::Failed(why));
        Ok(())
    }
}

/// Receives the file of `put` from `consumer` into `accept` (`None`: the
/// server takes no uploads, and says so) and answers it in the region's
/// header, keeping the session's live record (`stats`, for `--status`) up
/// to date. Its frames are a fetch's answer, from the same sender: a
/// `Start` (the size, or that the size is unknown, and the mode and
/// mtime), `Data`, then `DataEnd` or `End`, or `Error`. The frames of a
/// refused file are read and dropped up to its end.
///
/// # Errors
///
/// A [`Stopped`] with the bytes that came and [`Error::Protocol`] for a
/// frame of another request or kind, or what the ring's waits return
/// ([`Error::PeerGone`], [`Error::Cancelled`], [`Error::Stalled`]): the
/// session ends, and the file is left nowhere.
pub(crate) fn receive_file(
    consumer: &mut Consumer,
    accept: Option<&OutDir>,
    put: PutRequest<'_>,
    buf: &mut Vec<u8>,
    stats: &dyn Meter,
) -> std::result::Result<Received, Stopped> {
    // The size comes with the `Start`.
    stats.begin(&String::from_utf8_lossy(put.path), 0);
    let got = receive(consumer, accept, put, buf, stats);
    let bytes = stats.end();
    got.map_err(|error| Stopped { error, bytes })
}

/// The upload's first frame: its `Start`.
fn read_start(frames: &mut UploadFrames<'_>, seq: u32, buf: &mut [u8]) -> Result<Started> {
    match frames.next_frame(seq, buf)? {
        Frame::Control(Reply::Start { flags, .. }) if flags.from_offset() || flags.up_to_date() => {
            Err(Error::Protocol("an upload's Start that resumes or is up to date".into()))
        }
        Frame::Control(Reply::Start { size, mode, flags, mtime_ns }) => {
            Ok(Started { size: Announced::of(size, flags), mode, mtime_ns })
        }
        other => Err(Error::Protocol(format!("{other:?} where an upload's Start was due"))),
    }
}

fn receive(
    consumer: &mut Consumer,
    accept: Option<&OutDir>,
    put: PutRequest<'_>,
    buf: &mut Vec<u8>,
    stats: &dyn Meter,
) -> Result<Received> {
    // One frame past IO_CHUNK: a frame always fits after what waits to be
    // written.
    buf.resize(IO_CHUNK + consumer.max_payload(), 0);
    let mut frames = UploadFrames { consumer, answered: false };
    let start = read_start(&mut frames, put.seq, buf)?;
    stats.begin(&String::from_utf8_lossy(put.path), start.size.told());
    let mut failed: Option<(UploadAnswer, String)> = None;
    let mut sink = match target(accept, &put, &start) {
        Ok(sink) => Some(sink),
        Err(refusal) => {
            // Answered at once: the client stops sending and ends the file.
            frames.answer(put.seq, refusal.0);
            failed = Some(refusal);
            None
        }
    };
    let from_start = if sink.is_some() { FromStart::Take } else { FromStart::Drop };
    let mut write = |bytes: &[u8]| {
        let written = match &mut sink {
            Some(sink) => sink.write_all(bytes),
            None => Err(io::Error::from_raw_os_error(libc::EBADF)),
        };
        match written {
            Ok(()) => Taking::Yes,
            Err(e) => {
                // Failed for good (a full disk): the client stops sending
                // instead of streaming the rest.
                let code = failure_code(&e);
                failed = Some((UploadAnswer::Failed(code), format!("write: {e}")));
                Taking::No(code)
            }
        }
    };
    let mut incoming = Incoming::new(put.seq, start.size, "client", 0, Xxh3::new());
    // Each frame is told to the live record: `--status` sees a slow upload move.
    let advance = &mut |n| stats.advance(n);
    let body =
        read_body(&mut frames, &mut incoming, buf, from_start, &mut write, advance, Report::EachFrame)?;
    let received = incoming.received();
    let (answer, why) = match (body, failed, sink) {
        // Refused at its start, or a write failed.
        (_, Some((answer, why)), _) => (answer, Some(why)),
        // The client gives the file up (it changed while it was read, a
        // read failed, it grew past the bound of a file of unknown size):
        // nothing of it is kept.
        (Body::GivenUp(code, reason), None, _) => (
            UploadAnswer::Failed(given_up_code(code)),
            Some(format!("the client gave the file up: {reason}")),
        ),
        (Body::Ended { end, verdict, .. }, None, Some(sink)) => {
            store(&put, &start, sink, end, verdict, received)
        }
        // Not reached: a file not written has failed.
        (Body::Ended { .. } | Body::Dropped, None, _) => (UploadAnswer::Failed(ReasonCode::Other), None),
    };
    frames.answer(put.seq, answer);
    Ok(Received { answer, bytes: received, why })
}

/// Names a whole upload as `put` asks, once its `verdict` (the sender's
/// `end` against the bytes `received`) says it is the file sent: the
/// answer, and why when it was not stored.
fn store(
    put: &PutRequest<'_>,
    start: &Started,
    sink: Sink,
    end: End,
    verdict: std::result::Result<(), Mismatch>,
    received: u64,
) -> (UploadAnswer, Option<String>) {
    match verdict {
        Ok(()) => {}
        Err(Mismatch::Size) => {
            let why = format!("{received} bytes received, {} counted, {} announced", end.count, start.size);
            return (UploadAnswer::Failed(ReasonCode::Changed), Some(why));
        }
        Err(Mismatch::Checksum) => {
            return (UploadAnswer::Failed(ReasonCode::Other), Some("checksum mismatch (xxh3-64)".into()));
        }
    }
    if put.flags.has(PutFlags::KEEP_MTIME) {
        if let Err(e) = sink.set_mtime(start.mtime_ns) {
            return (UploadAnswer::Failed(failure_code(&e)), Some(format!("setting the mtime: {e}")));
        }
    }
    let if_exists = put.flags.if_exists();
    let clobber = match if_exists {
        PutIfExists::Replace => Clobber::Replace,
        PutIfExists::Skip => Clobber::Skip,
    };
    match sink.persist(clobber) {
        Ok(()) => (UploadAnswer::Stored, None),
        Err(Error::Os { source, .. })
            if if_exists == PutIfExists::Skip && source.raw_os_error() == Some(libc::EEXIST) =>
        {
            (UploadAnswer::Skipped, None)
        }
        // Naming failed: a directory made at the name while the data
        // came, a name too long, a full directory.
        Err(Error::Os { ref source, .. }) if failure_code(source) == ReasonCode::IsDirectory => {
            (UploadAnswer::Refused(ReasonCode::IsDirectory), Some("a directory has that name".into()))
        }
        // A directory of the path (or the --accept directory itself) moved
        // away while the data came, or as the file was named: not named
        // there, or the name taken back.
        Err(Error::Os { ref source, .. })
            if matches!(source.kind(), io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists) =>
        {
            (refused_or_failed(failure_code(source)), Some(format!("not named: {source}")))
        }
        Err(e) => {
            let code = match &e {
                Error::Os { source, .. } => failure_code(source),
                _ => ReasonCode::Other,
            };
            (UploadAnswer::Failed(code), Some(format!("{e:#}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use super::*;
    use crate::shm_region::pacing::{Pacing, DEFAULT_SPIN_BUDGET};
    use crate::shm_region::ring::{ring_for_tests, Producer};

    /// An upload ring in one process: the client's producer, the server's
    /// consumer (both ends turned round, as in a session).
    fn ring(tag: &str) -> (Producer, Consumer) {
        let (client, server, _) = ring_with_cancel(tag);
        (client, server)
    }

    /// [`ring`], with the flag that cancels both ends' waits.
    fn ring_with_cancel(tag: &str) -> (Producer, Consumer, Arc<AtomicBool>) {
        let pacing = Pacing::new(DEFAULT_SPIN_BUDGET);
        let (server, client, cancel) = ring_for_tests(&format!("/sxrecv_{tag}"), 2, &pacing);
        (client.turn_round(), server.turn_round(), cancel)
    }

    /// The `Start` of a file of `size` bytes (a known size) and mode 06755.
    fn start(size: u64) -> Reply {
        Reply::Start { size, mode: 0o6755, flags: crate::protocol::StartFlags::NONE, mtime_ns: 0 }
    }

    /// Sends `bytes` as request `seq`, with an End frame of `count` and
    /// `checksum` (the true ones unless given), and receives it.
    fn upload(
        tag: &str,
        accept: Option<&OutDir>,
        path: &[u8],
        bytes: &[u8],
        end: Option<(u64, u64)>,
    ) -> (Received, Option<u32>) {
        upload_announced(tag, accept, path, bytes.len() as u64, bytes, end)
    }

    /// As `upload`, with the `Put` announcing `size` bytes.
    fn upload_announced(
        tag: &str,
        accept: Option<&OutDir>,
        path: &[u8],
        size: u64,
        bytes: &[u8],
        end: Option<(u64, u64)>,
    ) -> (Received, Option<u32>) {
        let (mut client, mut server) = ring(tag);
        let (owned, seq) = (bytes.to_vec(), 7);
        let sender = std::thread::spawn(move || {
            client.send(seq, &start(size)).unwrap();
            let cap = client.max_payload();
            for piece in owned.chunks(cap) {
                client.send_data(seq, piece).unwrap();
            }
            let (count, checksum) = end.unwrap_or((owned.len() as u64, xxhash_rust::xxh3::xxh3_64(&owned)));
            client.send(seq, &Reply::End { count, checksum }).unwrap();
            client
        });
        let put = PutRequest { seq, path, flags: PutFlags::NONE };
        let stats = crate::server::stats::ServerStats::new("/srv".into(), true, 1);
        let live = stats.open("/sxrecv", 1, crate::protocol::SessionKind::Upload);
        let got = receive_file(&mut server, accept, put, &mut Vec::new(), &*live).unwrap();
        assert_eq!(live.end(), 0, "the live record is done with the file");
        sender.join().unwrap();
        let word = server.region().answer_to(seq);
        (got, word)
    }

    fn entries(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_verified_upload_is_named_with_its_bits_masked_and_answered() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutDir::open(tmp.path()).unwrap();
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 31) as u8).collect();
        let (got, word) = upload("ok", Some(&dir), b"in/x.bin", &bytes, None);
        assert_eq!(got.answer, UploadAnswer::Stored);
        assert_eq!(word, Some(UploadAnswer::Stored.code()));
        let path = tmp.path().join("in/x.bin");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o7000, 0, "no setuid, setgid or sticky: {mode:o}");
    }

    #[test]
    fn a_bad_checksum_or_a_short_count_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutDir::open(tmp.path()).unwrap();
        let bytes = vec![5u8; 10_000];
        let (got, word) = upload("sum", Some(&dir), b"x", &bytes, Some((10_000, 1)));
        assert_eq!(got.answer, UploadAnswer::Failed(ReasonCode::Other));
        assert_eq!(word, Some(got.answer.code()));
        let (got, _) = upload("count", Some(&dir), b"x", &bytes, Some((9_999, 1)));
        assert_eq!(got.answer, UploadAnswer::Failed(ReasonCode::Changed));
        assert!(entries(tmp.path()).is_empty(), "nothing left: {:?}", entries(tmp.path()));
    }

    #[test]
    fn a_refused_upload_is_answered_before_its_end_and_its_frames_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutDir::open(tmp.path()).unwrap();
        let (got, word) = upload("off", None, b"x", &[1; 5000], None);
        assert_eq!((got.answer, word), (UploadAnswer::NotAccepting, Some(UploadAnswer::NotAccepting.code())));
        for path in [&b"../x"[..], b"/etc/x", b"a/../../x", b"a//x"] {
            let (got, _) = upload("out", Some(&dir), path, &[1; 10], None);
            assert!(matches!(got.answer, UploadAnswer::Refused(_)), "{path:?}: {:?}", got.answer);
        }
        assert!(entries(tmp.path()).is_empty());
    }

    #[test]
    fn a_put_of_an_empty_nul_or_overlong_path_is_refused_and_a_non_utf8_name_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutDir::open(tmp.path()).unwrap();
        for path in [&b""[..], b"a\0b", b"/", b"a/", b"./x", b"x/."] {
            let (got, word) = upload("bad", Some(&dir), path, &[1; 10], None);
            assert!(matches!(got.answer, UploadAnswer::Refused(_)), "{path:?}: {:?}", got.answer);
            assert_eq!(word, Some(got.answer.code()));
        }
        let long = vec![b'n'; 1024];
        let (got, _) = upload("long", Some(&dir), &long, &[1; 10], None);
        assert_eq!(got.answer, UploadAnswer::Failed(ReasonCode::NameTooLong));
        let deep = [&long[..], b"/x"].concat();
        let (got, _) = upload("deep", Some(&dir), &deep, &[1; 10], None);
        assert_eq!(got.answer, UploadAnswer::Failed(ReasonCode::NameTooLong), "a directory component");
        assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
        let (got, _) = upload("latin", Some(&dir), b"caf\xe9", b"bytes", None);
        assert_eq!(got.answer, UploadAnswer::Stored);
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9");
        assert_eq!(std::fs::read(tmp.path().join(name)).unwrap(), b"bytes");
    }

    #[test]
    fn more_bytes_than_announced_end_the_session_and_fewer_fail_the_file_leaving_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutDir::open(tmp.path()).unwrap();
        let bytes = vec![3u8; 20_000];
        // More: the client broke the protocol, as a server that sends more
        // than it announced does; the session ends.
        let (mut client, mut server, cancel) = ring_with_cancel("more");
        let sender = std::thread::spawn(move || -> crate::error::Result<()> {
            client.send(7, &start(1000))?;
            for piece in [3u8; 20_000].chunks(client.max_payload()) {
                client.send_data(7, piece)?;
            }
            Ok(())
        });
        let put = PutRequest { seq: 7, path: b"x", flags: PutFlags::NONE };
        let stats = crate::server::stats::ServerStats::new("/srv".into(), true, 1);
        let live = stats.open("/sxrecv", 1, crate::protocol::SessionKind::Upload);
        let stopped = receive_file(&mut server, Some(&dir), put, &mut Vec::new(), &*live).unwrap_err();
        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = sender.join().unwrap();
        let Error::Protocol(text) = &stopped.error else { panic!("{stopped:?}") };
        assert_eq!(text, "client sent more than the announced 1000 bytes");
        assert!(stopped.bytes > 1000, "the bytes that came: {}", stopped.bytes);
        assert_eq!(server.region().answer_to(7), None, "no answer: the session ends");
        assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
        let (got, _) = upload_announced("fewer", Some(&dir), b"x", u64::MAX, &bytes, None);
        assert_eq!(got.answer, UploadAnswer::Failed(ReasonCode::Changed));
        assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
    }

    /// A live record that keeps what it is told.
    #[derive(Default)]
    struct Told(std::cell::RefCell<Vec<u64>>);

    impl Meter for Told {
        fn begin(&self, _path: &str, _size: u64) {}
        fn advance(&self, n: u64) {
            self.0.borrow_mut().push(n);
        }
        fn end(&self) -> u64 {
            self.0.borrow().iter().sum()
        }
    }

    /// `--status` reads the live record: it hears of each frame as the
    /// frame comes (its time is the session's "last frame"), so a slow
    /// upload (a relay over a slow link) shows its bytes moving, not
    /// "stalled" until 64 KiB have come.
    #[test]
    fn the_live_record_hears_of_each_frame_of_an_upload_as_it_comes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutDir::open(tmp.path()).unwrap();
        let (mut client, mut server) = ring("told");
        let bytes = vec![4u8; 10_000];
        let cap = client.max_payload();
        let owned = bytes.clone();
        let sender = std::thread::spawn(move || {
            client.send(5, &start(owned.len() as u64)).unwrap();
            for piece in owned.chunks(cap) {
                client.send_data(5, piece).unwrap();
            }
            let checksum = xxhash_rust::xxh3::xxh3_64(&owned);
            client.send(5, &Reply::End { count: owned.len() as u64, checksum }).unwrap();
            client
        });
        let put = PutRequest { seq: 5, path: b"x", flags: PutFlags::NONE };
        let told = Told::default();
        let got = receive_file(&mut server, Some(&dir), put, &mut Vec::new(), &told).unwrap();
        sender.join().unwrap();
        assert_eq!(got.answer, UploadAnswer::Stored);
        let frames: Vec<u64> = bytes.chunks(cap).map(|piece| piece.len() as u64).collect();
        assert_eq!(*told.0.borrow(), frames, "one call per frame, with its bytes");
    }

    #[test]
    fn a_file_the_client_gives_up_leaves_nothing_and_is_answered_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutDir::open(tmp.path()).unwrap();
        let (mut client, mut server) = ring("gaveup");
        let sender = std::thread::spawn(move || {
            client.send(3, &start(6000)).unwrap();
            for piece in [9u8; 3000].chunks(client.max_payload()) {
                client.send_data(3, piece).unwrap();
            }
            let reason = "changed while it was sent".to_owned();
            client.send(3, &Reply::Error { code: ReasonCode::Changed, reason }).unwrap();
            client
        });
        let put = PutRequest { seq: 3, path: b"x", flags: PutFlags::NONE };
        let stats = crate::server::stats::ServerStats::new("/srv".into(), true, 1);
        let live = stats.open("/sxrecv", 1, crate::protocol::SessionKind::Upload);
        let got = receive_file(&mut server, Some(&dir), put, &mut Vec::new(), &*live).unwrap();
        sender.join().unwrap();
        assert_eq!(got.answer, UploadAnswer::Failed(ReasonCode::Changed));
        assert_eq!(server.region().answer_to(3), Some(got.answer.code()));
        assert!(got.why.unwrap().contains("changed while it was sent"));
        assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
    }
}

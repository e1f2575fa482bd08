use std::collections::VecDeque;

use xxhash_rust::xxh3::xxh3_64;

use super::*;
use crate::protocol::DataEnd;

/// Frames a test lays out, and what the receiver told the sender.
#[derive(Default)]
struct Script {
    frames: VecDeque<(Frame, Vec<u8>)>,
    stops: Vec<(u32, ReasonCode)>,
}

impl Script {
    fn data(mut self, bytes: &[u8]) -> Script {
        self.frames.push_back((Frame::Data(bytes.len() as u32), bytes.to_vec()));
        self
    }

    fn data_end(mut self, bytes: &[u8], count: u64, checksum: u64) -> Script {
        let last = DataEnd { len: bytes.len() as u32, count, checksum };
        self.frames.push_back((Frame::DataEnd(last), bytes.to_vec()));
        self
    }

    fn control(mut self, reply: Reply) -> Script {
        self.frames.push_back((Frame::Control(reply), Vec::new()));
        self
    }
}

impl FrameSource for Script {
    fn next_frame(&mut self, _seq: u32, buf: &mut [u8]) -> Result<Frame> {
        let (frame, bytes) =
            self.frames.pop_front().ok_or_else(|| Error::PeerGone("the script ran out".into()))?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok(frame)
    }

    fn stop_sending(&mut self, seq: u32, why: ReasonCode) -> Result<()> {
        self.stops.push((seq, why));
        Ok(())
    }
}

/// A file of `len` bytes cut in frames of at most `frame` bytes, its last
/// frame a `DataEnd` with the true count and checksum.
fn file_frames(file: &[u8], frame: usize) -> Script {
    let mut script = Script::default();
    let mut pieces = file.chunks(frame).peekable();
    while let Some(piece) = pieces.next() {
        script = if pieces.peek().is_some() {
            script.data(piece)
        } else {
            script.data_end(piece, file.len() as u64, xxh3_64(file))
        };
    }
    script
}

/// Reads a body with `size` announced, writing into a vector; `fail_after`
/// writes make the write fail. Returns the body, the bytes written, the
/// bytes the receiver heard of and what it received.
fn read(
    script: &mut Script,
    size: Announced,
    fail_after: Option<usize>,
) -> (Result<Body>, Vec<u8>, u64, u64) {
    let mut chunk = vec![0; IO_CHUNK + 4096];
    let (mut out, mut writes, mut heard) = (Vec::new(), 0, 0);
    let mut write = |bytes: &[u8]| {
        writes += 1;
        if fail_after.is_some_and(|n| writes > n) {
            return Taking::No(ReasonCode::OutOfResources);
        }
        out.extend_from_slice(bytes);
        Taking::Yes
    };
    let mut incoming = Incoming::new(7, size, "server", 0, Xxh3::new());
    let body = read_body(
        script,
        &mut incoming,
        &mut chunk,
        FromStart::Take,
        &mut write,
        &mut |n| heard += n,
        Report::EachChunk,
    );
    (body, out, heard, incoming.received())
}

fn random(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7919 % 251) as u8).collect()
}

#[test]
fn a_whole_file_is_written_in_io_chunk_pieces_and_verified() {
    let file = random(3 * IO_CHUNK + 123);
    let mut script = file_frames(&file, 4000);
    let (body, out, heard, received) = read(&mut script, Announced::Exactly(file.len() as u64), None);
    let Ok(Body::Ended { end, received: n, verdict }) = body else { panic!("{body:?}") };
    assert_eq!(verdict, Ok(()));
    assert_eq!((end.count, n, heard, received), (file.len() as u64, n, n, n));
    assert_eq!(out, file, "every byte, in order");
    assert!(script.stops.is_empty());
}

#[test]
fn an_end_frame_after_the_data_ends_the_file_as_a_data_end_does() {
    let file = random(5000);
    let mut script = Script::default()
        .data(&file[..4096])
        .data(&file[4096..])
        .control(Reply::End { count: 5000, checksum: xxh3_64(&file) });
    let (body, out, _, _) = read(&mut script, Announced::Exactly(5000), None);
    assert!(matches!(body, Ok(Body::Ended { verdict: Ok(()), .. })), "{body:?}");
    assert_eq!(out, file);
}

#[test]
fn a_wrong_checksum_or_count_is_a_mismatch_of_that_kind() {
    let file = random(100);
    let mut bad_sum = Script::default().data_end(&file, 100, xxh3_64(&file) ^ 1);
    let (body, ..) = read(&mut bad_sum, Announced::Exactly(100), None);
    assert!(matches!(body, Ok(Body::Ended { verdict: Err(Mismatch::Checksum), .. })), "{body:?}");
    let mut short = Script::default().data_end(&file[..90], 100, xxh3_64(&file));
    let (body, ..) = read(&mut short, Announced::Exactly(100), None);
    assert!(matches!(body, Ok(Body::Ended { verdict: Err(Mismatch::Size), .. })), "{body:?}");
}

#[test]
fn more_bytes_than_announced_end_the_session_naming_the_sender_and_count_what_came() {
    let file = random(8000);
    let mut script = file_frames(&file, 4000);
    let (body, out, heard, received) = read(&mut script, Announced::Exactly(5000), None);
    let Err(Error::Protocol(text)) = body else { panic!("{body:?}") };
    assert_eq!(text, "server sent more than the announced 5000 bytes");
    assert!(out.is_empty(), "nothing written past the bound");
    assert_eq!((heard, received), (8000, 8000), "the bytes that came are told");
}

#[test]
fn a_write_that_fails_tells_the_sender_once_and_drops_the_rest_to_its_end() {
    let file = random(4 * IO_CHUNK);
    let mut script = file_frames(&file, 4096);
    let (body, out, _, received) = read(&mut script, Announced::Exactly(file.len() as u64), Some(1));
    assert!(matches!(body, Ok(Body::Dropped)), "{body:?}");
    assert_eq!(out.len(), IO_CHUNK, "the first piece only");
    assert_eq!(script.stops, [(7, ReasonCode::OutOfResources)], "told once, with the reason");
    assert_eq!(received, file.len() as u64, "read to the end");
    assert!(script.frames.is_empty(), "nothing left in flight");
}

#[test]
fn a_sender_that_gives_up_is_given_up_while_taking_and_dropped_after_a_stop() {
    let gave_up = || Reply::Error { code: ReasonCode::Changed, reason: "changed".into() };
    let mut script = Script::default().data(&random(10)).control(gave_up());
    let (body, ..) = read(&mut script, Announced::Exactly(100), None);
    assert!(matches!(body, Ok(Body::GivenUp(ReasonCode::Changed, ref r)) if r == "changed"), "{body:?}");

    let mut script = file_frames(&random(2 * IO_CHUNK), 4096);
    script.frames.pop_back();
    script = script.control(gave_up());
    let (body, ..) = read(&mut script, Announced::Exactly(4 * IO_CHUNK as u64), Some(0));
    assert!(matches!(body, Ok(Body::Dropped)), "the answer to the stop: {body:?}");
}

#[test]
fn a_frame_that_has_no_place_in_a_body_ends_the_session() {
    let mut script = Script::default().control(Reply::NotFound);
    let (body, ..) = read(&mut script, Announced::Exactly(1), None);
    assert!(matches!(body, Err(Error::Protocol(ref t)) if t.ends_with("inside a file")), "{body:?}");
    // An empty data frame moves nothing and counts against no bound: a
    // peer sending them without end would hold the session for ever.
    let mut script = Script::default().data(b"").data(b"").control(Reply::End { count: 0, checksum: 0 });
    let (body, ..) = read(&mut script, Announced::Exactly(0), None);
    assert!(
        matches!(body, Err(Error::Protocol(ref t)) if t == "an empty data frame inside a file"),
        "{body:?}"
    );
}

#[test]
fn a_resumed_body_is_verified_with_its_kept_prefix() {
    let file = random(9000);
    let mut prefix = Xxh3::new();
    prefix.update(&file[..3000]);
    let mut script = Script::default().data(&file[3000..7096]).data_end(&file[7096..], 9000, xxh3_64(&file));
    let mut incoming = Incoming::new(1, Announced::Exactly(9000), "server", 3000, prefix);
    let mut chunk = vec![0; IO_CHUNK + 4096];
    let mut out = Vec::new();
    let mut write = |b: &[u8]| {
        out.extend_from_slice(b);
        Taking::Yes
    };
    let body = read_body(
        &mut script,
        &mut incoming,
        &mut chunk,
        FromStart::Take,
        &mut write,
        &mut |_| {},
        Report::EachChunk,
    );
    assert!(matches!(body, Ok(Body::Ended { verdict: Ok(()), received: 9000, .. })), "{body:?}");
    assert_eq!(out, &file[3000..]);
}

#[test]
fn a_body_not_taken_from_its_start_is_read_and_dropped_without_a_second_stop() {
    let file = random(3 * IO_CHUNK);
    let mut script = file_frames(&file, 4096);
    let mut incoming = Incoming::new(1, Announced::Exactly(file.len() as u64), "client", 0, Xxh3::new());
    let mut chunk = vec![0; IO_CHUNK + 4096];
    let mut write = |_: &[u8]| -> Taking { panic!("nothing is written") };
    let body = read_body(
        &mut script,
        &mut incoming,
        &mut chunk,
        FromStart::Drop,
        &mut write,
        &mut |_| {},
        Report::EachChunk,
    );
    assert!(matches!(body, Ok(Body::Dropped)), "{body:?}");
    assert!(script.stops.is_empty() && script.frames.is_empty());
}

#[test]
fn a_file_is_verified_by_its_count_its_size_and_the_checksum_of_the_bytes_written() {
    let exactly = Announced::Exactly(10);
    assert_eq!(exactly.verify(10, 7, 10, 7), Ok(()));
    assert_eq!(exactly.verify(10, 7, 9, 7), Err(Mismatch::Size), "fewer bytes than counted");
    assert_eq!(exactly.verify(9, 7, 9, 7), Err(Mismatch::Size), "a count that is not the size");
    assert_eq!(exactly.verify(10, 7, 10, 8), Err(Mismatch::Checksum));
    let unknown = Announced::Unknown { told: 4096 };
    assert_eq!(unknown.verify(12, 1, 12, 1), Ok(()), "the count is the truth");
    assert_eq!(unknown.verify(MAX_UNKNOWN_SIZE + 1, 1, MAX_UNKNOWN_SIZE + 1, 1), Err(Mismatch::Size));
}

#[test]
fn the_listener_hears_of_each_frame_or_of_each_chunk_as_asked() {
    let file = random(3 * IO_CHUNK + 123);
    let calls = |report: Report| {
        let mut script = file_frames(&file, 4000);
        let mut incoming = Incoming::new(1, Announced::Exactly(file.len() as u64), "client", 0, Xxh3::new());
        let mut chunk = vec![0; IO_CHUNK + 4096];
        let mut told = Vec::new();
        let body = read_body(
            &mut script,
            &mut incoming,
            &mut chunk,
            FromStart::Take,
            &mut |_| Taking::Yes,
            &mut |n| told.push(n),
            report,
        );
        assert!(matches!(body, Ok(Body::Ended { verdict: Ok(()), .. })), "{body:?}");
        told
    };
    let frames: Vec<u64> = file.chunks(4000).map(|f| f.len() as u64).collect();
    assert_eq!(calls(Report::EachFrame), frames, "a live record: every frame as it comes");
    let chunks = calls(Report::EachChunk);
    assert_eq!(chunks.iter().sum::<u64>(), file.len() as u64);
    let (last, steps) = chunks.split_last().unwrap();
    assert!(steps.iter().all(|&n| n >= IO_CHUNK as u64) && *last < IO_CHUNK as u64, "{chunks:?}");
}

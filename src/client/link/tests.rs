use super::*;
use crate::protocol::PROTOCOL_VERSION;
use crate::shm_region::Geometry;

#[test]
fn records_round_trip_and_are_bounded() {
    let mut stream = Vec::new();
    write_record(&mut stream, b"abc").unwrap();
    write_record(&mut stream, b"").unwrap();
    let mut input = &stream[..];
    assert!(matches!(read_record(&mut input, 3), Record::Body(b) if b == b"abc"));
    assert!(matches!(read_record(&mut input, 3), Record::Body(b) if b.is_empty()));
    assert!(matches!(read_record(&mut input, 3), Record::End));
    let mut over = &stream[..];
    assert!(matches!(read_record(&mut over, 2), Record::Broken(why) if why.contains("more than")));
    let mut cut = &stream[..5];
    assert!(matches!(read_record(&mut cut, 3), Record::Broken(why) if why.contains("inside a record")));
    let mut garbage = &b"garbage\n"[..];
    assert!(matches!(read_record(&mut garbage, MAX_FRAME_RECORD), Record::Broken(_)));
}

#[test]
fn answer_records_round_trip_and_nothing_else_passes_for_one() {
    let body = encode_answer(7, 0x0201);
    assert_eq!(decode_answer(&body), Ok((7, 0x0201)));
    assert!(decode_answer(&body[..11]).is_err(), "short");
    assert!(decode_answer(&[&body[..], &[0]].concat()).is_err(), "long");
    for (at, value) in [(0, b'Y'), (2, PROTOCOL_VERSION + 1), (3, 1)] {
        let mut bad = body;
        bad[at] = value;
        assert!(decode_answer(&bad).is_err(), "byte {at} = {value}");
    }
    let frame = FrameHeader { kind: FrameKind::End, len: 0, seq: 7 }.encode();
    assert!(decode_answer(&frame).is_err(), "a frame header is no answer");
}

#[test]
fn a_frame_record_is_a_length_then_the_header_and_payload() {
    let mut record = Vec::new();
    frame_record(FrameKind::Data, 3, b"abc", &mut record);
    let mut input = &record[..];
    let Record::Body(body) = read_record(&mut input, MAX_FRAME_RECORD) else { panic!("one record") };
    let header = FrameHeader::decode(&body[..FRAME_HEADER_LEN], RELAY_MAX_PAYLOAD).unwrap();
    assert_eq!((header.kind, header.len, header.seq), (FrameKind::Data, 3, 3));
    assert_eq!(&body[FRAME_HEADER_LEN..], b"abc");
    assert!(input.is_empty());
}

#[test]
fn the_relay_flag_names_the_kind_and_a_transfer_keeps_the_plain_one() {
    assert_eq!(relay_flag(SessionKind::Transfer), "--relay");
    assert_eq!(relay_flag(SessionKind::Status), "--relay=status");
    assert_eq!(relay_flag(SessionKind::Upload), "--relay=upload");
}

#[test]
fn the_relayed_payload_bound_holds_every_geometry() {
    for slots in 1..=crate::shm_region::MAX_SLOTS {
        assert!(Geometry::for_slots(slots).max_payload() <= RELAY_MAX_PAYLOAD);
    }
}

#[test]
fn words_are_quoted_for_the_remote_shell_only_when_needed() {
    assert_eq!(shell_quoted(OsStr::new("/usr/bin/shm_client")), "/usr/bin/shm_client");
    assert_eq!(shell_quoted(OsStr::new("a b")), "'a b'");
    assert_eq!(shell_quoted(OsStr::new("it's")), "'it'\\''s'");
    assert_eq!(shell_quoted(OsStr::new("")), "''");
}

#[test]
fn whole_records_come_in_batches_and_a_record_half_read_holds_none_of_them_back() {
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;
    let (mut tx, rx) = UnixStream::pair().unwrap();
    let mut stream = Vec::new();
    for body in [&b"one"[..], b"two", b"three"] {
        write_record(&mut stream, body).unwrap();
    }
    // Two whole records and the first bytes of the third.
    let cut = stream.len() - 2;
    tx.write_all(&stream[..cut]).unwrap();
    let mut records = spawn_reader(rx, MAX_FRAME_RECORD);
    let wait = Duration::from_secs(10);
    for want in [&b"one"[..], b"two"] {
        let got = records.recv_timeout(wait).expect("a whole record is never held back");
        assert!(matches!(got, Record::Body(ref b) if b == want), "{got:?}");
    }
    assert!(records.try_recv().is_err(), "the third is not whole yet");
    tx.write_all(&stream[cut..]).unwrap();
    drop(tx);
    assert!(matches!(records.recv_timeout(wait), Ok(Record::Body(b)) if b == b"three"));
    assert!(matches!(records.recv_timeout(wait), Ok(Record::End)));
}

#[test]
fn no_more_records_are_read_ahead_than_one_by_one() {
    let mut stream = Vec::new();
    for _ in 0..1000 {
        write_record(&mut stream, &[7u8; 100]).unwrap();
    }
    // The reader stops once its batches are full and nobody takes them.
    let (reader, counted) = Counting::new(stream);
    let _records = spawn_reader(reader, MAX_FRAME_RECORD);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let read = counted.load(std::sync::atomic::Ordering::Relaxed);
    assert!(read <= (BATCHES_AHEAD + 2) * 64 * 104 + READ_AHEAD, "{read} bytes read ahead");
}

/// A reader of `bytes` that counts what it handed out.
struct Counting {
    bytes: std::io::Cursor<Vec<u8>>,
    read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Counting {
    fn new(bytes: Vec<u8>) -> (Counting, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        (Counting { bytes: std::io::Cursor::new(bytes), read: std::sync::Arc::clone(&read) }, read)
    }
}

impl std::io::Read for Counting {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        // A pipe's worth at a time, as a pipe would.
        let most = out.len().min(4096);
        let n = std::io::Read::read(&mut self.bytes, &mut out[..most])?;
        self.read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

use super::*;
use proptest::prelude::*;

fn any_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), 0..64)
        .prop_map(move |cs| truncate_utf8(&cs.into_iter().collect::<String>(), max).to_owned())
}

/// A reason as it survives a round trip: one without odd characters
/// (they are escaped when decoded, see
/// `a_reason_reaches_its_reader_with_its_controls_escaped`).
fn any_reason() -> impl Strategy<Value = String> {
    any_text(MAX_REASON_LEN)
        .prop_map(|s| truncate_utf8(&crate::text::escape_odd(&s), MAX_REASON_LEN).to_owned())
}

fn nonempty_text(max: usize) -> impl Strategy<Value = String> {
    any_text(max).prop_map(|s| if s.is_empty() { "x".to_owned() } else { s })
}

/// Path bytes: anything but NUL, UTF-8 or not.
fn any_path(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=255, 0..64).prop_map(move |mut b| {
        b.truncate(max);
        b
    })
}

fn nonempty_path(max: usize) -> impl Strategy<Value = Vec<u8>> {
    any_path(max).prop_map(|p| if p.is_empty() { b"x".to_vec() } else { p })
}

fn any_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (
            (any::<u32>(), any::<u32>(), any_session_kind()),
            (nonempty_text(MAX_NAME_LEN), nonempty_text(MAX_NAME_LEN), nonempty_text(MAX_NAME_LEN))
        )
            .prop_map(|((client_pid, region_size, kind), (region, items, spaces))| {
                Command::Open { client_pid, region_size, region, items, spaces, kind }
            }),
        (
            (any::<u32>(), any::<u32>(), nonempty_text(MAX_NAME_LEN), nonempty_path(MAX_PATH_LEN)),
            (any::<u64>(), any_get_condition())
        )
            .prop_map(|((client_pid, seq, region, path), (offset, condition))| {
                Command::Get { client_pid, seq, region, path, offset, condition }
            }),
        (any::<u32>(), any::<u32>(), nonempty_text(MAX_NAME_LEN), any_path(MAX_PATH_LEN))
            .prop_map(|(client_pid, seq, region, prefix)| Command::List { client_pid, seq, region, prefix }),
        (any::<u32>(), nonempty_text(MAX_NAME_LEN))
            .prop_map(|(client_pid, region)| Command::Close { client_pid, region }),
        (any::<u32>(), prop_oneof![Just(StopKind::Now), Just(StopKind::Drain)])
            .prop_map(|(client_pid, kind)| Command::Stop { client_pid, kind }),
        (any::<u32>(), any::<u32>(), nonempty_text(MAX_NAME_LEN))
            .prop_map(|(client_pid, seq, region)| Command::Status { client_pid, seq, region }),
        (any::<u32>(), any::<u32>(), nonempty_text(MAX_NAME_LEN))
            .prop_map(|(client_pid, seq, region)| Command::Cancel { client_pid, seq, region }),
        (
            (any::<u32>(), any::<u32>(), nonempty_text(MAX_NAME_LEN), nonempty_path(MAX_PATH_LEN)),
            (0u8..=PutFlags::KNOWN).prop_map(|bits| PutFlags::from_bits(bits).unwrap()),
        )
            .prop_map(|((client_pid, seq, region, path), flags)| Command::Put {
                client_pid,
                seq,
                region,
                path,
                flags,
            }),
    ]
}

fn any_get_condition() -> impl Strategy<Value = GetCondition> {
    let stamp = (any::<u64>(), any::<i64>()).prop_map(|(size, mtime_ns)| Stamp { size, mtime_ns });
    prop_oneof![
        Just(GetCondition::Always),
        stamp.clone().prop_map(GetCondition::IfSame),
        stamp.prop_map(GetCondition::UnlessUpToDate),
    ]
}

fn any_session_kind() -> impl Strategy<Value = SessionKind> {
    prop_oneof![Just(SessionKind::Transfer), Just(SessionKind::Status), Just(SessionKind::Upload)]
}

#[test]
fn every_upload_answer_survives_its_word_and_no_other_word_is_one() {
    let answers = [
        UploadAnswer::Stored,
        UploadAnswer::Skipped,
        UploadAnswer::NotAccepting,
        UploadAnswer::Refused(ReasonCode::OutsideRoot),
        UploadAnswer::Failed(ReasonCode::Other),
        UploadAnswer::UpToDate,
    ];
    for answer in answers {
        assert_ne!(answer.code(), 0, "0 is no answer");
        assert_eq!(UploadAnswer::from_code(answer.code()), Ok(answer));
    }
    for word in [0, 7, 1 | 1 << 8, 6 | 1 << 8, 4, 4 | 99 << 8, 1 << 16] {
        assert!(UploadAnswer::from_code(word).is_err(), "{word:#x}");
    }
}

fn any_code() -> impl Strategy<Value = ReasonCode> {
    (1u8..=255).prop_filter_map("a known code", |v| ReasonCode::from_u8(v).ok())
}

fn any_skip_code() -> impl Strategy<Value = SkipCode> {
    (1u8..=16).prop_filter_map("a known code", |v| SkipCode::from_u8(v).ok())
}

fn any_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (any::<u64>(), 0..=MODE_BITS, 0..=StartFlags::KNOWN, any::<i64>()).prop_map(
            |(size, mode, bits, mtime_ns)| Reply::Start {
                size,
                mode,
                flags: StartFlags::from_bits(bits).unwrap(),
                mtime_ns
            }
        ),
        (any::<u64>(), any::<u64>()).prop_map(|(count, checksum)| Reply::End { count, checksum }),
        Just(Reply::NotFound),
        (any_code(), any_reason()).prop_map(|(code, reason)| Reply::Refused { code, reason }),
        (any_code(), any_reason()).prop_map(|(code, reason)| Reply::Error { code, reason }),
        any::<u32>().prop_map(|max_sessions| Reply::Busy { max_sessions }),
        (any::<u64>(), 0..=MODE_BITS, any::<i64>(), 0..1_000_000_000u32, nonempty_path(MAX_PATH_LEN))
            .prop_map(|(size, mode, mtime_secs, mtime_nsec, path)| Reply::ListEntry {
                size,
                mode,
                mtime_secs,
                mtime_nsec,
                path
            }),
        (any_skip_code(), any::<u32>(), any_path(MAX_PATH_LEN))
            .prop_map(|(code, detail, path)| Reply::ListSkipped { code, detail, path }),
        (any::<u64>(), any::<u64>()).prop_map(|(files, skipped)| Reply::ListEnd { files, skipped }),
        (
            (any::<u32>(), any::<bool>(), any::<u32>(), any::<u32>()),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
            (any::<bool>(), any::<u64>(), any::<u64>()),
            any_text(MAX_STATUS_TEXT)
        )
            .prop_map(
                |(
                    (pid, persistent, max_sessions, open_sessions),
                    (uptime_ms, sessions_total, files, bytes),
                    (accepting, received_files, received_bytes),
                    root,
                )| {
                    Reply::ServerStatus(ServerStatus {
                        pid,
                        persistent,
                        max_sessions,
                        open_sessions,
                        uptime_ms,
                        sessions_total,
                        files,
                        bytes,
                        accepting,
                        received_files,
                        received_bytes,
                        root,
                    })
                }
            ),
        (
            (any::<u32>(), any::<u64>(), any::<u64>(), any::<u64>()),
            (any::<u64>(), any::<u64>(), any::<u64>()),
            (any_text(MAX_STATUS_TEXT), any_session_kind())
        )
            .prop_map(
                |((client_pid, age_ms, idle_ms, sent), (size, file_ms, total), (path, kind))| {
                    Reply::SessionStatus(SessionStatus {
                        client_pid,
                        kind,
                        age_ms,
                        idle_ms,
                        sent,
                        size,
                        file_ms,
                        total,
                        path,
                    })
                }
            ),
        any::<u64>().prop_map(|count| Reply::StatusEnd { count }),
    ]
}

proptest! {
    #[test]
    fn command_round_trips(cmd in any_command()) {
        let bytes = cmd.encode().unwrap();
        prop_assert!(bytes.len() <= MAX_MSG_LEN);
        prop_assert_eq!(Command::decode(&bytes).unwrap(), cmd);
    }

    #[test]
    fn reply_round_trips(reply in any_reply(), seq in any::<u32>()) {
        let mut payload = Vec::new();
        reply.encode_payload(&mut payload);
        let header = FrameHeader { kind: reply.kind(), len: payload.len() as u32, seq };
        let decoded = FrameHeader::decode(&header.encode(), 4096).unwrap();
        prop_assert_eq!(decoded, header);
        prop_assert_eq!(Reply::decode(decoded.kind, &payload).unwrap(), reply);
    }

    #[test]
    fn command_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Command::decode(&bytes);
    }

    #[test]
    fn command_decode_never_panics_behind_a_valid_prefix(
        tail in proptest::collection::vec(any::<u8>(), 0..512),
        kind in 0u8..10,
    ) {
        let mut bytes = MSG_MAGIC.to_le_bytes().to_vec();
        bytes.push(PROTOCOL_VERSION);
        bytes.push(kind);
        bytes.extend_from_slice(&tail);
        if let Ok(cmd) = Command::decode(&bytes) {
            prop_assert_eq!(cmd.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn frame_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..5000) {
        if let Ok(h) = FrameHeader::decode(&bytes, max) {
            prop_assert!(h.len as usize <= max);
        }
    }

    #[test]
    fn reply_decode_never_panics(kind in 1u8..14, payload in proptest::collection::vec(any::<u8>(), 0..700)) {
        let kind = FrameKind::from_u8(kind).unwrap();
        let _ = Reply::decode(kind, &payload);
    }
}

/// A refusal's reason is read by a person: its controls arrive escaped,
/// whatever the sender (or a file name it quotes) put there.
#[test]
fn a_reason_reaches_its_reader_with_its_controls_escaped() {
    for reply in [
        Reply::Refused { code: ReasonCode::NotRegular, reason: "f\x1b[2J\r.fifo is a FIFO".into() },
        Reply::Error { code: ReasonCode::Changed, reason: "f\x1b[2J\r.fifo is a FIFO".into() },
    ] {
        let mut payload = Vec::new();
        reply.encode_payload(&mut payload);
        match Reply::decode(reply.kind(), &payload).unwrap() {
            Reply::Refused { reason, .. } | Reply::Error { reason, .. } => {
                assert_eq!(reason, r"f\033[2J\r.fifo is a FIFO");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_unknown_reason_code_is_a_typed_error() {
    let payload = [200u8, b'x'];
    assert_eq!(Reply::decode(FrameKind::Refused, &payload), Err(DecodeError::BadField("reason code")));
    assert_eq!(Reply::decode(FrameKind::Error, &[]), Err(DecodeError::Truncated { needed: 1, got: 0 }));
}

#[test]
fn wrong_magic_version_and_truncation_are_typed_errors() {
    let good = Command::Close { client_pid: 7, region: "/q.1.ab".into() }.encode().unwrap();
    assert_eq!(Command::decode(&[]), Err(DecodeError::Truncated { needed: 4, got: 0 }));
    let mut bad = good.clone();
    bad[0] ^= 1;
    assert!(matches!(Command::decode(&bad), Err(DecodeError::BadMagic(_))));
    let mut bad = good.clone();
    bad[4] = PROTOCOL_VERSION + 1;
    assert_eq!(Command::decode(&bad), Err(DecodeError::UnsupportedVersion(PROTOCOL_VERSION + 1)));
    assert!(matches!(Command::decode(&good[..good.len() - 1]), Err(DecodeError::Truncated { .. })));
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(Command::decode(&long), Err(DecodeError::TrailingBytes { .. })));
}

#[test]
fn open_carries_both_semaphore_names_and_the_largest_fits_a_message() {
    let long = |c: char| format!("/{}", c.to_string().repeat(MAX_NAME_LEN - 1));
    let open = Command::Open {
        client_pid: 9,
        region_size: 4096,
        region: long('r'),
        items: long('i'),
        spaces: long('s'),
        kind: SessionKind::Transfer,
    };
    let bytes = open.encode().unwrap();
    assert_eq!(bytes.len(), MSG_HEADER_LEN + 3 * MAX_NAME_LEN + 2);
    assert!(bytes.len() <= MAX_MSG_LEN);
    assert_eq!(Command::decode(&bytes), Ok(open));
    let too_long = Command::Open {
        client_pid: 9,
        region_size: 4096,
        region: "/r".into(),
        items: format!("/{}", "i".repeat(MAX_NAME_LEN)),
        spaces: "/s".into(),
        kind: SessionKind::Status,
    };
    assert!(matches!(too_long.encode(), Err(EncodeError::TooLong { .. })));
}

#[test]
fn an_open_without_both_semaphore_names_is_rejected() {
    let open = |items: &str, spaces: &str| {
        Command::Open {
            client_pid: 1,
            region_size: 4096,
            region: "/r".into(),
            items: items.into(),
            spaces: spaces.into(),
            kind: SessionKind::Transfer,
        }
        .encode()
        .unwrap()
    };
    assert_eq!(Command::decode(&open("", "/s")), Err(DecodeError::BadField("items semaphore name")));
    assert_eq!(Command::decode(&open("/i", "")), Err(DecodeError::BadField("spaces semaphore name")));
    // A tail with a byte after the names, its length field raised to match.
    let mut msg = open("/i", "/s");
    msg.push(b'x');
    let tail_len = u16::from_le_bytes([msg[18], msg[19]]) + 1;
    msg[18..20].copy_from_slice(&tail_len.to_le_bytes());
    assert!(matches!(Command::decode(&msg), Err(DecodeError::TrailingBytes { .. })));
    // A length byte that runs past the tail.
    let mut msg = open("/i", "/s");
    msg[MSG_HEADER_LEN + 2] = 200;
    assert!(matches!(Command::decode(&msg), Err(DecodeError::Truncated { .. })));
    // A Get's path where an Open's names belong.
    let mut msg = Command::Get {
        client_pid: 1,
        seq: 1,
        region: "/r".into(),
        path: "p".into(),
        offset: 0,
        condition: GetCondition::Always,
    }
    .encode()
    .unwrap();
    msg[5] = KIND_OPEN;
    assert!(Command::decode(&msg).is_err());
}

#[test]
fn get_without_path_and_stop_with_region_are_rejected() {
    let mut msg =
        Command::List { client_pid: 1, seq: 1, region: "/r".into(), prefix: Vec::new() }.encode().unwrap();
    msg[5] = KIND_GET;
    assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("path")));
    msg[5] = KIND_STOP;
    assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("region name")));
}

/// Found by `cargo fuzz run decode`: messages with non-zero bytes in
/// fields their kind does not use decoded, and so did not encode back to
/// themselves.
#[test]
fn unused_fields_must_be_zero() {
    // Found at version 1; byte 4 is the version.
    let mut msg = [83, 88, 81, 49, 1, 1, 0, 249, 0, 0, 0, 15, 63, 0, 0, 0, 2, 0, 0, 0, 1, 16];
    msg[4] = PROTOCOL_VERSION;
    assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("reserved")));
    // Second run: a Stop message with a non-zero seq field (since the
    // seq word names the stop kind, one that names no kind).
    let mut msg = [83, 88, 81, 49, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0];
    msg[4] = PROTOCOL_VERSION;
    assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("stop kind")));
    let mut header = FrameHeader { kind: FrameKind::End, len: 16, seq: 3 }.encode();
    header[15] = 1;
    assert_eq!(FrameHeader::decode(&header, 100), Err(DecodeError::BadField("reserved")));
}

#[test]
fn get_carries_its_offset_and_condition_before_the_path() {
    let stamp = Stamp { size: 10, mtime_ns: -5 };
    let cmd = Command::Get {
        client_pid: 1,
        seq: 2,
        region: "/r".into(),
        path: b"dir/f".to_vec(),
        offset: 1 << 40,
        condition: GetCondition::IfSame(stamp),
    };
    let mut msg = cmd.encode().unwrap();
    assert_eq!(msg.len(), MSG_HEADER_LEN + 2 + GET_FIELDS_LEN + 5);
    assert_eq!(Command::decode(&msg), Ok(cmd));
    // An unknown condition, and a stamp beside no condition.
    let at = MSG_HEADER_LEN + 2 + 8;
    msg[at] = 3;
    assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("get condition")));
    msg[at] = 0;
    assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("get condition")));
    // The fields without a path.
    let tail_len = GET_FIELDS_LEN as u16;
    let mut msg = msg[..MSG_HEADER_LEN + 2 + GET_FIELDS_LEN].to_vec();
    msg[18..20].copy_from_slice(&tail_len.to_le_bytes());
    msg[at] = 2;
    assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("path")));
    // The longest path fits a default queue with its fields.
    let longest = Command::Get {
        client_pid: 1,
        seq: 2,
        region: "/".repeat(MAX_NAME_LEN),
        path: vec![b'p'; MAX_PATH_LEN],
        offset: 0,
        condition: GetCondition::UnlessUpToDate(stamp),
    };
    let msg = longest.encode().unwrap();
    assert_eq!(msg.len(), MAX_MSG_LEN);
    assert_eq!(Command::decode(&msg), Ok(longest));
}

#[test]
fn stop_says_its_kind_in_the_seq_word_and_refuses_unknown_kinds() {
    for (kind, word) in [(StopKind::Now, 0u32), (StopKind::Drain, 1)] {
        let msg = Command::Stop { client_pid: 42, kind }.encode().unwrap();
        assert_eq!(msg[12..16], word.to_le_bytes());
        assert_eq!(Command::decode(&msg), Ok(Command::Stop { client_pid: 42, kind }));
    }
    let mut msg = Command::Stop { client_pid: 42, kind: StopKind::Drain }.encode().unwrap();
    msg[12..16].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("stop kind")));
}

#[test]
fn start_carries_permission_bits_only() {
    let start = Reply::Start { size: 5, mode: 0o4755, flags: StartFlags::NONE, mtime_ns: -1 };
    let mut payload = Vec::new();
    start.encode_payload(&mut payload);
    assert_eq!(payload.len(), 24);
    assert_eq!(Reply::decode(FrameKind::Start, &payload), Ok(start));
    // A Start without its flags is short.
    assert!(matches!(Reply::decode(FrameKind::Start, &payload[..12]), Err(DecodeError::Truncated { .. })));
    // A file type in the mode is not a permission bit.
    payload[8..12].copy_from_slice(&0o100644u32.to_le_bytes());
    assert_eq!(Reply::decode(FrameKind::Start, &payload), Err(DecodeError::BadField("file mode")));
    // A version-1 Start (the size alone) does not pass for this version's.
    assert!(matches!(Reply::decode(FrameKind::Start, &payload[..8]), Err(DecodeError::Truncated { .. })));
}

#[test]
fn start_says_whether_the_size_is_known_and_refuses_unknown_flags() {
    let start = Reply::Start { size: 0, mode: 0o444, flags: StartFlags::SIZE_UNKNOWN, mtime_ns: 7 };
    let mut payload = Vec::new();
    start.encode_payload(&mut payload);
    let decoded = Reply::decode(FrameKind::Start, &payload);
    assert_eq!(decoded, Ok(start));
    assert!(matches!(decoded, Ok(Reply::Start { flags, .. }) if flags.size_unknown()));
    payload[12..16].copy_from_slice(&8u32.to_le_bytes());
    assert_eq!(Reply::decode(FrameKind::Start, &payload), Err(DecodeError::BadField("start flags")));
}

#[test]
fn status_frames_fit_the_smallest_slot_and_reject_unused_bits() {
    let server = Reply::ServerStatus(ServerStatus {
        pid: 1,
        persistent: true,
        max_sessions: 16,
        open_sessions: 2,
        uptime_ms: 5,
        sessions_total: 9,
        files: 3,
        bytes: 4,
        accepting: true,
        received_files: 5,
        received_bytes: 6,
        root: "r".repeat(MAX_STATUS_TEXT + 100),
    });
    let mut payload = Vec::new();
    server.encode_payload(&mut payload);
    let smallest = crate::shm_region::Geometry::for_slots(crate::shm_region::MAX_SLOTS).max_payload();
    assert!(payload.len() <= smallest, "{} > {smallest}", payload.len());
    let Ok(Reply::ServerStatus(back)) = Reply::decode(FrameKind::ServerStatus, &payload) else {
        panic!("does not decode")
    };
    assert_eq!(back.root.len(), MAX_STATUS_TEXT, "a long root is cut");
    assert!(back.accepting && (back.received_files, back.received_bytes) == (5, 6));
    payload[4] = 4;
    assert_eq!(Reply::decode(FrameKind::ServerStatus, &payload), Err(DecodeError::BadField("status flags")));
    let session = Reply::SessionStatus(SessionStatus {
        client_pid: 1,
        kind: SessionKind::Upload,
        age_ms: 0,
        idle_ms: 0,
        sent: 0,
        size: 0,
        file_ms: 0,
        total: 0,
        path: "p".repeat(MAX_STATUS_TEXT),
    });
    let mut payload = Vec::new();
    session.encode_payload(&mut payload);
    assert!(payload.len() <= smallest, "{} > {smallest}", payload.len());
    assert_eq!(Reply::decode(FrameKind::SessionStatus, &payload), Ok(session.clone()));
    // A longer path is cut to the status text's bound, and still fits.
    let Reply::SessionStatus(mut long) = session.clone() else { unreachable!() };
    long.path = "p".repeat(MAX_PATH_LEN);
    let mut cut = Vec::new();
    Reply::SessionStatus(long).encode_payload(&mut cut);
    assert_eq!(cut, payload, "cut to MAX_STATUS_TEXT bytes");
    payload[4] = 3;
    assert_eq!(Reply::decode(FrameKind::SessionStatus, &payload), Err(DecodeError::BadField("session kind")));
    payload[4] = 1;
    payload[5] = 1;
    assert_eq!(Reply::decode(FrameKind::SessionStatus, &payload), Err(DecodeError::BadField("reserved")));
}

#[test]
fn oversized_frame_payload_is_rejected() {
    let h = FrameHeader { kind: FrameKind::Data, len: 2009, seq: 0 }.encode();
    assert!(matches!(FrameHeader::decode(&h, 2008), Err(DecodeError::TooLong { .. })));
}

#[test]
fn encode_refuses_what_decode_would_refuse() {
    let path = vec![b'a'; MAX_PATH_LEN + 1];
    let get = |path: Vec<u8>| Command::Get {
        client_pid: 1,
        seq: 0,
        region: "/r".into(),
        path,
        offset: 0,
        condition: GetCondition::Always,
    };
    let cmd = get(path);
    assert!(matches!(cmd.encode(), Err(EncodeError::TooLong { field: "path", .. })));
    let cmd = get(b"a\0b".to_vec());
    assert_eq!(cmd.encode(), Err(EncodeError::Nul("path")));
    // A Get or a Put without a path: the server would drop it unanswered.
    assert_eq!(get(Vec::new()).encode(), Err(EncodeError::Empty("path")));
    let put =
        Command::Put { client_pid: 1, seq: 0, region: "/r".into(), path: Vec::new(), flags: PutFlags::NONE };
    assert_eq!(put.encode(), Err(EncodeError::Empty("path")));
}

#[test]
fn paths_that_are_not_utf8_travel_as_they_are() {
    let path = b"bad_\xff\xfe.bin".to_vec();
    let cmd = Command::Get {
        client_pid: 1,
        seq: 2,
        region: "/r".into(),
        path: path.clone(),
        offset: 0,
        condition: GetCondition::Always,
    };
    assert_eq!(Command::decode(&cmd.encode().unwrap()), Ok(cmd));
    let entry = Reply::ListEntry { size: 1, mode: 0o644, mtime_secs: -1, mtime_nsec: 5, path };
    let mut payload = Vec::new();
    entry.encode_payload(&mut payload);
    assert_eq!(Reply::decode(FrameKind::ListEntry, &payload), Ok(entry));
    // A file type in the mode, or nanoseconds of a second or more, are refused.
    payload[8..12].copy_from_slice(&0o100644u32.to_le_bytes());
    assert_eq!(Reply::decode(FrameKind::ListEntry, &payload), Err(DecodeError::BadField("file mode")));
    payload[8..12].copy_from_slice(&0o644u32.to_le_bytes());
    payload[20..24].copy_from_slice(&1_000_000_000u32.to_le_bytes());
    assert_eq!(Reply::decode(FrameKind::ListEntry, &payload), Err(DecodeError::BadField("mtime")));
    let skipped = [9u8, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(Reply::decode(FrameKind::ListSkipped, &skipped), Err(DecodeError::BadField("skip code")));
}

#[test]
fn requested_paths_are_normalized_one_way() {
    for (given, want) in [
        ("./sub", "sub"),
        ("sub//deep", "sub/deep"),
        ("sub/deep/", "sub/deep"),
        ("./a/./b//c/", "a/b/c"),
        (".", "."),
        ("./", "."),
        ("a/../b", "a/../b"),
        ("/etc//passwd", "/etc/passwd"),
        ("/", "/"),
    ] {
        assert_eq!(normalize_path(given.as_bytes()), want.as_bytes(), "{given}");
    }
}

#[test]
fn a_data_end_payload_splits_into_data_and_the_end_and_a_short_one_is_refused() {
    let mut payload = b"last bytes".to_vec();
    payload.extend_from_slice(&DataEnd::trailer(4106, 0xfeed_beef));
    assert_eq!(DataEnd::decode(&payload), Ok(DataEnd { len: 10, count: 4106, checksum: 0xfeed_beef }));
    let empty = DataEnd::trailer(0, 1);
    assert_eq!(DataEnd::decode(&empty), Ok(DataEnd { len: 0, count: 0, checksum: 1 }));
    for short in 0..DataEnd::TRAILER_LEN {
        assert!(matches!(DataEnd::decode(&payload[..short]), Err(DecodeError::Truncated { .. })));
    }
    assert_eq!(FrameKind::from_u8(14), Ok(FrameKind::DataEnd));
    assert!(Reply::decode(FrameKind::DataEnd, &payload).is_err(), "not a control frame");
}

#[test]
fn an_answer_takes_no_more_frames_of_a_kind_than_its_bound() {
    let mut count = AnswerCount::default();
    for _ in 0..MAX_LIST_SKIPPED {
        count.count(3, FrameKind::ListSkipped).unwrap();
        count.count(3, FrameKind::Data).unwrap();
    }
    let err = count.count(3, FrameKind::ListSkipped).unwrap_err();
    assert!(err.contains("more than 10000 entries left out of one listing"), "{err}");
    // The next answer counts afresh.
    count.count(4, FrameKind::ListSkipped).unwrap();
    for _ in 1..MAX_LIST_FILES {
        count.count(4, FrameKind::ListEntry).unwrap();
    }
    count.count(4, FrameKind::ListEntry).unwrap();
    assert!(count.count(4, FrameKind::ListEntry).is_err());
}

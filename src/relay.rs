//! The relay (`shm_client --relay`): a local client of the server on its
//! host that forwards the commands and frames of a client on another host,
//! which reach it through `RSH` as records on stdin and stdout
//! ([`crate::link`] has the stream's records and the other side).

use std::io::{BufWriter, Read, Write};
use std::sync::mpsc::TryRecvError;

use crate::client::{Client, ClientConfig};
use crate::error::{Error, Result};
use crate::link::{ends_answer, spawn_reader, write_record, Record, MAX_COMMAND_RECORD, MAX_FRAME_RECORD};
use crate::protocol::Command;

/// The relay (`shm_client --relay`): connects a session to the server of
/// `config.queue`, then forwards each command record of `input` (Get, List,
/// Cancel) through it and copies every frame of each answer to `output`,
/// until `input` ends; then it closes the session.
///
/// # Errors
///
/// [`Client::connect`]'s errors; [`Error::Protocol`] for a record that is
/// not a Get, List or Cancel; the session's errors; [`Error::Os`] when
/// `output` cannot be written.
pub fn relay(config: &ClientConfig, input: impl Read + Send + 'static, output: impl Write) -> Result<()> {
    let mut client = Client::connect(config)?;
    let commands = spawn_reader(input, MAX_COMMAND_RECORD);
    let mut output = BufWriter::with_capacity(64 << 10, output);
    let mut open_answers = 0usize;
    let mut buf = vec![0u8; client.max_payload()];
    let mut record = Vec::with_capacity(MAX_FRAME_RECORD);
    let write_err = |e| Error::os_named("write", "stdout", e);
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
                let cmd = Command::decode(&body)?;
                let asks = matches!(cmd, Command::Get { .. } | Command::List { .. });
                client.forward(cmd)?;
                open_answers += usize::from(asks);
            }
            Some(Record::End) => {
                output.flush().map_err(write_err)?;
                return client.close();
            }
            Some(Record::Broken(why)) => return Err(Error::Protocol(format!("the client's stream: {why}"))),
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

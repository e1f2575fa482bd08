//! The fetch session: [`Client`], which fetches files and lists, over the
//! session core; its constructors of the other two kinds of session.

use crate::client::config::ClientConfig;
use crate::client::link::Remote;
use crate::client::session::Session;
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::protocol::{Command, Frame, GetCondition, ReasonCode, SessionKind};
use crate::shm_region::ring::Consumer;
use crate::transfer::body::FrameSource;

/// A fetch session with a server: [`Client::connect`] (or
/// [`Client::connect_remote`]) opens it, the `fetch` methods,
/// [`Client::list`] and [`Client::status`] use it, [`Client::close`] (or
/// dropping it) ends it and removes its objects. It sends no files: that is
/// an `UploadSession`'s, and a wrong call does not compile.
///
/// ```compile_fail,E0599
/// use shmxfer::upload::PutIfExists;
/// use shmxfer::{Client, ClientConfig};
///
/// let mut client = Client::connect(&ClientConfig::from_env())?;
/// // error[E0599]: no method named `put_file` found for struct `Client`
/// client.put_file("report.txt".as_ref(), b"inbox/report.txt", PutIfExists::Replace)?;
/// # Ok::<(), shmxfer::Error>(())
/// ```
pub struct Client {
    pub(super) session: Session<Consumer>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("Client");
        self.session.describe(&mut f);
        f.finish()
    }
}

impl Client {
    /// Finds a live server (waiting up to `config.wait`), creates the session
    /// objects and opens a fetch session.
    ///
    /// # Errors
    ///
    /// [`Error::NoServer`], [`Error::QueueFull`], [`Error::Cancelled`],
    /// [`Error::Timeout`] when the server does not take the session,
    /// [`Error::InvalidName`] for a bad queue name, [`Error::BadObject`] for
    /// another user's queue, [`Error::OtherUsersServer`] for a server of
    /// another user that this one may not reach, [`Error::Os`] for the objects.
    pub fn connect(config: &ClientConfig) -> Result<Client> {
        Ok(Client { session: Session::open_reading(config, SessionKind::Transfer)? })
    }

    /// Opens a fetch session with the server of `config.queue` on the host
    /// `remote` names: runs its `shm_client --relay` through the remote
    /// shell, and speaks the session through the relay's stdin and stdout.
    /// The relay waits up to `config.wait` for the server there; whether it
    /// found one shows at the first request (a relay that found none ends
    /// the session with [`Error::PeerGone`], naming the host and the
    /// queue). `UploadSession::connect_remote` and
    /// `StatusSession::connect_remote` open the other kinds.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use shmxfer::remote::Remote;
    /// use shmxfer::{Client, ClientConfig, FetchOptions};
    ///
    /// let remote = Remote::new("build@farm7").with_rsh(vec!["ssh".into(), "-p".into(), "2222".into()]);
    /// let mut client = Client::connect_remote(&ClientConfig::from_env(), &remote)?;
    /// let report = client.fetch_files(&["results.tar"], &FetchOptions::new("out"))?;
    /// assert!(report.all_delivered());
    /// client.close()?;
    /// # Ok::<(), shmxfer::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a bad queue name, [`Error::InvalidConfig`]
    /// for an empty remote shell, [`Error::Os`] when it cannot be run.
    pub fn connect_remote(config: &ClientConfig, remote: &Remote) -> Result<Client> {
        Ok(Client { session: Session::open_remote(config, remote, SessionKind::Transfer)? })
    }

    /// The largest payload one frame carries.
    pub(crate) fn max_payload(&self) -> usize {
        self.session.max_payload()
    }

    /// Reads the next frame of the answer to `seq` ([`Session::next_frame`]).
    ///
    /// # Errors
    ///
    /// As [`Session::next_frame`].
    pub(crate) fn next_frame(&mut self, seq: u32, out: &mut [u8]) -> Result<Frame> {
        self.session.next_frame(seq, out)
    }

    /// Asks for the file `path`; its frames will carry the returned
    /// sequence number.
    ///
    /// # Errors
    ///
    /// As [`Session::send_command`].
    pub(crate) fn request(&mut self, path: &[u8]) -> Result<u32> {
        self.request_from(path, 0, GetCondition::Always)
    }

    /// [`Client::request`] for the bytes from `offset` on, on `condition`
    /// (resuming, `--update`).
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub(crate) fn request_from(&mut self, path: &[u8], offset: u64, condition: GetCondition) -> Result<u32> {
        let seq = self.session.take_seq();
        let (client_pid, region, path) = (self.session.pid(), self.session.region_name(), path.to_vec());
        self.session.send_command(&Command::Get { client_pid, seq, region, path, offset, condition })?;
        Ok(seq)
    }

    /// Asks the server to stop sending the file of request `seq`: it ends it
    /// with an `Error` frame of [`ReasonCode::Cancelled`](crate::protocol::ReasonCode)
    /// at its next chunk (or, when it was done already, with its `End`).
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub(crate) fn cancel_request(&mut self, seq: u32) -> Result<()> {
        let (client_pid, region) = (self.session.pid(), self.session.region_name());
        self.session.send_command(&Command::Cancel { client_pid, seq, region })
    }

    /// Asks for the server's listing at or below `prefix` (normalized;
    /// `.`: all of it); its frames will carry the returned sequence number.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub(super) fn request_list(&mut self, prefix: &[u8]) -> Result<u32> {
        let seq = self.session.take_seq();
        let prefix = if prefix == b"." { Vec::new() } else { prefix.to_vec() };
        let (client_pid, region) = (self.session.pid(), self.session.region_name());
        self.session.send_command(&Command::List { client_pid, seq, region, prefix })?;
        Ok(seq)
    }

    /// Sends the shutdown message. Dropping the client unlinks its objects
    /// (and says goodbye without waiting).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] or [`Error::Timeout`] from the queue,
    /// [`Error::PeerGone`], [`Error::Cancelled`].
    pub fn close(self) -> Result<()> {
        self.session.close()
    }
}

/// A fetch's frames come from its session; stopping is a cancel.
impl FrameSource for Client {
    fn next_frame(&mut self, seq: u32, buf: &mut [u8]) -> Result<Frame> {
        Client::next_frame(self, seq, buf)
    }

    fn stop_sending(&mut self, seq: u32, _why: ReasonCode) -> Result<()> {
        self.cancel_request(seq)
    }
}

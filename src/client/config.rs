//! How a client connects: [`ClientConfig`], its builder and its defaults.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::os::names::validate_queue_name;
use crate::shm_region::pacing::DEFAULT_SPIN_BUDGET;
use crate::shm_region::{DEFAULT_SLOTS, MAX_SLOTS};

/// How long library calls wait for a server to appear unless told
/// otherwise ([`ClientConfig::wait`]): 5 s. `shm_client` waits 30 s.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// Called once for each thing [`Client::connect`](crate::Client::connect) has to wait for, with the
/// queue, how long it will wait at most, and what it waits for.
pub type WaitNotice = Arc<dyn Fn(&str, Duration, Waiting) + Send + Sync>;

/// What a client waits for ([`ClientConfig::on_wait`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Waiting {
    /// A live server on the queue.
    Server,
    /// A free session: the server turned the client away as busy (it serves
    /// its maximum of sessions).
    FreeSession,
}

/// How a client connects: the queue, how long to wait for a server, and
/// how a caller stops it or hears that it waits.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use shmxfer::ClientConfig;
///
/// let config = ClientConfig::new("/myqueue");
/// assert_eq!(config.wait, shmxfer::DEFAULT_WAIT);
/// assert_eq!(config.stall_timeout, Some(Duration::from_secs(60)));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The command queue's name, such as `/shmxfer`.
    pub queue: String,
    /// How long to wait for a server to appear; zero means one try.
    pub wait: Duration,
    /// How long, counted like `wait` from the start, to keep asking a busy
    /// server (one that serves its maximum of sessions) for a session; zero
    /// (the default) means that "busy" fails the client at once.
    pub busy_wait: Duration,
    /// Slots in the ring (1..=4).
    pub slots: u32,
    /// How long a session may go without a frame before the client gives
    /// up on it (`None`: never).
    pub stall_timeout: Option<Duration>,
    /// How long a live server may take to attach to a new session before the
    /// client gives up on it (10 s unless told otherwise).
    pub attach_timeout: Duration,
    /// The longest a wait for a frame spins before it blocks (zero: block
    /// at once); [`DEFAULT_SPIN_BUDGET`] unless measuring.
    pub spin_budget: Duration,
    /// Set to `true` (from a signal handler, another thread) to end the
    /// client's waits and transfers with [`Error::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
    /// Told once that the client waits for a server, and once that it waits
    /// for a free session of a busy server.
    pub on_wait: Option<WaitNotice>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("queue", &self.queue)
            .field("wait", &self.wait)
            .field("busy_wait", &self.busy_wait)
            .field("slots", &self.slots)
            .field("stall_timeout", &self.stall_timeout)
            .field("attach_timeout", &self.attach_timeout)
            .field("spin_budget", &self.spin_budget)
            .field("cancel", &self.cancel)
            .field("on_wait", &self.on_wait.as_ref().map(|_| "Fn"))
            .finish()
    }
}

impl ClientConfig {
    /// A configuration with the defaults:
    ///
    /// | field | default |
    /// | --- | --- |
    /// | [`wait`](ClientConfig::wait) for a server | 5 s ([`DEFAULT_WAIT`]; `shm_client` waits 30 s) |
    /// | [`busy_wait`](ClientConfig::busy_wait) for a busy server | none: "busy" fails at once |
    /// | [`slots`](ClientConfig::slots) | 2 |
    /// | [`stall_timeout`](ClientConfig::stall_timeout) | 60 s |
    /// | [`attach_timeout`](ClientConfig::attach_timeout) | 10 s |
    /// | [`spin_budget`](ClientConfig::spin_budget) | 200 µs ([`DEFAULT_SPIN_BUDGET`]) |
    /// | [`cancel`](ClientConfig::cancel), [`on_wait`](ClientConfig::on_wait) | none |
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmxfer::ClientConfig;
    ///
    /// let config = ClientConfig::new("/myqueue");
    /// assert_eq!(config.wait, Duration::from_secs(5));
    /// assert_eq!(config.slots, 2);
    /// assert_eq!(config.stall_timeout, Some(Duration::from_secs(60)));
    /// assert_eq!(config.attach_timeout, Duration::from_secs(10));
    /// assert_eq!(config.spin_budget, Duration::from_micros(200));
    ///
    /// // Longer, as `shm_client` waits:
    /// let patient = ClientConfig::builder("/myqueue").wait(Duration::from_secs(30)).build()?;
    /// assert_eq!(patient.wait, Duration::from_secs(30));
    /// # Ok::<(), shmxfer::Error>(())
    /// ```
    pub fn new(queue: impl Into<String>) -> ClientConfig {
        ClientConfig {
            queue: queue.into(),
            wait: DEFAULT_WAIT,
            busy_wait: Duration::ZERO,
            slots: DEFAULT_SLOTS,
            stall_timeout: Some(DEFAULT_STALL_TIMEOUT),
            attach_timeout: ATTACH_TIMEOUT,
            spin_budget: DEFAULT_SPIN_BUDGET,
            cancel: None,
            on_wait: None,
        }
    }

    /// [`ClientConfig::new`] for the queue the environment names
    /// ([`QUEUE_ENV`](crate::QUEUE_ENV)), else [`DEFAULT_QUEUE`](crate::DEFAULT_QUEUE),
    /// as the programs read it. A value that is not UTF-8 (which the
    /// programs refuse) is not taken for unset: its bad bytes become
    /// U+FFFD, so that the client finds no server rather than the default
    /// queue's.
    pub fn from_env() -> ClientConfig {
        ClientConfig::new(crate::os::names::queue_from_env())
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// Builds a [`ClientConfig`] step by step and checks it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use shmxfer::ClientConfig;
///
/// let config = ClientConfig::builder("/myqueue")
///     .wait(Duration::from_secs(5))
///     .slots(4)
///     .stall_timeout(Some(Duration::from_secs(10)))
///     .build()?;
/// assert_eq!(config.wait, Duration::from_secs(5));
/// assert_eq!(config.stall_timeout, Some(Duration::from_secs(10)));
///
/// // A bad queue name or slot count is an error here, not at connect time.
/// assert!(ClientConfig::builder("myqueue").build().is_err());
/// assert!(ClientConfig::builder("/myqueue").slots(9).build().is_err());
/// # Ok::<(), shmxfer::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientConfigBuilder {
    config: ClientConfig,
}

impl ClientConfig {
    /// A builder that starts from [`ClientConfig::new`]`(queue)`.
    pub fn builder(queue: impl Into<String>) -> ClientConfigBuilder {
        ClientConfigBuilder { config: ClientConfig::new(queue) }
    }

    /// A builder that starts from [`ClientConfig::from_env`].
    pub fn builder_from_env() -> ClientConfigBuilder {
        ClientConfigBuilder { config: ClientConfig::from_env() }
    }
}

impl ClientConfigBuilder {
    /// How long [`Client::connect`](crate::Client::connect) waits for a server to appear; zero: one try.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.config.wait = wait;
        self
    }

    /// How long [`Client::connect`](crate::Client::connect) keeps asking a busy server for a session;
    /// zero: "busy" at once.
    pub fn busy_wait(mut self, wait: Duration) -> Self {
        self.config.busy_wait = wait;
        self
    }

    /// How long a session may go without a frame before the client gives
    /// up on it; `None`: never.
    pub fn stall_timeout(mut self, stall: Option<Duration>) -> Self {
        self.config.stall_timeout = stall;
        self
    }

    /// Slots in the ring, 1 to 4.
    pub fn slots(mut self, slots: u32) -> Self {
        self.config.slots = slots;
        self
    }

    /// How long a live server may take to attach to a new session before
    /// the client gives up on it.
    pub fn attach_timeout(mut self, timeout: Duration) -> Self {
        self.config.attach_timeout = timeout;
        self
    }

    /// The longest a wait for a frame spins before it blocks; zero: block
    /// at once.
    pub fn spin_budget(mut self, budget: Duration) -> Self {
        self.config.spin_budget = budget;
        self
    }

    /// A flag that, once set, ends the client's waits and transfers with
    /// [`Error::Cancelled`].
    pub fn cancel(mut self, cancel: Arc<AtomicBool>) -> Self {
        self.config.cancel = Some(cancel);
        self
    }

    /// Called once, with the queue, the wait and what is waited for, when
    /// connecting has to wait for a server, and once when it has to wait for
    /// a free session of a busy server.
    pub fn on_wait(mut self, notice: impl Fn(&str, Duration, Waiting) + Send + Sync + 'static) -> Self {
        self.config.on_wait = Some(Arc::new(notice));
        self
    }

    /// The configuration.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a queue name that breaks the naming rules
    /// (a leading `/`, no other `/`, no NUL, short enough for the names
    /// derived from it); [`Error::InvalidConfig`] for a slot count outside 1
    /// to 4.
    pub fn build(self) -> Result<ClientConfig> {
        validate_queue_name(&self.config.queue)?;
        if !(1..=MAX_SLOTS).contains(&self.config.slots) {
            let slots = self.config.slots;
            return Err(Error::InvalidConfig(format!("{slots} slots asked for; 1 to {MAX_SLOTS} allowed")));
        }
        Ok(self.config)
    }
}

/// How long a session may go without a frame, on either side, unless told
/// otherwise (`--stall-timeout`).
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a live server may take to attach to a new session, unless the
/// [`ClientConfig::attach_timeout`] says otherwise.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

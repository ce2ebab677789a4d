//! The optional durable journal: append-only JSON lines, one `Entry` per change, replayed when the
//! engine starts. Its job is modest: an in-process demo keeps its billing keys and ledger across
//! a Pier restart. It is not a database.
//!
//! Writes go through a bounded channel to one writer thread, so the engine never does file IO on
//! the async executor and never waits for a disk. The thread flushes its buffer whenever the
//! channel runs dry (so lines reach the OS within microseconds) and never fsyncs: a crash of the
//! process loses nothing the OS already has, a crash of the machine may lose the tail. A torn last
//! line is tolerated on replay.
//!
//! Card data only appears sealed (see `crypto`), so the file is safe to leave lying around as far
//! as card numbers go.

use super::ledger::{Entry, State};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

pub(crate) const VERSION: u32 = 1;
/// How many unwritten entries may queue up before writers wait for the disk.
const QUEUE_BOUND: usize = 65_536;
/// A single journal line longer than this is not ours.
const MAX_LINE_BYTES: usize = 1 << 20;

enum Msg {
    Entry(Box<Entry>),
    Flush(tokio::sync::oneshot::Sender<io::Result<()>>),
}

pub(crate) struct Journal {
    tx: SyncSender<Msg>,
    /// The first write error, reported by the next `flush`.
    failed: Arc<Mutex<Option<String>>>,
}

impl Journal {
    /// Open (or create) the journal at `path`, replay it into a new `State`, and start the writer.
    /// `key_check` is written into a new journal's header and must match an existing one's
    /// (`check_key` decides), so that cards sealed under another key are noticed at start.
    pub(crate) fn open(
        path: &Path,
        key_check: String,
        check_key: impl Fn(&str) -> bool,
    ) -> io::Result<(Self, State)> {
        let mut opts = OpenOptions::new();
        opts.create(true).read(true).append(true);
        // Owner-only from creation: the journal holds sealed card data and billing keys.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(path)?;
        let len = file.metadata()?.len();
        let mut state = State::default();
        if len == 0 {
            let header = Entry::Header {
                version: VERSION,
                key_check,
            };
            let mut line = serde_json::to_vec(&header).map_err(io::Error::other)?;
            line.push(b'\n');
            file.write_all(&line)?;
        } else {
            let whole_len = replay(&mut file, &mut state, &check_key)?;
            if whole_len < len {
                // Appends go to the (new) end, so the next entry starts on a clean line.
                file.set_len(whole_len)?;
            }
        }
        let (tx, rx) = mpsc::sync_channel(QUEUE_BOUND);
        let failed = Arc::new(Mutex::new(None));
        let failed_w = failed.clone();
        let display = path.display().to_string();
        std::thread::Builder::new()
            .name("testpg-journal".into())
            .spawn(move || {
                write_loop(
                    rx,
                    BufWriter::with_capacity(64 * 1024, file),
                    failed_w,
                    display,
                )
            })?;
        Ok((Self { tx, failed }, state))
    }

    /// Queue an entry. Called with the engine's state lock held, so the journal's order is the
    /// order of the changes. Waits only when the writer is `QUEUE_BOUND` entries behind.
    pub(crate) fn append(&self, entry: Entry) {
        let msg = Msg::Entry(Box::new(entry));
        let msg = match self.tx.try_send(msg) {
            Ok(()) => return,
            Err(TrySendError::Full(msg)) => msg,
            Err(TrySendError::Disconnected(_)) => {
                self.note_failure("journal writer stopped".into());
                return;
            }
        };
        if self.tx.send(msg).is_err() {
            self.note_failure("journal writer stopped".into());
        }
    }

    /// Wait until everything appended so far is written to the OS.
    pub(crate) async fn flush(&self) -> io::Result<()> {
        let stopped = || io::Error::other("journal writer stopped");
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send(Msg::Flush(done_tx)) {
            Ok(()) => {}
            Err(TrySendError::Full(msg)) => {
                // A full queue means waiting for the disk: do that on a blocking thread.
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || tx.send(msg))
                    .await
                    .map_err(io::Error::other)?
                    .map_err(|_| stopped())?;
            }
            Err(TrySendError::Disconnected(_)) => return Err(stopped()),
        }
        done_rx.await.map_err(|_| stopped())??;
        match self
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(err) => Err(io::Error::other(err.clone())),
            None => Ok(()),
        }
    }

    fn note_failure(&self, err: String) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.is_none() {
            tracing::error!(error = %err, "testpg journal");
            *failed = Some(err);
        }
    }
}

/// Replay the journal into `state`. Returns the length of its whole lines: a torn tail after
/// them (the process died mid-write) is to be cut off before appending.
fn replay(
    file: &mut File,
    state: &mut State,
    check_key: &impl Fn(&str) -> bool,
) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(&*file);
    let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    let mut buf = Vec::new();
    let mut whole_len = 0u64;
    let mut n = 0usize;
    loop {
        buf.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if read == 0 {
            break;
        }
        n += 1;
        if buf.len() > MAX_LINE_BYTES {
            return Err(bad(format!("journal line {n} is too long")));
        }
        let Some(line) = buf.strip_suffix(b"\n") else {
            if n == 1 {
                return Err(bad("not a testpg journal (no header)".to_owned()));
            }
            tracing::warn!(line = n, "testpg journal: dropping a torn last line");
            break;
        };
        whole_len += read as u64;
        if line.is_empty() {
            continue;
        }
        let entry: Entry = serde_json::from_slice(line)
            .map_err(|e| bad(format!("journal line {n} is unreadable: {e}")))?;
        match (&entry, n) {
            (Entry::Header { version, key_check }, 1) => {
                if *version != VERSION {
                    return Err(bad(format!(
                        "journal version {version}, expected {VERSION}"
                    )));
                }
                if !check_key(key_check) {
                    return Err(bad(
                        "the journal was written with another encryption key".to_owned()
                    ));
                }
            }
            (_, 1) => return Err(bad("not a testpg journal (no header)".to_owned())),
            (Entry::Header { .. }, _) => return Err(bad(format!("second header at line {n}"))),
            _ => state.apply(entry),
        }
    }
    Ok(whole_len)
}

fn write_loop(
    rx: Receiver<Msg>,
    mut out: BufWriter<File>,
    failed: Arc<Mutex<Option<String>>>,
    path: String,
) {
    let mut broken: Option<String> = None;
    let mut line = Vec::with_capacity(1024);
    // Blocks on an empty channel; drains greedily; flushes when dry. Ends when the engine is gone.
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Entry(entry) => {
                    if broken.is_some() {
                        continue;
                    }
                    line.clear();
                    let res = serde_json::to_writer(&mut line, &*entry)
                        .map_err(io::Error::other)
                        .and_then(|()| {
                            line.push(b'\n');
                            out.write_all(&line)
                        });
                    if let Err(e) = res {
                        broken = Some(format!("writing {path}: {e}"));
                    }
                }
                Msg::Flush(done) => {
                    let res = match &broken {
                        Some(err) => Err(io::Error::other(err.clone())),
                        None => out.flush(),
                    };
                    let _ = done.send(res);
                }
            }
            next = rx.try_recv().ok();
        }
        if broken.is_none() {
            if let Err(e) = out.flush() {
                broken = Some(format!("writing {path}: {e}"));
            }
        }
        if let Some(err) = &broken {
            let mut slot = failed.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                tracing::error!(error = %err, "testpg journal");
                *slot = Some(err.clone());
            }
        }
    }
    let _ = out.flush();
}

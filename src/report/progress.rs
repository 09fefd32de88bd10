//! How far a load is, while it runs: a redrawn line on a terminal, a line every
//! `--progress-interval` in the journal, and `STATUS=` for `systemctl status`.
//!
//! A large image can take minutes at boot, and without a sign of life a slow load looks like a
//! hung one. During each upload a watcher thread reads the archive's byte counters
//! ([`Progress`]); percent and time left compare the compressed bytes read so far with the
//! archive's size on disk, at the average rate since the load began. The watcher sleeps on a
//! channel, so it stops the moment the load ends instead of finishing a sleep.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::decode::Progress;
use crate::input::list::Entry;
use crate::input::sizes::Size;
use crate::report::log::Log;
use crate::report::notify::Notifier;

/// How often the terminal line is redrawn: often enough to look alive, not so often that it
/// flickers.
const DRAW_EVERY: Duration = Duration::from_millis(250);
/// How often `STATUS=` is updated: it is read by people, once a second is plenty.
const NOTIFY_EVERY: Duration = Duration::from_secs(1);
/// Erases from the cursor to the end of the line (ECMA-48 EL), so a shorter redraw leaves no
/// tail of the longer one before it.
const ERASE_LINE: &str = "\x1b[K";

/// Where progress goes during this run.
pub struct Reporter<'a> {
    log: &'a Log,
    notifier: &'a Notifier,
    /// Redraw one line on stderr.
    terminal: bool,
    /// A log line this often, when not drawing on a terminal.
    interval: Option<Duration>,
}

impl<'a> Reporter<'a> {
    /// The terminal line when stderr is a terminal and the run is not quiet (`verbosity` -1);
    /// otherwise a log line every `interval` (zero: none).
    pub fn for_run(
        verbosity: i8,
        interval: Duration,
        log: &'a Log,
        notifier: &'a Notifier,
    ) -> Reporter<'a> {
        let terminal = verbosity >= 0 && std::io::stderr().is_terminal();
        let interval = Some(interval).filter(|i| !i.is_zero());
        Reporter::new(log, notifier, terminal, interval)
    }

    pub fn new(
        log: &'a Log,
        notifier: &'a Notifier,
        terminal: bool,
        interval: Option<Duration>,
    ) -> Reporter<'a> {
        Reporter {
            log,
            notifier,
            terminal,
            interval,
        }
    }

    /// Says that entry `number` of `total` is being handled (`STATUS=loading 2/5 REF`), and
    /// returns what reports its load.
    pub fn entry<'e>(&'e self, number: usize, total: usize, entry: &'e Entry) -> EntryReport<'e> {
        let report = EntryReport {
            reporter: self,
            entry,
            number,
            total,
        };
        // Formatted only for a service manager that listens: most entries of a boot take
        // microseconds.
        if self.notifier.is_active() {
            self.notifier
                .status(&format!("loading {number}/{total} {}", entry.reference));
        }
        report
    }
}

/// Reports the load of one entry.
pub struct EntryReport<'a> {
    reporter: &'a Reporter<'a>,
    entry: &'a Entry,
    /// `2` of `5`.
    number: usize,
    total: usize,
}

impl EntryReport<'_> {
    /// Runs `load`, reporting `progress` against the archive's `size` until it returns.
    pub fn during<R>(&self, progress: &Progress, size: u64, load: impl FnOnce() -> R) -> R {
        let r = self.reporter;
        if !r.terminal && r.interval.is_none() && !r.notifier.is_active() {
            return load();
        }
        thread::scope(|scope| {
            let (done, finished) = mpsc::channel::<()>();
            // Progress is a nicety: if no thread can be had, the load runs without it.
            let _ = thread::Builder::new()
                .name("progress".into())
                .spawn_scoped(scope, move || self.watch(progress, size, finished));
            let result = load();
            // Wakes the watcher at once; the scope then waits for it to clear its line.
            drop(done);
            result
        })
    }

    fn watch(&self, progress: &Progress, size: u64, finished: Receiver<()>) {
        let r = self.reporter;
        let started = Instant::now();
        let every = |on: bool, period: Duration| on.then(|| Ticks::new(started, period));
        let mut draw = every(r.terminal, DRAW_EVERY);
        let mut journal = r.interval.and_then(|period| every(!r.terminal, period));
        let mut notify = every(r.notifier.is_active(), NOTIFY_EVERY);
        let mut drawn = false;
        loop {
            let Some(next) = [&draw, &journal, &notify]
                .into_iter()
                .flatten()
                .map(|t| t.next)
                .min()
            else {
                return;
            };
            match finished.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => break,
            }
            let now = Instant::now();
            let at = Snapshot {
                read: progress.compressed(),
                size,
                elapsed: now - started,
            };
            if Ticks::due(&mut draw, now) {
                let line = format!("\r{}: {}{ERASE_LINE}", self.entry.reference, at.terminal());
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
                drawn = true;
            }
            if Ticks::due(&mut journal, now) {
                r.log.info(format_args!(
                    "{}: {}: {}",
                    self.entry.place(),
                    self.entry.reference,
                    at.journal()
                ));
            }
            if Ticks::due(&mut notify, now) {
                r.notifier.status(&format!(
                    "loading {}/{} {} {}%",
                    self.number,
                    self.total,
                    self.entry.reference,
                    at.percent()
                ));
            }
        }
        if drawn {
            // The entry's own line ("loaded from ...", "failed: ...") comes next, on its own.
            let _ = std::io::stderr()
                .lock()
                .write_all(format!("\r{ERASE_LINE}").as_bytes());
        }
    }
}

/// A period and when it is next due.
struct Ticks {
    period: Duration,
    next: Instant,
}

impl Ticks {
    fn new(start: Instant, period: Duration) -> Ticks {
        Ticks {
            period,
            next: start + period,
        }
    }

    /// Whether `ticks` is due at `now`; if so, the next one is a period later (from `now`, so
    /// a late wake-up does not cause a burst of catch-up lines).
    fn due(ticks: &mut Option<Ticks>, now: Instant) -> bool {
        match ticks {
            Some(t) if t.next <= now => {
                t.next = now + t.period;
                true
            }
            _ => false,
        }
    }
}

/// Where one load stands.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// Compressed bytes read from the archive so far.
    pub read: u64,
    /// The archive's size on disk.
    pub size: u64,
    /// Since the load began.
    pub elapsed: Duration,
}

impl Snapshot {
    /// 0 to 100. An empty archive, or one that grew while it was read, counts as all read.
    pub fn percent(&self) -> u64 {
        match self.size {
            0 => 100,
            size => (u128::from(self.read.min(size)) * 100 / u128::from(size)) as u64,
        }
    }

    /// Compressed bytes per second, on average since the load began.
    pub fn rate(&self) -> u64 {
        match self.elapsed.as_secs_f64() {
            s if s > 0.0 => (self.read as f64 / s) as u64,
            _ => 0,
        }
    }

    /// Time until the whole archive is read at the average rate: unknown while nothing has
    /// been read, zero once everything has.
    pub fn left(&self) -> Option<Duration> {
        let remaining = self.size.saturating_sub(self.read);
        match (remaining, self.rate()) {
            (0, _) => Some(Duration::ZERO),
            (_, 0) => None,
            (remaining, rate) => Some(Duration::from_secs(remaining.div_ceil(rate))),
        }
    }

    fn all_read(&self) -> bool {
        self.read >= self.size
    }

    /// `45%  120.0 MiB of 260.0 MiB, 52.0 MiB/s, 3 s left`, after `REF: `.
    pub fn terminal(&self) -> String {
        format!(
            "{}%  {} of {}{}",
            self.percent(),
            Size(self.read),
            Size(self.size),
            self.pace("")
        )
    }

    /// `loading, 45% (120.0 MiB of 260.0 MiB), 52.0 MiB/s, ~3 s left`, after `LIST:LINE: REF: `.
    pub fn journal(&self) -> String {
        format!(
            "loading, {}% ({} of {}){}",
            self.percent(),
            Size(self.read),
            Size(self.size),
            self.pace("~")
        )
    }

    /// `, 52.0 MiB/s, 3 s left` (`about` before the time left), or that the engine is busy.
    fn pace(&self, about: &str) -> String {
        if self.all_read() {
            return ", waiting for the engine".to_owned();
        }
        let mut pace = format!(", {}/s", Size(self.rate()));
        if let Some(left) = self.left() {
            pace.push_str(&format!(", {about}{} left", Span(left)));
        }
        pace
    }
}

/// A duration as people say it: `3 s`, `4 min 10 s`, `1 h 5 min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        match s {
            0..60 => write!(f, "{s} s"),
            60..3600 => write!(f, "{} min {} s", s / 60, s % 60),
            _ => write!(f, "{} h {} min", s / 3600, s % 3600 / 60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn at(read: u64, size: u64, secs: u64) -> Snapshot {
        Snapshot {
            read,
            size,
            elapsed: Duration::from_secs(secs),
        }
    }

    #[test]
    fn percent_is_of_the_compressed_size_and_never_above_100() {
        assert_eq!(at(0, 260 * MIB, 1).percent(), 0);
        assert_eq!(at(117 * MIB, 260 * MIB, 1).percent(), 45);
        assert_eq!(at(260 * MIB, 260 * MIB, 1).percent(), 100);
        assert_eq!(at(300 * MIB, 260 * MIB, 1).percent(), 100);
        assert_eq!(at(u64::MAX - 1, u64::MAX, 1).percent(), 99);
    }

    #[test]
    fn an_empty_archive_is_all_read() {
        let empty = at(0, 0, 0);
        assert_eq!(empty.percent(), 100);
        assert_eq!(empty.left(), Some(Duration::ZERO));
        assert_eq!(
            empty.journal(),
            "loading, 100% (0 B of 0 B), waiting for the engine"
        );
    }

    #[test]
    fn rate_is_the_average_since_the_start() {
        assert_eq!(at(120 * MIB, 260 * MIB, 4).rate(), 30 * MIB);
        assert_eq!(at(120 * MIB, 260 * MIB, 0).rate(), 0);
        let half_second = Snapshot {
            elapsed: Duration::from_millis(500),
            ..at(MIB, 2 * MIB, 0)
        };
        assert_eq!(half_second.rate(), 2 * MIB);
    }

    #[test]
    fn time_left_rounds_up_and_is_unknown_before_the_first_byte() {
        assert_eq!(
            at(120 * MIB, 260 * MIB, 4).left(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(at(10, 31, 1).left(), Some(Duration::from_secs(3)));
        assert_eq!(at(0, 260 * MIB, 5).left(), None);
        assert_eq!(at(0, 260 * MIB, 0).left(), None);
    }

    #[test]
    fn spans_read_like_speech() {
        assert_eq!(Span(Duration::from_secs(0)).to_string(), "0 s");
        assert_eq!(Span(Duration::from_secs(59)).to_string(), "59 s");
        assert_eq!(Span(Duration::from_secs(250)).to_string(), "4 min 10 s");
        assert_eq!(Span(Duration::from_secs(3900)).to_string(), "1 h 5 min");
    }

    #[test]
    fn lines_give_bytes_rate_and_time_left() {
        let s = at(120 * MIB, 260 * MIB, 4);
        assert_eq!(
            s.terminal(),
            "46%  120.0 MiB of 260.0 MiB, 30.0 MiB/s, 5 s left"
        );
        assert_eq!(
            s.journal(),
            "loading, 46% (120.0 MiB of 260.0 MiB), 30.0 MiB/s, ~5 s left"
        );
    }

    #[test]
    fn lines_leave_out_an_unknown_time_left() {
        assert_eq!(
            at(0, 2 * MIB, 3).journal(),
            "loading, 0% (0 B of 2.0 MiB), 0 B/s"
        );
    }

    #[test]
    fn lines_say_when_only_the_engine_is_left() {
        assert_eq!(
            at(2 * MIB, 2 * MIB, 3).terminal(),
            "100%  2.0 MiB of 2.0 MiB, waiting for the engine"
        );
    }

    fn entry() -> Entry {
        Entry {
            list: "/l/image.list".into(),
            line: 3,
            archive: "a.tar".into(),
            reference: crate::input::reference::Reference::parse("example.org/a:1").unwrap(),
            images_dir: "/l/images".into(),
        }
    }

    #[test]
    fn the_watcher_stops_when_the_load_ends_not_when_its_period_does() {
        let log = Log::new(0, false);
        let notifier = Notifier::new(None);
        let period = Duration::from_secs(60);
        let reporter = Reporter::new(&log, &notifier, false, Some(period));
        let entry = entry();
        let report = reporter.entry(1, 2, &entry);
        let started = Instant::now();

        let answer = report.during(&Progress::default(), 10, || 42);

        assert_eq!(answer, 42);
        assert!(
            started.elapsed() < period / 2,
            "the watcher waited out its period"
        );
    }

    #[test]
    fn an_entry_is_announced_with_its_position() {
        let log = Log::new(0, false);
        let path = std::env::temp_dir().join(format!("cl-progress-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::new(path.to_str());
        let reporter = Reporter::new(&log, &notifier, false, None);

        reporter.entry(2, 5, &entry());

        let mut buf = [0u8; 128];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=loading 2/5 example.org/a:1");
        std::fs::remove_file(&path).unwrap();
    }
}

//! The load driver: closed loop or open loop (fixed rate), stopping after a number of
//! requests or a duration, with one [`Recorder`] per client.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use crate::stats::Recorder;

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this many requests in all (successful or not).
    Total(u64),
    /// After this much time.
    Duration(Duration),
}

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSpec {
    /// Concurrent clients; each has at most one request in flight.
    pub clients: usize,
    /// When to stop.
    pub stop: Stop,
    /// `Some(r)`: open loop, request `i` is scheduled at `start + i / r` seconds and its
    /// latency is measured from that time, so time spent waiting for a free client counts
    /// (no coordinated omission). `None`: closed loop, each client sends its next request as
    /// soon as the previous one is answered, and latency is measured from the send.
    pub rate: Option<f64>,
    /// Draw a progress bar on stderr when it is a terminal.
    pub progress: bool,
}

/// The outcome of one request.
#[derive(Debug)]
pub enum Outcome {
    /// Answered; the name is the operation kind it is recorded under.
    Ok(&'static str),
    /// Failed with a gRPC status.
    Err(&'static str, tonic::Status),
}

/// One client's request loop: state it keeps between requests (its connection, known
/// revisions, a random generator) and how it makes request number `seq`.
pub trait Worker: Send + 'static {
    /// Makes request `seq` (unique across clients, from 0) and records nothing itself:
    /// the driver times it. Extra counts go to `rec`.
    fn call(&mut self, seq: u64, rec: &mut Recorder) -> impl Future<Output = Outcome> + Send;
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// All clients' recordings merged.
    pub recorder: Recorder,
    /// Wall time from the start until the last request finished.
    pub elapsed: Duration,
}

/// Drives `workers` (one per client; `spec.clients` is ignored in favour of their number)
/// until `spec.stop`, and merges what they recorded.
pub async fn run<W: Worker>(workers: Vec<W>, spec: LoadSpec) -> Measured {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let bar = progress_bar(&spec, start, done.clone());
    let mut tasks = Vec::with_capacity(workers.len());
    for worker in workers {
        let next = next.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(client_loop(worker, spec, start, next, done)));
    }
    let mut recorder = Recorder::default();
    for task in tasks {
        match task.await {
            Ok(rec) => recorder.merge(&rec),
            Err(e) => recorder.error_kind("client task".into(), e.to_string()),
        }
    }
    let elapsed = start.elapsed();
    if let Some((bar, ticker)) = bar {
        ticker.abort();
        bar.finish_and_clear();
    }
    Measured { recorder, elapsed }
}

async fn client_loop<W: Worker>(
    mut worker: W,
    spec: LoadSpec,
    start: Instant,
    next: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
) -> Recorder {
    let mut rec = Recorder::default();
    loop {
        let seq = next.fetch_add(1, Ordering::Relaxed);
        if let Stop::Total(total) = spec.stop
            && seq >= total
        {
            break;
        }
        let sent_from = match spec.rate {
            Some(rate) if rate > 0.0 => {
                let scheduled = start + Duration::from_secs_f64(seq as f64 / rate);
                if let Stop::Duration(d) = spec.stop
                    && scheduled >= start + d
                {
                    break;
                }
                tokio::time::sleep_until(scheduled).await;
                scheduled
            }
            _ => {
                let now = Instant::now();
                if let Stop::Duration(d) = spec.stop
                    && now >= start + d
                {
                    break;
                }
                now
            }
        };
        let outcome = worker.call(seq, &mut rec).await;
        let latency = sent_from.elapsed();
        match outcome {
            Outcome::Ok(op) => rec.ok(op, latency),
            Outcome::Err(op, status) => rec.error(op, &status),
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    rec
}

fn progress_bar(
    spec: &LoadSpec,
    start: Instant,
    done: Arc<AtomicU64>,
) -> Option<(ProgressBar, tokio::task::JoinHandle<()>)> {
    if !spec.progress {
        return None;
    }
    let (len, by_time) = match spec.stop {
        Stop::Total(n) => (n, false),
        Stop::Duration(d) => (u64::try_from(d.as_millis()).unwrap_or(u64::MAX), true),
    };
    // Hidden (draws nothing) when stderr is not a terminal.
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {percent}% {msg}")
    {
        bar.set_style(style);
    }
    let b = bar.clone();
    let ticker = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            let n = done.load(Ordering::Relaxed);
            let pos = if by_time {
                u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
            } else {
                n
            };
            b.set_position(pos.min(len));
            let secs = start.elapsed().as_secs_f64().max(1e-3);
            b.set_message(format!("{n} requests, {:.0}/s", n as f64 / secs));
        }
    });
    Some((bar, ticker))
}

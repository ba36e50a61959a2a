//! Lease renewal: while a holder works, its lease is extended every third of its slice, so a
//! live holder keeps it however long the token request takes and a dead one loses it within a
//! slice.
//!
//! One thread per lease held (a lease is taken about once per token lifetime), on its own
//! connection: a renewal never waits behind the holder's own commands.

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use helloflex_auth::{Clock, SystemClock};
use redis::Script;

/// What a renewal thread needs.
pub(crate) struct Job {
    pub(crate) client: redis::Client,
    pub(crate) script: Script,
    pub(crate) key: String,
    pub(crate) fence: u64,
    pub(crate) slice: Duration,
    /// The lease's whole budget: no renewal past it.
    pub(crate) until: Instant,
    pub(crate) timeout: Duration,
}

/// The renewal threads of one store's leases, by fence: dropping a sender stops its thread.
#[derive(Default)]
pub(crate) struct Renewals(Arc<Mutex<HashMap<u64, Sender<()>>>>);

impl Renewals {
    pub(crate) fn start(&self, job: Job) {
        let (stop, stopped) = mpsc::channel();
        let fence = job.fence;
        let spawned = std::thread::Builder::new()
            .name("helloflex-lease".into())
            .spawn(move || renew_until_stopped(job, &stopped));
        match spawned {
            Ok(_) => {
                self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(fence, stop);
            }
            // Without renewal the lease lapses after one slice; fencing still keeps every
            // write correct, another holder may just refresh sooner than needed.
            Err(error) => {
                tracing::warn!(target: "helloflex::store", %error, "lease renewal thread not started");
            }
        }
    }

    pub(crate) fn stop(&self, fence: u64) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&fence);
    }
}

fn renew_until_stopped(job: Job, stopped: &mpsc::Receiver<()>) {
    let every = job.slice / 3;
    let mut connection: Option<redis::Connection> = None;
    loop {
        match stopped.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        if SystemClock.now() >= job.until {
            return;
        }
        let conn = match connection.take() {
            Some(conn) => conn,
            None => match job.client.get_connection_with_timeout(job.timeout) {
                Ok(conn) => {
                    let _ = conn.set_read_timeout(Some(job.timeout));
                    let _ = conn.set_write_timeout(Some(job.timeout));
                    conn
                }
                // Try again at the next tick; the lease may lapse meanwhile (fencing holds).
                Err(_) => continue,
            },
        };
        let mut conn = conn;
        let renewed: redis::RedisResult<i64> = job
            .script
            .key(&job.key)
            .arg(job.fence)
            .arg(job.slice.as_millis() as u64)
            .invoke(&mut conn);
        match renewed {
            Ok(1) => connection = Some(conn),
            Ok(_) => {
                tracing::warn!(target: "helloflex::store", "the store lease lapsed before its holder finished");
                return;
            }
            Err(_) => {}
        }
    }
}

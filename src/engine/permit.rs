//! Admission control: a counting semaphore of permits. A [`Permit`] is
//! taken before a request and moved into it; dropping it gives it back.

use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The permits of one engine.
pub(crate) struct Admission {
    free: Mutex<usize>,
    cv: Condvar,
    total: usize,
}

impl Admission {
    /// `total` permits, all free.
    pub(crate) fn new(total: usize) -> Arc<Admission> {
        Arc::new(Admission {
            free: Mutex::new(total),
            cv: Condvar::new(),
            total,
        })
    }

    /// Permits in total.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Take a permit, waiting at most `timeout` (`None`: forever). The
    /// permit holds `keep` (the engine) alive as long as it lives.
    ///
    /// # Errors
    /// [`Error::Timeout`] when none became free in time.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        timeout: Option<Duration>,
        keep: Arc<dyn Any + Send + Sync>,
    ) -> Result<Permit> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut free = self.free.lock();
        while *free == 0 {
            match deadline {
                None => self.cv.wait(&mut free),
                Some(d) => {
                    if Instant::now() >= d
                        || self.cv.wait_until(&mut free, d).timed_out() && *free == 0
                    {
                        return Err(Error::Timeout);
                    }
                }
            }
        }
        *free -= 1;
        Ok(Permit {
            admission: Arc::clone(self),
            _keep: keep,
        })
    }

    /// Whether `permit` was given out by this admission.
    pub(crate) fn issued(self: &Arc<Self>, permit: &Permit) -> bool {
        Arc::ptr_eq(self, &permit.admission)
    }
}

/// The right to run one request on an engine. Taken with
/// [`crate::Engine::acquire_permit`] (or its `try_`/`_timeout` forms) and moved
/// into the request; keeps the engine alive. Dropping an unused permit gives
/// it back.
#[must_use = "a permit is given back when dropped: move it into a speak call"]
pub struct Permit {
    admission: Arc<Admission>,
    _keep: Arc<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut free = self.admission.free.lock();
        *free += 1;
        self.admission.cv.notify_one();
    }
}

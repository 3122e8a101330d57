//! What background threads need of the operating system: a lower scheduling priority for work
//! that may wait (recall calibration runs below writes, rebalancing and searches: on a busy
//! machine it takes what they leave, on an idle one all it wants), and the CPU time a thread
//! has used (so a throttle counts the work done, not the time spent waiting for a core). The
//! module's `unsafe` is these two system calls.

#![allow(unsafe_code)]

use std::time::Duration;

/// Lowers the calling thread's priority to `nice` (Linux: a thread's own nice value); a
/// failure (elsewhere, or refused) leaves it as it was.
pub fn lower_this_thread(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority reads its three integer arguments only; `who` 0 is the calling
        // thread on Linux.
        let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The CPU time the calling thread has used, where the system tells it.
pub fn this_thread_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec through a pointer to a live local.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc == 0 {
            return Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_thread_sees_its_cpu_time_grow() {
        let Some(start) = this_thread_cpu() else { return };
        let mut x = 0u64;
        while this_thread_cpu().unwrap() < start + Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        // A sleeping thread uses (almost) none.
        let before = this_thread_cpu().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(this_thread_cpu().unwrap() - before < Duration::from_millis(25));
    }
}

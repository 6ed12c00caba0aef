//! The real clock and the operating system's CSPRNG, as implementations of
//! the application's `Clock` and `SecretGenerator` ports; and handing freed
//! memory back to the operating system.

use chrono::{DateTime, Utc};
use keywarden_application::{BoxError, Clock, SecretGenerator};
use keywarden_domain::SecretMaterial;

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

pub struct OsRandom;

impl SecretGenerator for OsRandom {
    fn generate(&self) -> Result<SecretMaterial, BoxError> {
        let mut material = SecretMaterial {
            selector: [0; 16],
            random: [0; 32],
        };
        getrandom::fill(&mut material.selector).map_err(|e| e.to_string())?;
        getrandom::fill(&mut material.random).map_err(|e| e.to_string())?;
        Ok(material)
    }
}

/// Starts (once per process) a thread that hands memory freed after a burst —
/// say, many large list answers built at once — back to the operating system
/// every few seconds. glibc's allocator otherwise keeps freed heap pages, and
/// resident memory would stay at the burst's peak for good.
pub fn trim_memory_periodically() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        let _ = std::thread::Builder::new()
            .name("keywarden-memory-trim".into())
            .spawn(|| loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                // SAFETY: malloc_trim takes no pointers; it walks glibc's own
                // free lists under the allocator's locks, from any thread.
                #[expect(unsafe_code, reason = "glibc's malloc_trim has no safe wrapper")]
                unsafe {
                    libc::malloc_trim(0);
                }
            });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_randomness_differs_between_calls() {
        let a = OsRandom.generate().unwrap();
        let b = OsRandom.generate().unwrap();
        assert_ne!(a.random, b.random);
        assert_ne!(a.selector, b.selector);
        assert_ne!(a.random, [0; 32]);
    }
}

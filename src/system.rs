//! The real clock and the operating system's CSPRNG, as implementations of
//! the application's `Clock` and `SecretGenerator` ports.

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

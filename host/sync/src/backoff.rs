//! Retry times for transient failures: exponential with jitter, and never
//! sooner than the provider asked.

use std::time::Duration;

/// The wait before retry number `attempts` (1 for the first retry): the
/// base doubled per attempt up to `max`, then a random point in its upper
/// half ("equal jitter"), and at least `retry_after` when the provider gave one.
pub fn delay(
    attempts: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(max);
    let half = exp / 2;
    let jittered = half + half.mul_f64(rand::random::<f64>());
    jittered.max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_jitters_and_honours_retry_after() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(600);
        for attempts in 1..12 {
            let expected = (10u64 << (attempts - 1)).min(600);
            let d = delay(attempts, base, max, None).as_secs_f64();
            assert!(
                d >= expected as f64 / 2.0 && d <= expected as f64,
                "{attempts}: {d}"
            );
        }
        let spread: std::collections::HashSet<u128> = (0..20)
            .map(|_| delay(3, base, max, None).as_millis())
            .collect();
        assert!(spread.len() > 1, "no jitter");
        assert!(delay(1, base, max, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
    }
}

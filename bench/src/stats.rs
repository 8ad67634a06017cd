//! Summaries of repeated measurements: min, median, max, and the ratio of two medians.

use serde::{Deserialize, Serialize};

/// Min, median and max of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Summary {
    /// None for no samples. The median of an even count is the mean of the middle two.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Summary {
            n,
            min: v[0],
            median,
            max: v[n - 1],
        })
    }
}

/// The samples of one measured quantity for both VMMs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub rvmm: Vec<f64>,
    pub qemu: Vec<f64>,
}

impl Pair {
    pub fn rvmm(&self) -> Option<Summary> {
        Summary::of(&self.rvmm)
    }

    pub fn qemu(&self) -> Option<Summary> {
        Summary::of(&self.qemu)
    }

    /// rvmm's median over QEMU's.
    pub fn ratio(&self) -> Option<f64> {
        ratio(&self.rvmm, &self.qemu)
    }
}

/// The ratio of the medians of `a` and `b` (None when either is empty or b's is 0).
pub fn ratio(a: &[f64], b: &[f64]) -> Option<f64> {
    let (a, b) = (Summary::of(a)?, Summary::of(b)?);
    (b.median != 0.0).then(|| a.median / b.median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_and_even_medians() {
        assert_eq!(
            Summary::of(&[5.0, 1.0, 3.0]),
            Some(Summary {
                n: 3,
                min: 1.0,
                median: 3.0,
                max: 5.0
            })
        );
        assert_eq!(
            Summary::of(&[4.0, 1.0, 3.0, 10.0]).map(|s| s.median),
            Some(3.5)
        );
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn ratio_of_medians() {
        let p = Pair {
            rvmm: vec![1.0, 2.0, 30.0],
            qemu: vec![8.0, 10.0, 9.0],
        };
        assert_eq!(p.ratio(), Some(2.0 / 9.0));
        assert_eq!(ratio(&[1.0], &[0.0]), None);
        assert_eq!(ratio(&[], &[1.0]), None);
    }
}

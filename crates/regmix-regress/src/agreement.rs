//! How well one ranking of mixtures agrees with another: a proxy recipe's losses against the
//! target-scale runs' losses on the same mixtures. Only the order of each is used, so targets
//! from another trainer or tokenizer calibrate as well as our own.
//!
//! Spearman and pairwise accuracy over all mixtures, the decisions against one reference
//! mixture (the proportional prior: "is this mixture better than the prior?"), and a paired
//! bootstrap over the mixtures (the same draws for every recipe) for their spread and for
//! telling recipes apart.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The fraction of pairs of mixtures that `pred` orders as `truth` does. Pairs tied in `truth`
/// are left out (no order to agree with); a tie in `pred` counts half. NaN with no pair.
pub fn pairwise_accuracy(truth: &[f64], pred: &[f64]) -> f64 {
    assert_eq!(truth.len(), pred.len(), "one prediction per truth");
    let (mut agree, mut pairs) = (0.0, 0usize);
    for i in 0..truth.len() {
        for j in i + 1..truth.len() {
            let t = truth[i] - truth[j];
            if t == 0.0 || t.is_nan() {
                continue;
            }
            pairs += 1;
            let p = pred[i] - pred[j];
            if p == 0.0 {
                agree += 0.5;
            } else if (t < 0.0) == (p < 0.0) {
                agree += 1.0;
            }
        }
    }
    if pairs == 0 {
        f64::NAN
    } else {
        agree / pairs as f64
    }
}

/// The decisions against mixture `reference`: for every other mixture, whether it is better
/// (lower loss) than the reference. Returns (decisions `pred` gets right, decisions).
pub fn decisions(truth: &[f64], pred: &[f64], reference: usize) -> (u32, u32) {
    assert_eq!(truth.len(), pred.len(), "one prediction per truth");
    let (mut agree, mut total) = (0, 0);
    for i in (0..truth.len()).filter(|&i| i != reference) {
        total += 1;
        if (truth[i] < truth[reference]) == (pred[i] < pred[reference]) {
            agree += 1;
        }
    }
    (agree, total)
}

/// The `q` quantile (0..=1) of `values` by linear interpolation between order statistics;
/// NaN values are left out, NaN when none is left.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Bootstrap resamples of `n` mixtures (indices drawn with replacement), seeded: the same
/// draws score every recipe, so their differences are paired.
#[derive(Clone, Debug)]
pub struct Resamples {
    draws: Vec<Vec<usize>>,
}

impl Resamples {
    pub fn new(n: usize, count: usize, seed: u64) -> Resamples {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let draws = (0..count).map(|_| (0..n).map(|_| rng.random_range(0..n)).collect()).collect();
        Resamples { draws }
    }

    /// `stat(truth, pred)` on every resample, in draw order (NaN where it is undefined, e.g.
    /// a resample that drew one mixture only).
    pub fn values(&self, truth: &[f64], pred: &[f64], stat: impl Fn(&[f64], &[f64]) -> f64) -> Vec<f64> {
        self.draws
            .iter()
            .map(|d| {
                let t: Vec<f64> = d.iter().map(|&i| truth[i]).collect();
                let p: Vec<f64> = d.iter().map(|&i| pred[i]).collect();
                stat(&t, &p)
            })
            .collect()
    }
}

/// One recipe as the recommendation sees it.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Training FLOPs of one proxy of the recipe.
    pub cost: f64,
    /// Spearman on all mixtures.
    pub spearman: f64,
    /// Spearman on each paired resample ([`Resamples::values`]).
    pub boot: Vec<f64>,
    /// Whether the recipe has a proxy for every target mixture (only such recipes are paired
    /// and recommended).
    pub complete: bool,
    /// Whether it calls a contender (a mixture near the top: [`contenders`]) better or worse
    /// than the prior wrongly: the one decision a mixture search exists to make.
    pub misjudges_prior: bool,
}

/// The contenders among mixtures of losses `truth`: the lowest quarter (at least 4, or all
/// when fewer), and the `reference` (the prior) among them whatever its rank; sorted indices.
/// The random mixtures of a calibration are mostly far worse than the prior, so a Spearman over
/// all of them is easy; these are the ones a wrong order costs.
pub fn contenders(truth: &[f64], reference: Option<usize>) -> Vec<usize> {
    let k = truth.len().div_ceil(4).max(4).min(truth.len());
    let mut idx: Vec<usize> = (0..truth.len()).collect();
    idx.sort_by(|&a, &b| truth[a].total_cmp(&truth[b]));
    let mut top: Vec<usize> = idx[..k].to_vec();
    if let Some(r) = reference {
        if !top.contains(&r) {
            top.push(r);
        }
    }
    top.sort_unstable();
    top
}

/// What the calibration says of a recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The cheapest recipe that ranks the targets within noise of the best.
    Recommended,
    /// Ranks within noise of the best, but costs more than the recommended recipe.
    WithinNoise,
    /// The best recipe ranks the targets clearly better (90% paired interval above 0).
    Worse,
    /// Its own 90% interval of Spearman reaches 0: its ranking is not told from chance.
    NoSignal,
    /// It calls a contender better or worse than the prior wrongly ([`contenders`]).
    MisjudgesPrior,
    /// Not every target mixture has a proxy yet: scored on those that have, not compared.
    Incomplete,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Recommended => "recommended",
            Verdict::WithinNoise => "within noise of the best",
            Verdict::Worse => "ranks worse than the best",
            Verdict::NoSignal => "no signal",
            Verdict::MisjudgesPrior => "misjudges the prior",
            Verdict::Incomplete => "incomplete",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        [
            Verdict::Recommended,
            Verdict::WithinNoise,
            Verdict::Worse,
            Verdict::NoSignal,
            Verdict::MisjudgesPrior,
            Verdict::Incomplete,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Whether proxies of this recipe can be trusted to rank mixtures as the targets do.
    pub fn ranks_well(self) -> bool {
        matches!(self, Verdict::Recommended | Verdict::WithinNoise)
    }
}

/// The lower and upper ends of the 90% bootstrap interval.
pub const INTERVAL: (f64, f64) = (0.05, 0.95);

/// The verdict on each candidate. A complete recipe whose own 90% interval of Spearman stays
/// above 0 has a signal; one that also judges every contender against the prior rightly is
/// eligible; the best is the eligible recipe of highest Spearman; another is within noise of
/// it when the 90% paired interval of (best − it) reaches 0; the recommended recipe is the
/// cheapest of the best and those within noise of it (ties: the higher Spearman). With no
/// eligible recipe, none is recommended.
pub fn recommend(cands: &[Candidate]) -> Vec<Verdict> {
    let mut out: Vec<Verdict> = cands
        .iter()
        .map(|c| {
            if !c.complete {
                Verdict::Incomplete
            } else if !(quantile(&c.boot, INTERVAL.0) > 0.0) || c.spearman.is_nan() {
                Verdict::NoSignal
            } else if c.misjudges_prior {
                Verdict::MisjudgesPrior
            } else {
                Verdict::Worse
            }
        })
        .collect();
    let signal: Vec<usize> = (0..cands.len()).filter(|&i| out[i] == Verdict::Worse).collect();
    let Some(&best) = signal.iter().max_by(|&&a, &&b| cands[a].spearman.total_cmp(&cands[b].spearman)) else {
        return out;
    };
    let mut near = vec![best];
    for &i in signal.iter().filter(|&&i| i != best) {
        let diff: Vec<f64> = cands[best].boot.iter().zip(&cands[i].boot).map(|(b, x)| b - x).collect();
        if !(quantile(&diff, INTERVAL.0) > 0.0) {
            near.push(i);
        }
    }
    let pick = *near
        .iter()
        .min_by(|&&a, &&b| {
            cands[a].cost.total_cmp(&cands[b].cost).then(cands[b].spearman.total_cmp(&cands[a].spearman))
        })
        .expect("near holds the best");
    for &i in &near {
        out[i] = if i == pick { Verdict::Recommended } else { Verdict::WithinNoise };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::spearman;

    #[test]
    fn pairwise_accuracy_counts_agreeing_pairs() {
        // Pairs: (0,1) agree, (0,2) agree, (1,2) disagree.
        assert_eq!(pairwise_accuracy(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]), 2.0 / 3.0);
    }

    #[test]
    fn pairwise_accuracy_of_a_reversed_order_is_zero() {
        assert_eq!(pairwise_accuracy(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]), 0.0);
    }

    #[test]
    fn pairwise_accuracy_leaves_out_truth_ties_and_halves_prediction_ties() {
        // (0,1) tied in truth: out; (0,2) pred tie: half; (1,2) agree.
        assert_eq!(pairwise_accuracy(&[1.0, 1.0, 2.0], &[5.0, 1.0, 5.0]), 1.5 / 2.0);
    }

    #[test]
    fn decisions_against_the_reference_count_each_other_mixture_once() {
        // Reference 0 (truth 2.0): 1 is better (1.0), 2 worse (3.0), 3 better (1.5).
        // pred says: 1 better, 2 better (wrong), 3 better.
        assert_eq!(decisions(&[2.0, 1.0, 3.0, 1.5], &[5.0, 4.0, 4.5, 4.9], 0), (2, 3));
    }

    #[test]
    fn quantile_interpolates_between_order_statistics_and_skips_nan() {
        assert_eq!(quantile(&[3.0, f64::NAN, 1.0, 2.0, 4.0], 0.5), 2.5);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.0), 1.0);
        assert!(quantile(&[f64::NAN], 0.5).is_nan());
    }

    #[test]
    fn resamples_are_paired_and_seeded() {
        let a = Resamples::new(8, 50, 7);
        let b = Resamples::new(8, 50, 7);
        let t = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        assert_eq!(a.values(&t, &t, pairwise_accuracy), b.values(&t, &t, pairwise_accuracy));
        // A perfect predictor is perfect on every resample that has a pair.
        assert!(a.values(&t, &t, pairwise_accuracy).iter().all(|v| v.is_nan() || *v == 1.0));
    }

    fn cand(cost: f64, truth: &[f64], pred: &[f64], r: &Resamples) -> Candidate {
        Candidate {
            cost,
            spearman: spearman(truth, pred),
            boot: r.values(truth, pred, spearman),
            complete: true,
            misjudges_prior: false,
        }
    }

    #[test]
    fn recommend_picks_the_cheapest_recipe_within_noise_of_the_best() {
        let truth: Vec<f64> = (0..16).map(f64::from).collect();
        let r = Resamples::new(truth.len(), 400, 1);
        let perfect = truth.clone();
        // One swapped neighbour pair: within noise of perfect.
        let mut near = truth.clone();
        near.swap(3, 4);
        // Reversed: a clear anti-ranking.
        let reversed: Vec<f64> = truth.iter().rev().copied().collect();
        let cands =
            [cand(100.0, &truth, &perfect, &r), cand(10.0, &truth, &near, &r), cand(1.0, &truth, &reversed, &r)];
        assert_eq!(recommend(&cands), vec![Verdict::WithinNoise, Verdict::Recommended, Verdict::NoSignal]);
    }

    #[test]
    fn recommend_calls_a_clearly_worse_recipe_worse() {
        let truth: Vec<f64> = (0..16).map(f64::from).collect();
        let r = Resamples::new(truth.len(), 400, 2);
        // Half the order scrambled: still positive, clearly below perfect.
        let scrambled: Vec<f64> = truth.iter().map(|t| t + if (*t as i64) % 2 == 0 { 6.0 } else { 0.0 }).collect();
        let cands = [cand(100.0, &truth, &truth, &r), cand(1.0, &truth, &scrambled, &r)];
        assert_eq!(recommend(&cands), vec![Verdict::Recommended, Verdict::Worse]);
    }

    #[test]
    fn recommend_recommends_nothing_without_a_signal() {
        let truth: Vec<f64> = (0..8).map(f64::from).collect();
        let r = Resamples::new(truth.len(), 400, 3);
        let zigzag = [3.0, 0.0, 5.0, 1.0, 6.0, 2.0, 7.0, 4.0].map(|x: f64| -x);
        let cands = [cand(1.0, &truth, &zigzag, &r)];
        assert_eq!(recommend(&cands), vec![Verdict::NoSignal]);
    }

    #[test]
    fn recommend_passes_over_a_recipe_that_misjudges_the_prior() {
        let truth: Vec<f64> = (0..16).map(f64::from).collect();
        let r = Resamples::new(truth.len(), 400, 5);
        let mut cheap = cand(1.0, &truth, &truth, &r);
        cheap.misjudges_prior = true;
        let dear = cand(10.0, &truth, &truth, &r);
        assert_eq!(recommend(&[cheap, dear]), vec![Verdict::MisjudgesPrior, Verdict::Recommended]);
    }

    #[test]
    fn contenders_are_the_lowest_quarter_and_the_prior() {
        let truth: Vec<f64> = (0..16).map(|i| f64::from(15 - i)).collect();
        // Lowest four: indices 12..16; the prior (index 0, the worst) joins them.
        assert_eq!(contenders(&truth, Some(0)), vec![0, 12, 13, 14, 15]);
        assert_eq!(contenders(&truth[..3], None), vec![0, 1, 2]);
    }

    #[test]
    fn recommend_leaves_incomplete_recipes_out() {
        let truth: Vec<f64> = (0..8).map(f64::from).collect();
        let r = Resamples::new(truth.len(), 100, 4);
        let mut c = cand(0.1, &truth, &truth, &r);
        c.complete = false;
        let full = cand(1.0, &truth, &truth, &r);
        assert_eq!(recommend(&[c, full]), vec![Verdict::Incomplete, Verdict::Recommended]);
    }
}

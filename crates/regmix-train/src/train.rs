//! The training loop shared by proxy-train and target-train: one run = one model trained
//! on one mixture, in its own folder:
//!
//! ```text
//! <run>/metrics.parquet          rows so far (rewritten at each checkpoint and at the end)
//! <run>/checkpoint.safetensors   parameters, AdamW moments, loop state (while unfinished)
//! <run>/done.json                completion marker, written last
//! ```
//!
//! A run is a pure function of (model, data, settings, seed, mixture id): the batch of step
//! `s` is drawn from its own random stream, and every reduction sums in a fixed order, so a
//! run resumed from a checkpoint ends bit-identical to one never interrupted.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
pub use regmix_core::run::{Done as Outcome, RunDir, RunStatus};
use regmix_core::{atomic, progress, Provenance};
use regmix_model::Backend;
pub use regmix_spec::{RunSpec, Schedule, TrainSpec};

use crate::checkpoint::{self, LoopState};
use crate::data::{Corpus, Draw, EvalSet, MixtureSampler};
use crate::metrics::{self, Row};

/// What a run is, from its inputs (recorded in `done.json`, the metrics' `regmix.run_spec`
/// and the checkpoint; a rerun whose own differs refuses, naming the differences, unless it
/// is asked to retrain).
pub fn spec_of(run: &Run) -> RunSpec {
    RunSpec {
        mixture_id: run.mixture_id,
        domains: run.corpus.domains.clone(),
        weights: run.weights.to_vec(),
        train: run.spec.clone(),
        tokenizer_sha256: run.corpus.tokenizer_sha256.clone(),
        shards_sha256: run.corpus.shards_sha256.clone(),
    }
}

/// The error of a run folder that holds another run.
fn other_run(dir: &std::path::Path, what: &str, diffs: &[String]) -> anyhow::Error {
    let shown: Vec<&String> = diffs.iter().take(6).collect();
    let more = if diffs.len() > shown.len() {
        format!("\n  … and {} more", diffs.len() - shown.len())
    } else {
        String::new()
    };
    anyhow::anyhow!(
        "{} holds a {what} run with other settings:\n  {}{more}\ngive the same flags and mixture, another --output, or --retrain to train it again",
        dir.display(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
    )
}

/// One run's inputs.
pub struct Run<'a> {
    pub corpus: &'a Corpus,
    pub eval: &'a EvalSet,
    pub spec: &'a TrainSpec,
    pub mixture_id: u64,
    /// Aligned to `corpus.domains`.
    pub weights: &'a [f64],
    pub dir: RunDir,
    pub prov: &'a Provenance,
    /// Keep the checkpoint after the run ends (target models; proxies drop it).
    pub keep_checkpoint: bool,
    /// Stop (as if killed) after this many steps of this invocation: tests of resumption.
    pub stop_after: Option<u64>,
    /// Export the finished model as a Hugging Face checkpoint into this folder.
    pub hf_dir: Option<PathBuf>,
    /// A folder that holds a run with another specification is trained again from scratch
    /// (its files replaced) instead of refused.
    pub retrain: bool,
}

/// Removes a run's files (metrics, checkpoint, marker) to train it again.
fn clear_run(dir: &RunDir) -> Result<()> {
    for p in [dir.done(), dir.checkpoint(), dir.metrics()] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
        }
    }
    Ok(())
}

/// Mean validation loss per domain over the fixed windows.
pub fn evaluate(backend: &mut dyn Backend, corpus: &Corpus, eval: &EvalSet, micro: usize) -> Result<Vec<Option<f64>>> {
    let mut buf = vec![0u32; micro * eval.window];
    let mut out = Vec::with_capacity(corpus.domains.len());
    for (d, starts) in eval.starts.iter().enumerate() {
        if starts.is_empty() {
            out.push(None);
            continue;
        }
        let mut sum = 0.0;
        for chunk in starts.chunks(micro) {
            let w = &mut buf[..chunk.len() * eval.window];
            for (s, win) in chunk.iter().zip(w.chunks_mut(eval.window)) {
                corpus.valid[d].read(*s, win);
            }
            sum += backend.loss(w, chunk.len()).with_context(|| format!("evaluating domain {}", corpus.domains[d]))?;
        }
        out.push(Some(sum / (starts.len() * (eval.window - 1)) as f64));
    }
    Ok(out)
}

/// The run's outcome when it already ended with these settings (what `train` would skip),
/// read without the run's lock: lets a caller skip a finished run before it opens a backend
/// (a rerun of finished CUDA runs needs no GPU), and logs the skip. `train` decides again
/// under the lock.
pub fn already_ended(run: &Run) -> Result<Option<Outcome>> {
    match run.dir.ended()? {
        Some(done) if spec_of(run).differences(&done.spec).is_empty() => {
            say_skipped(run, &done);
            Ok(Some(done))
        }
        _ => Ok(None),
    }
}

/// The one line a skipped run logs.
fn say_skipped(run: &Run, done: &Outcome) {
    log::info!("mixture {}: already {} ({}), skipped", run.mixture_id, done.status, run.dir.done().display());
}

/// Trains (or resumes, or skips) one run. The backend must be freshly initialised from
/// `spec.seed`; a checkpoint, if present, overwrites its state.
pub fn train(backend: &mut dyn Backend, run: &Run) -> Result<Outcome> {
    let spec = run.spec;
    spec.check()?;
    let run_spec = spec_of(run);
    let spec_value = serde_json::to_value(&run_spec)?;
    std::fs::create_dir_all(&run.dir.dir).with_context(|| format!("creating {}", run.dir.dir.display()))?;
    // One trainer per run folder: a second process on the same run waits for nothing and
    // interleaves nothing; it is refused, naming the first.
    let _lock = regmix_core::lock::Lock::at(&run.dir.lock(), &format!("run {}", run.dir.dir.display()))?;
    if let Some(done) = ended_or_cleared(run, &run_spec)? {
        return Ok(done);
    }
    atomic::clean_stale(&run.dir.dir)?;
    let spec_json = serde_json::to_string(&run_spec)?;
    let records = Records::new(backend, run, spec_json)?;
    let sampler = sampler_for(run)?;
    let resumed = resume_or_start(backend, run, &run_spec, &records)?;
    let start_step = resumed.step;
    let mut batches = Batches::new(sampler, spec);
    let started = Instant::now();
    let ended = step_loop(backend, run, &records, &mut batches, resumed, started)?;
    let Ended { status, step, rows } = ended;
    records.write_metrics(run, &rows, status)?;
    let last = rows.last().expect("at least one step ran");
    let outcome = outcome_of(&rows, status, step, spec_value, run.corpus.domains.len());
    if let (Some(dir), RunStatus::Finished) = (&run.hf_dir, status) {
        crate::hf::export(backend, dir, &run.corpus.tokenizer_path(), run.corpus.eos_id)?;
        log::info!("mixture {}: wrote the Hugging Face checkpoint {}", run.mixture_id, dir.display());
    }
    keep_or_drop_checkpoint(backend, run, &records, &rows, status, step)?;
    run.dir.write_done(&outcome, run.prov)?;
    let tok_s = (step - start_step) as f64 * batches.tokens_per_step as f64 / started.elapsed().as_secs_f64();
    log::info!(
        "mixture {}: {status} after {step} steps, {} tokens, final train loss {:.4}, {:.0} tokens/s; wrote {}",
        run.mixture_id,
        last.tokens,
        last.train_loss,
        tok_s,
        run.dir.metrics().display()
    );
    Ok(outcome)
}

/// Settles a run folder that already holds a completion marker: returns its outcome when it
/// ended with these settings (the run is skipped), refuses one with other settings, or, with
/// `--retrain`, clears it and returns `None` so the run trains again. `None` too when there
/// is no marker.
fn ended_or_cleared(run: &Run, run_spec: &RunSpec) -> Result<Option<Outcome>> {
    let Some(done) = run.dir.ended()? else {
        return Ok(None);
    };
    let diffs = run_spec.differences(&done.spec);
    if diffs.is_empty() {
        say_skipped(run, &done);
        return Ok(Some(done));
    }
    if !run.retrain {
        return Err(other_run(&run.dir.dir, done.status.as_str(), &diffs));
    }
    log::warn!(
        "mixture {}: {} holds a run with other settings ({}); training it again (--retrain)",
        run.mixture_id,
        run.dir.dir.display(),
        diffs.join("; ")
    );
    clear_run(&run.dir)?;
    Ok(None)
}

/// What a run writes beside its parameters, the same at every checkpoint and at the end:
/// its specification, which domains are validation columns, the metrics' metadata.
struct Records {
    /// The run's [`RunSpec`] as JSON.
    spec_json: String,
    /// Domains with validation windows (the others are not validation columns).
    evaluated: Vec<bool>,
    /// The metrics file's metadata.
    extra: Vec<(String, String)>,
    /// Columns of a flattened metrics row.
    width: usize,
}

impl Records {
    /// The records of `run`; refuses a corpus with nothing to evaluate.
    fn new(backend: &dyn Backend, run: &Run, spec_json: String) -> Result<Records> {
        // Domains without validation windows are not validation columns of the metrics.
        let evaluated = run.eval.evaluated();
        if !evaluated.iter().any(|&e| e) {
            bail!(
                "{}: no domain has validation text of at least one window ({} tokens): nothing to evaluate; tokenize with a larger --valid-fraction",
                run.corpus.dir.display(),
                run.eval.window
            );
        }
        let width = Row::width(run.corpus.domains.len());
        let extra = vec![
            (regmix_core::keys::RUN_SPEC.to_string(), spec_json.clone()),
            (regmix_core::keys::MIXTURE_ID.to_string(), run.mixture_id.to_string()),
            (regmix_core::keys::MODEL.to_string(), serde_json::to_string(&run.spec.model)?),
            (regmix_core::keys::TRAIN.to_string(), serde_json::to_string(run.spec)?),
            (regmix_core::keys::BACKEND.to_string(), backend.describe()),
        ];
        Ok(Records { spec_json, evaluated, extra, width })
    }

    /// The loop state a checkpoint saves after `step` steps.
    fn loop_state(&self, rows: &[Row], step: u64, elapsed_s: f64) -> LoopState {
        let mut flat = Vec::with_capacity(rows.len() * self.width);
        rows.iter().for_each(|r| r.to_f64(&mut flat));
        LoopState { step, elapsed_s, spec: self.spec_json.clone(), metrics: flat, metrics_cols: self.width }
    }

    /// Writes the metrics so far, the last row marked `status`.
    fn write_metrics(&self, run: &Run, rows: &[Row], status: RunStatus) -> Result<()> {
        metrics::write_evaluated(
            &run.dir.metrics(),
            &run.corpus.domains,
            &self.evaluated,
            rows,
            status,
            &self.extra,
            run.prov,
        )
    }
}

/// The run's mixture sampler, its domains' subsets matched to the target's repetition when
/// the specification asks (`match_epochs_of`), each matched domain logged.
fn sampler_for(run: &Run) -> Result<MixtureSampler> {
    let spec = run.spec;
    let mut sampler = MixtureSampler::new(run.corpus, run.weights, spec.context(), spec.seed, run.mixture_id)?;
    if let Some(target) = spec.match_epochs_of {
        let run_tokens = spec.steps() * spec.sequences_per_step() as u64 * spec.context() as u64;
        for m in sampler.match_epochs(run.corpus, run.weights, run_tokens, target) {
            log::info!(
                "mixture {}: a target of {target} tokens would see {} {:.2} times; this run draws it from {} of its {} tokens, as often",
                run.mixture_id,
                run.corpus.domains[m.domain],
                m.target_epochs,
                m.subset_tokens,
                run.corpus.train[m.domain].len()
            );
        }
    }
    Ok(sampler)
}

/// Where the step loop starts: the rows, steps and seconds a checkpoint holds, or nothing.
struct Resumed {
    rows: Vec<Row>,
    /// Steps already done.
    step: u64,
    /// Training seconds already spent.
    elapsed_s: f64,
}

/// Loads the run's checkpoint into `backend` when there is one of this run; refuses one of
/// another run, or, with `--retrain`, clears it and starts from scratch.
fn resume_or_start(backend: &mut dyn Backend, run: &Run, run_spec: &RunSpec, records: &Records) -> Result<Resumed> {
    let ckpt = run.dir.checkpoint();
    if ckpt.exists() {
        let then = checkpoint::spec_of(&ckpt)?;
        if then != records.spec_json {
            let diffs = run_spec.differences(&serde_json::from_str(&then).unwrap_or(serde_json::Value::Null));
            if !run.retrain {
                return Err(other_run(&run.dir.dir, "unfinished", &diffs));
            }
            log::warn!(
                "mixture {}: the checkpoint in {} is of a run with other settings; training from scratch (--retrain)",
                run.mixture_id,
                run.dir.dir.display()
            );
            clear_run(&run.dir)?;
        }
    }
    if !ckpt.exists() {
        return Ok(Resumed { rows: Vec::new(), step: 0, elapsed_s: 0.0 });
    }
    let st = checkpoint::load(&ckpt, backend)?;
    let rows = st.metrics.chunks(records.width).map(Row::from_f64).collect();
    log::info!("mixture {}: resuming at step {} from {}", run.mixture_id, st.step, ckpt.display());
    Ok(Resumed { rows, step: st.step, elapsed_s: st.elapsed_s })
}

/// The batches of the step loop: the sampler, the shape of a step and its scratch buffers.
struct Batches {
    sampler: MixtureSampler,
    /// Sequences per forward/backward pass.
    micro: usize,
    tokens_per_step: u64,
    draws: Vec<Draw>,
    buf: Vec<u32>,
}

impl Batches {
    fn new(sampler: MixtureSampler, spec: &TrainSpec) -> Batches {
        let t = spec.context();
        let seqs = spec.sequences_per_step();
        let micro = spec.micro_batch;
        Batches {
            sampler,
            micro,
            tokens_per_step: (seqs * t) as u64,
            draws: vec![Draw { domain: 0, start: 0 }; seqs],
            buf: vec![0u32; micro * (t + 1)],
        }
    }

    /// Draws 1-based step `s`'s batch and accumulates its gradient into the zeroed
    /// `backend`, micro-batch by micro-batch; returns the mean training loss per token.
    fn accumulate(&mut self, backend: &mut dyn Backend, corpus: &Corpus, s: u64) -> Result<f64> {
        let loss_scale = 1.0 / self.tokens_per_step as f64;
        self.sampler.draws_for_step(s, corpus, &mut self.draws);
        backend.zero_grad()?;
        let mut loss_sum = 0.0;
        for mb in self.draws.chunks(self.micro) {
            self.sampler.fill(corpus, mb, &mut self.buf);
            loss_sum += backend.forward_backward(&self.buf, self.micro, loss_scale)?;
        }
        Ok(loss_sum / self.tokens_per_step as f64)
    }
}

/// How the step loop ended: its status, the last step run and every row.
struct Ended {
    status: RunStatus,
    step: u64,
    rows: Vec<Row>,
}

/// Runs the steps from the resumed one to the last, or to a divergence, checkpointing every
/// `checkpoint_every` steps; fails at `--stop-after` as if killed.
fn step_loop(
    backend: &mut dyn Backend,
    run: &Run,
    records: &Records,
    batches: &mut Batches,
    resumed: Resumed,
    started: Instant,
) -> Result<Ended> {
    let spec = run.spec;
    let steps = spec.steps();
    let Resumed { mut rows, step: start_step, elapsed_s: elapsed0 } = resumed;
    let pb = progress::bar(steps, &format!("mixture {}", run.mixture_id));
    pb.set_position(start_step);
    let mut status = RunStatus::Running;
    let mut step = start_step;
    while step < steps {
        if run.stop_after.is_some_and(|n| step - start_step >= n) {
            pb.finish_and_clear();
            bail!("stopped after {} steps as asked (--stop-after)", step - start_step);
        }
        let s = step + 1;
        let (row, diverged) = optimizer_step(backend, run, batches, s, || elapsed0 + started.elapsed().as_secs_f64())?;
        let (train_loss, grad_norm) = (row.train_loss, row.grad_norm);
        rows.push(row);
        step = s;
        pb.set_position(s);
        if diverged {
            log::warn!(
                "mixture {}: diverged at step {s} (train loss {train_loss}, grad norm {grad_norm})",
                run.mixture_id
            );
            status = RunStatus::Diverged;
            break;
        }
        if s == steps {
            status = RunStatus::Finished;
            break;
        }
        if s % spec.checkpoint_every == 0 {
            let st = records.loop_state(&rows, s, elapsed0 + started.elapsed().as_secs_f64());
            checkpoint::save(&run.dir.checkpoint(), backend, &st)?;
            records.write_metrics(run, &rows, RunStatus::Running)?;
            log::debug!("mixture {}: checkpoint at step {s}", run.mixture_id);
        }
    }
    pb.finish_and_clear();
    if status == RunStatus::Running {
        // Zero steps to run (already at the end): cannot happen, a finished run has its marker.
        bail!("mixture {}: ended without finishing", run.mixture_id);
    }
    Ok(Ended { status, step, rows })
}

/// Runs 1-based step `s`: the batch's gradient, clipping and the AdamW update, then the
/// evaluation if the step has one. Returns its metrics row (`elapsed` gives the training
/// seconds at its end) and whether it diverged (a non-finite loss or gradient norm skips
/// the update and the evaluation).
fn optimizer_step(
    backend: &mut dyn Backend,
    run: &Run,
    batches: &mut Batches,
    s: u64,
    elapsed: impl Fn() -> f64,
) -> Result<(Row, bool)> {
    let spec = run.spec;
    let lr = spec.lr_at(s);
    let train_loss = batches.accumulate(backend, run.corpus, s)?;
    let grad_norm = backend.grad_norm()?;
    let mut diverged = !train_loss.is_finite() || !grad_norm.is_finite();
    if !diverged {
        // As torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) if < 1.
        let clip = spec.grad_clip / (grad_norm + 1e-6);
        backend.adamw_step(s, lr, &spec.adamw, if clip < 1.0 { clip } else { 1.0 })?;
    }
    let mut valid = vec![None; run.corpus.domains.len()];
    if !diverged && spec.evaluates_at(s) {
        valid = evaluate(backend, run.corpus, run.eval, batches.micro)?;
        diverged = valid.iter().any(|v| v.is_some_and(|x| !x.is_finite()));
    }
    let row =
        Row { step: s, tokens: s * batches.tokens_per_step, lr, train_loss, grad_norm, elapsed_s: elapsed(), valid };
    Ok((row, diverged))
}

/// The outcome recorded in `done.json`: the last row's tokens and seconds, the last
/// validation losses measured.
fn outcome_of(rows: &[Row], status: RunStatus, step: u64, spec: serde_json::Value, n_domains: usize) -> Outcome {
    let last = rows.last().expect("at least one step ran");
    let final_valid = rows.iter().rev().find(|r| r.valid.iter().any(|v| v.is_some())).map(|r| r.valid.clone());
    Outcome {
        status,
        steps: step,
        tokens: last.tokens,
        valid: final_valid.unwrap_or_else(|| vec![None; n_domains]),
        elapsed_s: last.elapsed_s,
        spec,
    }
}

/// Saves the final checkpoint of a finished run that keeps it (target models); removes the
/// checkpoint otherwise.
fn keep_or_drop_checkpoint(
    backend: &mut dyn Backend,
    run: &Run,
    records: &Records,
    rows: &[Row],
    status: RunStatus,
    step: u64,
) -> Result<()> {
    let ckpt = run.dir.checkpoint();
    if run.keep_checkpoint && status == RunStatus::Finished {
        let last = rows.last().expect("at least one step ran");
        checkpoint::save(&ckpt, backend, &records.loop_state(rows, step, last.elapsed_s))?;
    } else if ckpt.exists() {
        std::fs::remove_file(&ckpt).with_context(|| format!("removing {}", ckpt.display()))?;
    }
    Ok(())
}

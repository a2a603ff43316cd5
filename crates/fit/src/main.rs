//! `fit --dataset dataset.parquet --target valid_loss.pile_cc --regressor auto --output fit/`
//! (see `--help`).
use clap::Parser;

fn main() {
    let args = fit::Args::parse();
    regmix_core::cli::main(|| fit::run(&args))
}

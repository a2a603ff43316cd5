//! `report --output report.html --mixtures … --dataset … --fit … --optimum … --comparison …`
//! (see `--help`).
use clap::Parser;

fn main() {
    let args = report::Args::parse();
    regmix_core::cli::main(|| report::run(&args))
}

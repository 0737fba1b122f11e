//! `mykey-simulations`: run a scenario over one or many seeds, print the
//! summary table, write the chart.

use anyhow::Context;
use clap::Parser;
use mykey_simulations::scenarios::Scenario;
use mykey_simulations::{chart, run_many};
use std::path::PathBuf;
use std::time::Instant;

/// Deterministic simulation of MyKey Edge nodes, a hub and a faulty network.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// rural-library, festival (runs bounded and strict mode), city-day,
    /// hub-outage, or all.
    scenario: String,
    /// First seed (default: SIM_SEED, else from the clock).
    #[arg(long, env = "SIM_SEED")]
    seed: Option<u64>,
    /// How many consecutive seeds to run from --seed.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Full-size scenarios (festival: 2,000 visitors, 10,000 redemptions;
    /// city-day: 200 nodes).
    #[arg(long)]
    long: bool,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Where to write the charts (one SVG per scenario, first seed).
    #[arg(long, default_value = "target/simulations")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenarios: Vec<Scenario> = match args.scenario.as_str() {
        "all" => Scenario::ALL.to_vec(),
        "festival" => vec![Scenario::Festival, Scenario::FestivalStrict],
        name => vec![
            Scenario::ALL
                .into_iter()
                .find(|s| s.name() == name)
                .with_context(|| {
                    format!("unknown scenario {name}: use rural-library, festival, city-day, hub-outage or all")
                })?,
        ],
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1)
    });
    let started = Instant::now();
    let (per, failures) = run_many(&scenarios, seed..seed + args.seeds, args.long, args.jobs);
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    for (s, m) in &per {
        let title = format!(
            "{} — seeds {seed}..{}{}",
            s.name(),
            seed + args.seeds,
            if args.long { " (long)" } else { "" }
        );
        println!("{}", m.table(&title));
        if !m.series.is_empty() {
            let path = args.out.join(format!("{}.svg", s.name()));
            chart::write_svg(&path, &format!("{} (seed {seed})", s.name()), &m.series)?;
            println!("chart: {}\n", path.display());
        }
    }
    println!(
        "{} runs in {:.1} s, {} failed",
        scenarios.len() as u64 * args.seeds,
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("{f}");
        }
        std::process::exit(1);
    }
    Ok(())
}

//! The chart of a run: balances and debt at the hub, pending transactions
//! and reconciliation lag over simulated time, as one SVG (plotters, no
//! fonts or image libraries needed).

use crate::metrics::Sample;
use plotters::prelude::*;
use std::path::Path;

/// One line of a panel: label, colour, values.
type Line = (&'static str, RGBColor, Vec<f64>);

/// Writes the three panels of `series` to `path`.
pub fn write_svg(path: &Path, title: &str, series: &[Sample]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let panels = root.split_evenly((3, 1));
    let hours: Vec<f64> = series.iter().map(|s| s.t as f64 / 3_600_000.0).collect();
    let x_max = hours.last().copied().unwrap_or(1.0).max(0.1);
    let lines: [(&str, Vec<Line>); 3] = [
        (
            "points at the hub",
            vec![
                (
                    "balances",
                    BLUE,
                    series.iter().map(|s| s.hub_balances as f64).collect(),
                ),
                (
                    "debt",
                    RED,
                    series.iter().map(|s| s.hub_debt as f64).collect(),
                ),
                (
                    "reserved as stall rights",
                    CYAN,
                    series.iter().map(|s| s.hub_reserved as f64).collect(),
                ),
            ],
        ),
        (
            "transactions without receipt",
            vec![
                (
                    "pending",
                    MAGENTA,
                    series.iter().map(|s| s.pending as f64).collect(),
                ),
                (
                    "nodes linked",
                    GREEN,
                    series.iter().map(|s| s.nodes_linked as f64).collect(),
                ),
            ],
        ),
        (
            "reconciliation lag p50 (minutes)",
            vec![(
                "lag",
                BLACK,
                series
                    .iter()
                    .map(|s| s.lag_p50_ms as f64 / 60_000.0)
                    .collect(),
            )],
        ),
    ];
    for (area, (caption, ls)) in panels.iter().zip(lines.iter()) {
        let y_max = ls
            .iter()
            .flat_map(|(_, _, v)| v.iter().copied())
            .fold(1.0f64, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(*caption, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("hours")
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (label, color, values) in ls {
            let color = *color;
            chart
                .draw_series(LineSeries::new(
                    hours.iter().copied().zip(values.iter().copied()),
                    color,
                ))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(*label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

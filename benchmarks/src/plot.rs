//! PNG plots of a `compare` run: per workload, throughput against concurrency, and the
//! latency percentiles (p50, p99, p999) against concurrency, one line per system.
//!
//! Text is drawn with `ab_glyph` from a TrueType file read at run time (DejaVu Sans from the
//! Debian package `fonts-dejavu-core`, which `benchmarks/setup-peers` installs), so plotting
//! needs neither fontconfig nor FreeType.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;

use crate::compare::{Cell, System, Workload};

/// Where the font is looked for, in order.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

const SIZE: (u32, u32) = (900, 560);

/// One figure of a cell, as plotted.
type Figure = fn(&Cell) -> f64;

/// Registers the font once for the whole process.
fn register_font() -> Result<()> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let path = FONTS
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "no TrueType font for the plots ({}): run benchmarks/setup-peers \
                     (installs fonts-dejavu-core)",
                    FONTS.join(", ")
                )
            })?;
        let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        // The registry keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{} is not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

fn color(system: System) -> RGBColor {
    match system {
        System::Regatta => RGBColor(214, 39, 40),
        System::Etcd => RGBColor(31, 119, 180),
        System::Redis => RGBColor(44, 160, 44),
        System::Nats => RGBColor(255, 127, 14),
        System::Noop => RGBColor(90, 90, 90),
    }
}

/// Writes `throughput-<workload>.png` and `latency-<workload>.png` for every workload
/// measured into `dir` (created); returns the files written.
pub fn write_all(dir: &Path, cells: &[Cell]) -> Result<Vec<PathBuf>> {
    register_font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut workloads: Vec<Workload> = cells.iter().map(|c| c.workload).collect();
    workloads.sort();
    workloads.dedup();
    let mut written = Vec::new();
    for workload in workloads {
        let cells: Vec<&Cell> = cells.iter().filter(|c| c.workload == workload).collect();
        let path = dir.join(format!("throughput-{}.png", workload.as_str()));
        throughput(&path, workload, &cells)
            .with_context(|| format!("plotting {}", path.display()))?;
        written.push(path);
        let path = dir.join(format!("latency-{}.png", workload.as_str()));
        latency(&path, workload, &cells).with_context(|| format!("plotting {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The concurrencies measured, ascending; x positions are their indices.
fn concurrencies(cells: &[&Cell]) -> Vec<usize> {
    let mut values: Vec<usize> = cells.iter().map(|c| c.concurrency).collect();
    values.sort_unstable();
    values.dedup();
    values
}

/// The systems measured, in a fixed order.
fn systems(cells: &[&Cell]) -> Vec<System> {
    let mut values: Vec<System> = cells.iter().map(|c| c.system).collect();
    values.sort();
    values.dedup();
    values
}

/// `(x index, figure)` points of one system, in concurrency order.
fn series(
    cells: &[&Cell],
    system: System,
    xs: &[usize],
    figure: impl Fn(&Cell) -> f64,
) -> Vec<(f64, f64)> {
    xs.iter()
        .enumerate()
        .filter_map(|(i, &n)| {
            cells
                .iter()
                .find(|c| c.system == system && c.concurrency == n)
                .map(|c| (i as f64, figure(c)))
        })
        .collect()
}

fn throughput(path: &Path, workload: Workload, cells: &[&Cell]) -> Result<()> {
    let xs = concurrencies(cells);
    let top = cells.iter().map(|c| c.ops_per_sec).fold(1.0, f64::max) * 1.1;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: operations per second", workload.as_str()),
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.3f64..(xs.len() as f64 - 0.7), 0f64..top)?;
    chart
        .configure_mesh()
        .x_labels(xs.len())
        .x_label_formatter(&|x| label(&xs, *x))
        .x_desc("operations in flight")
        .y_desc("ops/s")
        .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
        .label_style(("sans-serif", 15))
        .draw()?;
    for system in systems(cells) {
        let points = series(cells, system, &xs, |c| c.ops_per_sec);
        let style = color(system).stroke_width(3);
        chart
            .draw_series(LineSeries::new(points.clone(), style))?
            .label(system.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 4, color(system).filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()?;
    Ok(())
}

fn latency(path: &Path, workload: Workload, cells: &[&Cell]) -> Result<()> {
    let xs = concurrencies(cells);
    let root = BitMapBackend::new(path, (SIZE.0 + 500, SIZE.1)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("{}: latency (µs, log scale)", workload.as_str()),
        ("sans-serif", 24),
    )?;
    let top = cells.iter().map(|c| c.p999_us).max().unwrap_or(1).max(10) as f64 * 2.0;
    let panels = root.split_evenly((1, 3));
    let percentiles: [(&str, Figure); 3] = [
        ("p50", |c| c.p50_us.max(1) as f64),
        ("p99", |c| c.p99_us.max(1) as f64),
        ("p999", |c| c.p999_us.max(1) as f64),
    ];
    for (panel, (name, figure)) in panels.iter().zip(percentiles) {
        let mut chart = ChartBuilder::on(panel)
            .caption(name, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.3f64..(xs.len() as f64 - 0.7), (5f64..top).log_scale())?;
        chart
            .configure_mesh()
            .x_labels(xs.len())
            .x_label_formatter(&|x| label(&xs, *x))
            .x_desc("operations in flight")
            .y_desc("µs")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(("sans-serif", 14))
            .draw()?;
        for system in systems(cells) {
            let points = series(cells, system, &xs, figure);
            let style = color(system).stroke_width(3);
            chart
                .draw_series(LineSeries::new(points.clone(), style))?
                .label(system.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart.draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 4, color(system).filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// The concurrency at x position `x` (an index), or nothing between positions.
fn label(xs: &[usize], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 0.01 || i < 0.0 {
        return String::new();
    }
    xs.get(i as usize)
        .map_or_else(String::new, |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_labels_name_concurrencies_at_their_positions_only() {
        let xs = [1, 16, 64, 256];
        assert_eq!(label(&xs, 0.0), "1");
        assert_eq!(label(&xs, 3.0), "256");
        assert_eq!(label(&xs, 1.5), "");
        assert_eq!(label(&xs, 4.0), "");
        assert_eq!(label(&xs, -1.0), "");
    }
}

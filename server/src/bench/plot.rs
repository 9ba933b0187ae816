//! The ramp's figure: CPU against stream count for liveproc and the ffmpeg pipeline (SVG).

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use super::streams::RampCurve;

/// Draws every curve's liveproc and ffmpeg points, and the machine's cores as the ceiling.
/// `run` describes the input and step length for the caption.
pub fn cpu_vs_streams(path: &Path, curves: &[RampCurve], run: &str) -> anyhow::Result<()> {
    let cores = curves.first().map_or(2, |c| c.cores) as f64;
    // Steps where the publishers could not even start have no figures and widen nothing.
    let max_n = curves
        .iter()
        .flat_map(|c| c.points.iter().filter(|p| p.liveproc_cores.is_some()))
        .map(|p| p.streams)
        .max()
        .unwrap_or(10) as f64;
    // A pipeline that fell behind needed more than the machine has: its demand shows above.
    let max_y = curves
        .iter()
        .flat_map(|c| {
            c.points
                .iter()
                .flat_map(|p| p.liveproc_cores.into_iter().chain(p.ffmpeg_cores))
        })
        .fold(cores, f64::max);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("CPU against live streams ({run}, {cores} cores)"),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..max_n * 1.05, 0f64..max_y * 1.1)
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("streams")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("CPU needed (cores; CPU seconds / run seconds)")
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, cores), (max_n * 1.05, cores)],
            BLACK.mix(0.4).stroke_width(1),
        ))
        .map_err(|e| anyhow!("plot: {e}"))?
        .label("all cores")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.mix(0.4)));
    let colours = [
        (RGBColor(0x1f, 0x6f, 0xd1), RGBColor(0xd1, 0x4b, 0x1f)),
        (RGBColor(0x2a, 0x9d, 0x4b), RGBColor(0x8e, 0x3b, 0xb5)),
    ];
    for (curve, (ours, theirs)) in curves.iter().zip(colours) {
        let name = curve.processes.join(" + ");
        let series = [
            (
                format!("liveproc: {name}"),
                ours,
                curve
                    .points
                    .iter()
                    .filter_map(|p| Some((p.streams as f64, p.liveproc_cores?, p.liveproc_held)))
                    .collect::<Vec<_>>(),
            ),
            (
                format!("ffmpeg pipeline: {name}"),
                theirs,
                curve
                    .points
                    .iter()
                    .filter_map(|p| {
                        Some((
                            p.streams as f64,
                            p.ffmpeg_cores?,
                            p.ffmpeg_held.unwrap_or(false),
                        ))
                    })
                    .collect::<Vec<_>>(),
            ),
        ];
        for (label, colour, points) in series {
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|&(x, y, _)| (x, y)),
                    colour.stroke_width(2),
                ))
                .map_err(|e| anyhow!("plot: {e}"))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour));
            // Filled: the step held (no drops, kept up); hollow: it did not.
            chart
                .draw_series(points.iter().map(|&(x, y, held)| {
                    let style = if held {
                        colour.filled()
                    } else {
                        colour.stroke_width(2)
                    };
                    Circle::new((x, y), 4, style)
                }))
                .map_err(|e| anyhow!("plot: {e}"))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    root.present().map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}

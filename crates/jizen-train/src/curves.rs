//! Learning curves of a run, drawn with `plotters` from its `metrics.jsonl`: loss and accuracy
//! against the step, train and validation, as `curves.svg` and `curves.png`.
//!
//! Text is set in DejaVu Sans, embedded in the binary (`assets/DejaVuSans.ttf`, Bitstream Vera
//! licence in `assets/DejaVuSans-LICENSE.txt`), so the charts need no system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::metrics::{read_records, Record};
use crate::{Error, Result};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

const TRAIN: RGBColor = RGBColor(0x00, 0x72, 0xB2);
const VAL: RGBColor = RGBColor(0xD5, 0x5E, 0x00);

pub(crate) fn register_font() {
    REGISTER.call_once(|| {
        // The font is a fixed, valid file; failing to parse it would be a build defect.
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).ok().expect("embedded font parses");
    });
}

/// Redraws `curves.svg` and `curves.png` in `dir` from `dir/metrics.jsonl` (nothing to draw,
/// nothing written).
pub fn write(dir: &Path) -> Result<()> {
    let records = read_records(&dir.join("metrics.jsonl"))?;
    if records.is_empty() {
        return Ok(());
    }
    register_font();
    let size = (960, 400);
    let svg = dir.join("curves.svg");
    draw(SVGBackend::new(&svg, size).into_drawing_area(), &records).map_err(|e| plot_error(&svg, e))?;
    let png = dir.join("curves.png");
    let tmp = dir.join("curves.tmp.png");
    draw(BitMapBackend::new(&tmp, size).into_drawing_area(), &records).map_err(|e| plot_error(&png, e))?;
    std::fs::rename(&tmp, &png).map_err(|e| Error::Io { path: png, source: e })
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Msg(format!("{}: cannot draw the learning curves: {e}", path.display()))
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw<B: DrawingBackend>(root: DrawingArea<B, Shift>, records: &[Record]) -> DrawResult
where
    B::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    panel(&panels[0], records, "loss", |r| r.loss)?;
    panel(&panels[1], records, "accuracy (%)", |r| r.accuracy.map_or(f64::NAN, |a| 100.0 * a))?;
    root.present()?;
    Ok(())
}

fn panel<B: DrawingBackend>(
    area: &DrawingArea<B, Shift>,
    records: &[Record],
    what: &str,
    value: fn(&Record) -> f64,
) -> DrawResult
where
    B::ErrorType: 'static,
{
    let series = |split: &str| -> Vec<(f64, f64)> {
        records.iter().filter(|r| r.split == split && value(r).is_finite()).map(|r| (r.step as f64, value(r))).collect()
    };
    let (train, val) = (series("train"), series("val"));
    if train.is_empty() && val.is_empty() {
        area.titled(&format!("{what}: not measured by this objective"), ("sans-serif", 14))?;
        return Ok(());
    }
    let all = train.iter().chain(&val);
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(what, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|x| format!("{}", x.round() as i64))
        .label_style(("sans-serif", 12))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart
        .draw_series(LineSeries::new(train, TRAIN.stroke_width(2)))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], TRAIN.stroke_width(2)));
    if !val.is_empty() {
        chart
            .draw_series(LineSeries::new(val.clone(), VAL.stroke_width(2)))?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], VAL.stroke_width(2)));
        chart.draw_series(val.into_iter().map(|p| Circle::new(p, 3, VAL.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}

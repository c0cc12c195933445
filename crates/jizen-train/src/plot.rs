//! Small, dependency-free SVG charts for reports: lines with an optional band (mean ± std over
//! seeds), axes with ticks, a legend. SVG needs no font metrics, so the charts come out the same
//! on every machine.

use std::fmt::Write;

/// One series: points `(x, y)` and, optionally, a band half-width per point.
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
    pub band: Option<Vec<f64>>,
}

/// A line chart.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Log scale on x (for label budgets 1, 5, 10, ...).
    pub log_x: bool,
}

const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 52.0;

/// Colours that stay apart for the colour-blind (Okabe–Ito).
pub const COLORS: [&str; 6] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"];

/// About `n` round tick values covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    (0..).map(|i| (first + i) as f64 * step).take_while(|t| *t <= hi + 1e-9 * span).collect()
}

fn fmt_tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.2}")
    }
}

impl Chart {
    /// The chart as an SVG document.
    pub fn to_svg(&self) -> String {
        let all = self.series.iter().flat_map(|s| {
            s.points.iter().enumerate().map(move |(i, &(x, y))| {
                let b = s.band.as_ref().map_or(0.0, |b| b[i]);
                (x, y - b, y + b)
            })
        });
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for (x, lo, hi) in all {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(lo);
            y1 = y1.max(hi);
        }
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let pad = (y1 - y0).max(1e-6) * 0.05;
        let (y0, y1) = (y0 - pad, y1 + pad);
        let tx = |x: f64| -> f64 {
            let (a, b, v) =
                if self.log_x { (x0.max(1e-12).ln(), x1.max(1e-12).ln(), x.max(1e-12).ln()) } else { (x0, x1, x) };
            LEFT + if b > a { (v - a) / (b - a) } else { 0.5 } * (W - LEFT - RIGHT)
        };
        let ty = |y: f64| -> f64 { H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM) };
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = write!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            esc(&self.title)
        );
        // Axes and grid.
        let (xa, xb, ya, yb) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
        let xt: Vec<f64> = if self.log_x {
            let mut v: Vec<f64> = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            v
        } else {
            ticks(x0, x1, 6)
        };
        for t in xt {
            let x = tx(t);
            let _ = write!(s, r##"<line x1="{x:.1}" y1="{ya}" x2="{x:.1}" y2="{yb}" stroke="#e5e5e5"/>"##);
            let _ = write!(s, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#, yb + 16.0, fmt_tick(t));
        }
        for t in ticks(y0, y1, 6) {
            let y = ty(t);
            let _ = write!(s, r##"<line x1="{xa}" y1="{y:.1}" x2="{xb}" y2="{y:.1}" stroke="#e5e5e5"/>"##);
            let _ = write!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, xa - 6.0, y + 4.0, fmt_tick(t));
        }
        let _ = write!(
            s,
            r##"<rect x="{xa}" y="{ya}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
            xb - xa,
            yb - ya
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (xa + xb) / 2.0,
            H - 12.0,
            esc(&self.x_label)
        );
        let _ = write!(
            s,
            r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
            (ya + yb) / 2.0,
            (ya + yb) / 2.0,
            esc(&self.y_label)
        );
        // Bands, then lines, then the legend.
        for se in &self.series {
            if let Some(b) = &se.band {
                let upper: Vec<String> =
                    se.points.iter().zip(b).map(|(&(x, y), d)| format!("{:.1},{:.1}", tx(x), ty(y + d))).collect();
                let lower: Vec<String> = se
                    .points
                    .iter()
                    .zip(b)
                    .rev()
                    .map(|(&(x, y), d)| format!("{:.1},{:.1}", tx(x), ty(y - d)))
                    .collect();
                let _ = write!(
                    s,
                    r#"<polygon points="{} {}" fill="{}" fill-opacity="0.18" stroke="none"/>"#,
                    upper.join(" "),
                    lower.join(" "),
                    se.color
                );
            }
        }
        for se in &self.series {
            let pts: Vec<String> = se.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", tx(x), ty(y))).collect();
            let _ = write!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                pts.join(" "),
                se.color
            );
            for &(x, y) in &se.points {
                let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#, tx(x), ty(y), se.color);
            }
        }
        for (i, se) in self.series.iter().enumerate() {
            let y = TOP + 14.0 + 20.0 * i as f64;
            let _ = write!(
                s,
                r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="3"/>"#,
                W - RIGHT + 12.0,
                W - RIGHT + 34.0,
                se.color
            );
            let _ = write!(s, r#"<text x="{}" y="{}">{}</text>"#, W - RIGHT + 40.0, y + 4.0, esc(&se.name));
        }
        s.push_str("</svg>\n");
        s
    }
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_every_series_and_escapes_text() {
        let c = Chart {
            title: "a < b".into(),
            x_label: "step".into(),
            y_label: "accuracy".into(),
            log_x: false,
            series: vec![
                Series {
                    name: "scratch".into(),
                    color: COLORS[0],
                    points: vec![(0.0, 0.1), (10.0, 0.5)],
                    band: Some(vec![0.01, 0.02]),
                },
                Series {
                    name: "pre-trained".into(),
                    color: COLORS[1],
                    points: vec![(0.0, 0.6), (10.0, 0.9)],
                    band: None,
                },
            ],
        };
        let svg = c.to_svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<polygon").count(), 1);
        assert!(svg.contains("a &lt; b") && svg.contains("pre-trained"));
        let t = ticks(0.0, 1.0, 5);
        assert_eq!(t.len(), 6);
        assert!(t.iter().zip([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]).all(|(a, b)| (a - b).abs() < 1e-12));
    }
}

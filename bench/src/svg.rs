//! Line plots as standalone SVG text: a log2 x axis (vCPUs, MiB), a linear y axis from 0,
//! one polyline per series through the medians, and a min-max bar at each point.

use std::fmt::Write;

/// One point: x, and the median, min and max of the samples there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// One line of a plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    /// An SVG colour (`#1f77b4`).
    pub color: &'static str,
    pub dashed: bool,
    pub points: Vec<Point>,
}

/// A plot with a log2 x axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Tick positions (x values) and their labels.
    pub x_ticks: Vec<(f64, String)>,
    pub series: Vec<Series>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;
const Y_TICKS: f64 = 5.0;
/// The y axis reaches this much above the largest median.
const Y_HEADROOM: f64 = 1.3;

/// A round step near `span / Y_TICKS`: 1, 2 or 5 times a power of ten.
pub fn nice_step(span: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / Y_TICKS;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// `12`, `2.5`, `0.25`: a tick label with no more digits than the step needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    format!("{v:.decimals$}")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Plot {
    /// The SVG document.
    pub fn render(&self) -> String {
        let finite = |v: f64| v.is_finite();
        let xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.x))
            .filter(|&x| x > 0.0)
            .collect();
        let x_min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let x_max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lx0, lx1) = if xs.is_empty() {
            (0.0, 1.0)
        } else if x_max > x_min {
            (x_min.log2(), x_max.log2())
        } else {
            (x_min.log2() - 1.0, x_min.log2() + 1.0)
        };
        // The y range follows the medians (with headroom); one wild max on a noisy host
        // would otherwise flatten every curve. Bars that go beyond are clipped at the top.
        let y_top = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.median))
            .filter(|&v| finite(v))
            .fold(0.0, f64::max)
            * Y_HEADROOM;
        let step = nice_step(y_top);
        let y_max = ((y_top / step).ceil() * step).max(step);
        let pw = WIDTH - LEFT - RIGHT;
        let ph = HEIGHT - TOP - BOTTOM;
        let px = |x: f64| LEFT + (x.log2() - lx0) / (lx1 - lx0) * pw;
        let py = |y: f64| TOP + ph - y.min(y_max) / y_max * ph;

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            s,
            r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            LEFT + pw / 2.0,
            escape(&self.title)
        );
        // Grid and y ticks.
        let mut v = 0.0;
        while v <= y_max + step / 2.0 {
            let y = py(v);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                tick_label(v, step)
            );
            v += step;
        }
        // x ticks.
        for (x, label) in &self.x_ticks {
            if *x <= 0.0 {
                continue;
            }
            let xp = px(*x);
            let _ = writeln!(
                s,
                r##"<line x1="{xp:.1}" y1="{TOP}" x2="{xp:.1}" y2="{:.1}" stroke="#eee"/><text x="{xp:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + ph,
                TOP + ph + 18.0,
                escape(label)
            );
        }
        // Axes and their labels.
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            HEIGHT - 12.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + ph / 2.0,
            escape(&self.y_label)
        );
        // Series, then the legend.
        for (i, series) in self.series.iter().enumerate() {
            let dash = if series.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let pts: Vec<String> = series
                .points
                .iter()
                .filter(|p| p.x > 0.0 && finite(p.median))
                .map(|p| format!("{:.1},{:.1}", px(p.x), py(p.median)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                pts.join(" "),
                series.color
            );
            for p in series
                .points
                .iter()
                .filter(|p| p.x > 0.0 && finite(p.median))
            {
                let (x, y) = (px(p.x), py(p.median));
                if finite(p.min) && finite(p.max) && p.max > p.min {
                    let _ = writeln!(
                        s,
                        r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{}" stroke-width="1"/>"#,
                        py(p.min),
                        py(p.max),
                        series.color
                    );
                }
                let _ = writeln!(
                    s,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{}"/>"#,
                    series.color
                );
            }
            let ly = TOP + 10.0 + 20.0 * i as f64;
            let lx = LEFT + pw + 14.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 24.0,
                series.color,
                lx + 30.0,
                ly + 4.0,
                escape(&series.name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10.0), 2.0);
        assert_eq!(nice_step(100.0), 20.0);
        assert_eq!(nice_step(3.0), 1.0);
        assert_eq!(nice_step(0.4), 0.1);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(40.0, 20.0), "40");
    }

    fn plot() -> Plot {
        Plot {
            title: "start <ms>".into(),
            x_label: "vCPUs".into(),
            y_label: "ms".into(),
            x_ticks: vec![(1.0, "1".into()), (4.0, "4".into())],
            series: vec![Series {
                name: "rvmm & co".into(),
                color: "#1f77b4",
                dashed: false,
                points: vec![
                    Point {
                        x: 1.0,
                        median: 5.0,
                        min: 4.0,
                        max: 6.0,
                    },
                    Point {
                        x: 4.0,
                        median: 9.0,
                        min: 9.0,
                        max: 100.0,
                    },
                ],
            }],
        }
    }

    #[test]
    fn renders_points_on_log2_axis() {
        let svg = plot().render();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\""));
        assert!(svg.ends_with("</svg>\n"));
        // y: largest median 9 * 1.3 = 11.7 -> step 5 -> y_max 15; plot height 305 from y=40.
        // x: log2 1..4 -> 0..2 over 460 px from x=70.
        assert!(svg.contains(r##"<polyline points="70.0,243.3 530.0,162.0" fill="none" stroke="#1f77b4" stroke-width="2"/>"##), "{svg}");
        // Min-max bars; the second one's max (100) is clipped at the top (y=40).
        assert!(svg.contains(r##"<line x1="70.0" y1="263.7" x2="70.0" y2="223.0" stroke="#1f77b4" stroke-width="1"/>"##), "{svg}");
        assert!(svg.contains(r##"<line x1="530.0" y1="162.0" x2="530.0" y2="40.0" stroke="#1f77b4" stroke-width="1"/>"##), "{svg}");
        assert_eq!(svg.matches(r#"stroke-width="1"/>"#).count(), 2);
        assert!(svg.contains(r#">15</text>"#), "top tick");
        // Text is escaped.
        assert!(svg.contains("start &lt;ms&gt;"));
        assert!(svg.contains("rvmm &amp; co"));
        assert_eq!(svg.matches("<circle").count(), 2);
    }
}

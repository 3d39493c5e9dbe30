//! The training curves as a small self-contained SVG: loss and learning rate per step on the
//! left, evaluation metrics per step on the right.

use std::fmt::Write;

/// A named series of (step, value) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn panel(svg: &mut String, x0: f64, title: &str, series: &[Series]) {
    // The plot leaves room on its right for the legend.
    let (w, h, pad, legend) = (440.0, 300.0, 45.0, 150.0);
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let _ = write!(
        svg,
        r#"<text x="{}" y="22" font-size="15" font-weight="bold">{title}</text>"#,
        x0 + pad
    );
    if pts.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{}" y="160" font-size="13" fill="#666">no data yet</text>"##,
            x0 + pad
        );
        return;
    }
    let (xmin, xmax) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (ymin, ymax) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (xspan, yspan) = ((xmax - xmin).max(1e-9), (ymax - ymin).max(1e-9));
    let plot_w = w - pad - legend;
    let px = |x: f64| x0 + pad + (x - xmin) / xspan * plot_w;
    let py = |y: f64| 35.0 + (h - 2.0 * pad) - (y - ymin) / yspan * (h - 2.0 * pad);
    let _ = write!(
        svg,
        r##"<rect x="{}" y="35" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        x0 + pad,
        plot_w,
        h - 2.0 * pad
    );
    for (v, y) in [(ymax, py(ymax)), (ymin, py(ymin))] {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{v:.3}</text>"#,
            x0 + pad - 4.0,
            y + 4.0
        );
    }
    for (v, x) in [(xmin, px(xmin)), (xmax, px(xmax))] {
        let _ = write!(
            svg,
            r#"<text x="{x}" y="{}" font-size="11" text-anchor="middle">{v:.0}</text>"#,
            35.0 + h - 2.0 * pad + 15.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">step</text>"#,
        x0 + w / 2.0,
        h + 12.0
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{}"/>"#,
            path.join(" ")
        );
        if s.points.len() < 30 {
            for &(x, y) in &s.points {
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"/>"#,
                    px(x),
                    py(y)
                );
            }
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="12" fill="{color}">{}</text>"#,
            x0 + pad + plot_w + 8.0,
            50.0 + 15.0 * i as f64,
            s.name
        );
    }
}

/// Renders both panels.
pub fn training_curves(title: &str, losses: &[Series], metrics: &[Series]) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="900" height="330" font-family="sans-serif"><rect width="900" height="330" fill="white"/><text x="450" y="12" font-size="11" text-anchor="middle" fill="#444">{title}</text>"##
    );
    panel(&mut svg, 0.0, "training loss", losses);
    panel(&mut svg, 450.0, "evaluation (validation)", metrics);
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_series_with_its_name() {
        let loss = [Series {
            name: "loss",
            points: vec![(1.0, 2.0), (2.0, 1.0)],
        }];
        let evals = [
            Series {
                name: "rte_accuracy",
                points: vec![(2.0, 50.0)],
            },
            Series {
                name: "empty",
                points: vec![],
            },
        ];
        let svg = training_curves("run", &loss, &evals);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">loss<") && svg.contains(">rte_accuracy<"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        let nothing = training_curves("run", &[], &[]);
        assert!(nothing.contains("no data yet"));
    }
}

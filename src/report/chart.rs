//! SVG charts of a history, for `history --format svg` and the
//! dashboard of `sizeguard serve`.
//!
//! Axes, grid, labels and legend are drawn by plotters' SVG backend. Its
//! layout measures text, so the font it measures with is compiled in
//! (DejaVu Sans, through ab_glyph): nothing is read from the system at
//! run time, which an air-gapped cluster's image may not have. The SVG
//! itself names `sans-serif`, so a browser draws the page's own font.
//!
//! Every data point is an element of its own carrying its exact figure
//! (`data-bytes`, `data-inodes`) and a `<title>` printed by
//! [`ChartScale::format`]: a reader hovering, or a test, reads what the
//! JSON says. Ink is `currentColor` (text, axes, grid), and the series
//! colours are mid-tones readable on a light and a dark page.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::history::{ChartScale, HistoryPoint, HistoryView};
use super::html::escape;

/// The series' colours: mid-tones with enough contrast on white and on a
/// near-black page.
const NODE: RGBColor = RGBColor(0x3b, 0x82, 0xf6);
const PULL: RGBColor = RGBColor(0x14, 0xb8, 0xa6);
const HEADROOM: RGBColor = RGBColor(0xef, 0x44, 0x44);
const INODES: RGBColor = RGBColor(0xa8, 0x55, 0xf7);

/// Plotters writes this as `#000000`; it is replaced by `currentColor`
/// afterwards, so the ink follows the page's colour scheme.
const INK: RGBColor = BLACK;

/// The face plotters lays text out with (see the module comment).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse; if it ever did not,
        // plotters' text layout fails and the chart says so instead.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Width of the standalone document and of the dashboard's charts.
pub const WIDTH: u32 = 960;
const BYTES_HEIGHT: u32 = 360;
const INODES_HEIGHT: u32 = 240;

/// `history --format svg`: the trend of node and pull bytes, the GC
/// headroom line, and inodes, as one standalone SVG document.
pub fn history_svg(view: &HistoryView) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&charts_svg(view, WIDTH));
    out
}

/// Both charts of a history as one `<svg>` element (the dashboard inlines
/// it; [`history_svg`] makes it a document).
pub fn charts_svg(view: &HistoryView, width: u32) -> String {
    let points: Vec<&HistoryPoint> = view.known().collect();
    if points.is_empty() {
        return message_svg(width, "no measured images yet");
    }
    match draw(&points, width) {
        Ok(svg) => svg,
        Err(e) => message_svg(width, &format!("the chart could not be drawn: {e}")),
    }
}

/// A data point's mark, placed after plotters is done with the document.
struct Mark {
    x: i32,
    y: i32,
    color: RGBColor,
    series: &'static str,
    /// `data-bytes` or `data-inodes`.
    attribute: &'static str,
    value: i128,
    title: String,
    point: usize,
}

fn draw(points: &[&HistoryPoint], width: u32) -> Result<String, String> {
    register_font();
    let height = BYTES_HEIGHT + INODES_HEIGHT;
    let mut buf = String::new();
    let mut marks = Vec::new();
    {
        let root = SVGBackend::with_string(&mut buf, (width, height)).into_drawing_area();
        let (top, bottom) = root.split_vertically(BYTES_HEIGHT);
        bytes_chart(&top, points, &mut marks).map_err(|e| e.to_string())?;
        inodes_chart(&bottom, points, &mut marks).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    let ink = buf
        .replace("\"#000000\"", "\"currentColor\"")
        .replace("\"#000000 \"", "\"currentColor\"");
    let end = ink.rfind("</svg>").ok_or("plotters wrote no closing tag")?;
    let mut out = String::with_capacity(ink.len() + marks.len() * 200);
    // The root gets a role and a class the page's CSS can address.
    out.push_str(&ink[..end].replacen(
        "<svg ",
        "<svg class=\"chart\" role=\"img\" aria-label=\"size per release\" ",
        1,
    ));
    for m in &marks {
        let p = points[m.point];
        out.push_str(&format!(
            "<circle class=\"point\" cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"#{:02x}{:02x}{:02x}\" \
             data-series=\"{}\" data-tag=\"{}\" data-digest=\"{}\" {}=\"{}\"><title>{}</title></circle>\n",
            m.x,
            m.y,
            m.color.0,
            m.color.1,
            m.color.2,
            m.series,
            escape(p.tag.as_deref().unwrap_or("")),
            escape(&p.digest),
            m.attribute,
            m.value,
            escape(&m.title)
        ));
    }
    out.push_str("</svg>\n");
    Ok(out)
}

/// The x axis: one slot per release, labelled by tag (or short digest).
fn x_range(n: usize) -> std::ops::Range<f64> {
    -0.5..(n as f64 - 0.5)
}

fn x_label(points: &[&HistoryPoint], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 1e-6 || i < 0.0 || i as usize >= points.len() {
        return String::new();
    }
    let label = points[i as usize].label();
    // A long tag would run into its neighbours.
    if label.chars().count() > 16 {
        let short: String = label.chars().take(15).collect();
        format!("{short}…")
    } else {
        label
    }
}

/// A byte series: its key (`data-series`), legend name, colour, figure.
type Series = (
    &'static str,
    &'static str,
    RGBColor,
    fn(&HistoryPoint) -> Option<i128>,
);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawError<'a> = DrawingAreaErrorKind<<SVGBackend<'a> as DrawingBackend>::ErrorType>;
type DrawResult<'a> = Result<(), DrawError<'a>>;
type Frame<'b, 'a> = ChartContext<'b, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// How a chart's y axis reads: how many labels, each written how, and what
/// the axis is.
struct YAxis<'f> {
    labels: usize,
    label: &'f dyn Fn(&f64) -> String,
    desc: String,
}

/// A chart of a history drawn up to its series: the caption, the releases
/// along x, `y` up the side, the mesh; every chart of a history is framed
/// alike.
fn frame<'b, 'a>(
    area: &'b Area<'a>,
    caption: &str,
    points: &[&HistoryPoint],
    y: std::ops::Range<f64>,
    axis: YAxis<'_>,
) -> Result<Frame<'b, 'a>, DrawError<'a>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 18).into_font().color(&INK))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(84)
        .build_cartesian_2d(x_range(points.len()), y)?;
    let text = (FAMILY, 13).into_font().color(&INK);
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(INK.mix(0.12))
        .axis_style(INK.mix(0.6))
        .x_labels(points.len().min(12))
        .x_label_formatter(&|x| x_label(points, *x))
        .y_labels(axis.labels)
        .y_label_formatter(axis.label)
        .y_desc(axis.desc)
        .x_desc("release")
        .label_style(text.clone())
        .axis_desc_style(text)
        .draw()?;
    Ok(chart)
}

fn bytes_chart<'a>(
    area: &Area<'a>,
    points: &[&HistoryPoint],
    marks: &mut Vec<Mark>,
) -> DrawResult<'a> {
    let figures = points.iter().flat_map(|p| {
        [
            p.node_bytes.map(i128::from),
            p.pull_bytes.map(i128::from),
            p.gc_headroom,
        ]
        .into_iter()
        .flatten()
    });
    let scale = ChartScale::for_values(figures.clone());
    let max = figures.clone().max().unwrap_or(0).max(1);
    let min = figures.min().unwrap_or(0).min(0);
    let top = scale.value(max) * 1.12;
    let bottom = if min < 0 {
        scale.value(min) * 1.12
    } else {
        0.0
    };
    let tick = |v: &f64| scale.tick(*v);
    let axis = YAxis {
        labels: 6,
        label: &tick,
        desc: format!("bytes ({})", scale.unit()),
    };
    let mut chart = frame(area, "bytes per release", points, bottom..top, axis)?;

    let series: [Series; 3] = [
        ("node_bytes", "node bytes", NODE, |p| {
            p.node_bytes.map(i128::from)
        }),
        ("pull_bytes", "pull bytes", PULL, |p| {
            p.pull_bytes.map(i128::from)
        }),
        ("gc_headroom", "GC headroom", HEADROOM, |p| p.gc_headroom),
    ];
    for (key, name, color, figure) in series {
        let line: Vec<(f64, f64)> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| figure(p).map(|v| (i as f64, scale.value(v))))
            .collect();
        if line.is_empty() {
            continue;
        }
        let style = color.stroke_width(2);
        if key == "gc_headroom" {
            chart
                .draw_series(DashedLineSeries::new(line.clone(), 8, 5, style))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        } else {
            chart
                .draw_series(LineSeries::new(line.clone(), style))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        for (i, p) in points.iter().enumerate() {
            let Some(v) = figure(p) else { continue };
            let (x, y) = chart.backend_coord(&(i as f64, scale.value(v)));
            marks.push(Mark {
                x,
                y,
                color,
                series: key,
                attribute: "data-bytes",
                value: v,
                title: format!("{}: {name} {} {}", p.label(), scale.format(v), scale.unit()),
                point: i,
            });
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(TRANSPARENT)
        .border_style(INK.mix(0.3))
        .label_font((FAMILY, 13).into_font().color(&INK))
        .draw()?;
    Ok(())
}

fn inodes_chart<'a>(
    area: &Area<'a>,
    points: &[&HistoryPoint],
    marks: &mut Vec<Mark>,
) -> DrawResult<'a> {
    let max = points
        .iter()
        .filter_map(|p| p.inodes)
        .max()
        .unwrap_or(0)
        .max(1);
    let whole = |v: &f64| format!("{}", v.round() as i64);
    let axis = YAxis {
        labels: 5,
        label: &whole,
        desc: "inodes".to_string(),
    };
    let mut chart = frame(
        area,
        "inodes per release",
        points,
        0.0..(max as f64 * 1.12),
        axis,
    )?;
    let line: Vec<(f64, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.inodes.map(|v| (i as f64, v as f64)))
        .collect();
    chart.draw_series(LineSeries::new(line, INODES.stroke_width(2)))?;
    for (i, p) in points.iter().enumerate() {
        let Some(v) = p.inodes else { continue };
        let (x, y) = chart.backend_coord(&(i as f64, v as f64));
        marks.push(Mark {
            x,
            y,
            color: INODES,
            series: "inodes",
            attribute: "data-inodes",
            value: i128::from(v),
            title: format!("{}: {v} inodes", p.label()),
            point: i,
        });
    }
    Ok(())
}

fn message_svg(width: u32, message: &str) -> String {
    format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"60\" \
         viewBox=\"0 0 {width} 60\"><text x=\"12\" y=\"34\" font-family=\"sans-serif\" \
         font-size=\"14\" fill=\"currentColor\">{}</text></svg>\n",
        escape(message)
    )
}

/// The index page's small trend of node bytes: a polyline over the
/// releases, its last point marked; the figures in `data-bytes`
/// (comma-separated, oldest first) and the latest in the `<title>`.
pub fn sparkline(view: &HistoryView) -> String {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    let figures: Vec<(String, u64)> = view
        .known()
        .filter_map(|p| p.node_bytes.map(|b| (p.label(), b)))
        .collect();
    let Some((last_label, last)) = figures.last() else {
        return String::new();
    };
    let scale = ChartScale::for_values(figures.iter().map(|(_, b)| i128::from(*b)));
    let max = figures.iter().map(|(_, b)| *b).max().unwrap_or(1).max(1) as f64;
    let min = figures.iter().map(|(_, b)| *b).min().unwrap_or(0) as f64;
    let span = (max - min).max(max * 0.05).max(1.0);
    let step = if figures.len() > 1 {
        (W - 6.0) / (figures.len() - 1) as f64
    } else {
        0.0
    };
    let at = |i: usize, b: u64| {
        let x = 3.0 + step * i as f64;
        let y = H - 3.0 - (b as f64 - min) / span * (H - 6.0);
        (x, y)
    };
    let coords: Vec<String> = figures
        .iter()
        .enumerate()
        .map(|(i, (_, b))| {
            let (x, y) = at(i, *b);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let (lx, ly) = at(figures.len() - 1, *last);
    let bytes: Vec<String> = figures.iter().map(|(_, b)| b.to_string()).collect();
    format!(
        "<svg class=\"sparkline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" data-bytes=\"{}\"><title>node bytes, last {}: {} {}</title>\
         <polyline fill=\"none\" stroke=\"#{:02x}{:02x}{:02x}\" stroke-width=\"1.5\" points=\"{}\"/>\
         <circle cx=\"{lx:.1}\" cy=\"{ly:.1}\" r=\"2.5\" fill=\"#{:02x}{:02x}{:02x}\"/></svg>",
        bytes.join(","),
        escape(last_label),
        scale.format(i128::from(*last)),
        scale.unit(),
        NODE.0,
        NODE.1,
        NODE.2,
        coords.join(" "),
        NODE.0,
        NODE.1,
        NODE.2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::history::PointSource;

    fn view() -> HistoryView {
        let mut v = HistoryView::new("registry.example/app", None);
        for (tag, node, inodes) in [
            ("v1", 450_560u64, 40u64),
            ("v2", 958_464, 52),
            ("v<3>", 700_000, 45),
        ] {
            let mut p = HistoryPoint::missing(Some(tag.into()), format!("sha256:{tag}"), None);
            p.source = PointSource::Report;
            p.node_bytes = Some(node);
            p.pull_bytes = Some(node / 2);
            p.inodes = Some(inodes);
            p.gc_headroom = Some(-70_560);
            v.points.push(p);
        }
        v.points.push(HistoryPoint::missing(
            Some("v4".into()),
            "sha256:v4".into(),
            None,
        ));
        v
    }

    #[test]
    fn every_point_carries_its_exact_figure_and_the_axis_its_unit() {
        let svg = history_svg(&view());
        assert!(svg.starts_with("<?xml"), "{svg}");
        assert!(
            svg.contains("data-series=\"node_bytes\" data-tag=\"v2\""),
            "{svg}"
        );
        assert!(svg.contains("data-bytes=\"958464\""));
        assert!(
            svg.contains("<title>v2: node bytes 936.000 KiB</title>"),
            "{svg}"
        );
        assert!(svg.contains("data-bytes=\"-70560\""));
        assert!(svg.contains("data-inodes=\"52\""));
        assert!(svg.contains("bytes (KiB)"));
        assert!(svg.contains("GC headroom"));
        // The hostile-looking tag is text, never markup.
        assert!(svg.contains("v&lt;3&gt;"));
        assert!(!svg.contains("v<3>"));
        // Ink follows the page.
        assert!(svg.contains("currentColor"));
        assert!(!svg.contains("#000000"));
        // The missing point has no mark.
        assert!(!svg.contains("data-tag=\"v4\""));
        assert_eq!(svg.matches("class=\"point\"").count(), 3 * 4);
    }

    #[test]
    fn an_empty_history_says_so() {
        let svg = history_svg(&HistoryView::new("r/app", None));
        assert!(svg.contains("no measured images yet"));
        assert_eq!(sparkline(&HistoryView::new("r/app", None)), "");
    }

    #[test]
    fn the_sparkline_lists_the_figures_oldest_first() {
        let s = sparkline(&view());
        assert!(s.contains("data-bytes=\"450560,958464,700000\""), "{s}");
        assert!(s.contains("last v&lt;3&gt;: 683.594 KiB"), "{s}");
    }
}

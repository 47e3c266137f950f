//! One renderer per output format, behind one trait (as hyperfine keeps
//! its exporters).

pub mod json;
pub mod table;

use crate::measure::ImageReport;

/// Version of the JSON schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

pub trait Renderer {
    fn render_measure(&self, reports: &[ImageReport]) -> String;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn renderer(format: Format) -> Box<dyn Renderer> {
    match format {
        Format::Table => Box::new(table::Table),
        Format::Json => Box::new(json::Json),
    }
}

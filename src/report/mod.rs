//! One renderer per output format, behind one trait (as hyperfine keeps
//! its exporters).

pub mod json;
pub mod markdown;
pub mod table;

use crate::budget::verdict::CheckReport;
use crate::measure::ImageReport;

/// Version of the JSON schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

pub trait Renderer {
    fn render_measure(&self, reports: &[ImageReport]) -> String;
    fn render_check(&self, report: &CheckReport) -> String;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// `check` also renders Markdown, the text a pull-request comment uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    Table,
    Json,
    Markdown,
}

pub fn renderer(format: Format) -> Box<dyn Renderer> {
    match format {
        Format::Table => Box::new(table::Table),
        Format::Json => Box::new(json::Json),
    }
}

pub fn check_renderer(format: CheckFormat) -> Box<dyn Renderer> {
    match format {
        CheckFormat::Table => Box::new(table::Table),
        CheckFormat::Json => Box::new(json::Json),
        CheckFormat::Markdown => Box::new(markdown::Markdown),
    }
}

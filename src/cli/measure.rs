//! `sizeguard measure`: flags → request → measure → render.

use crate::app;
use crate::cli::args::MeasureArgs;
use crate::cli::{output, request};
use crate::error::Error;
use crate::report::renderer;

pub async fn run(args: MeasureArgs) -> Result<(), Error> {
    let req = request::measure_request(&args)?;
    let named: Vec<&str> = args.references.iter().map(String::as_str).collect();
    let services = request::services(&args.source, &named)?;
    let reports = app::measure(&services, &req).await?;
    let text = renderer(args.format.into()).render_measure(&reports);
    output::emit(&text, args.output.as_deref())
}

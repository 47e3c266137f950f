//! `sizeguard measure`.

use std::sync::Arc;

use crate::cli::args::MeasureArgs;
use crate::error::Error;
use crate::measure::measure_images;
use crate::report::renderer;
use crate::source::{self, ImageSource, ResolvedImage};

pub async fn run(args: MeasureArgs) -> Result<(), Error> {
    let (source_opts, mut measure_opts, platforms) = super::source_options(&args.source)?;
    measure_opts.top = args.top;
    measure_opts.estimate = args.estimate;

    // Resolve every reference first: a typo in the third one should fail
    // before the first one's layers are streamed.
    let resolved = futures::future::try_join_all(args.references.iter().map(|r| {
        let (source_opts, platforms) = (&source_opts, &platforms);
        async move {
            let src = source::open(r, source_opts).await?;
            let images = src.resolve(platforms).await?;
            Ok::<_, Error>(
                images
                    .into_iter()
                    .map(move |i| (src.clone(), i))
                    .collect::<Vec<_>>(),
            )
        }
    }))
    .await?;
    let images: Vec<(Arc<dyn ImageSource>, ResolvedImage)> =
        resolved.into_iter().flatten().collect();

    let reports = measure_images(images, &measure_opts).await?;
    let text = renderer(args.format.into()).render_measure(&reports);
    super::emit(&text, args.output.as_deref())
}

//! `sizeguard cache stats|prune`.

use crate::cli::args::{CacheAction, CacheArgs};
use crate::error::Error;
use crate::measure::cache::{LayerCache, default_dir};
use crate::units::{human_bytes, parse_bytes};

pub fn run(args: CacheArgs) -> Result<(), Error> {
    let dir = args.cache_dir.or_else(default_dir).ok_or_else(|| {
        Error::usage("no cache directory: set --cache-dir, SIZEGUARD_CACHE_DIR or HOME")
    })?;
    let cache = LayerCache::new(dir);
    match args.action {
        CacheAction::Stats { json } => {
            let s = cache.stats()?;
            let text = if json {
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&s).expect(crate::report::json::SERIALIZES)
                )
            } else {
                format!(
                    "{}: {} entries, {}{}\n",
                    s.dir.display(),
                    s.entries,
                    human_bytes(s.bytes),
                    if s.stale > 0 {
                        format!(" ({} stale files)", s.stale)
                    } else {
                        String::new()
                    }
                )
            };
            super::output::emit(&text, None)
        }
        CacheAction::Prune { max_size } => {
            let max =
                parse_bytes(&max_size).map_err(|e| Error::usage(format!("--max-size: {e}")))?;
            let (n, freed) = cache.prune(max)?;
            super::output::emit(
                &format!(
                    "removed {n} entries, {}; {} left\n",
                    human_bytes(freed),
                    human_bytes(cache.stats()?.bytes)
                ),
                None,
            )
        }
    }
}

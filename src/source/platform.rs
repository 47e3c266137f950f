//! Platforms (`os/arch[/variant]`) and how the user selects among them.

use std::fmt;

use crate::error::Error;

#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    /// Only when the image names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_string),
        }
    }

    /// buildx writes attestation manifests into indexes with this platform.
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" && self.architecture == "unknown"
    }

    /// Whether an image built for `self` satisfies a request for `wanted`.
    /// A request without a variant accepts any variant (as `docker pull
    /// --platform linux/arm64` accepts `linux/arm64/v8`); one with a variant
    /// must match it, treating arm64's implicit `v8` as present.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        if self.os != wanted.os || self.architecture != wanted.architecture {
            return false;
        }
        match (&wanted.variant, &self.variant) {
            (None, _) => true,
            (Some(w), Some(v)) => w == v,
            (Some(w), None) => self.architecture == "arm64" && w == "v8",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => Err(Error::usage(format!(
                "invalid platform {s:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm/v7, or `all`"
            ))),
        }
    }
}

/// Which platforms of an image index to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformSelector {
    /// One platform. `explicit` is false for the built-in default, which a
    /// single-platform image (no index) does not have to match.
    One { platform: Platform, explicit: bool },
    /// Every image of an index (attestations and artifacts excluded).
    All,
}

impl Default for PlatformSelector {
    fn default() -> Self {
        PlatformSelector::One {
            platform: Platform::new("linux", "amd64", None),
            explicit: false,
        }
    }
}

impl PlatformSelector {
    /// `None` (the default platform), `all`, or `os/arch[/variant]`; anything
    /// else is a usage error.
    pub fn parse(s: Option<&str>) -> Result<Self, Error> {
        match s {
            None => Ok(PlatformSelector::default()),
            Some("all") => Ok(PlatformSelector::All),
            Some(p) => Ok(PlatformSelector::One {
                platform: p.parse()?,
                explicit: true,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux/".parse::<Platform>().is_err());
        let arm64 = Platform::new("linux", "arm64", None);
        assert!(Platform::new("linux", "arm64", Some("v8")).satisfies(&arm64));
        assert!(arm64.satisfies(&"linux/arm64/v8".parse().unwrap()));
        assert!(
            !Platform::new("linux", "arm", Some("v6")).satisfies(&"linux/arm/v7".parse().unwrap())
        );
        assert!(!Platform::new("linux", "amd64", None).satisfies(&arm64));
        assert_eq!(
            PlatformSelector::parse(Some("all")).unwrap(),
            PlatformSelector::All
        );
    }
}

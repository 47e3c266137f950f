//! The built-in path rules, in one table. Patterns are globs over the path
//! without its leading `/` (`*` stays within one component, `**` crosses
//! them). A file matching several rules counts for the first one listed,
//! so no byte is priced twice.

/// One path rule.
pub struct PathRule {
    pub id: &'static str,
    pub title: &'static str,
    pub patterns: &'static [&'static str],
    /// Paths a pattern matches that must stay.
    pub except: &'static [&'static str],
    pub advice: &'static str,
}

pub const PATH_RULES: &[PathRule] = &[
    PathRule {
        id: "apt_lists",
        title: "apt package lists",
        patterns: &["var/lib/apt/lists/**"],
        except: &["var/lib/apt/lists/lock"],
        advice: "run `rm -rf /var/lib/apt/lists/*` in the same RUN step as `apt-get install`",
    },
    PathRule {
        id: "apt_archives",
        title: "apt package archives",
        patterns: &["var/cache/apt/archives/*.deb", "var/cache/apt/*.bin"],
        except: &[],
        advice: "run `apt-get clean` in the same RUN step as `apt-get install`",
    },
    PathRule {
        id: "apk_cache",
        title: "apk cache",
        patterns: &["var/cache/apk/**"],
        except: &[],
        advice: "use `apk add --no-cache`",
    },
    PathRule {
        id: "dnf_yum_cache",
        title: "dnf/yum cache",
        patterns: &["var/cache/dnf/**", "var/cache/yum/**"],
        except: &[],
        advice: "run `dnf clean all` (or `yum clean all`) in the same RUN step",
    },
    PathRule {
        id: "pip_cache",
        title: "pip cache",
        patterns: &["**/.cache/pip/**"],
        except: &[],
        advice: "use `pip install --no-cache-dir`, or a build cache mount",
    },
    PathRule {
        id: "uv_cache",
        title: "uv cache",
        patterns: &["**/.cache/uv/**"],
        except: &[],
        advice: "use `uv pip install --no-cache`, or a build cache mount",
    },
    PathRule {
        id: "npm_cache",
        title: "npm cache",
        patterns: &["**/.npm/_cacache/**"],
        except: &[],
        advice: "run `npm cache clean --force` in the same step, or use a cache mount",
    },
    PathRule {
        id: "yarn_cache",
        title: "yarn cache",
        patterns: &["**/.cache/yarn/**", "usr/local/share/.cache/yarn/**"],
        except: &[],
        advice: "run `yarn cache clean` in the same step, or use a cache mount",
    },
    PathRule {
        id: "pnpm_store",
        title: "pnpm store",
        patterns: &["**/.local/share/pnpm/store/**", "**/.pnpm-store/**"],
        except: &[],
        advice: "run `pnpm store prune` in the same step, or use a cache mount",
    },
    PathRule {
        id: "go_cache",
        title: "Go build and module caches",
        patterns: &[
            "**/.cache/go-build/**",
            "go/pkg/mod/**",
            "**/go/pkg/mod/cache/**",
        ],
        except: &[],
        advice: "build in a separate stage and copy only the binary",
    },
    PathRule {
        id: "cargo_registry",
        title: "cargo registry",
        patterns: &["**/.cargo/registry/**"],
        except: &[],
        advice: "build in a separate stage and copy only the binary",
    },
    PathRule {
        id: "toolchains",
        title: "compilers and build toolchains",
        patterns: &[
            "usr/bin/gcc*",
            "usr/bin/*-gcc*",
            "usr/bin/g++*",
            "usr/bin/*-g++*",
            "usr/bin/cc1*",
            "usr/lib/gcc/**",
            "usr/libexec/gcc/**",
            "usr/bin/clang*",
            "usr/lib/llvm-*/**",
            "usr/bin/rustc",
            "usr/local/cargo/bin/rustc",
            "usr/local/rustup/**",
            "**/.rustup/toolchains/**",
            "**/go/pkg/tool/**",
        ],
        except: &[],
        advice: "build in a separate stage and copy only what runs into the final image",
    },
    PathRule {
        id: "docs",
        title: "documentation, man and info pages",
        patterns: &["usr/share/doc/**", "usr/share/man/**", "usr/share/info/**"],
        except: &[],
        advice: "delete them in the install step, or configure dpkg `path-exclude` for them",
    },
    PathRule {
        id: "static_libs",
        title: "static libraries and headers",
        patterns: &["**/*.a", "usr/include/**", "usr/local/include/**"],
        except: &[],
        advice: "install runtime packages only (not `-dev`), or build in a separate stage",
    },
    PathRule {
        id: "test_suites",
        title: "test suites of installed packages",
        patterns: &[
            "**/site-packages/*/tests/**",
            "**/site-packages/*/test/**",
            "**/node_modules/**/test/**",
            "**/node_modules/**/tests/**",
            "**/__tests__/**",
        ],
        except: &[],
        advice: "delete the packages' test directories in the install step",
    },
];

/// The locale rule is a path rule too, but what it keeps depends on the
/// image's environment (see [`super::kept_locales`]).
pub const LOCALES: PathRule = PathRule {
    id: "locales",
    title: "translations for other locales",
    patterns: &["usr/share/locale/*/**"],
    except: &[],
    advice: "delete the locales the image does not use, or configure dpkg `path-exclude`",
};

/// Bytecode caches whose sources are in the image: Python rebuilds them.
pub const PYCACHE: (&str, &str, &str) = (
    "pycache",
    "Python bytecode caches next to their sources",
    "set PYTHONDONTWRITEBYTECODE=1 at build time, or delete __pycache__ directories",
);
pub const DELETED_LATER: (&str, &str, &str) = (
    "deleted_later",
    "files added in one layer and deleted or overwritten in a later one",
    "remove them in the same step that adds them",
);
pub const DUPLICATES: (&str, &str, &str) = (
    "duplicates",
    "identical files at several paths",
    "keep one copy (a hard link or symlink if several paths need it)",
);
pub const DEBUG_SECTIONS: (&str, &str, &str) = (
    "debug_sections",
    "ELF debug sections",
    "run `strip --strip-debug` on binaries and libraries, or ship debug info separately",
);

/// Every rule id, for checking a configuration.
pub fn ids() -> impl Iterator<Item = &'static str> {
    PATH_RULES.iter().map(|r| r.id).chain([
        LOCALES.id,
        PYCACHE.0,
        DELETED_LATER.0,
        DUPLICATES.0,
        DEBUG_SECTIONS.0,
    ])
}

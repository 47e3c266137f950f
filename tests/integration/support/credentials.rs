//! Registry credentials stored the way the tools that write them store them:
//! Docker's `config.json` and containers' `auth.json` share the `auths` format.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::json;

/// `base64(user:pass)`, the `auth` value of an `auths` entry (and what must
/// never be printed, like the password itself).
pub fn basic_auth(user: &str, pass: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

/// `{"auths": {KEY: {"auth": base64(user:pass)}}}`; `key` is the registry as
/// the tool spelled it (`HOST:PORT`, or `http://HOST:PORT`).
pub fn auths_json(key: &str, user: &str, pass: &str) -> String {
    json!({"auths": {key: {"auth": basic_auth(user, pass)}}}).to_string()
}

/// Writes `DIR/config.json` (creating DIR) and returns DIR, the value for
/// `$DOCKER_CONFIG` (or `$HOME/.docker`).
pub fn write_docker_config(dir: &Path, key: &str, user: &str, pass: &str) -> PathBuf {
    write_auth_file(&dir.join("config.json"), key, user, pass);
    dir.to_path_buf()
}

/// Writes an auth file at `path` (creating its directory) and returns `path`,
/// the value for `$REGISTRY_AUTH_FILE`.
pub fn write_auth_file(path: &Path, key: &str, user: &str, pass: &str) -> PathBuf {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, auths_json(key, user, pass)).unwrap();
    path.to_path_buf()
}

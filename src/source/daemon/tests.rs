//! The export walk over archives laid out as each engine writes them: the
//! layers matched to the manifest that comes after them.

use std::sync::{Arc, Mutex};

use super::*;
use crate::source::docker_save::LAYER_GZIP;

/// A layer tar holding one file.
fn layer_tar(path: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, path, content).unwrap();
    b.into_inner().unwrap()
}

fn config(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

enum Member<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

fn archive(members: &[Member<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_ustar();
        match m {
            Member::File(name, bytes) => {
                h.set_size(bytes.len() as u64);
                h.set_mode(0o444);
                b.append_data(&mut h, name, *bytes).unwrap();
            }
            Member::Symlink(name, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Walks an archive; returns what the walk described and, per blob the
/// visitor saw, its name and the digest of what it read.
fn walk_archive(bytes: &[u8]) -> Result<(StreamedImage, Vec<(String, String)>), Error> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let visit: BlobVisitor = Box::new(move |blob: PassingBlob<'_>| {
        let mut content = Vec::new();
        blob.reader.read_to_end(&mut content).unwrap();
        assert_eq!(content.len() as u64, blob.size, "{}", blob.name);
        record
            .lock()
            .unwrap()
            .push((blob.name.to_string(), Digest::sha256(&content).to_string()));
        Ok(())
    });
    let walked = walk(&mut &bytes[..], visit)?;
    let streamed = walked.describe("docker-daemon:app:dev", "app:dev")?;
    let seen = seen.lock().unwrap().clone();
    Ok((streamed, seen))
}

struct Layers {
    tars: Vec<Vec<u8>>,
    diff_ids: Vec<String>,
    config: Vec<u8>,
}

fn two_layers() -> Layers {
    let tars = vec![
        layer_tar("etc/os-release", b"ID=test\n"),
        layer_tar("app/bin", &[7u8; 3000]),
    ];
    let diff_ids: Vec<String> = tars.iter().map(|t| Digest::sha256(t).to_string()).collect();
    let config = config(&diff_ids);
    Layers {
        tars,
        diff_ids,
        config,
    }
}

fn hex(d: &str) -> &str {
    d.trim_start_matches("sha256:")
}

#[test]
fn legacy_export_as_podman_writes_it() {
    let l = two_layers();
    let (h0, h1) = (hex(&l.diff_ids[0]), hex(&l.diff_ids[1]));
    let config_name = format!("{}.json", hex(&Digest::sha256(&l.config).to_string()));
    let (t0, t1) = (format!("{h0}.tar"), format!("{h1}.tar"));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name, "RepoTags": ["localhost/app:dev"], "Layers": [t0, t1],
    }]))
    .unwrap();
    let bytes = archive(&[
        Member::File(&t0, &l.tars[0]),
        Member::File(&t1, &l.tars[1]),
        Member::File(&config_name, &l.config),
        Member::Symlink("aaaa/layer.tar", &format!("../{t0}")),
        Member::File("aaaa/json", b"{}"),
        Member::File("manifest.json", &manifest),
        Member::File("repositories", b"{}"),
    ]);
    let (streamed, seen) = walk_archive(&bytes).unwrap();
    let image = &streamed.image;
    assert_eq!(image.diff_ids, l.diff_ids);
    assert_eq!(image.config_bytes, l.config.len() as u64);
    assert_eq!(image.platform.to_string(), "linux/amd64");
    let digests: Vec<&str> = image.layers.iter().map(|d| d.digest.as_str()).collect();
    assert_eq!(digests, l.diff_ids);
    assert_eq!(image.layers[1].size, l.tars[1].len() as u64);
    assert_eq!(image.layers[0].media_type, LAYER_TAR);
    assert_eq!(streamed.layer_blobs, vec![t0.clone(), t1.clone()]);
    // Each layer passed the visitor once, as it was stored.
    assert_eq!(
        seen,
        vec![(t0, l.diff_ids[0].clone()), (t1, l.diff_ids[1].clone())]
    );
}

#[test]
fn legacy_export_naming_layers_through_links() {
    let l = two_layers();
    // Docker before 25: `<id>/layer.tar`, a repeated layer as a link.
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": "cfg.json", "RepoTags": null,
        "Layers": ["one/layer.tar", "two/layer.tar", "three/layer.tar"],
    }]))
    .unwrap();
    let config = config(&[
        l.diff_ids[0].clone(),
        l.diff_ids[1].clone(),
        l.diff_ids[0].clone(),
    ]);
    let bytes = archive(&[
        Member::File("one/layer.tar", &l.tars[0]),
        Member::File("two/layer.tar", &l.tars[1]),
        Member::Symlink("three/layer.tar", "../one/layer.tar"),
        Member::File("cfg.json", &config),
        Member::File("manifest.json", &manifest),
    ]);
    let (streamed, seen) = walk_archive(&bytes).unwrap();
    assert_eq!(
        streamed.layer_blobs,
        ["one/layer.tar", "two/layer.tar", "one/layer.tar"]
    );
    assert_eq!(streamed.image.layers[2].digest, l.diff_ids[0]);
    assert_eq!(seen.len(), 2, "a linked layer passes once: {seen:?}");
}

/// Docker 25+: an OCI layout, with `manifest.json` beside `index.json`.
fn oci_export(with_manifest_json: bool, gzip_second: bool) -> (Vec<u8>, Layers, Vec<u8>) {
    let l = two_layers();
    let second = if gzip_second {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&l.tars[1]).unwrap();
        gz.finish().unwrap()
    } else {
        l.tars[1].clone()
    };
    let blobs = [l.tars[0].clone(), second.clone()];
    let paths: Vec<String> = blobs
        .iter()
        .map(|b| Digest::sha256(b).blob_path())
        .collect();
    let config_path = Digest::sha256(&l.config).blob_path();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::sha256(&l.config).to_string(), "size": l.config.len()},
        "layers": blobs.iter().map(|b| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": Digest::sha256(b).to_string(), "size": b.len()})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let manifest_path = Digest::sha256(&manifest).blob_path();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": Digest::sha256(&manifest).to_string(), "size": manifest.len()}],
    }))
    .unwrap();
    let docker_manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_path, "RepoTags": ["app:dev"], "Layers": paths,
    }]))
    .unwrap();
    let mut members = vec![
        Member::File(&paths[0], &blobs[0]),
        Member::File(&paths[1], &blobs[1]),
        Member::File(&config_path, &l.config),
        Member::File(&manifest_path, &manifest),
        Member::File("index.json", &index),
        Member::File("oci-layout", b"{\"imageLayoutVersion\":\"1.0.0\"}"),
    ];
    if with_manifest_json {
        members.push(Member::File("manifest.json", &docker_manifest));
    }
    let bytes = archive(&members);
    (bytes, l, second)
}

#[test]
fn oci_export_as_docker_25_writes_it() {
    for with_manifest_json in [true, false] {
        let (bytes, l, _) = oci_export(with_manifest_json, false);
        let (streamed, seen) = walk_archive(&bytes).unwrap();
        let digests: Vec<&str> = streamed
            .image
            .layers
            .iter()
            .map(|d| d.digest.as_str())
            .collect();
        assert_eq!(digests, l.diff_ids, "manifest.json: {with_manifest_json}");
        assert_eq!(streamed.image.diff_ids, l.diff_ids);
        assert_eq!(seen.len(), 2);
        assert_eq!(
            streamed.layer_blobs[0],
            format!("blobs/sha256/{}", hex(&l.diff_ids[0]))
        );
    }
}

#[test]
fn compressed_layers_keep_their_blob_digest() {
    // The containerd image store exports the blobs it pulled, compressed.
    let (bytes, l, gz) = oci_export(true, true);
    let (streamed, _) = walk_archive(&bytes).unwrap();
    let second = &streamed.image.layers[1];
    assert_eq!(second.digest, Digest::sha256(&gz).to_string());
    assert_eq!(second.media_type, LAYER_GZIP);
    assert_eq!(second.size, gz.len() as u64);
    assert_eq!(streamed.image.diff_ids, l.diff_ids);
}

#[test]
fn an_export_without_its_layers_is_corrupt() {
    let l = two_layers();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": "cfg.json", "Layers": ["one/layer.tar", "gone/layer.tar"],
    }]))
    .unwrap();
    let bytes = archive(&[
        Member::File("one/layer.tar", &l.tars[0]),
        Member::File("cfg.json", &l.config),
        Member::File("manifest.json", &manifest),
    ]);
    let e = walk_archive(&bytes).err().unwrap();
    assert_eq!(e.kind(), Kind::Corrupt, "{e}");
    assert!(e.to_string().contains("gone/layer.tar"), "{e}");
    let e = walk_archive(&archive(&[Member::File("x", b"{}")]))
        .err()
        .unwrap();
    assert!(e.to_string().contains("neither manifest.json"), "{e}");
}

#[test]
fn export_documents_are_capped_and_diff_ids_counted() {
    let l = two_layers();
    let manifest = |config: &str| {
        serde_json::to_vec(&serde_json::json!([{
            "Config": config, "Layers": ["one/layer.tar", "two/layer.tar"],
        }]))
        .unwrap()
    };
    let short = config(&l.diff_ids[..1]);
    let bytes = archive(&[
        Member::File("one/layer.tar", &l.tars[0]),
        Member::File("two/layer.tar", &l.tars[1]),
        Member::File("cfg.json", &short),
        Member::File("manifest.json", &manifest("cfg.json")),
    ]);
    let e = walk_archive(&bytes).err().unwrap();
    assert_eq!(e.kind(), Kind::Corrupt, "{e}");
    assert!(
        e.to_string().contains("lists 1 diff_ids for 2 layers"),
        "{e}"
    );
    let mut big = manifest("cfg.json");
    big.resize(4 * 1024 * 1024 + 1, b' ');
    let bytes = archive(&[
        Member::File("one/layer.tar", &l.tars[0]),
        Member::File("two/layer.tar", &l.tars[1]),
        Member::File("cfg.json", &l.config),
        Member::File("manifest.json", &big),
    ]);
    let e = walk_archive(&bytes).err().unwrap();
    assert!(
        e.to_string().contains("manifest.json is 4194305 bytes"),
        "{e}"
    );
}

#[test]
fn sockets_come_from_the_environment_or_the_engine_default() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |var: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| std::ffi::OsString::from(v))
        }
    };
    let docker = socket_path(
        Engine::Docker,
        env(&[("DOCKER_HOST", "unix:///tmp/d.sock")]),
    );
    assert_eq!(docker.unwrap(), PathBuf::from("/tmp/d.sock"));
    let tcp = socket_path(
        Engine::Podman,
        env(&[("CONTAINER_HOST", "tcp://10.0.0.1:2375")]),
    );
    assert_eq!(tcp.unwrap_err().kind(), Kind::Usage);
    let none = socket_path(Engine::Docker, env(&[("DOCKER_HOST", "")]));
    assert_eq!(none.unwrap(), PathBuf::from(DOCKER_SOCKET));
    let podman = socket_path(Engine::Podman, env(&[("XDG_RUNTIME_DIR", "/nonexistent")]));
    assert_eq!(podman.unwrap(), PathBuf::from(PODMAN_ROOT_SOCKET));
}

//! The admission webhook end to end: `sizeguard serve` over TLS, sent the
//! AdmissionReviews an API server would send, their objects written by a
//! real `kubectl` (`--dry-run=client -o json`); images measured by the
//! service's own workers (pushed to a notifying registry) or found in a
//! layer cache `measure` filled.

#![cfg(feature = "server")]

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::layout::{Comp, ImageDesc, LayerSpec, LayoutBuilder};
use support::registry::Registry;
use support::run::Run;
use support::serve::{SECRET, Service, https_post, https_post_as, openssl, self_signed};

const VERDICT_WAIT: Duration = Duration::from_secs(90);
const TOKEN: &str = "sizeguard-admission-test-token";
const INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";

/// What `kubectl ARGS --dry-run=client -o json` writes.
pub fn kubectl(args: &[&str]) -> Value {
    let tool = support::require_tool("kubectl", "apt-get install kubernetes-client");
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(tool)
        .args(args)
        .args(["--dry-run=client", "-o", "json"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .output()
        .expect("spawn kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kubectl wrote JSON")
}

/// A Pod as the ReplicaSet controller creates it from a Deployment's
/// template (`kubectl run` asks a server for discovery even in a client
/// dry run; `create deployment` does not).
pub fn pod_of(deployment: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": deployment["spec"]["template"]["metadata"],
        "spec": deployment["spec"]["template"]["spec"],
    })
}

/// The AdmissionReview an API server sends for `object`.
pub fn review(uid: &str, operation: &str, namespace: &str, object: &Value) -> Vec<u8> {
    let kind = object["kind"].as_str().unwrap();
    let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", "v1"),
    };
    let resource = format!("{}s", kind.to_ascii_lowercase());
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": resource});
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": object["metadata"]["name"],
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": if operation == "DELETE" { Value::Null } else { object.clone() },
            "oldObject": Value::Null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }
    }))
    .unwrap()
}

/// `v1`: a 2 MB layer; `v2`: the same and a 6 MB one; `other`: a 1 MB
/// layer of its own (all incompressible).
fn build_images(dir: &Path) -> (ImageDesc, ImageDesc, ImageDesc) {
    let mut b = LayoutBuilder::new(dir);
    let base = b.add_layer(
        &LayerSpec::new()
            .dir("usr/bin")
            .file("usr/bin/app", 2_000_000),
        Comp::Gzip,
    );
    let big = b.add_layer(
        &LayerSpec::new().dir("opt").file("opt/model.bin", 6_000_000),
        Comp::Gzip,
    );
    let own = b.add_layer(
        &LayerSpec::new().dir("srv").file("srv/other.bin", 1_000_000),
        Comp::Gzip,
    );
    let v1 = b.add_tagged_image(std::slice::from_ref(&base), "v1");
    let v2 = b.add_tagged_image(&[base, big], "v2");
    let other = b.add_tagged_image(&[own], "other");
    (v1, v2, other)
}

/// A service with the admission webhook on, over TLS: pools `big`
/// (m5.large, 10 GiB) and `tight` (g5.xlarge, 200 MiB of which 160 MiB
/// are the system's: about 4 MiB of GC headroom besides a baseline of
/// 4 MiB, less than v2's 12 MB rollout).
struct Webhook {
    svc: Service,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Webhook {
    fn start(addr: &str, registries: &[&str], admission: &str, extra: &[&str]) -> Webhook {
        let dir = tempfile::tempdir().unwrap();
        self_signed(dir.path(), "sizeguard-admission", "0x3003");
        let token = dir.path().join("admission-token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let config = dir.path().join("sizeguard.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[nodes.big]
capacity = "10Gi"

[nodes.tight]
capacity = "200Mi"
system-reserved = "160Mi"

[serve]
baseline-tag = "v1"

[serve.admission]
token-file = {token:?}
{admission}

[[serve.admission.pools]]
selector = {{ "{INSTANCE_TYPE}" = "m5.large" }}
profile = "big"

[[serve.admission.pools]]
selector = {{ "{INSTANCE_TYPE}" = "g5.xlarge" }}
profile = "tight"
"#
            ),
        )
        .unwrap();
        let cert = dir.path().join("cert.pem").display().to_string();
        let key = dir.path().join("key.pem").display().to_string();
        let config = config.display().to_string();
        let mut args = vec![
            "--config",
            &config,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--workers",
            "1",
        ];
        for r in registries {
            args.extend(["--allow-registry", r]);
        }
        args.extend(extra);
        let svc = Service::start(addr, &args);
        Webhook {
            svc,
            ca: dir.path().join("cert.pem"),
            _dir: dir,
        }
    }

    /// POSTs a review with the token; the status and the body.
    fn post(&self, body: &[u8], token: Option<&str>) -> (u16, String) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        https_post(
            &self.svc.addr,
            &self.ca,
            "/v1/admission?timeout=10s",
            &headers,
            body,
        )
    }

    /// The review's `response`, checked to be a 200 that echoes `uid`.
    fn answer(&self, uid: &str, body: &[u8]) -> Value {
        let (status, text) = self.post(body, Some(TOKEN));
        assert_eq!(status, 200, "{text}\n{}", self.svc.log());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1", "{v:#}");
        assert_eq!(v["kind"], "AdmissionReview");
        assert_eq!(v["response"]["uid"], uid, "{v:#}");
        v["response"].clone()
    }

    fn metric(&self, result: &str) -> f64 {
        // Over TLS the plain client of `Service::metric` cannot ask.
        let tool = support::require_tool("curl", "apt-get install curl");
        let out = Command::new(tool)
            .args(["-sS", "--cacert"])
            .arg(&self.ca)
            .args([
                "-H",
                &format!("Authorization: Bearer {}", support::serve::API_TOKEN),
            ])
            .arg(format!("https://{}/metrics", self.svc.addr))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "/metrics: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let series = format!("sizeguard_admission_total{{result=\"{result}\"}}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(name, _)| *name == series)
            .map_or(0.0, |(_, v)| v.parse().unwrap())
    }
}

fn warnings(response: &Value) -> Vec<String> {
    response["warnings"]
        .as_array()
        .map(|w| w.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn message(response: &Value) -> String {
    response["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Puts `key: value` in the pod spec of a Deployment.
fn with_in_pod_spec(mut deployment: Value, key: &str, value: Value) -> Value {
    deployment["spec"]["template"]["spec"][key] = value;
    deployment
}

fn required_affinity(operator: &str, values: &[&str]) -> Value {
    json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": INSTANCE_TYPE, "operator": operator, "values": values}]}
    ]}}})
}

/// The verdict of a digest over TLS, waited for.
fn wait_verdict(w: &Webhook, digest: &str) -> Value {
    let tool = support::require_tool("curl", "apt-get install curl");
    let deadline = Instant::now() + VERDICT_WAIT;
    loop {
        let out = Command::new(&tool)
            .args(["-sS", "-w", "\n%{http_code}", "--cacert"])
            .arg(&w.ca)
            .args([
                "-H",
                &format!("Authorization: Bearer {}", support::serve::API_TOKEN),
            ])
            .arg(format!("https://{}/v1/verdicts/{digest}", w.svc.addr))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some((body, "200")) = text.rsplit_once('\n') {
            return serde_json::from_str(body).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no verdict for {digest}:\n{}",
            w.svc.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The webhook judging from the verdicts its workers stored (no layer
/// cache): the tightest pool the pod may land on decides, a pod that fits
/// is admitted, an unmeasured image is admitted with a warning and queued,
/// and everything that is not a judgeable review gets the answer it should.
#[test]
fn admission_judges_pods_from_stored_verdicts_on_the_tightest_pool() {
    let addr = Service::pick_addr();
    let reg = Registry::start();
    // What is pushed here is unmeasured until a pod names it.
    let quiet = Registry::start();
    let w = Webhook::start(&addr, &[&reg.addr, &quiet.addr], "", &["--no-cache"]);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let (v1, v2, other) = build_images(&layout);
    // The registry's notifications could not verify the service's
    // self-signed certificate: each push is delivered as it would be.
    reg.push_layout(&layout, "v1", "team/app:v1");
    reg.push_layout(&layout, "v2", "team/app:v2");
    quiet.push_layout(&layout, "other", "team/other:new");
    for (id, tag, image) in [("e1", "v1", &v1), ("e2", "v2", &v2)] {
        let envelope = json!({"events": [{
            "id": id,
            "timestamp": "2026-12-01T10:00:00Z",
            "action": "push",
            "target": {
                "mediaType": image.media_type, "digest": image.digest, "size": image.size,
                "length": image.size, "repository": "team/app", "tag": tag,
                "url": format!("http://{}/v2/team/app/manifests/{}", reg.addr, image.digest),
            },
            "request": {"id": "r1", "addr": "127.0.0.1:40000", "host": reg.addr, "method": "PUT", "useragent": "skopeo"},
            "actor": {},
            "source": {"addr": "registry:5000", "instanceID": "i"}
        }]});
        let (status, body) = https_post(
            &addr,
            &w.ca,
            "/v1/events/distribution",
            &[("Authorization", &format!("Bearer {SECRET}"))],
            &serde_json::to_vec(&envelope).unwrap(),
        );
        assert_eq!(status, 202, "{body}");
    }
    wait_verdict(&w, &v1.digest);
    wait_verdict(&w, &v2.digest);

    let v2_ref = format!("{}/team/app:v2", reg.addr);
    let v1_ref = format!("{}/team/app:v1", reg.addr);
    let deployment = kubectl(&["create", "deployment", "web", &format!("--image={v2_ref}")]);

    // Anywhere: the tight pool is among the places it may land, and v2's
    // rollout (its 6 MB layer, blob and snapshot) does not fit it.
    let r = w.answer(
        "uid-anywhere",
        &review("uid-anywhere", "CREATE", "team", &deployment),
    );
    assert_eq!(r["allowed"], false, "{r:#}");
    assert_eq!(r["status"]["code"], 403);
    let m = message(&r);
    for needle in [
        v2_ref.as_str(),
        "node profile tight",
        "image GC headroom",
        "rollout cost 11.",
        "MiB",
    ] {
        assert!(m.contains(needle), "{needle:?} not in {m}");
    }

    // nodeSelector on the big pool: it fits.
    let big = with_in_pod_spec(
        deployment.clone(),
        "nodeSelector",
        json!({INSTANCE_TYPE: "m5.large"}),
    );
    let r = w.answer("uid-big", &review("uid-big", "CREATE", "team", &big));
    assert_eq!(r["allowed"], true, "{r:#}");
    assert!(warnings(&r).is_empty(), "{r:#}");

    // Required affinity: NotIn the tight pool fits; In both, the tightest
    // decides; In the tight one alone is denied; for a Pod and a CronJob alike.
    let not_tight = with_in_pod_spec(
        deployment.clone(),
        "affinity",
        required_affinity("NotIn", &["g5.xlarge"]),
    );
    let r = w.answer(
        "uid-notin",
        &review("uid-notin", "UPDATE", "team", &not_tight),
    );
    assert_eq!(r["allowed"], true, "{r:#}");
    let both = with_in_pod_spec(
        deployment.clone(),
        "affinity",
        required_affinity("In", &["m5.large", "g5.xlarge"]),
    );
    let r = w.answer("uid-both", &review("uid-both", "CREATE", "team", &both));
    assert_eq!(r["allowed"], false, "{r:#}");
    assert!(message(&r).contains("node profile tight"), "{r:#}");
    let pod = pod_of(&with_in_pod_spec(
        deployment.clone(),
        "affinity",
        required_affinity("In", &["g5.xlarge"]),
    ));
    let r = w.answer("uid-pod", &review("uid-pod", "CREATE", "team", &pod));
    assert_eq!(r["allowed"], false, "{r:#}");
    let cron = kubectl(&[
        "create",
        "cronjob",
        "nightly",
        &format!("--image={v2_ref}"),
        "--schedule=0 3 * * *",
    ]);
    let r = w.answer("uid-cron", &review("uid-cron", "CREATE", "team", &cron));
    assert_eq!(r["allowed"], false, "{r:#}");

    // An UPDATE naming the images already stored (a label, a restart)
    // adds nothing to a node; one that changes them is judged; an object
    // being deleted only loses its finalizers.
    let update = |uid: &str, new: &Value, old: &Value| -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(&review(uid, "UPDATE", "team", new)).unwrap();
        v["request"]["oldObject"] = old.clone();
        serde_json::to_vec(&v).unwrap()
    };
    let mut relabelled = deployment.clone();
    relabelled["metadata"]["labels"]["tier"] = json!("web");
    let r = w.answer(
        "uid-relabel",
        &update("uid-relabel", &relabelled, &deployment),
    );
    assert_eq!(r["allowed"], true, "{r:#}");
    let on_v1 = kubectl(&["create", "deployment", "web", &format!("--image={v1_ref}")]);
    let r = w.answer("uid-upgrade", &update("uid-upgrade", &deployment, &on_v1));
    assert_eq!(r["allowed"], false, "{r:#}");
    let mut deleting = deployment.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-12-07T19:00:00Z");
    let r = w.answer("uid-deleting", &update("uid-deleting", &deleting, &on_v1));
    assert_eq!(r["allowed"], true, "{r:#}");

    // v1 alone, anywhere: a fresh pull of 4 MB fits the tight pool too.
    let small = kubectl(&[
        "create",
        "deployment",
        "small",
        &format!("--image={v1_ref}"),
    ]);
    let r = w.answer("uid-small", &review("uid-small", "CREATE", "team", &small));
    assert_eq!(r["allowed"], true, "{r:#}");

    // Exempt namespace and DELETE: untouched.
    let r = w.answer(
        "uid-system",
        &review("uid-system", "CREATE", "kube-system", &deployment),
    );
    assert_eq!(r["allowed"], true, "{r:#}");
    assert!(r.get("warnings").is_none(), "{r:#}");
    let r = w.answer(
        "uid-delete",
        &review("uid-delete", "DELETE", "team", &deployment),
    );
    assert_eq!(r["allowed"], true, "{r:#}");
    // Another kind: untouched.
    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    let r = w.answer("uid-cm", &review("uid-cm", "CREATE", "team", &cm));
    assert_eq!(r["allowed"], true, "{r:#}");

    // An image nobody measured: admitted with a warning, and queued.
    let other_ref = format!("{}/team/other:new", quiet.addr);
    let fresh = kubectl(&[
        "create",
        "deployment",
        "fresh",
        &format!("--image={other_ref}"),
    ]);
    let r = w.answer("uid-fresh", &review("uid-fresh", "CREATE", "team", &fresh));
    assert_eq!(r["allowed"], true, "{r:#}");
    let warned = warnings(&r).join("\n");
    assert!(
        warned.contains(&other_ref) && warned.contains("queued"),
        "{warned}"
    );
    let queued = wait_verdict(&w, &other.digest);
    assert_eq!(queued["event"]["sender"], "admission", "{queued:#}");

    // Not reviews, or not from the API server.
    let good = review("uid-auth", "CREATE", "team", &deployment);
    assert_eq!(w.post(&good, None).0, 401);
    assert_eq!(w.post(&good, Some("not-the-token")).0, 401);
    assert_eq!(w.post(&good, Some(SECRET)).0, 401);
    for bad in [
        b"{not json".to_vec(),
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#
            .to_vec(),
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#.to_vec(),
    ] {
        let (status, text) = w.post(&bad, Some(TOKEN));
        assert_eq!(status, 400, "{text}");
        let e: Value = serde_json::from_str(&text).unwrap();
        let line = e["error"].as_str().unwrap();
        assert!(!line.is_empty() && !line.contains('\n'), "{line}");
    }
    // A review whose object cannot be read as its kind is answered, and
    // enforce denies it: a 400 would let `failurePolicy: Ignore` admit it.
    let broken = String::from_utf8(good.clone())
        .unwrap()
        .replace("\"template\"", "\"tmpl\"")
        .into_bytes();
    let r = w.answer("uid-auth", &broken);
    assert_eq!(r["allowed"], false, "{r:#}");
    assert!(message(&r).contains("cannot judge"), "{r:#}");
    let huge = vec![b' '; (3 << 20) + 1];
    assert_eq!(w.post(&huge, Some(TOKEN)).0, 413);

    assert!(w.metric("denied") >= 4.0, "{}", w.svc.log());
    assert!(w.metric("allowed") >= 3.0);
    assert_eq!(w.metric("exempt"), 1.0);
    assert_eq!(w.metric("unmeasured_allowed"), 1.0);
    assert_eq!(w.metric("unauthorized"), 3.0);
    assert!(w.metric("malformed") >= 4.0);
    assert!(w.svc.log().contains("admission review"), "{}", w.svc.log());
}

/// The webhook judging from a layer cache `measure` filled (no verdict
/// stored): audit mode admits what enforce denies and says why in
/// `warnings`; `unmeasured = "deny"` refuses an unknown image.
#[test]
fn admission_from_the_layer_cache_in_audit_and_with_unmeasured_denied() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let (_v1, _v2, _other) = build_images(&layout);
    reg.push_layout(&layout, "v1", "team/app:v1");
    reg.push_layout(&layout, "v2", "team/app:v2");
    reg.push_layout(&layout, "other", "team/other:new");
    let cache = tmp.path().join("cache");
    let cache_flag = cache.display().to_string();
    let v1_ref = format!("{}/team/app:v1", reg.addr);
    let v2_ref = format!("{}/team/app:v2", reg.addr);
    Run::new([
        "measure",
        "-q",
        "--cache-dir",
        &cache_flag,
        &v1_ref,
        &v2_ref,
    ])
    .with_layer_cache()
    .run()
    .assert_ok();

    let deployment = kubectl(&["create", "deployment", "web", &format!("--image={v2_ref}")]);
    let audit = Webhook::start(
        &Service::pick_addr(),
        &[&reg.addr],
        "mode = \"audit\"",
        &["--cache-dir", &cache_flag],
    );
    let r = audit.answer(
        "uid-audit",
        &review("uid-audit", "CREATE", "team", &deployment),
    );
    assert_eq!(r["allowed"], true, "{r:#}");
    let warned = warnings(&r).join("\n");
    for needle in [
        "enforce would deny",
        v2_ref.as_str(),
        "node profile tight",
        "image GC headroom",
    ] {
        assert!(warned.contains(needle), "{needle:?} not in {warned}");
    }
    for w in warnings(&r) {
        assert!(
            w.len() <= 256 && w.bytes().all(|b| (b' '..=b'~').contains(&b)),
            "{w}"
        );
    }
    assert_eq!(audit.metric("audit_denied"), 1.0);
    drop(audit);

    // The API server's client certificate, from a CA of its own.
    let pki = tmp.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &pki,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=apiserver-client-ca",
            ],
        ]
        .concat(),
    );
    openssl(
        &pki,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "client.key",
                "-out",
                "client.csr",
                "-subj",
                "/CN=kube-apiserver",
            ],
        ]
        .concat(),
    );
    std::fs::write(pki.join("ext.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(
        &pki,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "0x5005",
            "-days",
            "2",
            "-out",
            "client.pem",
            "-extfile",
            "ext.cnf",
        ],
    );
    let strict = Webhook::start(
        &Service::pick_addr(),
        &[&reg.addr],
        &format!(
            "unmeasured = \"deny\"\nexempt-namespaces = [\"ops\"]\nclient-ca-file = {:?}",
            pki.join("ca.pem").display().to_string()
        ),
        &["--cache-dir", &cache_flag],
    );
    // A client certificate the CA signed stands for the token; without
    // either, 401.
    let body = review("uid-cert", "CREATE", "ops", &deployment);
    let (status, text) = https_post_as(
        &strict.svc.addr,
        &strict.ca,
        Some((&pki.join("client.pem"), &pki.join("client.key"))),
        "/v1/admission",
        &[],
        &body,
    );
    assert_eq!(status, 200, "{text}\n{}", strict.svc.log());
    assert_eq!(strict.post(&body, None).0, 401);
    let big = with_in_pod_spec(
        deployment.clone(),
        "nodeSelector",
        json!({INSTANCE_TYPE: "m5.large"}),
    );
    let r = strict.answer("uid-known", &review("uid-known", "CREATE", "team", &big));
    assert_eq!(r["allowed"], true, "{r:#}");
    let other_ref = format!("{}/team/other:new", reg.addr);
    let two = with_in_pod_spec(
        big.clone(),
        "initContainers",
        json!([{"name": "init", "image": other_ref}]),
    );
    let r = strict.answer(
        "uid-unknown",
        &review("uid-unknown", "CREATE", "team", &two),
    );
    assert_eq!(r["allowed"], false, "{r:#}");
    let m = message(&r);
    assert!(
        m.contains(&other_ref) && m.contains("not measured yet"),
        "{m}"
    );
    // The exempt list replaces the default: kube-system is judged now. (An
    // image of a registry sizeguard may not read stays unmeasured; the
    // one above was queued, and may be measured by now.)
    let elsewhere = with_in_pod_spec(
        big.clone(),
        "initContainers",
        json!([{"name": "init", "image": "registry.invalid/team/x:1"}]),
    );
    let r = strict.answer("uid-ops", &review("uid-ops", "CREATE", "ops", &elsewhere));
    assert_eq!(r["allowed"], true, "{r:#}");
    let r = strict.answer(
        "uid-ks",
        &review("uid-ks", "CREATE", "kube-system", &elsewhere),
    );
    assert_eq!(r["allowed"], false, "{r:#}");
    assert!(
        message(&r).contains("registry.invalid is not one sizeguard measures from"),
        "{r:#}"
    );
}

/// Admission without TLS or without a token does not start.
#[test]
fn admission_needs_tls_and_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    self_signed(dir.path(), "sizeguard-admission", "0x4004");
    let data = dir.path().join("data").display().to_string();
    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();
    let run = |admission: &str, tls: bool| {
        let config = dir.path().join("sizeguard.toml");
        std::fs::write(&config, format!("[serve.admission]\n{admission}\n")).unwrap();
        let config = config.display().to_string();
        let mut args = vec![
            "serve",
            "--config",
            &config,
            "--data-dir",
            &data,
            "--secret-file",
            secret.to_str().unwrap(),
            "--allow-registry",
            "127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
        ];
        if tls {
            args.extend(["--tls-cert", &cert, "--tls-key", &key]);
        }
        let out = Run::new(args).run();
        assert_eq!(out.code, 2, "{admission}: {}", out.stderr);
        out.stderr.clone()
    };
    let with_token = format!("token-file = {:?}", token.display().to_string());
    assert!(run(&with_token, false).contains("TLS"));
    assert!(run("", true).contains("client-ca-file"));
    assert!(run(&format!("{with_token}\nmode = \"log\""), true).contains("mode"));
    assert!(
        run(
            &format!(
                "{with_token}\n[[serve.admission.pools]]\nselector = {{ a = \"b\" }}\nprofile = \"nope\""
            ),
            true
        )
        .contains("nope")
    );
}

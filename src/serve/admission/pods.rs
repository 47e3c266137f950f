//! What a reviewed object asks of a node: the pod spec of a Pod or of a
//! workload's template, every image it names, and which node pools its
//! node selector and required node affinity let it land on.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Most images one pod may name before the review is refused as absurd:
/// the API server's own object size limit allows thousands, no real pod
/// has more than a few dozen.
pub const MAX_IMAGES: usize = 256;

/// Where in the pod spec an image is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Container,
    InitContainer,
    EphemeralContainer,
    ImageVolume,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Container => "container",
            Field::InitContainer => "init container",
            Field::EphemeralContainer => "ephemeral container",
            Field::ImageVolume => "image volume",
        }
    }
}

/// One image a pod names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub field: Field,
    /// The container's or volume's name.
    pub name: String,
    /// As written in the object.
    pub image: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    init_containers: Vec<Container>,
    #[serde(default)]
    ephemeral_containers: Vec<Container>,
    #[serde(default)]
    volumes: Vec<Volume>,
    #[serde(default)]
    node_selector: Option<BTreeMap<String, String>>,
    #[serde(default)]
    affinity: Option<Affinity>,
}

#[derive(Debug, Default, Deserialize)]
struct Container {
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Volume {
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: Option<ImageVolume>,
}

#[derive(Debug, Default, Deserialize)]
struct ImageVolume {
    #[serde(default)]
    reference: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Affinity {
    #[serde(default)]
    node_affinity: Option<NodeAffinity>,
}

#[derive(Debug, Default, Deserialize)]
struct NodeAffinity {
    #[serde(default, rename = "requiredDuringSchedulingIgnoredDuringExecution")]
    required: Option<NodeSelector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeSelector {
    #[serde(default)]
    node_selector_terms: Vec<Term>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Term {
    #[serde(default)]
    match_expressions: Vec<Requirement>,
}

#[derive(Debug, Default, Deserialize)]
struct Requirement {
    key: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

/// The pod spec of a kind this webhook judges; `Ok(None)` for any other
/// kind (admitted untouched). `Err`: the object is not what its kind says.
pub fn pod_spec(group: &str, kind: &str, object: &Value) -> Result<Option<PodSpec>, String> {
    let path: &[&str] = match (group, kind) {
        ("", "Pod") => &["spec"],
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") | ("batch", "Job") => {
            &["spec", "template", "spec"]
        }
        ("batch", "CronJob") => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return Ok(None),
    };
    let mut at = object;
    for key in path {
        at = at
            .get(key)
            .ok_or_else(|| format!("{kind}: the object has no {}", path.join(".")))?;
    }
    PodSpec::deserialize(at)
        .map(Some)
        .map_err(|e| format!("{kind}: {}: {e}", path.join(".")))
}

impl PodSpec {
    /// Every image named, in the order the spec names them; an empty
    /// image field is skipped (the API server refuses it for a pod, and a
    /// template without one never becomes a pod).
    pub fn images(&self) -> Result<Vec<Named>, String> {
        let containers = [
            (Field::Container, &self.containers),
            (Field::InitContainer, &self.init_containers),
            (Field::EphemeralContainer, &self.ephemeral_containers),
        ];
        let mut out = Vec::new();
        for (field, list) in containers {
            for c in list.iter() {
                if let Some(image) = c.image.as_deref().filter(|i| !i.is_empty()) {
                    out.push(Named {
                        field,
                        name: c.name.clone(),
                        image: image.to_string(),
                    });
                }
            }
        }
        for v in &self.volumes {
            if let Some(image) = v
                .image
                .as_ref()
                .and_then(|i| i.reference.as_deref())
                .filter(|i| !i.is_empty())
            {
                out.push(Named {
                    field: Field::ImageVolume,
                    name: v.name.clone(),
                    image: image.to_string(),
                });
            }
        }
        // Many containers may run one image: only distinct images cost a
        // lookup each.
        let distinct: std::collections::HashSet<&str> =
            out.iter().map(|n| n.image.as_str()).collect();
        if distinct.len() > MAX_IMAGES {
            return Err(format!(
                "the pod names {} distinct images; at most {MAX_IMAGES} are judged",
                distinct.len()
            ));
        }
        Ok(out)
    }

    /// Whether a node labelled `labels` could satisfy the pod's node
    /// selector and required node affinity. Labels the pool's selector does
    /// not name are unknown, so they could be anything: only a label the
    /// pool names can rule it out.
    pub fn could_land_on(&self, labels: &BTreeMap<String, String>) -> bool {
        let selector_ok = self
            .node_selector
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k).is_none_or(|have| have == v));
        let terms = self
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| n.required.as_ref())
            .map(|r| r.node_selector_terms.as_slice())
            .unwrap_or_default();
        // No terms: no constraint (the API server refuses an empty list).
        let affinity_ok = terms.is_empty()
            || terms
                .iter()
                .any(|t| t.match_expressions.iter().all(|r| r.could(labels)));
        selector_ok && affinity_ok
    }
}

impl Requirement {
    fn could(&self, labels: &BTreeMap<String, String>) -> bool {
        let Some(have) = labels.get(&self.key) else {
            // Unknown to the pool: some of its nodes may well satisfy it.
            return true;
        };
        let number = |s: &str| s.parse::<i64>().ok();
        match self.operator.as_str() {
            "In" => self.values.iter().any(|v| v == have),
            "NotIn" => !self.values.iter().any(|v| v == have),
            "Exists" => true,
            "DoesNotExist" => false,
            "Gt" => {
                matches!((number(have), self.values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a > b)
            }
            "Lt" => {
                matches!((number(have), self.values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a < b)
            }
            // An operator the API server would have refused: it rules
            // nothing out.
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_kind_and_every_image_field() {
        let spec = json!({
            "containers": [{"name": "app", "image": "reg/app:v2"}, {"name": "none"}],
            "initContainers": [{"name": "init", "image": "reg/init:1"}],
            "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
            "volumes": [{"name": "model", "image": {"reference": "reg/model:7"}}, {"name": "tmp", "emptyDir": {}}]
        });
        let cases = [
            ("", "Pod", json!({"spec": spec})),
            (
                "apps",
                "Deployment",
                json!({"spec": {"template": {"spec": spec}}}),
            ),
            (
                "apps",
                "StatefulSet",
                json!({"spec": {"template": {"spec": spec}}}),
            ),
            (
                "apps",
                "DaemonSet",
                json!({"spec": {"template": {"spec": spec}}}),
            ),
            (
                "apps",
                "ReplicaSet",
                json!({"spec": {"template": {"spec": spec}}}),
            ),
            (
                "batch",
                "Job",
                json!({"spec": {"template": {"spec": spec}}}),
            ),
            (
                "batch",
                "CronJob",
                json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
            ),
        ];
        for (group, kind, object) in cases {
            let images = pod_spec(group, kind, &object)
                .unwrap()
                .unwrap()
                .images()
                .unwrap();
            let names: Vec<(&str, &str)> = images
                .iter()
                .map(|n| (n.field.as_str(), n.image.as_str()))
                .collect();
            assert_eq!(
                names,
                [
                    ("container", "reg/app:v2"),
                    ("init container", "reg/init:1"),
                    ("ephemeral container", "busybox"),
                    ("image volume", "reg/model:7")
                ],
                "{kind}"
            );
        }
        assert!(pod_spec("", "ConfigMap", &json!({})).unwrap().is_none());
        assert!(pod_spec("apps", "Pod", &json!({})).unwrap().is_none());
        assert!(pod_spec("apps", "Deployment", &json!({"spec": {}})).is_err());
        assert!(pod_spec("", "Pod", &json!({"spec": {"containers": "x"}})).is_err());
    }

    #[test]
    fn node_selector_and_required_affinity_pick_pools() {
        let gpu = labels(&[("node.kubernetes.io/instance-type", "g5.xlarge")]);
        let cpu = labels(&[("node.kubernetes.io/instance-type", "m5.large")]);
        let spec = |v: serde_json::Value| PodSpec::deserialize(v).unwrap();

        let anywhere = spec(json!({}));
        assert!(anywhere.could_land_on(&gpu) && anywhere.could_land_on(&cpu));

        let selected = spec(
            json!({"nodeSelector": {"node.kubernetes.io/instance-type": "g5.xlarge", "zone": "a"}}),
        );
        assert!(selected.could_land_on(&gpu) && !selected.could_land_on(&cpu));

        let affinity = |terms: serde_json::Value| {
            spec(
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}),
            )
        };
        let key = "node.kubernetes.io/instance-type";
        let not_gpu = affinity(
            json!([{"matchExpressions": [{"key": key, "operator": "NotIn", "values": ["g5.xlarge"]}]}]),
        );
        assert!(!not_gpu.could_land_on(&gpu) && not_gpu.could_land_on(&cpu));
        // Terms are ORed, expressions ANDed.
        let either = affinity(json!([
            {"matchExpressions": [{"key": key, "operator": "In", "values": ["m5.large"]}, {"key": "gpu", "operator": "DoesNotExist"}]},
            {"matchExpressions": [{"key": key, "operator": "In", "values": ["g5.xlarge"]}, {"key": key, "operator": "Exists"}]}
        ]));
        assert!(either.could_land_on(&gpu) && either.could_land_on(&cpu));
        let none =
            affinity(json!([{"matchExpressions": [{"key": key, "operator": "DoesNotExist"}]}]));
        assert!(!none.could_land_on(&gpu) && !none.could_land_on(&cpu));
        let sized = labels(&[("cores", "8")]);
        let big = affinity(
            json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}]),
        );
        assert!(big.could_land_on(&sized));
        let small = affinity(
            json!([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}]),
        );
        assert!(!small.could_land_on(&sized));
    }
}

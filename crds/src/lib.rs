//! KubeEdge's custom resources as Rust types, with kube-rs's
//! `CustomResource` derive: `devices.kubeedge.io/v1beta1` [`Device`] and
//! [`DeviceModel`], and `reliablesyncs.kubeedge.io/v1alpha1`
//! [`ObjectSync`] and [`ClusterObjectSync`]. Field names are KubeEdge's
//! (reference §7). The YAML in `deploy/crds/` is generated from these types
//! ([`all`], [`to_yaml`]); a test fails when the files drift, and
//! `APIARY_BLESS=1 cargo test -p crds` rewrites them.
//!
//! # Layout
//!
//! - `device.rs`: Device and DeviceModel.
//! - `sync.rs`: ObjectSync and ClusterObjectSync.
//! - `schema.rs`: schema helpers (free-form protocol data).

mod device;
mod schema;
mod sync;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use device::{
    Device, DeviceMethod, DeviceModel, DeviceModelRef, DeviceModelSpec, DeviceProperty, DeviceSpec,
    DeviceStatus, ModelProperty, ProtocolConfig, StateReport, Twin, TwinProperty, VisitorConfig,
};
pub use sync::{
    ClusterObjectSync, ClusterObjectSyncSpec, ObjectSync, ObjectSyncSpec, ObjectSyncStatus,
};

/// Every CRD with its file name under `deploy/crds/`.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("devices.kubeedge.io_devices.yaml", Device::crd()),
        ("devices.kubeedge.io_devicemodels.yaml", DeviceModel::crd()),
        (
            "reliablesyncs.kubeedge.io_objectsyncs.yaml",
            ObjectSync::crd(),
        ),
        (
            "reliablesyncs.kubeedge.io_clusterobjectsyncs.yaml",
            ClusterObjectSync::crd(),
        ),
    ]
}

/// A CRD as the YAML written to `deploy/crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_norway::Error> {
    let body = serde_norway::to_string(crd)?;
    Ok(format!(
        "# Generated from the Rust types in crds/ (APIARY_BLESS=1 cargo test -p crds); do not edit.\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn crds_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds")
    }

    #[test]
    fn deploy_crds_match_the_types() {
        let bless = std::env::var_os("APIARY_BLESS").is_some();
        for (file, crd) in all() {
            let want = to_yaml(&crd).expect("CRDs serialise");
            let path = crds_dir().join(file);
            if bless {
                std::fs::write(&path, &want).expect("write the CRD");
                continue;
            }
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                have == want,
                "{} differs from the Rust types; run `APIARY_BLESS=1 cargo test -p crds` and commit",
                path.display()
            );
        }
    }

    #[test]
    fn names_and_scopes_are_kubeedges() {
        let crds = all();
        let names: Vec<_> = crds
            .iter()
            .map(|(_, c)| c.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "devices.devices.kubeedge.io",
                "devicemodels.devices.kubeedge.io",
                "objectsyncs.reliablesyncs.kubeedge.io",
                "clusterobjectsyncs.reliablesyncs.kubeedge.io"
            ]
        );
        let scopes: Vec<_> = crds.iter().map(|(_, c)| c.spec.scope.clone()).collect();
        assert_eq!(
            scopes,
            ["Namespaced", "Namespaced", "Namespaced", "Cluster"]
        );
        let device = &crds[0].1.spec.versions[0];
        assert_eq!(device.name, "v1beta1");
        assert!(device
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some()));
    }

    #[test]
    fn a_kubeedge_device_parses() {
        let yaml = r#"
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: thermo, namespace: default}
spec:
  deviceModelRef: {name: thermo-model}
  nodeName: edge-1
  protocol:
    protocolName: modbus
    configData: {slaveID: 1, anything: [1, 2]}
  properties:
  - name: temperature
    desired: {value: "20", metadata: {type: int}}
    visitors:
      protocolName: modbus
      configData: {register: HoldingRegister, offset: 2}
    reportCycle: 10000
    collectCycle: 10000
    reportToCloud: true
status:
  twins:
  - propertyName: temperature
    reported: {value: "21", metadata: {timestamp: "1700000000000"}}
    observedDesired: {value: "20"}
  state: online
"#;
        let device: Device = serde_norway::from_str(yaml).expect("parses");
        assert_eq!(device.spec.node_name.as_deref(), Some("edge-1"));
        let twins = &device.status.as_ref().expect("status").twins;
        assert_eq!(
            twins[0].reported.as_ref().map(|r| r.value.as_str()),
            Some("21")
        );
        let back = serde_json::to_value(&device).expect("serialises");
        assert_eq!(back["spec"]["protocol"]["configData"]["anything"][1], 2);
        assert_eq!(
            back["spec"]["properties"][0]["visitors"]["configData"]["offset"],
            2
        );
    }
}

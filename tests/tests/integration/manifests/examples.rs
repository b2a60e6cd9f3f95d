//! The example configurations load with the daemons' own loaders and fit
//! together; the example Device and DeviceModel fit the `crds` types.

use cloudcore::config::CloudCoreConfig;
use edgecore::EdgeCoreConfig;

use super::{deploy, file_docs};

#[test]
fn the_example_configs_load_with_the_daemons_loaders() {
    let cloud: CloudCoreConfig = daemonkit::config::load(&deploy("examples/cloudcore.yaml"))
        .unwrap_or_else(|err| panic!("examples/cloudcore.yaml: {err}"));
    assert!(daemonkit::DaemonConfig::unsupported_keys(&cloud).is_empty());
    assert!(
        !cloud.modules.cloud_hub.advertise_address.is_empty(),
        "a cluster's cloudcore advertises an address"
    );

    let edge: EdgeCoreConfig = daemonkit::config::load(&deploy("examples/edgecore.yaml"))
        .unwrap_or_else(|err| panic!("examples/edgecore.yaml: {err}"));
    assert!(daemonkit::DaemonConfig::unsupported_keys(&edge).is_empty());
    // A joined edge: a name, and the cloud's hub and certificate server on
    // the address the cloud example advertises, at its ports.
    assert_eq!(edge.modules.node_status.hostname_override, "edge-1");
    let hub = &edge.modules.edge_hub;
    let cloud_hub = &cloud.modules.cloud_hub;
    let address = &cloud_hub.advertise_address[0];
    assert_eq!(
        hub.websocket.server,
        format!("{address}:{}", cloud_hub.websocket.port)
    );
    assert_eq!(
        hub.quic.server,
        format!("{address}:{}", cloud_hub.quic.port)
    );
    assert_eq!(
        hub.http_server,
        format!("https://{address}:{}", cloud_hub.https.port)
    );
}

#[test]
fn the_example_device_and_model_fit_the_crds() {
    let model_docs = file_docs(&deploy("examples/devicemodel.yaml"));
    let device_docs = file_docs(&deploy("examples/device.yaml"));
    let [model_doc] = model_docs.as_slice() else {
        panic!("one DeviceModel")
    };
    let [device_doc] = device_docs.as_slice() else {
        panic!("one Device")
    };
    // Through the crds types and back: a field they do not know (one the
    // CRD schema would prune) would be lost.
    let model: crds::DeviceModel = serde_json::from_value(model_doc.clone()).unwrap();
    let device: crds::Device = serde_json::from_value(device_doc.clone()).unwrap();
    assert_eq!(&serde_json::to_value(&model).unwrap(), model_doc);
    assert_eq!(&serde_json::to_value(&device).unwrap(), device_doc);

    assert_eq!(model.metadata.name.as_deref(), Some("temperature-model"));
    let property = |name: &str| {
        let p = model
            .spec
            .properties
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no {name}"));
        (
            p.type_.as_deref(),
            p.access_mode.as_deref(),
            p.unit.as_deref(),
        )
    };
    assert_eq!(
        property("temperature"),
        (Some("INT"), Some("ReadOnly"), Some("degC"))
    );
    let (kind, access, _) = property("threshold");
    assert_eq!((kind, access), (Some("INT"), Some("ReadWrite")));

    assert_eq!(device.metadata.name.as_deref(), Some("sensor-1"));
    assert_eq!(device.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(
        device.metadata.namespace, model.metadata.namespace,
        "a model is found in the device's namespace"
    );
    assert_eq!(device.spec.node_name.as_deref(), Some("edge-1"));
    assert_eq!(
        device
            .spec
            .device_model_ref
            .as_ref()
            .map(|r| r.name.as_str()),
        Some("temperature-model")
    );
    assert!(device
        .spec
        .protocol
        .as_ref()
        .is_some_and(|p| p.protocol_name.is_some() && p.config_data.is_some()));
    let desired: Vec<(&str, &str)> = device
        .spec
        .properties
        .iter()
        .filter_map(|p| Some((p.name.as_str(), p.desired.as_ref()?.value.as_str())))
        .collect();
    assert_eq!(desired, [("threshold", "30")]);
    for p in &device.spec.properties {
        assert!(
            model.spec.properties.iter().any(|m| m.name == p.name),
            "{} is not a property of the model",
            p.name
        );
    }
}

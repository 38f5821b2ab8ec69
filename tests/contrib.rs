//! The configuration shipped in contrib/ says what each caller needs.

#[test]
fn shipped_configs_say_what_callers_need() {
    let dropin = include_str!("../contrib/crio/10-runlet.conf");
    for needle in [
        "default_runtime = \"runlet\"",
        "runtime_type = \"oci\"",
        "\"run.oci.\"",
        "\"module.wasm.image/variant\"",
        "platform_runtime_paths",
        "\"wasi/wasm32\" = \"/usr/local/bin/runlet-wasm\"",
    ] {
        assert!(dropin.contains(needle), "CRI-O drop-in lacks {needle}");
    }
    let podman = include_str!("../contrib/podman/containers.conf");
    for needle in [
        "runtime_supports_json",
        "\"runlet\"",
        "[engine.platform_to_oci_runtime]",
        "\"wasi/wasm\" = \"runlet-wasm\"",
    ] {
        assert!(podman.contains(needle), "containers.conf lacks {needle}");
    }
    let k8s = include_str!("../contrib/kubernetes/runtimeclass.yaml");
    assert!(k8s.contains("kind: RuntimeClass") && k8s.contains("handler: runlet"));
    let deploy = include_str!("../contrib/kubernetes/wasm-deployment.yaml");
    assert!(deploy.contains("runtimeClassName: runlet-wasm"));
}

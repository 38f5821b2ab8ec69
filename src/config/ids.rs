//! What a spec asks of namespaces and id mappings.

use libcontainer::oci_spec::runtime::{LinuxNamespaceType, Spec};

/// Whether the spec asks for a new namespace of this type (not one joined
/// by path).
pub fn new_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ && n.path().is_none()))
}

/// Whether the spec puts the container in a namespace of this type, new or
/// joined by path.
pub fn has_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ))
}

/// The host id that `id` inside the container maps to (`mappings` are the
/// spec's uid or gid mappings; none means the same id), if it is mapped.
pub fn host_id(
    id: u32,
    mappings: Option<&Vec<libcontainer::oci_spec::runtime::LinuxIdMapping>>,
) -> Option<u32> {
    match mappings {
        None => Some(id),
        Some(maps) if maps.is_empty() => Some(id),
        Some(maps) => maps.iter().find_map(|m| {
            let offset = id.checked_sub(m.container_id())?;
            (offset < m.size()).then(|| m.host_id() + offset)
        }),
    }
}

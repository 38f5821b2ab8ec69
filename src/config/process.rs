//! A container process's settings as runlet completes them: absent
//! capability sets, and environment entries merged as `exec -e` and socket
//! activation add them.

use std::collections::HashMap;

use libcontainer::oci_spec::runtime::Process;

/// Absent capability sets mean empty ones (runc's reading of the spec);
/// libcontainer would leave an absent set as the process had it.
pub fn normalize_capabilities(process: &mut Process) {
    if let Some(mut caps) = process.capabilities().clone() {
        let empty = || Some(Default::default());
        if caps.bounding().is_none() {
            caps.set_bounding(empty());
        }
        if caps.effective().is_none() {
            caps.set_effective(empty());
        }
        if caps.permitted().is_none() {
            caps.set_permitted(empty());
        }
        if caps.inheritable().is_none() {
            caps.set_inheritable(empty());
        }
        if caps.ambient().is_none() {
            caps.set_ambient(empty());
        }
        process.set_capabilities(Some(caps));
    }
}

/// Env entries as a map, later entries winning, for merging `exec -e`.
pub fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut map: HashMap<String, String> = HashMap::new();
    for kv in base.iter().chain(overrides) {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        if !map.contains_key(k) {
            order.push(k.to_string());
        }
        map.insert(k.to_string(), v.to_string());
    }
    order
        .into_iter()
        .map(|k| {
            let v = map.get(&k).cloned().unwrap_or_default();
            format!("{k}={v}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merge_overrides_in_place() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let out = merge_env(&base, &["A=2".to_string(), "B=3".to_string()]);
        assert_eq!(out, vec!["PATH=/bin", "A=2", "B=3"]);
    }
}

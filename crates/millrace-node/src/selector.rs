//! Builds channel selectors from a source's `selector.*` properties.

use millrace_core::{ChannelSelector, Props};
use std::collections::HashMap;

/// `channels` is the source's channel list, in order; selector channel names become
/// indexes into it. Problems are recorded in `props` (the source's `selector.` view).
pub fn build(props: &Props, channels: &[String]) -> Option<ChannelSelector> {
    let ty = props.string("type", "replicating");
    let index = |key: &str, list: &str| -> Vec<usize> {
        list.split_whitespace()
            .filter_map(|name| {
                let i = channels.iter().position(|c| c == name);
                // A source with no channels is reported as such; each name the
                // selector gives is not a second mistake.
                if i.is_none() && !channels.is_empty() {
                    props.error_at(
                        key,
                        format!(
                            "`{}` names channel `{name}`, which is not among this source's channels ({}); add it to the source's `channels` or fix the name",
                            props.full_key(key),
                            channels.join(" ")
                        ),
                    );
                }
                i
            })
            .collect()
    };
    match ty.to_ascii_lowercase().as_str() {
        "replicating" | "org.apache.flume.channel.replicatingchannelselector" => {
            let optional = props
                .get("optional")
                .map(|v| index("optional", &v))
                .unwrap_or_default();
            let required = (0..channels.len())
                .filter(|i| !optional.contains(i))
                .collect();
            Some(ChannelSelector::Replicating { required, optional })
        }
        "multiplexing" | "org.apache.flume.channel.multiplexingchannelselector" => {
            let header = props.string("header", "flume.selector.header");
            let mut mapping = HashMap::new();
            for (value, v) in props.with_prefix("mapping.") {
                mapping.insert(value.clone(), index(&format!("mapping.{value}"), &v.value));
            }
            let mut optional = HashMap::new();
            for (value, v) in props.with_prefix("optional.") {
                let req = mapping.get(&value).cloned().unwrap_or_default();
                let opt: Vec<usize> = index(&format!("optional.{value}"), &v.value)
                    .into_iter()
                    .filter(|i| !req.contains(i))
                    .collect();
                optional.insert(value, opt);
            }
            let default = props
                .get("default")
                .map(|v| index("default", &v))
                .unwrap_or_default();
            Some(ChannelSelector::Multiplexing {
                header,
                mapping,
                optional,
                default,
            })
        }
        _ => {
            props.error_at(
                "type",
                format!(
                    "selector type `{ty}` (`{}`) is not supported; use replicating or multiplexing",
                    props.full_key("type")
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chans() -> Vec<String> {
        vec!["c1".into(), "c2".into(), "c3".into()]
    }

    #[test]
    fn replicating_with_optional() {
        let p = Props::from_pairs(&[("optional", "c3")]);
        let s = build(&p, &chans()).unwrap();
        assert_eq!(
            s,
            ChannelSelector::Replicating {
                required: vec![0, 1],
                optional: vec![2]
            }
        );
    }

    #[test]
    fn multiplexing_maps_values_to_indexes() {
        let p = Props::from_pairs(&[
            ("type", "multiplexing"),
            ("header", "state"),
            ("mapping.CZ", "c1"),
            ("mapping.US", "c2 c3"),
            ("optional.CZ", "c1 c2"),
            ("default", "c3"),
        ]);
        let ChannelSelector::Multiplexing {
            header,
            mapping,
            optional,
            default,
        } = build(&p, &chans()).unwrap()
        else {
            panic!("not multiplexing")
        };
        assert_eq!(header, "state");
        assert_eq!(mapping["US"], vec![1, 2]);
        assert_eq!(
            optional["CZ"],
            vec![1],
            "a required channel is not also optional"
        );
        assert_eq!(default, vec![2]);
    }

    #[test]
    fn channel_outside_the_source_list_is_an_error() {
        let p = Props::from_pairs(&[("type", "multiplexing"), ("default", "c9")]);
        build(&p, &chans());
        assert!(p.has_errors());
    }
}

//! The example manifests in `examples/`, built into the binary so `render` and `demo`
//! run from any directory.

/// `(file name, contents)` of every built-in example.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("web.yaml", include_str!("../examples/web.yaml")),
    ("dns.yaml", include_str!("../examples/dns.yaml")),
    ("lb-local.yaml", include_str!("../examples/lb-local.yaml")),
    ("ignored.yaml", include_str!("../examples/ignored.yaml")),
    ("node.yaml", include_str!("../examples/node.yaml")),
];

/// The node the examples are written for.
pub const EXAMPLE_NODE: &str = "node-a";

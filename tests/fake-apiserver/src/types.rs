//! The registry of resource types the fake API server serves.

use k8s_openapi::Resource;

/// Static description of one served resource type, taken from `k8s_openapi::Resource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeInfo {
    /// `Service`, `EndpointSlice`, ...
    pub kind: String,
    /// `v1`, `discovery.k8s.io/v1`, ...
    pub api_version: String,
    /// Lower-case plural used in URLs: `services`.
    pub plural: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
}

impl TypeInfo {
    /// Describes `K`.
    pub fn of<K: Resource>() -> Self {
        // `Resource::Scope` is not `'static`-bounded, so `TypeId` cannot be used; the type
        // name of the scope marker is stable enough for telling the two scopes apart.
        let namespaced = std::any::type_name::<K::Scope>().ends_with("NamespaceResourceScope");
        Self {
            kind: K::KIND.to_string(),
            api_version: K::API_VERSION.to_string(),
            plural: K::URL_PATH_SEGMENT.to_string(),
            namespaced,
        }
    }

    /// `ServiceList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// An index into [`Types`].
pub(crate) type TypeIdx = usize;

/// All registered resource types.
#[derive(Debug, Default)]
pub(crate) struct Types {
    list: Vec<TypeInfo>,
}

impl Types {
    /// Registers `info` (idempotent) and returns its index.
    pub fn register(&mut self, info: TypeInfo) -> TypeIdx {
        if let Some(i) = self.list.iter().position(|t| t.kind == info.kind && t.api_version == info.api_version) {
            return i;
        }
        self.list.push(info);
        self.list.len() - 1
    }

    /// Looks a type up by its URL group-version (`v1`, `discovery.k8s.io/v1`) and plural.
    pub fn find(&self, api_version: &str, plural: &str) -> Option<TypeIdx> {
        self.list.iter().position(|t| t.api_version == api_version && t.plural == plural)
    }

    /// The type at `idx`. Indices come from [`Types::register`] and are never removed.
    pub fn get(&self, idx: TypeIdx) -> &TypeInfo {
        &self.list[idx]
    }

    /// How many types are registered.
    pub fn len(&self) -> usize {
        self.list.len()
    }
}

//! The file source: Services, EndpointSlices and Nodes read from a directory.
//!
//! Every `*.yaml`, `*.yml` and `*.json` file directly in the directory is read (see
//! [`super::manifest`]). Changes are picked up as they happen (inotify through the
//! `notify` crate, with a periodic rescan as a safety net). A file that cannot be read
//! is reported with its name and line, and the objects it held when it was last good
//! stay in force.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_model::{Admission, NodeSpec, ServiceName, ServiceSpec, SliceName, SliceSpec};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::manifest::{parse_manifests, ManifestObject};
use crate::tracker::{ChangeTracker, ListKind};

/// How often the directory is rescanned even without a file event.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(5);

/// The objects of a directory, file by file, as of the last scan.
///
/// Only admissions are kept (never file texts or whole objects), once: per file. The
/// union over files is remembered as one fingerprint per object, which is how a rescan
/// finds what changed without a second copy.
#[derive(Debug, Default)]
pub struct ManifestDir {
    dir: PathBuf,
    node_name: String,
    files: BTreeMap<PathBuf, FileState>,
    recorded: HashMap<EntryKey, u64>,
}

#[derive(Debug, Default)]
struct FileState {
    text_hash: u64,
    entries: Vec<Entry>,
}

#[derive(Debug)]
enum Entry {
    Service(ServiceName, Admission<ServiceSpec>),
    Slice(SliceName, Admission<SliceSpec>),
    Node(NodeSpec),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum EntryKey {
    Service(ServiceName),
    Slice(SliceName),
    Node,
}

impl Entry {
    fn key(&self) -> EntryKey {
        match self {
            Entry::Service(n, _) => EntryKey::Service(n.clone()),
            Entry::Slice(n, _) => EntryKey::Slice(n.clone()),
            Entry::Node(_) => EntryKey::Node,
        }
    }

    fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        match self {
            Entry::Service(_, a) => a.hash(&mut h),
            Entry::Slice(_, a) => a.hash(&mut h),
            Entry::Node(n) => n.hash(&mut h),
        }
        h.finish()
    }

    fn record(&self, tracker: &ChangeTracker) {
        match self {
            Entry::Service(n, a) => tracker.service(n.clone(), Some(a.clone())),
            Entry::Slice(n, a) => tracker.slice(n.clone(), Some(a.clone())),
            Entry::Node(n) => tracker.node(Some(n.clone())),
        }
    }
}

fn describe(key: &EntryKey) -> String {
    match key {
        EntryKey::Service(n) => format!("Service {n}"),
        EntryKey::Slice(n) => format!("EndpointSlice {n}"),
        EntryKey::Node => "this Node".into(),
    }
}

/// The problems one scan found, one line each (`file:line: message`).
pub type ScanErrors = Vec<String>;

impl ManifestDir {
    /// A directory source for the node `node_name` (its Node object is the one used).
    pub fn new(dir: &Path, node_name: &str) -> ManifestDir {
        ManifestDir { dir: dir.to_owned(), node_name: node_name.to_owned(), ..ManifestDir::default() }
    }

    /// Reads the directory again and records in `tracker` every object whose admission
    /// changed since the last scan. Returns the problems found.
    pub fn scan(&mut self, tracker: &ChangeTracker) -> ScanErrors {
        let mut errors = Vec::new();
        let paths = match manifest_paths(&self.dir) {
            Ok(paths) => paths,
            Err(e) => {
                errors.push(format!(
                    "{}: cannot list the directory: {e}; keeping the last good state",
                    self.dir.display()
                ));
                return errors;
            }
        };
        let before = self.files.len();
        self.files.retain(|path, _| paths.contains(path));
        let mut changed = self.files.len() != before;
        let texts = paths
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path);
                (path, text)
            })
            .collect();
        changed |= self.absorb(texts, &mut errors);
        if changed {
            self.record_changes(tracker, &mut errors);
        }
        errors
    }

    /// Like [`ManifestDir::scan`], over files given as text (the built-in examples).
    pub fn load_texts(&mut self, files: &[(&str, &str)], tracker: &ChangeTracker) -> ScanErrors {
        let mut errors = Vec::new();
        let texts = files.iter().map(|(name, text)| (PathBuf::from(name), Ok((*text).to_owned()))).collect();
        self.absorb(texts, &mut errors);
        self.record_changes(tracker, &mut errors);
        errors
    }

    /// Parses the files whose text changed; whether any did.
    fn absorb(&mut self, texts: Vec<(PathBuf, std::io::Result<String>)>, errors: &mut ScanErrors) -> bool {
        let mut changed = false;
        for (path, text) in texts {
            let text = match text {
                Ok(text) => text,
                Err(e) => {
                    errors.push(format!("{}: cannot read: {e}; keeping its last good objects", path.display()));
                    continue;
                }
            };
            let text_hash = {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                text.hash(&mut h);
                h.finish()
            };
            if self.files.get(&path).is_some_and(|f| f.text_hash == text_hash) {
                continue;
            }
            match parse_manifests(&text) {
                Ok(objects) => {
                    let entries = objects.iter().filter_map(|o| self.admit(o)).collect();
                    self.files.insert(path, FileState { text_hash, entries });
                    changed = true;
                }
                Err(e) => {
                    errors.push(format!("{}:{}: {}; keeping its last good objects", path.display(), e.line, e.message))
                }
            }
        }
        changed
    }

    fn admit(&self, object: &ManifestObject) -> Option<Entry> {
        Some(match object {
            ManifestObject::Service(s) => {
                let (ns, name) = names(&s.metadata);
                Entry::Service(ServiceName::new(ns, name), ServiceSpec::admit(s))
            }
            ManifestObject::EndpointSlice(s) => {
                let (ns, name) = names(&s.metadata);
                Entry::Slice(SliceName::new(ns, name), SliceSpec::admit(s))
            }
            ManifestObject::Node(n) if n.metadata.name.as_deref() == Some(self.node_name.as_str()) => {
                Entry::Node(NodeSpec::admit(n))
            }
            ManifestObject::Node(_) => return None,
        })
    }

    fn record_changes(&mut self, tracker: &ChangeTracker, errors: &mut ScanErrors) {
        let mut union: HashMap<EntryKey, (u64, &Entry, &Path)> = HashMap::new();
        for (path, file) in &self.files {
            for entry in &file.entries {
                let key = entry.key();
                if let Some((_, _, first)) = union.get(&key) {
                    errors.push(format!(
                        "{} is in both {} and {}; the latter is used",
                        describe(&key),
                        first.display(),
                        path.display()
                    ));
                }
                union.insert(key, (entry.fingerprint(), entry, path));
            }
        }
        for (key, (fingerprint, entry, _)) in &union {
            if self.recorded.get(key) != Some(fingerprint) {
                entry.record(tracker);
            }
        }
        for key in self.recorded.keys().filter(|k| !union.contains_key(*k)) {
            match key {
                EntryKey::Service(n) => tracker.service(n.clone(), None),
                EntryKey::Slice(n) => tracker.slice(n.clone(), None),
                EntryKey::Node => tracker.node(None),
            }
        }
        self.recorded = union.into_iter().map(|(k, (f, _, _))| (k, f)).collect();
    }
}

fn names(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (&str, &str) {
    (meta.namespace.as_deref().unwrap_or("default"), meta.name.as_deref().unwrap_or(""))
}

/// The manifest files directly in `dir`, sorted.
fn manifest_paths(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_manifest = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"));
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if is_manifest && !hidden && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Runs the file source until the process ends: a first scan (after which both lists
/// count as complete), then a rescan on every file event and every [`RESCAN_INTERVAL`].
pub async fn run_file_source(dir: PathBuf, node_name: String, tracker: Arc<ChangeTracker>) {
    let mut source = ManifestDir::new(&dir, &node_name);
    let report = |errors: ScanErrors| {
        for e in errors {
            error!("{e}");
        }
    };
    report(source.scan(&tracker));
    tracker.listed(ListKind::Services);
    tracker.listed(ListKind::EndpointSlices);
    info!(dir = %dir.display(), "manifests read");

    let (tx, mut rx) = mpsc::channel::<()>(1);
    let watcher = watch_dir(&dir, tx);
    if watcher.is_none() {
        warn!(dir = %dir.display(), "cannot watch the directory for changes; rescanning every {RESCAN_INTERVAL:?}");
    }
    loop {
        tokio::select! {
            Some(()) = rx.recv() => {
                // Let a burst of writes (an editor saving, a copy) settle.
                tokio::time::sleep(Duration::from_millis(30)).await;
                while rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(RESCAN_INTERVAL) => {}
        }
        report(source.scan(&tracker));
    }
}

fn watch_dir(dir: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // A full channel already holds a wake-up: dropping this one loses nothing.
            let _ = tx.try_send(());
        }
    })
    .ok()?;
    watcher.watch(dir, notify::RecursiveMode::NonRecursive).ok()?;
    Some(watcher)
}

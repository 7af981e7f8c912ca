//! Data sources: image folders, IDX files, feature caches.

//! Retention: a camera's finished segments, oldest first, deleted while
//! they are older than `keep` or take more than `max_bytes` together.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A finished segment: its path, size and modification time.
struct Found {
    path: PathBuf,
    size: u64,
    modified: SystemTime,
}

/// Day folders, then files, in name order: oldest first, as names are
/// dates and times.
fn sorted(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    v.sort();
    v
}

fn segments(dir: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    for day in sorted(dir).into_iter().filter(|d| d.is_dir()) {
        for f in sorted(&day) {
            let visible = f.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.') && n.ends_with(".mp4"));
            if let (true, Ok(m)) = (visible, f.metadata())
                && m.is_file()
            {
                out.push(Found { size: m.len(), modified: m.modified().unwrap_or(SystemTime::now()), path: f });
            }
        }
    }
    out
}

/// `.NAME.rec` files left unfinished under `dir`.
pub fn unfinished(dir: &Path) -> Vec<PathBuf> {
    sorted(dir)
        .into_iter()
        .filter(|d| d.is_dir())
        .flat_map(|d| sorted(&d))
        .filter(|f| super::mp4::final_path(f).is_some())
        .collect()
}

/// Delete the oldest segments until the rest are within `keep` and
/// `max_bytes`; `current`, the one being written, is never deleted. Day
/// folders left empty go too.
pub fn prune(dir: &Path, keep: Option<Duration>, max_bytes: Option<u64>, current: Option<&Path>) {
    let found = segments(dir);
    let mut total: u64 = found.iter().map(|f| f.size).sum();
    let now = SystemTime::now();
    for f in &found {
        let too_old = keep.is_some_and(|k| now.duration_since(f.modified).unwrap_or_default() > k);
        let too_big = max_bytes.is_some_and(|m| total > m);
        if !(too_old || too_big) || Some(f.path.as_path()) == current {
            continue;
        }
        match std::fs::remove_file(&f.path) {
            Ok(()) => {
                total -= f.size;
                tracing::info!(file = %f.path.display(), "deleted by retention ({})", if too_old { "too old" } else { "over the size limit" });
            }
            Err(e) => tracing::warn!(file = %f.path.display(), "retention cannot delete: {e}"),
        }
    }
    for day in sorted(dir).into_iter().filter(|d| d.is_dir()) {
        // Fails, as it should, unless empty.
        let _ = std::fs::remove_dir(&day);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_oldest_first_within_limits() {
        let dir = tempfile::tempdir().unwrap();
        let write = |day: &str, name: &str, len: usize| {
            std::fs::create_dir_all(dir.path().join(day)).unwrap();
            std::fs::write(dir.path().join(day).join(name), vec![0u8; len]).unwrap();
        };
        write("2026-11-30", "23-50-00.mp4", 100);
        write("2026-12-01", "00-00-00.mp4", 100);
        write("2026-12-01", "00-10-00.mp4", 100);
        write("2026-12-01", ".00-20-00.mp4.rec", 500);
        prune(dir.path(), None, Some(250), None);
        let left: Vec<String> = segments(dir.path()).iter().map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(left, ["00-00-00.mp4", "00-10-00.mp4"]);
        assert!(!dir.path().join("2026-11-30").exists(), "an emptied day folder goes");
        assert_eq!(unfinished(dir.path()).len(), 1, "a file being written is not a segment");
        // Age: everything here is new, then everything is old.
        prune(dir.path(), Some(Duration::from_secs(3600)), None, None);
        assert_eq!(segments(dir.path()).len(), 2);
        std::thread::sleep(Duration::from_millis(20));
        let current = dir.path().join("2026-12-01/00-10-00.mp4");
        prune(dir.path(), Some(Duration::from_millis(1)), None, Some(&current));
        assert_eq!(segments(dir.path()).iter().map(|f| f.path.clone()).collect::<Vec<_>>(), [current]);
    }
}

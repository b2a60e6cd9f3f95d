//! Files the daemons write whole and must never leave half-written: keys,
//! certificates, tokens, kubeconfigs, configuration. Each is written to a
//! temporary file beside it (`tempfile`), synced, and renamed over it.

use std::io::Write;
use std::path::Path;

/// Who may read a file [`write_atomic`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The owner only (0600): keys, tokens, anything holding a secret.
    Private,
    /// Everyone may read (0644): certificates, CA bundles.
    Public,
    /// Everyone may read and run (0755): an installed binary.
    Executable,
}

/// Replaces `path` with `bytes` atomically: a synced temporary file in the
/// same directory, renamed over it. Missing parent directories are created
/// (with the default mode; see [`create_private_dir`] for 0700 ones).
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    // tempfile creates the file 0600; others are opened up before
    // anything is written to it.
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match access {
            Access::Private => None,
            Access::Public => Some(0o644),
            Access::Executable => Some(0o755),
        };
        if let Some(mode) = mode {
            file.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
    }
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|err| err.error)?;
    Ok(())
}

/// Creates `dir` and its missing parents, the new ones readable by the
/// owner only (0700).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_replace_whole_files_with_the_asked_mode() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("a/b/key.pem");
        write_atomic(&key, b"one", Access::Private).unwrap();
        write_atomic(&key, b"two", Access::Private).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"two");
        assert_eq!(mode(&key), 0o600);
        let cert = dir.path().join("a/b/cert.pem");
        write_atomic(&cert, b"cert", Access::Public).unwrap();
        assert_eq!(mode(&cert), 0o644);
        let bin = dir.path().join("a/b/tool");
        write_atomic(&bin, b"#!", Access::Executable).unwrap();
        assert_eq!(mode(&bin), 0o755);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "no temporary file left: {names:?}");
    }

    #[test]
    fn private_dirs_are_0700() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("x/y");
        create_private_dir(&private).unwrap();
        assert_eq!(mode(&private), 0o700);
        create_private_dir(&private).unwrap();
    }
}

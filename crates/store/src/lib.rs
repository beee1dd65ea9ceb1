//! Durable objects: every Job, Pod, Event and controller record, as JSON in SQLite (WAL),
//! each write stamped with a monotonic `resourceVersion`. Writes are grouped into
//! [`Batch`]es, one transaction each, so many pods finishing at once cost one commit.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("state database: simulated crash")]
    Crashed,
}

/// Where a simulated crash strikes a commit, for crash tests of the code above the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// The process dies before the transaction commits: nothing of it is stored.
    BeforeCommit,
    /// The process dies right after the commit, before anyone hears of it.
    AfterCommit,
}

/// One stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub resource_version: i64,
    pub body: String,
}

/// One change to the store: an object written, or deleted at a resourceVersion of its own
/// (what a watcher sees as the object's last version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    Put(Record),
    Delete {
        kind: String,
        namespace: String,
        name: String,
        resource_version: i64,
    },
}

impl Write {
    pub fn resource_version(&self) -> i64 {
        match self {
            Write::Put(record) => record.resource_version,
            Write::Delete {
                resource_version, ..
            } => *resource_version,
        }
    }
}

/// Writes that commit together.
#[derive(Debug, Default)]
pub struct Batch {
    writes: Vec<Write>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn put(&mut self, record: Record) {
        self.writes.push(Write::Put(record));
    }

    /// Appends another batch's writes after this one's.
    pub fn append(&mut self, other: Batch) {
        self.writes.extend(other.writes);
    }

    pub fn delete(&mut self, kind: &str, namespace: &str, name: &str, resource_version: i64) {
        self.writes.push(Write::Delete {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            resource_version,
        });
    }

    pub fn into_writes(self) -> Vec<Write> {
        self.writes
    }
}

/// What a commit survives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// A power loss or kernel crash: every commit is on the disk (fsync) before it
    /// returns (`synchronous=FULL`).
    #[default]
    PowerLoss,
    /// A crash of the process only: the last commits may be lost with the machine, the
    /// database is never corrupted (`synchronous=NORMAL`).
    ProcessCrash,
}

pub struct Store {
    conn: Connection,
    resource_version: i64,
    /// A simulated crash: at which commit (counting from 1 when set), and where.
    crash: Option<(u64, CrashPoint)>,
    commits: u64,
}

// A rowid table: bodies of a kilobyte or more are what WITHOUT ROWID handles badly.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    resource_version INTEGER NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
";

impl Store {
    /// Opens (creating if needed) the database at `path`, in WAL mode, its commits as
    /// durable as `durability` says.
    pub fn open(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_error)?;
        let synchronous = match durability {
            Durability::PowerLoss => "FULL",
            Durability::ProcessCrash => "NORMAL",
        };
        // A 4 MiB page cache holds what writes touch (the key index, the newest rows); the
        // rest the OS caches. 16 MiB ran no faster and added 8 MiB to a 10,000-pod run's peak.
        conn.execute_batch(&format!(
            "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; PRAGMA busy_timeout=5000;
             PRAGMA cache_size=-4096; PRAGMA wal_autocheckpoint=4096;"
        ))
        .map_err(open_error)?;
        conn.execute_batch(SCHEMA).map_err(open_error)?;
        let stored: Option<i64> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'resource_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(Store {
            conn,
            resource_version: stored.unwrap_or(0),
            crash: None,
            commits: 0,
        })
    }

    /// The highest resourceVersion committed so far. The writer of new objects numbers
    /// them above it; the store only remembers the highest it was given.
    pub fn resource_version(&self) -> i64 {
        self.resource_version
    }

    /// Simulates a crash at the `nth` commit from now: it and every later one fail (with
    /// [`StoreError::Crashed`]), as if the process had died there.
    pub fn crash_at_commit(&mut self, nth: u64, point: CrashPoint) {
        self.commits = 0;
        self.crash = Some((nth.max(1), point));
    }

    /// Commits a batch in one transaction.
    pub fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.commits += 1;
        match self.crash {
            Some((nth, _)) if self.commits > nth => Err(StoreError::Crashed),
            Some((nth, CrashPoint::BeforeCommit)) if self.commits == nth => {
                Err(StoreError::Crashed)
            }
            Some((nth, CrashPoint::AfterCommit)) if self.commits == nth => {
                self.write(batch)?;
                Err(StoreError::Crashed)
            }
            _ => self.write(batch),
        }
    }

    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        for write in &batch.writes {
            self.resource_version = self.resource_version.max(write.resource_version());
        }
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                // An update in place: REPLACE would delete the row and append it anew,
                // dirtying two leaves and the index per write.
                "INSERT INTO objects (kind, namespace, name, resource_version, body) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, namespace, name) DO UPDATE SET resource_version = excluded.resource_version, body = excluded.body",
            )?;
            let mut delete = tx.prepare_cached(
                "DELETE FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
            )?;
            for write in &batch.writes {
                match write {
                    Write::Put(r) => {
                        put.execute(params![
                            r.kind,
                            r.namespace,
                            r.name,
                            r.resource_version,
                            r.body
                        ])?;
                    }
                    Write::Delete {
                        kind,
                        namespace,
                        name,
                        ..
                    } => {
                        delete.execute(params![kind, namespace, name])?;
                    }
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('resource_version', ?1)",
                params![self.resource_version],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// One stored object.
    pub fn get(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Record>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, namespace, name, resource_version, body FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
        )?;
        Ok(stmt
            .query_row(params![kind, namespace, name], row_record)
            .optional()?)
    }

    /// Every stored object of one kind, in resourceVersion order.
    pub fn list(&self, kind: &str) -> Result<Vec<Record>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, namespace, name, resource_version, body FROM objects WHERE kind = ?1 ORDER BY resource_version",
        )?;
        let rows = stmt.query_map(params![kind], row_record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn row_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        kind: row.get(0)?,
        namespace: row.get(1)?,
        name: row.get(2)?,
        resource_version: row.get(3)?,
        body: row.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(rv: i64, kind: &str, name: &str, body: &str) -> Record {
        Record {
            kind: kind.into(),
            namespace: "default".into(),
            name: name.into(),
            resource_version: rv,
            body: body.into(),
        }
    }

    #[test]
    fn objects_and_resource_versions_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let mut store = Store::open(&path, Durability::PowerLoss).unwrap();
            let mut batch = Batch::default();
            batch.put(record(1, "Job", "a", "{\"v\":1}"));
            batch.put(record(2, "Pod", "p1", "{}"));
            batch.put(record(3, "Pod", "p2", "{}"));
            store.commit(&batch).unwrap();
            let mut batch = Batch::default();
            batch.put(record(4, "Job", "a", "{\"v\":2}"));
            let mut later = Batch::default();
            later.delete("Pod", "default", "p1", 5);
            batch.append(later);
            store.commit(&batch).unwrap();
        }
        let store = Store::open(&path, Durability::PowerLoss).unwrap();
        assert_eq!(
            store.resource_version(),
            5,
            "deletions count; never goes back after a restart"
        );
        let jobs = store.list("Job").unwrap();
        assert_eq!(
            (jobs.len(), jobs[0].body.as_str(), jobs[0].resource_version),
            (1, "{\"v\":2}", 4)
        );
        let pods: Vec<String> = store
            .list("Pod")
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(pods, ["p2"]);
    }

    #[test]
    fn power_loss_durability_syncs_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        for (durability, level) in [(Durability::PowerLoss, 2), (Durability::ProcessCrash, 1)] {
            let store = Store::open(&dir.path().join("state.db"), durability).unwrap();
            let synchronous: i64 = store
                .conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!(synchronous, level, "{durability:?}: FULL is 2, NORMAL 1");
        }
    }

    #[test]
    fn an_unreadable_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let error = Store::open(&path, Durability::PowerLoss)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.starts_with(&format!("state database {}", path.display())),
            "{error}"
        );
    }
}

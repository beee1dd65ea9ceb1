//! Deterministic pod names and UIDs: the n-th pod a Job creates always has the same name,
//! so a controller that crashed between recording a pod and starting it never creates a
//! second one (style.md practice 3).

/// The characters the API server draws `generateName` suffixes from.
const ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";
/// 27^5: every 5-character suffix.
const SUFFIXES: u64 = 14_348_907;
/// Coprime with 27, so `seq × MULTIPLIER mod SUFFIXES` visits every suffix once: names look
/// random, yet the first 14 million pods of a Job never collide.
const MULTIPLIER: u64 = 7_368_787;
const OFFSET: u64 = 1_234_567;
const MAX_GENERATED_PREFIX: usize = 58;

fn suffix(seq: u64, salt: u64) -> String {
    let mut n = ((seq + salt) % SUFFIXES * MULTIPLIER + OFFSET) % SUFFIXES;
    let mut out = [0u8; 5];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 27) as usize];
        n /= 27;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// FNV-1a of the Job's UID: two Jobs of the same name get different pod names.
fn salt(job_uid: &str) -> u64 {
    job_uid.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ byte as u64).wrapping_mul(0x100_0000_01b3)
    }) % SUFFIXES
}

/// `<job>-<suffix>`, or `<job>-<index>-<suffix>` for Indexed Jobs, with the prefix cut to
/// 58 characters as the API server cuts `generateName` (keeping `-<index>-` intact).
pub fn pod_name(job_name: &str, job_uid: &str, index: Option<i32>, seq: u64) -> String {
    let prefix = match index {
        None => {
            let cut = job_name.len().min(MAX_GENERATED_PREFIX - 1);
            format!("{}-", &job_name[..cut])
        }
        Some(i) => {
            let tail = format!("-{i}-");
            let cut = job_name
                .len()
                .min(MAX_GENERATED_PREFIX.saturating_sub(tail.len()));
            format!("{}{tail}", &job_name[..cut])
        }
    };
    format!("{prefix}{}", suffix(seq, salt(job_uid)))
}

/// The pod's UID: the Job's UID with its last 12 hex digits replaced by the sequence
/// number, so it is unique per Job and derived, not drawn.
pub fn pod_uid(job_uid: &str, seq: u64) -> String {
    let head = job_uid.get(..24).unwrap_or(job_uid);
    format!("{head}{:012x}", seq & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_use_the_generate_name_alphabet() {
        let names: HashSet<String> = (0..100_000)
            .map(|s| pod_name("job", "uid", None, s))
            .collect();
        assert_eq!(names.len(), 100_000);
        let name = pod_name("job", "uid", None, 7);
        assert_ne!(name, pod_name("job", "other-uid", None, 7));
        assert!(name.starts_with("job-") && name.len() == 9);
        assert!(name[4..].bytes().all(|b| ALPHABET.contains(&b)));
    }

    #[test]
    fn long_names_are_cut_keeping_the_index() {
        let long = "a".repeat(70);
        let name = pod_name(&long, "uid", Some(12), 0);
        assert!(name.starts_with(&"a".repeat(54)));
        assert_eq!(&name[54..58], "-12-");
        assert_eq!(name.len(), 63);
    }

    #[test]
    fn uids_follow_the_job_uid() {
        let uid = pod_uid("0f8f3c58-2b36-4bd5-9a1e-5d2f8f1b2c3d", 255);
        assert_eq!(uid, "0f8f3c58-2b36-4bd5-9a1e-0000000000ff");
    }
}

//! Barrier tests for the store, after Vault's: what is on disk reveals nothing, and any change
//! to it is detected.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;

use super::store::{FORMAT, LEGACY_KEY_CHECK, StoreFile, VERSION, key_check, seal_record};
use super::*;

const CANARY: &[u8] = b"canary-4f1c9e-plaintext-value";

fn key(byte: u8) -> SecretKey {
    SecretKey::from_bytes(&[byte; 32]).unwrap()
}

fn store_with(home: &Path, project: &str, master: &SecretKey, names: &[&str]) -> Store {
    let mut store = Store::open(home, project, master.clone()).unwrap();
    for name in names {
        store.set(name, &SecretValue::new([CANARY, name.as_bytes()].concat())).unwrap();
    }
    store
}

fn edit(path: &Path, change: impl FnOnce(&mut Value)) {
    let mut json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    change(&mut json);
    std::fs::write(path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

fn get(home: &Path, project: &str, master: &SecretKey, name: &str) -> Result<SecretValue, StoreError> {
    Store::open(home, project, master.clone())?.get(name)
}

#[test]
fn the_file_never_holds_the_plaintext_and_round_trips() {
    let home = tempfile::tempdir().unwrap();
    let master = SecretKey::random();
    let store = store_with(home.path(), "demo", &master, &["A", "B"]);
    let bytes = std::fs::read(store.path()).unwrap();
    assert!(!bytes.windows(CANARY.len()).any(|w| w == CANARY));
    let b64 = STANDARD.encode(CANARY);
    assert!(!String::from_utf8_lossy(&bytes).contains(&b64[..20]));
    assert_eq!(get(home.path(), "demo", &master, "B").unwrap().expose_secret(), [CANARY, b"B"].concat());
}

#[test]
fn flipping_any_byte_of_a_record_fails_decryption() {
    let home = tempfile::tempdir().unwrap();
    let master = SecretKey::random();
    let path = store_with(home.path(), "demo", &master, &["TOKEN"]).path().to_owned();
    let original = std::fs::read(&path).unwrap();
    let mut checked = 0;
    for (field, part) in [("value", "ciphertext"), ("value", "nonce"), ("wrapped_key", "ciphertext"), ("wrapped_key", "nonce")] {
        let json: Value = serde_json::from_slice(&original).unwrap();
        let len = STANDARD.decode(json["secrets"]["TOKEN"][field][part].as_str().unwrap()).unwrap().len();
        for i in 0..len {
            for bit in [0x01u8, 0x80] {
                std::fs::write(&path, &original).unwrap();
                edit(&path, |j| {
                    let slot = &mut j["secrets"]["TOKEN"][field][part];
                    let mut raw = STANDARD.decode(slot.as_str().unwrap()).unwrap();
                    raw[i] ^= bit;
                    *slot = Value::String(STANDARD.encode(raw));
                });
                let err = get(home.path(), "demo", &master, "TOKEN").unwrap_err();
                assert!(matches!(err, StoreError::Tampered(ref n) if n == "TOKEN"), "{field}.{part}[{i}]: {err}");
                checked += 1;
            }
        }
    }
    assert!(checked > 2 * (12 + 12 + 48 + 16), "{checked}");
    std::fs::write(&path, &original).unwrap();
    edit(&path, |j| j["secrets"]["TOKEN"]["version"] = Value::from(2));
    assert!(matches!(get(home.path(), "demo", &master, "TOKEN"), Err(StoreError::Tampered(_))));
    std::fs::write(&path, &original).unwrap();
    assert_eq!(get(home.path(), "demo", &master, "TOKEN").unwrap().expose_secret(), [CANARY, b"TOKEN"].concat());
}

#[test]
fn records_moved_to_another_name_or_project_fail() {
    let home = tempfile::tempdir().unwrap();
    let master = SecretKey::random();
    let one = store_with(home.path(), "one", &master, &["A", "B"]).path().to_owned();
    edit(&one, |j| j["secrets"]["B"] = j["secrets"]["A"].clone());
    assert!(matches!(get(home.path(), "one", &master, "B"), Err(StoreError::Tampered(_))));
    assert!(get(home.path(), "one", &master, "A").is_ok());

    let two = store_with(home.path(), "two", &master, &["C"]).path().to_owned();
    let record = serde_json::from_slice::<Value>(&std::fs::read(&one).unwrap()).unwrap()["secrets"]["A"].clone();
    edit(&two, |j| j["secrets"]["A"] = record);
    assert!(matches!(get(home.path(), "two", &master, "A"), Err(StoreError::Tampered(_))));

    std::fs::copy(&one, &two).unwrap();
    assert!(matches!(Store::open(home.path(), "two", master.clone()), Err(StoreError::OtherProject { .. })));
}

#[test]
fn a_wrong_master_key_fails_the_key_check() {
    let home = tempfile::tempdir().unwrap();
    store_with(home.path(), "demo", &key(1), &["A"]);
    let err = Store::open(home.path(), "demo", key(2)).unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
    assert!(err.to_string().contains("GALLEY_MASTER_KEY") && err.to_string().contains("key check"), "{err}");
}

#[test]
fn the_master_key_never_appears_in_the_store() {
    let home = tempfile::tempdir().unwrap();
    let master = SecretKey::random();
    let store = store_with(home.path(), "demo", &master, &["A", "B", "C"]);
    let bytes = std::fs::read(store.path()).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let raw = master.expose();
    assert!(!bytes.windows(32).any(|w| w == raw));
    for form in [hex::encode(raw), hex::encode_upper(raw), STANDARD.encode(raw), STANDARD_NO_PAD.encode(raw), URL_SAFE.encode(raw), URL_SAFE_NO_PAD.encode(raw)] {
        assert!(!text.contains(&form[..24]), "{form}");
    }
}

#[test]
fn rotation_keeps_every_value_and_retires_the_old_key() {
    let home = tempfile::tempdir().unwrap();
    let (old, new) = (key(1), key(2));
    let mut store = store_with(home.path(), "demo", &old, &["A", "B", "C"]);
    let before = store.list();
    assert_eq!(store.rotate(new.clone()).unwrap(), 3);
    assert!(matches!(Store::open(home.path(), "demo", old), Err(StoreError::WrongMasterKey { .. })));
    let reopened = Store::open(home.path(), "demo", new.clone()).unwrap();
    assert_eq!(reopened.list(), before);
    for name in ["A", "B", "C"] {
        assert_eq!(reopened.get(name).unwrap().expose_secret(), [CANARY, name.as_bytes()].concat());
    }
    assert!(matches!(store.rotate(new), Err(StoreError::SameKey)));
}

#[test]
fn a_failed_rotation_leaves_the_old_store_untouched() {
    let home = tempfile::tempdir().unwrap();
    let old = key(1);
    let path = store_with(home.path(), "demo", &old, &["A", "B"]).path().to_owned();
    edit(&path, |j| j["secrets"]["B"]["wrapped_key"] = j["secrets"]["A"]["wrapped_key"].clone());
    let before = std::fs::read(&path).unwrap();
    let mut store = Store::open(home.path(), "demo", old.clone()).unwrap();
    assert!(matches!(store.rotate(key(2)), Err(StoreError::Tampered(ref n)) if n == "B"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(get(home.path(), "demo", &old, "A").is_ok());
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}"); // the store and its lock file
}

#[test]
fn the_store_is_owner_only_from_creation() {
    let home = tempfile::tempdir().unwrap();
    let mut store = store_with(home.path(), "demo", &key(1), &["A"]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(mode(store.path().parent().unwrap()), 0o700);
    store.set("B", &SecretValue::new(b"x".to_vec())).unwrap();
    store.remove("A").unwrap();
    assert_eq!(mode(store.path()), 0o600);
}

#[test]
fn unknown_versions_and_garbage_are_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    let path = store_with(home.path(), "demo", &key(1), &["A"]).path().to_owned();
    edit(&path, |j| j["version"] = Value::from(9));
    let err = Store::open(home.path(), "demo", key(1)).unwrap_err();
    assert!(matches!(err, StoreError::UnknownVersion { found: 9, .. }), "{err}");
    assert!(err.to_string().contains("format version 9"), "{err}");
    std::fs::write(&path, b"{").unwrap();
    assert!(matches!(Store::open(home.path(), "demo", key(1)), Err(StoreError::Corrupt { .. })));
}

#[test]
fn set_updates_versions_and_remove_forgets() {
    let home = tempfile::tempdir().unwrap();
    let mut store = Store::open(home.path(), "demo", key(1)).unwrap();
    assert!(!store.exists());
    assert_eq!(store.set("A", &SecretValue::new(b"1".to_vec())).unwrap(), 1);
    assert_eq!(store.set("A", &SecretValue::new(b"2".to_vec())).unwrap(), 2);
    assert_eq!(get(home.path(), "demo", &key(1), "A").unwrap().expose_secret(), b"2");
    store.remove("A").unwrap();
    assert!(matches!(store.remove("A"), Err(StoreError::NotFound(_))));
    assert!(matches!(store.set("../x", &SecretValue::new(b"1".to_vec())), Err(StoreError::BadName(_))));
    assert!(matches!(Store::open(home.path(), "../up", key(1)), Err(StoreError::ProjectName(_))));
}

#[test]
fn times_are_rfc3339_utc() {
    assert_eq!(store::rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(store::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(store::rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
}

#[test]
fn a_single_record_rolled_back_to_an_older_copy_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let master = key(7);
    let mut store = store_with(home.path(), "demo", &master, &["A", "B"]);
    let old_a =
        serde_json::from_slice::<Value>(&std::fs::read(store.path()).unwrap()).unwrap()["secrets"]
            ["A"]
            .clone();
    store
        .set("A", &SecretValue::new(b"rotated-value".to_vec()))
        .unwrap();
    let path = store.path().to_owned();
    edit(&path, |j| j["secrets"]["A"] = old_a.clone());
    let err = get(home.path(), "demo", &master, "A").unwrap_err();
    assert!(
        matches!(err, StoreError::RolledBack { ref name, .. } if name == "A"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("version 1 found, the store's index says version 2"),
        "{err}"
    );
    assert!(err.help().unwrap().contains("galley secret set"));
    assert!(
        get(home.path(), "demo", &master, "B").is_ok(),
        "the other records stay usable"
    );
    // A change to another name does not bless the rolled-back record, nor does a rotation.
    let mut store = Store::open(home.path(), "demo", master.clone()).unwrap();
    let err = store
        .set("B", &SecretValue::new(b"b2".to_vec()))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RolledBack { ref name, .. } if name == "A"),
        "{err}"
    );
    assert!(matches!(
        store.rotate(key(8)),
        Err(StoreError::RolledBack { .. })
    ));
    // Setting the name again repairs it.
    store
        .set("A", &SecretValue::new(b"repaired".to_vec()))
        .unwrap();
    assert_eq!(
        get(home.path(), "demo", &master, "A")
            .unwrap()
            .expose_secret(),
        b"repaired"
    );
}

#[test]
fn a_record_rolled_back_after_remove_and_set_or_removed_or_added_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let master = key(7);
    let mut store = store_with(home.path(), "demo", &master, &["A", "B"]);
    let path = store.path().to_owned();
    let old_a = serde_json::from_slice::<Value>(&std::fs::read(&path).unwrap()).unwrap()["secrets"]
        ["A"]
        .clone();
    // Removed and set again: version 1 once more, but another record.
    store.remove("A").unwrap();
    store
        .set("A", &SecretValue::new(b"new-a".to_vec()))
        .unwrap();
    edit(&path, |j| j["secrets"]["A"] = old_a.clone());
    let err = get(home.path(), "demo", &master, "A").unwrap_err();
    assert!(
        err.to_string().contains("version 1 but not its contents"),
        "{err}"
    );
    // Removed behind galley's back.
    store
        .set("A", &SecretValue::new(b"new-a".to_vec()))
        .unwrap();
    edit(&path, |j| {
        drop(j["secrets"].as_object_mut().unwrap().remove("B"))
    });
    let err = get(home.path(), "demo", &master, "B").unwrap_err();
    assert!(err.to_string().contains("was removed"), "{err}");
    // Removed by galley, then put back from an older copy.
    let mut store = Store::open(home.path(), "demo", master.clone()).unwrap();
    store.set("B", &SecretValue::new(b"b".to_vec())).unwrap();
    store.set("C", &SecretValue::new(b"c".to_vec())).unwrap();
    let old_c = serde_json::from_slice::<Value>(&std::fs::read(&path).unwrap()).unwrap()["secrets"]
        ["C"]
        .clone();
    store.remove("C").unwrap();
    edit(&path, |j| j["secrets"]["C"] = old_c.clone());
    let err = get(home.path(), "demo", &master, "C").unwrap_err();
    assert!(err.to_string().contains("the index does not list"), "{err}");
}

#[test]
fn stripping_or_altering_the_index_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let master = key(7);
    let path = store_with(home.path(), "demo", &master, &["A"])
        .path()
        .to_owned();
    let original = std::fs::read(&path).unwrap();
    edit(&path, |j| drop(j.as_object_mut().unwrap().remove("index")));
    let err = Store::open(home.path(), "demo", master.clone()).unwrap_err();
    assert!(matches!(err, StoreError::IndexRemoved { .. }), "{err}");
    std::fs::write(&path, &original).unwrap();
    edit(&path, |j| {
        let slot = &mut j["index"]["ciphertext"];
        let mut raw = STANDARD.decode(slot.as_str().unwrap()).unwrap();
        raw[0] ^= 1;
        *slot = Value::String(STANDARD.encode(raw));
    });
    let err = Store::open(home.path(), "demo", master).unwrap_err();
    assert!(
        err.to_string().contains("the index failed authentication"),
        "{err}"
    );
}

#[test]
fn a_store_written_before_the_index_opens_and_gains_one_on_the_next_change() {
    let home = tempfile::tempdir().unwrap();
    let master = key(7);
    let path = Store::path_for(home.path(), "demo").unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let value = SecretValue::new(CANARY.to_vec());
    let legacy = StoreFile {
        format: FORMAT.into(),
        version: VERSION.into(),
        project: "demo".into(),
        key_check: key_check(&master, "demo", LEGACY_KEY_CHECK),
        secrets: [(
            "A".to_owned(),
            seal_record(&master, "demo", "A", 1, &value, "t".into(), "t".into()),
        )]
        .into(),
        index: None,
    };
    std::fs::write(&path, serde_json::to_vec(&legacy).unwrap()).unwrap();
    let mut store = Store::open(home.path(), "demo", master.clone()).unwrap();
    assert_eq!(store.get("A").unwrap().expose_secret(), CANARY);
    store.set("B", &SecretValue::new(b"b".to_vec())).unwrap();
    let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(
        json.get("index").is_some(),
        "the next change writes an index"
    );
    assert_eq!(
        get(home.path(), "demo", &master, "A")
            .unwrap()
            .expose_secret(),
        CANARY
    );
}

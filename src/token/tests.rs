//! Unit tests of API tokens: expiry, revocation, rotation, scopes and what the file keeps.

use super::*;

const T0: u64 = 1_800_000_000;

fn at(home: &Path, secs: u64) -> Tokens {
    Tokens::open(home, Clock::fixed(secs))
}

#[test]
fn a_created_token_authenticates_until_it_expires() {
    let home = tempfile::tempdir().unwrap();
    let (record, token) = at(home.path(), T0).create("aaaa", "ci", Scope::PreviewsRead, Duration::from_secs(3600)).unwrap();
    assert_eq!(record.expires, Time(T0 + 3600));
    let ok = at(home.path(), T0 + 10).authenticate(token.expose()).unwrap().unwrap();
    assert_eq!((ok.id.as_str(), ok.last_used), ("aaaa", Some(Time(T0 + 10))));
    assert_eq!(at(home.path(), T0 + 3600).authenticate(token.expose()).unwrap(), Err(Refusal::Expired));
}

#[test]
fn token_one_character_different_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let (_, token) = at(home.path(), T0).create("aaaa", "ci", Scope::Admin, Duration::from_secs(60)).unwrap();
    let mut other = token.expose().to_owned().into_bytes();
    other[10] = if other[10] == b'x' { b'y' } else { b'x' };
    let other = String::from_utf8(other).unwrap();
    assert!(matches!(at(home.path(), T0).authenticate(&other).unwrap(), Err(Refusal::Malformed(_))));
    // A well-formed token that was never issued.
    let stranger = Token::generate();
    assert_eq!(at(home.path(), T0).authenticate(stranger.expose()).unwrap(), Err(Refusal::Unknown));
}

#[test]
fn revoked_tokens_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let (_, token) = at(home.path(), T0).create("aaaa", "ci", Scope::Admin, Duration::from_secs(60)).unwrap();
    at(home.path(), T0).revoke("aaaa").unwrap();
    assert_eq!(at(home.path(), T0 + 1).authenticate(token.expose()).unwrap(), Err(Refusal::Revoked));
    assert!(matches!(at(home.path(), T0).revoke("aaaa"), Err(TokenError::AlreadyRevoked(_))));
    assert!(matches!(at(home.path(), T0).revoke("nope"), Err(TokenError::UnknownId(_))));
}

#[test]
fn a_rotated_token_works_during_its_grace_and_not_after() {
    let home = tempfile::tempdir().unwrap();
    let (_, old) = at(home.path(), T0).create("aaaa", "ci", Scope::PreviewsWrite, Duration::from_secs(86_400)).unwrap();
    let (new_record, new) = at(home.path(), T0 + 100).rotate("aaaa", "bbbb", Duration::from_secs(600)).unwrap();
    assert_eq!((new_record.scope, new_record.expires), (Scope::PreviewsWrite, Time(T0 + 100 + 86_400)));
    assert!(at(home.path(), T0 + 699).authenticate(old.expose()).unwrap().is_ok());
    assert_eq!(at(home.path(), T0 + 700).authenticate(old.expose()).unwrap(), Err(Refusal::Expired));
    assert_eq!(at(home.path(), T0 + 700).authenticate(new.expose()).unwrap().unwrap().id, "bbbb");
}

#[test]
fn expiry_is_mandatory_and_capped() {
    let home = tempfile::tempdir().unwrap();
    let t = at(home.path(), T0);
    assert!(matches!(t.create("a", "ci", Scope::Admin, Duration::ZERO), Err(TokenError::Ttl(_))));
    assert!(matches!(t.create("a", "ci", Scope::Admin, MAX_TTL + Duration::from_secs(1)), Err(TokenError::Ttl(_))));
    assert!(t.create("a", "ci", Scope::Admin, MAX_TTL).is_ok());
    assert!(matches!(t.create("b", "bad name", Scope::Admin, MAX_TTL), Err(TokenError::Name(_))));
}

#[test]
fn the_file_holds_only_the_hash_and_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let (record, token) = at(home.path(), T0).create("aaaa", "ci", Scope::Admin, Duration::from_secs(60)).unwrap();
    let text = std::fs::read_to_string(home.path().join(FILE)).unwrap();
    assert!(!text.contains(token.secret().expose()));
    assert!(text.contains(&record.sha256));
    assert_eq!(std::fs::metadata(home.path().join(FILE)).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn scopes_include_the_lesser_ones() {
    assert!(Scope::Admin.allows(Scope::PreviewsWrite));
    assert!(Scope::PreviewsWrite.allows(Scope::PreviewsRead));
    assert!(!Scope::PreviewsRead.allows(Scope::PreviewsWrite));
    assert!(!Scope::PreviewsWrite.allows(Scope::Admin));
    assert_eq!("previews:write".parse::<Scope>(), Ok(Scope::PreviewsWrite));
    assert!("root".parse::<Scope>().is_err());
}

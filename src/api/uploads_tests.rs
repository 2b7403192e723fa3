//! Unit tests of `uploads.rs`: tus metadata, and the sweep of files no record names.

use super::*;
use crate::store::{SendStore, SledStore};

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    headers
}

#[test]
fn tus_metadata_gives_the_name_and_the_type() {
    // filename "Rechnung März.pdf", filetype "application/pdf", and a key not used.
    let given = headers(&[(
        "upload-metadata",
        "filename UmVjaG51bmcgTcOkcnoucGRm,filetype YXBwbGljYXRpb24vcGRm, is_confidential",
    )]);
    let found = metadata(&given).unwrap();
    assert_eq!(found.filename.as_deref(), Some("Rechnung März.pdf"));
    assert_eq!(content_type(&given, &found), "application/pdf");
    // A Content-Type header comes first.
    let typed = headers(&[
        ("content-type", "image/png"),
        ("upload-metadata", "filetype YXBwbGljYXRpb24vcGRm"),
    ]);
    assert_eq!(
        content_type(&typed, &metadata(&typed).unwrap()),
        "image/png"
    );
    for bad in ["filename !!!", "filename AA==", "filename Cg=="] {
        let err = metadata(&headers(&[("upload-metadata", bad)])).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidHeader, "{bad}");
    }
    assert_eq!(metadata(&HeaderMap::new()).unwrap(), Metadata::default());
}

#[tokio::test]
async fn files_no_record_names_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("db")).unwrap();
    let named = new_id();
    store
        .put_upload(&UploadRecord {
            id: named.clone(),
            account_id: "a1".into(),
            content_type: "text/plain".into(),
            filename: None,
            length: None,
            offset: 1,
            sha256: None,
            created_ms: 0,
            expires_ms: i64::MAX,
        })
        .await
        .unwrap();
    let unnamed = new_id();
    for name in [named.as_str(), unnamed.as_str(), "notes.txt"] {
        let path = dir.path().join("uploads").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }
    assert_eq!(remove_unnamed_files(&store, dir.path()).await.unwrap(), 1);
    let uploads = dir.path().join("uploads");
    assert!(uploads.join(&named).exists());
    assert!(!uploads.join(&unnamed).exists());
    assert!(uploads.join("notes.txt").exists());
}

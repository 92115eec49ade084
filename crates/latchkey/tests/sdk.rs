//! The core S3 operations through aws-sdk-s3 (Rust) against a real server process. The SDK's
//! defaults send PUT bodies as aws-chunked with CRC trailers, so streaming uploads are covered.

mod support;

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier, Tag, Tagging};
use support::Server;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

async fn body_of(output: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    output.body.collect().await.expect("body").into_bytes().to_vec()
}

#[tokio::test]
async fn buckets_objects_ranges_copy_and_tags() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("rust-core").send().await.unwrap();
    let listed = s3.list_buckets().send().await.unwrap();
    assert_eq!(listed.buckets().iter().filter_map(|b| b.name()).collect::<Vec<_>>(), ["rust-core"]);

    let data = pattern(300_000, 7);
    let put = s3
        .put_object()
        .bucket("rust-core")
        .key("dir/data.bin")
        .content_type("application/octet-stream")
        .metadata("purpose", "test")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let head = s3.head_object().bucket("rust-core").key("dir/data.bin").send().await.unwrap();
    assert_eq!(head.content_length(), Some(300_000));
    assert_eq!(head.e_tag(), put.e_tag());
    assert_eq!(head.metadata().unwrap().get("purpose").map(String::as_str), Some("test"));

    let whole = s3.get_object().bucket("rust-core").key("dir/data.bin").send().await.unwrap();
    assert_eq!(body_of(whole).await, data);
    let ranged = s3.get_object().bucket("rust-core").key("dir/data.bin").range("bytes=1000-1999").send().await.unwrap();
    assert_eq!(ranged.content_range(), Some("bytes 1000-1999/300000"));
    assert_eq!(body_of(ranged).await, data[1000..2000]);

    s3.copy_object().bucket("rust-core").key("copy.bin").copy_source("rust-core/dir/data.bin").send().await.unwrap();
    let copied = s3.get_object().bucket("rust-core").key("copy.bin").send().await.unwrap();
    assert_eq!(body_of(copied).await, data);

    let tagging =
        Tagging::builder().tag_set(Tag::builder().key("class").value("internal").build().unwrap()).build().unwrap();
    s3.put_object_tagging().bucket("rust-core").key("copy.bin").tagging(tagging).send().await.unwrap();
    let tags = s3.get_object_tagging().bucket("rust-core").key("copy.bin").send().await.unwrap();
    assert_eq!(tags.tag_set()[0].value(), "internal");

    let missing = s3.get_object().bucket("rust-core").key("absent").send().await.unwrap_err();
    assert_eq!(missing.into_service_error().code(), Some("NoSuchKey"));
    let not_empty = s3.delete_bucket().bucket("rust-core").send().await.unwrap_err();
    assert_eq!(not_empty.into_service_error().code(), Some("BucketNotEmpty"));

    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("dir/data.bin").build().unwrap())
        .objects(ObjectIdentifier::builder().key("copy.bin").build().unwrap())
        .build()
        .unwrap();
    let deleted = s3.delete_objects().bucket("rust-core").delete(delete).send().await.unwrap();
    assert_eq!(deleted.deleted().len(), 2);
    s3.delete_bucket().bucket("rust-core").send().await.unwrap();
    let gone = s3.head_bucket().bucket("rust-core").send().await.unwrap_err();
    assert_eq!(gone.raw_response().map(|r| r.status().as_u16()), Some(404));
}

/// Small objects are served from memory once read whole; overwrites and deletes must still show
/// at once, whole and in ranges.
#[tokio::test]
async fn small_objects_read_back_their_latest_bytes() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("rust-small").send().await.unwrap();
    for seed in [1, 2] {
        let data = pattern(4096, seed);
        s3.put_object().bucket("rust-small").key("k").body(ByteStream::from(data.clone())).send().await.unwrap();
        for _ in 0..2 {
            let whole = s3.get_object().bucket("rust-small").key("k").send().await.unwrap();
            assert_eq!(body_of(whole).await, data, "version {seed}");
        }
        let ranged = s3.get_object().bucket("rust-small").key("k").range("bytes=100-199").send().await.unwrap();
        assert_eq!(body_of(ranged).await, &data[100..200]);
    }
    s3.delete_object().bucket("rust-small").key("k").send().await.unwrap();
    let gone = s3.get_object().bucket("rust-small").key("k").send().await.unwrap_err();
    assert_eq!(gone.code(), Some("NoSuchKey"));
}

/// Concurrent uploads have their MD5s computed together, side by side in SIMD lanes: each must
/// still get the ETag of its own bytes, over sizes around block, chunk and write-batch edges, and
/// a declared Content-MD5 must still be checked.
#[tokio::test]
async fn concurrent_uploads_get_the_md5_of_their_own_bytes() {
    use base64::Engine;
    use md5::{Digest, Md5};

    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("rust-md5").send().await.unwrap();
    let sizes = [0, 1, 55, 64, 65, 4096, 65_535, 65_536, 100_000, 262_143, 262_144, 262_145, 700_001];
    let uploads = sizes.iter().cycle().take(26).enumerate().map(|(n, &size)| {
        let s3 = s3.clone();
        async move {
            let data = pattern(size, n as u8);
            let md5 = Md5::digest(&data);
            let mut put = s3.put_object().bucket("rust-md5").key(format!("k{n}")).body(ByteStream::from(data));
            if n % 2 == 0 {
                put = put.content_md5(base64::engine::general_purpose::STANDARD.encode(md5));
            }
            let out = put.send().await.unwrap();
            assert_eq!(out.e_tag(), Some(format!("\"{}\"", hex::encode(md5)).as_str()), "upload {n} of {size} bytes");
        }
    });
    futures::future::join_all(uploads).await;

    let wrong = base64::engine::general_purpose::STANDARD.encode(Md5::digest(b"other bytes"));
    let body = ByteStream::from(pattern(100_000, 9));
    let refused = s3.put_object().bucket("rust-md5").key("wrong").content_md5(wrong).body(body).send().await;
    assert_eq!(refused.unwrap_err().into_service_error().code(), Some("BadDigest"));
    let absent = s3.head_object().bucket("rust-md5").key("wrong").send().await.unwrap_err();
    assert_eq!(absent.raw_response().map(|r| r.status().as_u16()), Some(404));
}

#[tokio::test]
async fn listing_with_delimiter_and_continuation() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("rust-list").send().await.unwrap();
    let keys: Vec<String> = (0..25).map(|i| format!("photos/{:02}/{i:03}.jpg", i % 3)).collect();
    for key in &keys {
        s3.put_object().bucket("rust-list").key(key).body(ByteStream::from_static(b"x")).send().await.unwrap();
    }
    let top = s3.list_objects_v2().bucket("rust-list").prefix("photos/").delimiter("/").send().await.unwrap();
    let prefixes: Vec<_> = top.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["photos/00/", "photos/01/", "photos/02/"]);

    let mut all = Vec::new();
    let mut pages = s3.list_objects_v2().bucket("rust-list").max_keys(7).into_paginator().send();
    let mut page_count = 0;
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        page_count += 1;
        all.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
    }
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(all, expected);
    assert_eq!(page_count, 4);
}

#[tokio::test]
async fn multipart_upload_and_presigned_get() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("rust-mp").send().await.unwrap();
    let upload = s3.create_multipart_upload().bucket("rust-mp").key("large.bin").send().await.unwrap();
    let upload_id = upload.upload_id().unwrap();
    let parts = [pattern(5 * 1024 * 1024, 1), pattern(5 * 1024 * 1024, 2), pattern(777, 3)];
    let mut completed = CompletedMultipartUpload::builder();
    for (i, part) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("rust-mp")
            .key("large.bin")
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .unwrap();
        completed = completed.parts(CompletedPart::builder().part_number(number).e_tag(out.e_tag().unwrap()).build());
    }
    let done = s3
        .complete_multipart_upload()
        .bucket("rust-mp")
        .key("large.bin")
        .upload_id(upload_id)
        .multipart_upload(completed.build())
        .send()
        .await
        .unwrap();
    assert!(done.e_tag().unwrap().ends_with("-3\""), "{:?}", done.e_tag());

    let presigned = s3
        .get_object()
        .bucket("rust-mp")
        .key("large.bin")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let (status, body) = server.http_get(presigned.uri());
    assert_eq!(status, 200);
    assert_eq!(body, parts.concat());

    let unsigned = format!("{}/rust-mp/large.bin", server.endpoint);
    let (status, body) = server.http_get(&unsigned);
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("<Code>AccessDenied</Code>"));
}

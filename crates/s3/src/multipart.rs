//! Multipart upload operations: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//! AbortMultipartUpload, ListParts, ListMultipartUploads.

use latchkey_meta::KeyRange;
use latchkey_object::CompletedPart as Completed;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::S3Front;
use crate::attributes::{attributes, etag, timestamp, write_headers};
use crate::checksum::{self, declared};
use crate::error::OrS3;
use crate::list::{encode_key, max_keys};
use crate::object::{body, write_limits};

pub(crate) async fn create_multipart_upload(
    front: &S3Front,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = req.input;
    let attrs = attributes(write_headers!(input))?;
    let upload = front.objects.create_upload(&input.bucket, &input.key, attrs).await.or_s3()?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.upload_id),
        ..Default::default()
    }))
}

pub(crate) async fn upload_part(
    front: &S3Front,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let trailer = req.headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let input = req.input;
    let limits = write_limits(input.content_length, input.content_md5.as_deref())?;
    let body = checksum::verified(body(input.body), &declared!(input), trailer.as_deref(), req.trailing_headers)?;
    let part = front
        .objects
        .upload_part(&input.bucket, &input.key, &input.upload_id, input.part_number, body, limits)
        .await
        .or_s3()?;
    Ok(S3Response::new(UploadPartOutput { e_tag: Some(etag(&part.etag)), ..Default::default() }))
}

pub(crate) async fn complete_multipart_upload(
    front: &S3Front,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = req.input;
    let listed = input.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
    let parts = listed
        .into_iter()
        .map(|p| match (p.part_number, p.e_tag) {
            (Some(part_number), Some(tag)) => Ok(Completed { part_number, etag: tag.value().to_owned() }),
            _ => Err(s3_error!(MalformedXML, "Every part needs a PartNumber and an ETag")),
        })
        .collect::<S3Result<Vec<_>>>()?;
    let record = front.objects.complete_upload(&input.bucket, &input.key, &input.upload_id, &parts).await.or_s3()?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        bucket: Some(input.bucket),
        key: Some(input.key),
        e_tag: Some(etag(&record.etag)),
        version_id: crate::object::shown_version_id(&record),
        ..Default::default()
    }))
}

pub(crate) async fn abort_multipart_upload(
    front: &S3Front,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    front.objects.abort_upload(&input.bucket, &input.key, &input.upload_id).await.or_s3()?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(crate) async fn list_parts(
    front: &S3Front,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    front.objects.upload(&input.bucket, &input.key, &input.upload_id).await.or_s3()?;
    let limit = max_keys(input.max_parts)?;
    let marker = input.part_number_marker.unwrap_or(0);
    // One extra row tells whether the listing is truncated.
    let mut parts = front.objects.list_parts(&input.upload_id, marker, limit + 1).await.or_s3()?;
    let truncated = parts.len() > limit as usize;
    parts.truncate(limit as usize);
    let next = truncated.then(|| parts.last().map(|p| p.part_number)).flatten();
    let parts = parts
        .into_iter()
        .map(|p| Part {
            part_number: Some(p.part_number),
            e_tag: Some(etag(&p.etag)),
            size: i64::try_from(p.size).ok(),
            last_modified: Some(timestamp(p.last_modified)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        parts: Some(parts),
        is_truncated: Some(truncated),
        next_part_number_marker: next,
        part_number_marker: input.part_number_marker,
        max_parts: i32::try_from(limit).ok(),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        ..Default::default()
    }))
}

pub(crate) async fn list_multipart_uploads(
    front: &S3Front,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    if input.delimiter.is_some() {
        return Err(s3_error!(NotImplemented, "ListMultipartUploads with a delimiter is not supported"));
    }
    front.objects.bucket(&input.bucket).await.or_s3()?;
    let limit = max_keys(input.max_uploads)?;
    let prefix = input.prefix.as_deref().unwrap_or_default();
    let range = KeyRange { prefix, after: input.key_marker.as_deref(), from: None, limit: limit + 1 };
    let mut uploads = front
        .objects
        .meta()
        .list_uploads(&input.bucket, range, input.upload_id_marker.as_deref())
        .await
        .map_err(|e| crate::error::s3_error(e.into()))?;
    let truncated = uploads.len() > limit as usize;
    uploads.truncate(limit as usize);
    let last = uploads.last().filter(|_| truncated).map(|u| (u.key.clone(), u.upload_id.clone()));
    let url = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
    let uploads = uploads
        .into_iter()
        .map(|u| MultipartUpload {
            key: Some(encode_key(u.key, url)),
            upload_id: Some(u.upload_id),
            initiated: Some(timestamp(u.initiated)),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        })
        .collect();
    let (next_key_marker, next_upload_id_marker) = last.map_or((None, None), |(k, u)| (Some(k), Some(u)));
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        uploads: Some(uploads),
        is_truncated: Some(truncated),
        next_key_marker,
        next_upload_id_marker,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: i32::try_from(limit).ok(),
        prefix: input.prefix,
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

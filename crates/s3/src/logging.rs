//! Bucket logging: PutBucketLogging and GetBucketLogging. A bucket with logging enabled has a
//! line in S3's server-access-log format written for each request on it, delivered as objects
//! into its target bucket by the server (`crates/server/src/bucket_log.rs`). Setting a target
//! needs `s3:PutObject` on the target prefix as well (judged by the Authorizer), since the log
//! objects are then written there on the caller's behalf.

use latchkey_meta::BucketSetting;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use crate::S3Front;
use crate::error::OrS3;

/// Where a bucket's log goes, as stored (JSON in the bucket's settings).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoggingTarget {
    pub target_bucket: String,
    pub target_prefix: String,
    /// `PartitionedPrefix`: keys partitioned by account, region, bucket and date, the date of
    /// the delivery (`DeliveryTime`) or of the requests (`EventTime`); `None`: `SimplePrefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioned: Option<PartitionDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PartitionDate {
    EventTime,
    DeliveryTime,
}

/// S3's limit on a key, which the prefix and the generated name must fit in.
const MAX_PREFIX_BYTES: usize = 512;

/// The target PutBucketLogging asks for (`None`: logging off), checked as S3 does.
pub fn target_of(status: &BucketLoggingStatus) -> S3Result<Option<LoggingTarget>> {
    let Some(enabled) = &status.logging_enabled else { return Ok(None) };
    if enabled.target_grants.as_ref().is_some_and(|grants| !grants.is_empty()) {
        return Err(s3_error!(
            AccessControlListNotSupported,
            "Target grants are not supported: access to the target bucket is granted by policy"
        ));
    }
    if enabled.target_prefix.len() > MAX_PREFIX_BYTES || enabled.target_prefix.contains('\0') {
        return Err(s3_error!(InvalidArgument, "TargetPrefix must be at most {MAX_PREFIX_BYTES} bytes, without NUL"));
    }
    let partitioned = match &enabled.target_object_key_format {
        Some(TargetObjectKeyFormat { partitioned_prefix: Some(prefix), simple_prefix: None }) => {
            Some(match prefix.partition_date_source.as_ref().map(|s| s.as_str()) {
                None | Some(PartitionDateSource::EVENT_TIME) => PartitionDate::EventTime,
                Some(PartitionDateSource::DELIVERY_TIME) => PartitionDate::DeliveryTime,
                Some(other) => return Err(s3_error!(InvalidArgument, "Unknown PartitionDateSource {other:?}")),
            })
        }
        Some(TargetObjectKeyFormat { partitioned_prefix: Some(_), simple_prefix: Some(_) }) => {
            return Err(s3_error!(
                MalformedXML,
                "TargetObjectKeyFormat takes SimplePrefix or PartitionedPrefix, not both"
            ));
        }
        _ => None,
    };
    Ok(Some(LoggingTarget {
        target_bucket: enabled.target_bucket.clone(),
        target_prefix: enabled.target_prefix.clone(),
        partitioned,
    }))
}

pub(crate) async fn put_bucket_logging(
    front: &S3Front,
    req: S3Request<PutBucketLoggingInput>,
) -> S3Result<S3Response<PutBucketLoggingOutput>> {
    let input = req.input;
    front.objects.bucket(&input.bucket).await.or_s3()?;
    let target = target_of(&input.bucket_logging_status)?;
    if let Some(target) = &target
        && front.objects.bucket(&target.target_bucket).await.is_err()
    {
        return Err(s3_error!(InvalidTargetBucketForLogging, "The target bucket for logging does not exist"));
    }
    let json = target.map(|t| serde_json::to_string(&t)).transpose().map_err(|e| s3_error!(e, InternalError))?;
    front.configs.set(&input.bucket, BucketSetting::Logging(json)).await.or_s3()?;
    Ok(S3Response::new(PutBucketLoggingOutput::default()))
}

pub(crate) async fn get_bucket_logging(
    front: &S3Front,
    req: S3Request<GetBucketLoggingInput>,
) -> S3Result<S3Response<GetBucketLoggingOutput>> {
    front.objects.bucket(&req.input.bucket).await.or_s3()?;
    let rules = front.configs.get(&req.input.bucket);
    let logging_enabled = rules.logging().map(|target| LoggingEnabled {
        target_bucket: target.target_bucket.clone(),
        target_prefix: target.target_prefix.clone(),
        target_grants: None,
        target_object_key_format: Some(match target.partitioned {
            None => TargetObjectKeyFormat { simple_prefix: Some(SimplePrefix {}), partitioned_prefix: None },
            Some(date) => TargetObjectKeyFormat {
                simple_prefix: None,
                partitioned_prefix: Some(PartitionedPrefix {
                    partition_date_source: Some(PartitionDateSource::from_static(match date {
                        PartitionDate::EventTime => PartitionDateSource::EVENT_TIME,
                        PartitionDate::DeliveryTime => PartitionDateSource::DELIVERY_TIME,
                    })),
                }),
            },
        }),
    });
    Ok(S3Response::new(GetBucketLoggingOutput { logging_enabled }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(prefix: &str, format: Option<TargetObjectKeyFormat>) -> BucketLoggingStatus {
        BucketLoggingStatus {
            logging_enabled: Some(LoggingEnabled {
                target_bucket: "logs".into(),
                target_prefix: prefix.into(),
                target_grants: None,
                target_object_key_format: format,
            }),
        }
    }

    #[test]
    fn targets_are_read_as_s3_reads_them() {
        assert_eq!(target_of(&BucketLoggingStatus { logging_enabled: None }).unwrap(), None, "off");
        let simple = target_of(&status("access/", None)).unwrap().unwrap();
        assert_eq!((simple.target_prefix.as_str(), simple.partitioned), ("access/", None));
        let delivery = PartitionedPrefix {
            partition_date_source: Some(PartitionDateSource::from_static(PartitionDateSource::DELIVERY_TIME)),
        };
        let format = TargetObjectKeyFormat { partitioned_prefix: Some(delivery), simple_prefix: None };
        let partitioned = target_of(&status("p/", Some(format))).unwrap().unwrap();
        assert_eq!(partitioned.partitioned, Some(PartitionDate::DeliveryTime));
        let both = TargetObjectKeyFormat {
            partitioned_prefix: Some(PartitionedPrefix { partition_date_source: None }),
            simple_prefix: Some(SimplePrefix {}),
        };
        assert!(target_of(&status("p/", Some(both))).is_err());
        assert!(target_of(&status(&"x".repeat(513), None)).is_err(), "too long a prefix");
    }
}

//! Bucket logging: PutBucketLogging and GetBucketLogging. A bucket with logging enabled has a
//! line in S3's server-access-log format written for each request on it, delivered as objects
//! into its target bucket by the server (`crates/server/src/bucket_log.rs`). The log objects are
//! written on behalf of whoever set the target: setting one needs `s3:PutObject` on the keys
//! that will be written there (one of them judged), and each delivery is judged again for that
//! principal as it is then, so that taking the permission away stops the delivery.

use latchkey_meta::BucketSetting;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::S3Front;
use crate::auth::ObjectPermission;
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
    /// The principal (ARN) the objects are written for; `None`: an unsigned request set it.
    #[serde(default)]
    pub configured_by: Option<String>,
}

impl LoggingTarget {
    /// The key of a log object, as S3 names them: `prefix` + `YYYY-mm-DD-HH-MM-SS-UNIQUE`, or
    /// partitioned `prefix` + `account/region/bucket/YYYY/mm/DD/` + that name (for event time,
    /// `day`, the requests' day, at midnight).
    pub fn object_key(
        &self,
        account: &str,
        region: &str,
        source: &str,
        now: OffsetDateTime,
        day: Option<Date>,
        unique: u64,
    ) -> String {
        let stamp = |t: OffsetDateTime| {
            t.format(format_description!("[year]-[month]-[day]-[hour]-[minute]-[second]")).unwrap_or_default()
        };
        let prefix = &self.target_prefix;
        match self.partitioned {
            None => format!("{prefix}{}-{unique:016X}", stamp(now)),
            Some(_) => {
                let at = day.map_or(now, |day| day.midnight().assume_utc());
                let date = at.format(format_description!("[year]/[month]/[day]")).unwrap_or_default();
                format!("{prefix}{account}/{region}/{source}/{date}/{}-{unique:016X}", stamp(at))
            }
        }
    }
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
        configured_by: None,
    }))
}

pub(crate) async fn put_bucket_logging(
    front: &S3Front,
    req: S3Request<PutBucketLoggingInput>,
) -> S3Result<S3Response<PutBucketLoggingOutput>> {
    // The Authorizer leaves it once s3:PutBucketLogging is allowed; without it, nothing was.
    let Some(permission) = req.extensions.get::<ObjectPermission>() else {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    };
    let input = req.input;
    front.objects.bucket(&input.bucket).await.or_s3()?;
    let mut target = target_of(&input.bucket_logging_status)?;
    if let Some(target) = &mut target {
        if front.objects.bucket(&target.target_bucket).await.is_err() {
            return Err(s3_error!(InvalidTargetBucketForLogging, "The target bucket for logging does not exist"));
        }
        target.configured_by = permission.principal();
        // A key as delivery will write it (policies see whole keys, not the prefix).
        let at = OffsetDateTime::UNIX_EPOCH + time::Duration::days(10_957);
        let sample = target.object_key(permission.account(), &front.region, &input.bucket, at, Some(at.date()), 0);
        if !permission.allows("s3:PutObject", &target.target_bucket, &sample).await {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
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
    fn keys_are_named_as_s3_names_them() {
        let mut target = target_of(&status("logs/", None)).unwrap().unwrap();
        let at = OffsetDateTime::from_unix_timestamp(1_796_465_700).unwrap();
        assert_eq!(
            target.object_key("000000000000", "us-east-1", "src", at, None, 0xAB),
            "logs/2026-12-05-10-15-00-00000000000000AB"
        );
        target.partitioned = Some(PartitionDate::EventTime);
        assert_eq!(
            target.object_key("000000000000", "eu-west-1", "src", at, Some(at.date()), 1),
            "logs/000000000000/eu-west-1/src/2026/12/05/2026-12-05-00-00-00-0000000000000001"
        );
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

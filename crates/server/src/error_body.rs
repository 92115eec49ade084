//! S3 error bodies made complete: s3s leaves `<Message>` out of many errors it raises itself
//! (the AWS CLI then prints "Unknown") and never writes `<RequestId>`. Every S3 error body that
//! leaves the server names the request id of its `x-amz-request-id` header and carries a message;
//! `AuthorizationHeaderMalformed` names the server's region, as AWS's does (s3cmd reads it and
//! signs again for that region).

use bytes::Bytes;
use quick_xml::escape::partial_escape;

/// The `<Code>` of an S3, IAM or STS error body.
pub fn code(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let code = &text[start..start + text[start..].find("</Code>")?];
    (code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')).then_some(code)
}

/// The error body with a `<Message>` and a `<RequestId>` (and, for a credential scope naming
/// another region, the `<Region>` to sign for) added where missing; `None` when the body is not
/// an S3 error document.
pub fn complete(body: &[u8], request_id: &str, region: &str) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?;
    let code_start = text.find("<Error><Code>")? + "<Error><Code>".len();
    let code_end = code_start + text[code_start..].find("</Code>")?;
    let code = &text[code_start..code_end];
    let close = text.rfind("</Error>").filter(|&close| close > code_end)?;
    let mut out = String::with_capacity(text.len() + 128);
    out.push_str(&text[..code_end + "</Code>".len()]);
    if !text.contains("<Message>") {
        out.push_str("<Message>");
        out.push_str(&partial_escape(default_message(code)));
        out.push_str("</Message>");
    }
    out.push_str(&text[code_end + "</Code>".len()..close]);
    if code == "AuthorizationHeaderMalformed" && !text.contains("<Region>") {
        out.push_str("<Region>");
        out.push_str(&partial_escape(region));
        out.push_str("</Region>");
    }
    if !text.contains("<RequestId>") {
        out.push_str("<RequestId>");
        out.push_str(&partial_escape(request_id));
        out.push_str("</RequestId>");
    }
    out.push_str(&text[close..]);
    Some(Bytes::from(out))
}

/// AWS's wording for the codes s3s raises without a message; other codes read as a sentence.
fn default_message(code: &str) -> String {
    let known = match code {
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        }
        "MalformedXML" => "The XML you provided was not well-formed or did not validate against our published schema.",
        "KeyTooLongError" => "Your key is too long.",
        "InvalidBucketName" => "The specified bucket is not valid.",
        "AccessDenied" => "Access Denied",
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        "NoSuchBucket" => "The specified bucket does not exist",
        "NoSuchKey" => "The specified key does not exist.",
        "NoSuchUpload" => "The specified multipart upload does not exist.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "NotImplemented" => "A header or operation you provided implies functionality that is not implemented.",
        "InvalidURI" => "Couldn't parse the specified URI.",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "InvalidRange" => "The requested range is not satisfiable",
        "PreconditionFailed" => "At least one of the preconditions you specified did not hold.",
        "InvalidDigest" => "The Content-MD5 you specified is not valid.",
        "BadDigest" => "The Content-MD5 you specified did not match what we received.",
        "XAmzContentSHA256Mismatch" => "The provided 'x-amz-content-sha256' header does not match what was computed.",
        "RequestTimeTooSkewed" => "The difference between the request time and the current time is too large.",
        "ExpiredToken" | "AccessDeniedExpired" => "Request has expired",
        "InternalError" => "We encountered an internal error. Please try again.",
        "InvalidArgument" => "Invalid Argument",
        "InvalidRequest" => "Invalid Request",
        "MalformedPOSTRequest" => "The body of your POST request is not well-formed multipart/form-data.",
        "RequestHeaderSectionTooLarge" => "Your request header section exceeds the maximum allowed size.",
        _ => return words(code),
    };
    known.to_owned()
}

/// `InvalidPartOrder` -> "Invalid part order."
fn words(code: &str) -> String {
    let mut out = String::with_capacity(code.len() + 8);
    for (i, c) in code.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            out.push(' ');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out.push('.');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

    #[test]
    fn missing_messages_and_request_ids_are_added() {
        let body = format!("{DECL}<Error><Code>SignatureDoesNotMatch</Code></Error>");
        let done = complete(body.as_bytes(), "0A1B", "us-east-1").unwrap();
        assert_eq!(
            std::str::from_utf8(&done).unwrap(),
            format!(
                "{DECL}<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match \
                 the signature you provided. Check your key and signing method.</Message><RequestId>0A1B</RequestId></Error>"
            )
        );
    }

    #[test]
    fn present_messages_are_kept_and_unknown_codes_read_as_words() {
        let body = format!("{DECL}<Error><Code>NoSuchKey</Code><Message>a &amp; b</Message></Error>");
        let done = complete(body.as_bytes(), "R", "us-east-1").unwrap();
        assert!(
            std::str::from_utf8(&done)
                .unwrap()
                .ends_with("<Message>a &amp; b</Message><RequestId>R</RequestId></Error>")
        );
        let body = format!("{DECL}<Error><Code>InvalidPartOrder</Code></Error>");
        let done = complete(body.as_bytes(), "R", "us-east-1").unwrap();
        assert!(std::str::from_utf8(&done).unwrap().contains("<Message>Invalid part order.</Message>"));
        assert!(complete(b"not xml", "R", "us-east-1").is_none());
        // Text that only looks like an error document (a JSON body echoing a field name) is left alone.
        assert!(complete(br#"{"message":"unknown field `</Error>x<Code>y</Code>`"}"#, "R", "us-east-1").is_none());
        assert!(complete(b"</Error><Error><Code>X</Code>", "R", "us-east-1").is_none());
        assert!(complete(b"", "R", "us-east-1").is_none());
    }

    #[test]
    fn a_malformed_authorization_names_the_region_to_sign_for() {
        let body = format!("{DECL}<Error><Code>AuthorizationHeaderMalformed</Code><Message>m</Message></Error>");
        let done = complete(body.as_bytes(), "R", "eu-west-2").unwrap();
        assert!(
            std::str::from_utf8(&done).unwrap().ends_with("<Region>eu-west-2</Region><RequestId>R</RequestId></Error>")
        );
        let other = format!("{DECL}<Error><Code>AccessDenied</Code><Message>m</Message></Error>");
        assert!(
            !std::str::from_utf8(&complete(other.as_bytes(), "R", "eu-west-2").unwrap()).unwrap().contains("Region")
        );
    }
}

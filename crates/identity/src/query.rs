//! The AWS query protocol of IAM and STS: request parameters from the form body, XML responses
//! (`<{Action}Response>`) and XML errors (`<ErrorResponse>`), with AWS's error codes and wording.

use std::fmt;

use http::StatusCode;
use quick_xml::escape::escape;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// Timestamps as IAM and STS write them (`2015-08-30T12:36:00Z`).
const TIMESTAMP: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// Which query API a request is for; each has its own XML namespace and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Iam,
    Sts,
}

impl Api {
    /// By the service named in the SigV4 credential scope (`iam`, `sts`).
    pub fn from_service(service: &str) -> Option<Api> {
        match service {
            "iam" => Some(Api::Iam),
            "sts" => Some(Api::Sts),
            _ => None,
        }
    }

    pub fn namespace(self) -> &'static str {
        match self {
            Api::Iam => "https://iam.amazonaws.com/doc/2010-05-08/",
            Api::Sts => "https://sts.amazonaws.com/doc/2011-06-15/",
        }
    }

    /// The `Version` parameter clients send.
    pub fn version(self) -> &'static str {
        match self {
            Api::Iam => "2010-05-08",
            Api::Sts => "2011-06-15",
        }
    }
}

/// An error as the query APIs report it: HTTP status, AWS's code, message, and whether the
/// caller (Sender) or the service (Receiver) is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct QueryError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub sender: bool,
}

impl QueryError {
    fn sender(status: StatusCode, code: &'static str, message: impl Into<String>) -> QueryError {
        QueryError { status, code, message: message.into(), sender: true }
    }

    pub fn no_such_entity(message: impl Into<String>) -> QueryError {
        Self::sender(StatusCode::NOT_FOUND, "NoSuchEntity", message)
    }

    pub fn entity_already_exists(message: impl Into<String>) -> QueryError {
        Self::sender(StatusCode::CONFLICT, "EntityAlreadyExists", message)
    }

    pub fn delete_conflict(message: impl Into<String>) -> QueryError {
        Self::sender(StatusCode::CONFLICT, "DeleteConflict", message)
    }

    pub fn limit_exceeded(message: impl Into<String>) -> QueryError {
        Self::sender(StatusCode::CONFLICT, "LimitExceeded", message)
    }

    pub fn malformed_policy(message: impl Into<String>) -> QueryError {
        Self::sender(StatusCode::BAD_REQUEST, "MalformedPolicyDocument", message)
    }

    pub fn invalid_input(message: impl Into<String>) -> QueryError {
        Self::sender(StatusCode::BAD_REQUEST, "InvalidInput", message)
    }

    pub fn validation(message: impl Into<String>) -> QueryError {
        Self::sender(StatusCode::BAD_REQUEST, "ValidationError", message)
    }

    /// A request body that stopped coming (the idle timeout) or ended early.
    pub fn body_cut(timed_out: bool) -> QueryError {
        if timed_out {
            Self::sender(
                StatusCode::BAD_REQUEST,
                "RequestTimeout",
                "Your socket connection to the server was not read from or written to within the timeout period.",
            )
        } else {
            Self::sender(StatusCode::BAD_REQUEST, "IncompleteBody", "The request body ended before it was complete.")
        }
    }

    pub fn access_denied(message: impl Into<String>) -> QueryError {
        Self::sender(StatusCode::FORBIDDEN, "AccessDenied", message)
    }

    /// The access key id (or session token) is not known.
    pub fn invalid_client_token_id() -> QueryError {
        Self::sender(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    }

    pub fn expired_token() -> QueryError {
        Self::sender(StatusCode::BAD_REQUEST, "ExpiredToken", "The security token included in the request is expired")
    }

    /// A wrong, malformed or reused MFA code.
    pub fn invalid_authentication_code(message: impl Into<String>) -> QueryError {
        Self::sender(StatusCode::FORBIDDEN, "InvalidAuthenticationCode", message)
    }

    pub fn invalid_action(action: &str, version: &str) -> QueryError {
        Self::sender(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("Could not find operation {action} for version {version}"),
        )
    }

    pub fn missing_action() -> QueryError {
        Self::sender(StatusCode::BAD_REQUEST, "MissingAction", "Missing Action")
    }

    pub fn missing_parameter(name: &str) -> QueryError {
        Self::sender(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    }

    /// The service's own failure; the message says nothing of the cause, which goes to the log.
    pub fn service_failure() -> QueryError {
        QueryError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "ServiceFailure",
            message: "The request processing has failed because of an unknown error, exception or failure.".into(),
            sender: false,
        }
    }

    /// `<ErrorResponse xmlns=NS><Error><Type>Sender</Type><Code>..</Code><Message>..</Message></Error><RequestId>..</RequestId></ErrorResponse>`
    pub fn to_xml(&self, api: Api, request_id: &str) -> String {
        let mut xml = String::with_capacity(256 + self.message.len());
        xml.push_str("<ErrorResponse xmlns=\"");
        xml.push_str(api.namespace());
        xml.push_str("\"><Error><Type>");
        xml.push_str(if self.sender { "Sender" } else { "Receiver" });
        xml.push_str("</Type><Code>");
        push_text(&mut xml, self.code);
        xml.push_str("</Code><Message>");
        push_text(&mut xml, &self.message);
        xml.push_str("</Message></Error><RequestId>");
        push_text(&mut xml, request_id);
        xml.push_str("</RequestId></ErrorResponse>");
        xml
    }
}

/// The parameters of a query request, from its `application/x-www-form-urlencoded` body.
#[derive(Clone, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

/// Only the names: values include passwords and MFA codes.
impl fmt::Debug for QueryParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryParams")
            .field("names", &self.pairs.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .finish()
    }
}

impl QueryParams {
    pub fn parse(body: &[u8]) -> QueryParams {
        QueryParams { pairs: form_urlencoded::parse(body).into_owned().collect() }
    }

    pub fn action(&self) -> Result<&str, QueryError> {
        self.get("Action").filter(|action| !action.is_empty()).ok_or_else(QueryError::missing_action)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn required(&self, name: &str) -> Result<&str, QueryError> {
        self.get(name).ok_or_else(|| QueryError::missing_parameter(name))
    }

    /// The list `{list}.member.1`, `{list}.member.2`, ... in index order.
    pub fn members(&self, list: &str) -> Vec<&str> {
        let prefix = format!("{list}.member.");
        let mut members: Vec<(u32, &str)> = self
            .pairs
            .iter()
            .filter_map(|(key, value)| Some((member_index(key.strip_prefix(&prefix)?)?, value.as_str())))
            .collect();
        // Stable: of two values for one index, the first sent is kept.
        members.sort_by_key(|&(index, _)| index);
        members.dedup_by_key(|&mut (index, _)| index);
        members.into_iter().map(|(_, value)| value).collect()
    }

    /// Tags in `{list}.member.N.Key` / `{list}.member.N.Value`, in index order.
    pub fn tags(&self, list: &str) -> Result<Vec<(String, String)>, QueryError> {
        let member = lower_camel(list);
        let tags = self
            .structure_indices(list)
            .into_iter()
            .map(|n| {
                let field = |name: &str, field: &str| {
                    self.get(&format!("{list}.member.{n}.{name}"))
                        .map(str::to_string)
                        .ok_or_else(|| not_null(&format!("{member}.{n}.member.{field}")))
                };
                Ok((field("Key", "key")?, field("Value", "value")?))
            })
            .collect::<Result<Vec<_>, QueryError>>()?;
        // IAM tag keys are case-insensitive: `Team` and `team` would be one key to a policy.
        for (i, (key, _)) in tags.iter().enumerate() {
            if tags[..i].iter().any(|(earlier, _)| earlier.eq_ignore_ascii_case(key)) {
                return Err(QueryError::invalid_input(
                    "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
                ));
            }
        }
        Ok(tags)
    }

    /// SimulatePrincipalPolicy's `ContextEntries.member.N.{ContextKeyName, ContextKeyType,
    /// ContextKeyValues.member.M}`, in index order.
    pub fn context_entries(&self) -> Result<Vec<ContextEntry>, QueryError> {
        self.structure_indices("ContextEntries")
            .into_iter()
            .map(|n| {
                let prefix = format!("ContextEntries.member.{n}");
                let at = |field: &str| format!("contextEntries.{n}.member.{field}");
                let key_name = self
                    .get(&format!("{prefix}.ContextKeyName"))
                    .ok_or_else(|| not_null(&at("contextKeyName")))?
                    .to_string();
                let key_type =
                    self.get(&format!("{prefix}.ContextKeyType")).ok_or_else(|| not_null(&at("contextKeyType")))?;
                let key_type = ContextKeyType::parse(key_type).ok_or_else(|| {
                    invalid(
                        key_type,
                        &at("contextKeyType"),
                        &format!("Member must satisfy enum value set: [{}]", ContextKeyType::NAMES.join(", ")),
                    )
                })?;
                let key_values =
                    self.members(&format!("{prefix}.ContextKeyValues")).into_iter().map(str::to_string).collect();
                Ok(ContextEntry { key_name, key_values, key_type })
            })
            .collect()
    }

    /// An optional integer parameter within `min..=max`, refused as AWS does: "1 validation error
    /// detected: Value '5' at 'durationSeconds' failed to satisfy constraint: Member must have
    /// value greater than or equal to 900".
    pub fn u32_in(&self, name: &str, min: u32, max: u32) -> Result<Option<u32>, QueryError> {
        let Some(text) = self.get(name) else { return Ok(None) };
        let member = lower_camel(name);
        let value: i128 = text.trim().parse().map_err(|_| invalid(text, &member, "Member must be a number"))?;
        if value < i128::from(min) {
            return Err(invalid(text, &member, &format!("Member must have value greater than or equal to {min}")));
        }
        u32::try_from(value)
            .ok()
            .filter(|value| *value <= max)
            .map(Some)
            .ok_or_else(|| invalid(text, &member, &format!("Member must have value less than or equal to {max}")))
    }

    /// An optional boolean parameter (`true` / `false`, any case).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, QueryError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) if text.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(text) if text.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(text) => Err(invalid(text, &lower_camel(name), "Member must be a boolean (true or false)")),
        }
    }

    /// The indices N of a list of structures `{list}.member.N.Field`, sorted and distinct.
    fn structure_indices(&self, list: &str) -> Vec<u32> {
        let prefix = format!("{list}.member.");
        let mut indices: Vec<u32> = self
            .pairs
            .iter()
            .filter_map(|(key, _)| {
                let (index, _field) = key.strip_prefix(&prefix)?.split_once('.')?;
                member_index(index)
            })
            .collect();
        indices.sort_unstable();
        indices.dedup();
        indices
    }
}

/// A list index as the query protocol numbers members: from 1, decimal digits only.
fn member_index(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|index| *index >= 1)
}

/// AWS names members in validation messages in lower camel case (`DurationSeconds` -> `durationSeconds`).
fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|first| first.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn invalid(value: &str, member: &str, constraint: &str) -> QueryError {
    QueryError::validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

pub(crate) fn not_null(member: &str) -> QueryError {
    QueryError::validation(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}

/// One `ContextEntries` member of SimulatePrincipalPolicy / SimulateCustomPolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    pub key_name: String,
    pub key_values: Vec<String>,
    pub key_type: ContextKeyType,
}

/// AWS's `ContextKeyTypeEnum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextKeyType {
    String,
    StringList,
    Numeric,
    NumericList,
    Boolean,
    BooleanList,
    Ip,
    IpList,
    Binary,
    BinaryList,
    Date,
    DateList,
}

impl ContextKeyType {
    const ALL: [ContextKeyType; 12] = [
        ContextKeyType::String,
        ContextKeyType::StringList,
        ContextKeyType::Numeric,
        ContextKeyType::NumericList,
        ContextKeyType::Boolean,
        ContextKeyType::BooleanList,
        ContextKeyType::Ip,
        ContextKeyType::IpList,
        ContextKeyType::Binary,
        ContextKeyType::BinaryList,
        ContextKeyType::Date,
        ContextKeyType::DateList,
    ];
    const NAMES: [&'static str; 12] = [
        "string",
        "stringList",
        "numeric",
        "numericList",
        "boolean",
        "booleanList",
        "ip",
        "ipList",
        "binary",
        "binaryList",
        "date",
        "dateList",
    ];

    /// The name on the wire (`string`, `stringList`, ...), case-sensitive as AWS's enum.
    pub fn parse(name: &str) -> Option<ContextKeyType> {
        Self::NAMES.iter().position(|known| *known == name).map(|i| Self::ALL[i])
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether the key holds a list of values (`...List`).
    pub fn is_list(self) -> bool {
        self as usize % 2 == 1
    }
}

/// Writes `<{Action}Response xmlns=NS><{Action}Result>...</{Action}Result><ResponseMetadata>
/// <RequestId>ID</RequestId></ResponseMetadata></{Action}Response>`. Element names are
/// `&'static str`, so only names written in the code can appear; text is escaped.
///
/// ```
/// use latchkey_identity::query::{Api, ResponseWriter};
/// let mut response = ResponseWriter::new(Api::Iam, "GetUser");
/// response.element("User", |user| {
///     user.text("UserName", "alice").text("Arn", "arn:aws:iam::000000000000:user/alice");
/// });
/// let xml = response.finish("req-1");
/// assert!(xml.contains("<GetUserResult><User><UserName>alice</UserName>"));
/// ```
#[derive(Debug)]
pub struct ResponseWriter {
    api: Api,
    action: &'static str,
    result: String,
}

impl ResponseWriter {
    pub fn new(api: Api, action: &'static str) -> ResponseWriter {
        ResponseWriter { api, action, result: String::new() }
    }

    /// `<name>value</name>`.
    pub fn text(&mut self, name: &'static str, value: &str) -> &mut Self {
        self.open(name);
        push_text(&mut self.result, value);
        self.close(name)
    }

    /// `<name>value</name>` if there is a value; nothing otherwise (AWS omits absent members).
    pub fn opt_text(&mut self, name: &'static str, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.text(name, value),
            None => self,
        }
    }

    pub fn bool(&mut self, name: &'static str, value: bool) -> &mut Self {
        self.text(name, if value { "true" } else { "false" })
    }

    pub fn number(&mut self, name: &'static str, value: u64) -> &mut Self {
        self.text(name, &value.to_string())
    }

    /// ISO 8601 in UTC, whole seconds (`2015-08-30T12:36:00Z`).
    pub fn timestamp(&mut self, name: &'static str, value: OffsetDateTime) -> &mut Self {
        let utc = value.to_offset(time::UtcOffset::UTC);
        self.text(name, &utc.format(TIMESTAMP).expect("the format names only date and time fields"))
    }

    /// `<name>...</name>` with the content `build` writes.
    pub fn element(&mut self, name: &'static str, build: impl FnOnce(&mut Self)) -> &mut Self {
        self.open(name);
        build(self);
        self.close(name)
    }

    /// `<name><member>...</member>...</name>`, one member per item, its content written by `each`.
    pub fn list<T>(
        &mut self,
        name: &'static str,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Self, T),
    ) -> &mut Self {
        self.open(name);
        for item in items {
            self.element("member", |member| each(member, item));
        }
        self.close(name)
    }

    /// `<name><member>text</member>...</name>`.
    pub fn text_list<'a>(&mut self, name: &'static str, items: impl IntoIterator<Item = &'a str>) -> &mut Self {
        self.list(name, items, |member, text| push_text(&mut member.result, text))
    }

    /// The whole response. Actions with no output (DeleteUser, ...) have no `<{Action}Result>`,
    /// as AWS sends them.
    pub fn finish(self, request_id: &str) -> String {
        let action = self.action;
        let mut xml = String::with_capacity(self.result.len() + 2 * action.len() + 256);
        xml.push_str(&format!("<{action}Response xmlns=\"{}\">", self.api.namespace()));
        if !self.result.is_empty() {
            xml.push_str(&format!("<{action}Result>{}</{action}Result>", self.result));
        }
        xml.push_str("<ResponseMetadata><RequestId>");
        push_text(&mut xml, request_id);
        xml.push_str(&format!("</RequestId></ResponseMetadata></{action}Response>"));
        xml
    }

    fn open(&mut self, name: &'static str) {
        self.result.push('<');
        self.result.push_str(name);
        self.result.push('>');
    }

    fn close(&mut self, name: &'static str) -> &mut Self {
        self.result.push_str("</");
        self.result.push_str(name);
        self.result.push('>');
        self
    }
}

/// Appends `text` escaped. Characters XML 1.0 cannot carry at all (C0 controls but tab and line
/// ends, U+FFFE, U+FFFF) become U+FFFD, so no value, however odd, makes the document unparseable.
fn push_text(out: &mut String, text: &str) {
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'));
    if text.chars().all(allowed) {
        out.push_str(&escape(text));
    } else {
        let cleaned: String = text.chars().map(|c| if allowed(c) { c } else { '\u{FFFD}' }).collect();
        out.push_str(&escape(cleaned.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use quick_xml::Reader;
    use quick_xml::escape::resolve_predefined_entity;
    use quick_xml::events::Event;
    use time::macros::datetime;

    use super::*;

    /// Parses `xml` (failing on malformed XML) into (element path, text) pairs, e.g.
    /// ("ErrorResponse/Error/Code", "NoSuchEntity"), and the root's xmlns.
    fn parse_back(xml: &str) -> (Vec<(String, String)>, Option<String>) {
        let mut reader = Reader::from_str(xml);
        reader.config_mut().check_end_names = true;
        let (mut path, mut texts, mut text, mut xmlns) = (Vec::<String>::new(), Vec::new(), String::new(), None);
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(start) => {
                    if path.is_empty() {
                        xmlns = start
                            .try_get_attribute("xmlns")
                            .unwrap()
                            .map(|attribute| String::from_utf8(attribute.value.to_vec()).unwrap());
                    }
                    path.push(String::from_utf8(start.local_name().as_ref().to_vec()).unwrap());
                    text.clear();
                }
                Event::Text(chunk) => text.push_str(&chunk.decode().unwrap()),
                Event::GeneralRef(reference) => match reference.resolve_char_ref().unwrap() {
                    Some(c) => text.push(c),
                    None => text.push_str(resolve_predefined_entity(&reference.decode().unwrap()).unwrap()),
                },
                Event::End(_) => {
                    texts.push((path.join("/"), std::mem::take(&mut text)));
                    path.pop();
                }
                Event::Eof => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(path.is_empty());
        (texts, xmlns)
    }

    fn text_at<'a>(texts: &'a [(String, String)], path: &str) -> Vec<&'a str> {
        texts.iter().filter(|(at, _)| at == path).map(|(_, text)| text.as_str()).collect()
    }

    #[test]
    fn params_come_from_the_form_body() {
        let params =
            QueryParams::parse(b"Action=CreateUser&Version=2010-05-08&UserName=al%20ice+b%26c&Path=%2F&Empty=");
        assert_eq!(params.action(), Ok("CreateUser"));
        assert_eq!(params.get("UserName"), Some("al ice b&c"));
        assert_eq!(params.get("Path"), Some("/"));
        assert_eq!(params.get("Empty"), Some(""));
        assert_eq!(params.get("username"), None, "names are case-sensitive");
        assert_eq!(params.required("UserName"), Ok("al ice b&c"));
        let missing = params.required("PolicyArn").unwrap_err();
        assert_eq!((missing.code, missing.status), ("MissingParameter", StatusCode::BAD_REQUEST));
        assert_eq!(missing.message, "The request must contain the parameter PolicyArn");
    }

    #[test]
    fn a_missing_or_empty_action_is_missing_action() {
        for body in [&b"Version=2010-05-08"[..], b"Action=&Version=2010-05-08", b""] {
            let error = QueryParams::parse(body).action().unwrap_err();
            assert_eq!((error.code, error.status), ("MissingAction", StatusCode::BAD_REQUEST));
        }
    }

    #[test]
    fn debug_shows_names_not_values() {
        let params = QueryParams::parse(b"Action=ChangePassword&OldPassword=hunter2&NewPassword=correct-horse");
        let shown = format!("{params:?}");
        assert!(shown.contains("OldPassword") && !shown.contains("hunter2") && !shown.contains("correct-horse"));
    }

    #[test]
    fn members_come_in_index_order() {
        let params = QueryParams::parse(
            b"ClientIDList.member.10=j&ClientIDList.member.2=b&ClientIDList.member.1=a&ClientIDList.member.2=dup\
              &ClientIDList.member.x=no&ClientIDList.member.0=no&ClientIDList.member.+3=no&ClientIDList.member.3.Key=no\
              &Other.member.1=no&ClientIDList=",
        );
        assert_eq!(params.members("ClientIDList"), ["a", "b", "j"]);
        assert!(params.members("Missing").is_empty());
    }

    #[test]
    fn tags_pair_keys_with_values() {
        let params = QueryParams::parse(
            b"Tags.member.2.Key=team&Tags.member.2.Value=storage&Tags.member.1.Key=env&Tags.member.1.Value=",
        );
        assert_eq!(
            params.tags("Tags").unwrap(),
            [("env".to_string(), String::new()), ("team".to_string(), "storage".to_string())]
        );
        assert!(params.tags("Nothing").unwrap().is_empty());
        let error = QueryParams::parse(b"Tags.member.1.Key=env").tags("Tags").unwrap_err();
        assert_eq!(error.code, "ValidationError");
        assert_eq!(
            error.message,
            "1 validation error detected: Value null at 'tags.1.member.value' failed to satisfy constraint: Member must not be null"
        );
        let error = QueryParams::parse(b"Tags.member.1.Value=x").tags("Tags").unwrap_err();
        assert!(error.message.contains("'tags.1.member.key'"), "{}", error.message);
    }

    #[test]
    fn context_entries_are_read_with_their_values_and_types() {
        let params = QueryParams::parse(
            b"ContextEntries.member.1.ContextKeyName=aws%3ASourceIp&ContextEntries.member.1.ContextKeyType=ip\
              &ContextEntries.member.1.ContextKeyValues.member.1=10.0.0.1\
              &ContextEntries.member.2.ContextKeyName=s3%3Aprefix&ContextEntries.member.2.ContextKeyType=stringList\
              &ContextEntries.member.2.ContextKeyValues.member.2=b&ContextEntries.member.2.ContextKeyValues.member.1=a",
        );
        let entries = params.context_entries().unwrap();
        assert_eq!(
            entries,
            [
                ContextEntry {
                    key_name: "aws:SourceIp".into(),
                    key_values: vec!["10.0.0.1".into()],
                    key_type: ContextKeyType::Ip
                },
                ContextEntry {
                    key_name: "s3:prefix".into(),
                    key_values: vec!["a".into(), "b".into()],
                    key_type: ContextKeyType::StringList
                },
            ]
        );
        assert!(entries[1].key_type.is_list() && !entries[0].key_type.is_list());

        let bad_type = QueryParams::parse(
            b"ContextEntries.member.1.ContextKeyName=k&ContextEntries.member.1.ContextKeyType=String",
        );
        let error = bad_type.context_entries().unwrap_err();
        assert_eq!(error.code, "ValidationError");
        assert!(
            error.message.contains("Value 'String' at 'contextEntries.1.member.contextKeyType'"),
            "{}",
            error.message
        );
        assert!(error.message.contains("[string, stringList, numeric"), "{}", error.message);
        let no_name = QueryParams::parse(b"ContextEntries.member.1.ContextKeyType=string");
        assert!(no_name.context_entries().unwrap_err().message.contains("contextKeyName"));
    }

    #[test]
    fn context_key_types_round_trip() {
        for key_type in ContextKeyType::ALL {
            assert_eq!(ContextKeyType::parse(key_type.as_str()), Some(key_type));
            assert_eq!(key_type.is_list(), key_type.as_str().ends_with("List"));
        }
    }

    #[test]
    fn integers_are_range_checked_with_aws_wording() {
        let params = QueryParams::parse(b"DurationSeconds=5&MaxItems=1000&Big=99999999999&Neg=-1&Word=abc&Ok=3600");
        assert_eq!(params.u32_in("Missing", 900, 43200), Ok(None));
        assert_eq!(params.u32_in("Ok", 900, 43200), Ok(Some(3600)));
        assert_eq!(params.u32_in("MaxItems", 1, 1000), Ok(Some(1000)));
        let error = params.u32_in("DurationSeconds", 900, 43200).unwrap_err();
        assert_eq!((error.code, error.status), ("ValidationError", StatusCode::BAD_REQUEST));
        assert_eq!(
            error.message,
            "1 validation error detected: Value '5' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"
        );
        assert!(params.u32_in("MaxItems", 1, 999).unwrap_err().message.ends_with("less than or equal to 999"));
        assert!(params.u32_in("Big", 1, 1000).unwrap_err().message.ends_with("less than or equal to 1000"));
        assert!(params.u32_in("Neg", 0, 10).unwrap_err().message.ends_with("greater than or equal to 0"));
        assert!(params.u32_in("Word", 0, 10).unwrap_err().message.contains("Value 'abc' at 'word'"));
    }

    #[test]
    fn booleans_are_true_or_false() {
        let params = QueryParams::parse(b"A=true&B=FALSE&C=yes");
        assert_eq!(params.bool("A"), Ok(Some(true)));
        assert_eq!(params.bool("B"), Ok(Some(false)));
        assert_eq!(params.bool("D"), Ok(None));
        assert_eq!(params.bool("C").unwrap_err().code, "ValidationError");
    }

    #[test]
    fn responses_have_aws_shape_and_parse_back() {
        let mut response = ResponseWriter::new(Api::Iam, "ListUsers");
        response
            .list("Users", ["alice", "b<&\"'>b"], |member, name| {
                member.text("UserName", name).timestamp("CreateDate", datetime!(2015-08-30 14:36:00 +2));
            })
            .bool("IsTruncated", false)
            .opt_text("Marker", None)
            .number("Count", 2)
            .text_list("Names", ["x", "y"])
            .element("Empty", |_| {});
        let xml = response.finish("req-<1>");
        assert!(xml.starts_with(
            "<ListUsersResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ListUsersResult><Users><member>"
        ));
        assert!(xml.ends_with("</ListUsersResult><ResponseMetadata><RequestId>req-&lt;1&gt;</RequestId></ResponseMetadata></ListUsersResponse>"));
        let (texts, xmlns) = parse_back(&xml);
        assert_eq!(xmlns.as_deref(), Some(Api::Iam.namespace()));
        let base = "ListUsersResponse/ListUsersResult";
        assert_eq!(text_at(&texts, &format!("{base}/Users/member/UserName")), ["alice", "b<&\"'>b"]);
        assert_eq!(text_at(&texts, &format!("{base}/Users/member/CreateDate")), ["2015-08-30T12:36:00Z"; 2]);
        assert_eq!(text_at(&texts, &format!("{base}/IsTruncated")), ["false"]);
        assert_eq!(text_at(&texts, &format!("{base}/Count")), ["2"]);
        assert_eq!(text_at(&texts, &format!("{base}/Names/member")), ["x", "y"]);
        assert_eq!(text_at(&texts, &format!("{base}/Empty")), [""]);
        assert!(text_at(&texts, &format!("{base}/Marker")).is_empty());
        assert_eq!(text_at(&texts, "ListUsersResponse/ResponseMetadata/RequestId"), ["req-<1>"]);
    }

    #[test]
    fn actions_without_output_have_no_result_element() {
        let xml = ResponseWriter::new(Api::Sts, "DeleteUser").finish("r");
        assert_eq!(
            xml,
            "<DeleteUserResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><ResponseMetadata>\
             <RequestId>r</RequestId></ResponseMetadata></DeleteUserResponse>"
        );
        parse_back(&xml);
    }

    #[test]
    fn control_characters_cannot_break_the_document() {
        let mut response = ResponseWriter::new(Api::Iam, "GetUser");
        response.text("UserName", "a\u{0}b\u{1b}c\td\u{7f}é\u{FFFF}");
        let (texts, _) = parse_back(&response.finish("r"));
        assert_eq!(
            text_at(&texts, "GetUserResponse/GetUserResult/UserName"),
            ["a\u{FFFD}b\u{FFFD}c\td\u{7f}é\u{FFFD}"]
        );
    }

    #[test]
    fn errors_have_aws_shape_and_parse_back() {
        let error = QueryError::no_such_entity("The user with name <b&\"'> cannot be found.");
        assert_eq!((error.status, error.code, error.sender), (StatusCode::NOT_FOUND, "NoSuchEntity", true));
        let xml = error.to_xml(Api::Iam, "req-1");
        assert!(xml.starts_with(
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>"
        ));
        assert!(xml.ends_with("</Message></Error><RequestId>req-1</RequestId></ErrorResponse>"));
        let (texts, xmlns) = parse_back(&xml);
        assert_eq!(xmlns.as_deref(), Some(Api::Iam.namespace()));
        assert_eq!(text_at(&texts, "ErrorResponse/Error/Message"), ["The user with name <b&\"'> cannot be found."]);
        assert_eq!(text_at(&texts, "ErrorResponse/RequestId"), ["req-1"]);

        let failure = QueryError::service_failure();
        let (texts, xmlns) = parse_back(&failure.to_xml(Api::Sts, "req-2"));
        assert_eq!(xmlns.as_deref(), Some("https://sts.amazonaws.com/doc/2011-06-15/"));
        assert_eq!(text_at(&texts, "ErrorResponse/Error/Type"), ["Receiver"]);
        assert_eq!(text_at(&texts, "ErrorResponse/Error/Code"), ["ServiceFailure"]);
        assert_eq!(failure.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn error_constructors_carry_aws_codes_and_statuses() {
        for (error, status, code) in [
            (QueryError::entity_already_exists("x"), 409, "EntityAlreadyExists"),
            (QueryError::delete_conflict("x"), 409, "DeleteConflict"),
            (QueryError::limit_exceeded("x"), 409, "LimitExceeded"),
            (QueryError::malformed_policy("x"), 400, "MalformedPolicyDocument"),
            (QueryError::invalid_input("x"), 400, "InvalidInput"),
            (QueryError::validation("x"), 400, "ValidationError"),
            (QueryError::access_denied("x"), 403, "AccessDenied"),
            (QueryError::invalid_client_token_id(), 403, "InvalidClientTokenId"),
            (QueryError::expired_token(), 400, "ExpiredToken"),
            (QueryError::invalid_authentication_code("x"), 403, "InvalidAuthenticationCode"),
            (QueryError::invalid_action("Frobnicate", "2010-05-08"), 400, "InvalidAction"),
        ] {
            assert_eq!((error.status.as_u16(), error.code, error.sender), (status, code, true));
        }
        assert_eq!(
            QueryError::invalid_client_token_id().message,
            "The security token included in the request is invalid."
        );
        assert_eq!(QueryError::expired_token().message, "The security token included in the request is expired");
        assert_eq!(
            QueryError::invalid_action("Frobnicate", "2010-05-08").message,
            "Could not find operation Frobnicate for version 2010-05-08"
        );
    }

    #[test]
    fn apis_by_service() {
        assert_eq!(Api::from_service("iam"), Some(Api::Iam));
        assert_eq!(Api::from_service("sts"), Some(Api::Sts));
        assert_eq!(Api::from_service("s3"), None);
        assert_eq!((Api::Iam.version(), Api::Sts.version()), ("2010-05-08", "2011-06-15"));
    }
}

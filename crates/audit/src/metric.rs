//! The figures metric alarm rules read: this process's metrics as the Prometheus text exposition
//! format renders them (`/-/metrics`), read back into series. Only what that renderer writes is
//! read: `# TYPE` lines, and samples `name{label="value",...} number` with `\\`, `\"` and `\n`
//! escapes in label values; anything else is skipped.

use std::collections::HashSet;

/// One series' value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// The samples of one rendering, and which metric families are gauges (whose value is compared
/// with a threshold; every other series only grows, and its rise is).
#[derive(Debug, Default)]
pub struct Figures {
    pub samples: Vec<Sample>,
    gauges: HashSet<String>,
}

impl Figures {
    pub fn parse(text: &str) -> Figures {
        let mut figures = Figures::default();
        for line in text.lines() {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                if let Some((name, "gauge")) = declared.split_once(' ') {
                    figures.gauges.insert(name.to_owned());
                }
            } else if !line.starts_with('#')
                && let Some(sample) = sample(line)
            {
                figures.samples.push(sample);
            }
        }
        figures
    }

    pub fn is_gauge(&self, name: &str) -> bool {
        self.gauges.contains(name)
    }

    /// The sum of the series of `name` that carry every label in `labels`; `None` while no such
    /// series exists (nothing counted yet).
    pub fn sum(&self, name: &str, labels: &[(String, String)]) -> Option<f64> {
        let matching =
            self.samples.iter().filter(|s| s.name == name && labels.iter().all(|wanted| s.labels.contains(wanted)));
        matching.map(|s| s.value).reduce(|a, b| a + b)
    }
}

/// One sample line; `None` for what does not read as one.
fn sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = rest.split_once("=\"")?;
            let (value, after) = quoted(after)?;
            labels.push((label.to_owned(), value));
            rest = after;
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample { name: name.to_owned(), labels, value })
}

/// A label value up to its closing quote, unescaped; and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE latchkey_denied_total counter\n\
        latchkey_denied_total{code=\"AccessDenied\"} 3\n\
        latchkey_denied_total{code=\"SignatureDoesNotMatch\"} 4\n\
        # TYPE latchkey_open_connections gauge\n\
        latchkey_open_connections 7\n\
        latchkey_requests_total{surface=\"s3\",operation=\"Get\\\"Object\\\\\",status=\"200\"} 10\n\
        latchkey_request_duration_seconds_bucket{surface=\"s3\",le=\"+Inf\"} 10\n\
        latchkey_request_duration_seconds_sum{surface=\"s3\"} 0.25\n\
        garbage {\n";

    #[test]
    fn renders_read_back_into_series() {
        let figures = Figures::parse(TEXT);
        assert_eq!(figures.sum("latchkey_denied_total", &[]), Some(7.0));
        let code = |c: &str| vec![("code".to_owned(), c.to_owned())];
        assert_eq!(figures.sum("latchkey_denied_total", &code("AccessDenied")), Some(3.0));
        assert_eq!(figures.sum("latchkey_denied_total", &code("NoSuchKey")), None);
        assert_eq!(figures.sum("latchkey_open_connections", &[]), Some(7.0));
        assert!(figures.is_gauge("latchkey_open_connections") && !figures.is_gauge("latchkey_denied_total"));
        let escaped = vec![("operation".to_owned(), "Get\"Object\\".to_owned())];
        assert_eq!(figures.sum("latchkey_requests_total", &escaped), Some(10.0));
        assert_eq!(figures.sum("latchkey_request_duration_seconds_sum", &[]), Some(0.25));
        assert_eq!(figures.samples.len(), 6, "the garbage line is skipped");
    }
}

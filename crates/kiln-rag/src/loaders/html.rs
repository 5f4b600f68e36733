//! Text out of HTML: the `<title>`, and the body's text with scripts, styles and markup
//! removed, block elements as paragraphs (a blank line between), character references decoded and runs of
//! whitespace collapsed. Enough for indexing; not a browser.

/// Elements whose content is not text.
const HIDDEN: [&str; 7] = [
    "script", "style", "noscript", "template", "svg", "head", "title",
];
/// Elements that start or end a line.
const BLOCKS: [&str; 26] = [
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "blockquote",
    "pre",
    "hr",
    "dt",
    "dd",
    "main",
    "aside",
];

/// (title, text) of an HTML page.
pub fn html_to_text(html: &str) -> (Option<String>, String) {
    let title = element_text(html, "title").map(|t| collapse(&decode_entities(&t)));
    let mut out = String::new();
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while i < html.len() {
        let Some(lt) = html[i..].find('<').map(|k| i + k) else {
            out.push_str(&html[i..]);
            break;
        };
        out.push_str(&html[i..lt]);
        if lower[lt..].starts_with("<!--") {
            i = lower[lt..].find("-->").map_or(html.len(), |k| lt + k + 3);
            continue;
        }
        let Some(gt) = html[lt..].find('>').map(|k| lt + k) else {
            break;
        };
        let tag = tag_name(&lower[lt + 1..gt]);
        i = gt + 1;
        if HIDDEN.contains(&tag.as_str()) && !lower[lt + 1..gt].starts_with('/') {
            let close = format!("</{tag}");
            i = lower[i..].find(&close).map_or(html.len(), |k| i + k);
            i = html[i..].find('>').map_or(html.len(), |k| i + k + 1);
            continue;
        }
        if BLOCKS.contains(&tag.as_str()) {
            out.push('\n');
        } else {
            out.push(' ');
        }
    }
    let text = decode_entities(&out);
    let lines: Vec<String> = text.lines().map(collapse).collect();
    let mut body = String::new();
    let mut blank = true;
    for l in lines {
        if l.is_empty() {
            if !blank {
                body.push('\n');
            }
            blank = true;
        } else {
            body.push_str(&l);
            body.push('\n');
            blank = false;
        }
    }
    (title, body.trim_end().to_string())
}

fn tag_name(inside: &str) -> String {
    inside
        .trim_start_matches('/')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn element_text(html: &str, tag: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let open = lower.find(&format!("<{tag}"))?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find(&format!("</{tag}"))?;
    Some(html[start..end].to_string())
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `&amp;`, `&lt;`, ... and numeric references; unknown ones stay as written.
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest[1..].find(';').map(|k| k + 1).filter(|&k| k <= 10);
        let decoded = end.and_then(|k| {
            let name = &rest[1..k];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                "mdash" => Some('—'),
                "ndash" => Some('–'),
                "hellip" => Some('…'),
                "copy" => Some('©'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((c, k + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_title_and_entities_without_scripts() {
        let page = "<html><head><title>Tea &amp; Biscuits</title><style>p{}</style></head>\
                    <body><h1>Tea</h1><p>Steep for <b>3</b>&nbsp;minutes.</p>\
                    <script>var x = '<p>no</p>';</script><!-- hidden --><ul><li>Milk &#8212; \
                    optional</li><li>&#x263A;</li></ul></body></html>";
        let (title, text) = html_to_text(page);
        assert_eq!(title.as_deref(), Some("Tea & Biscuits"));
        // Blocks come out as paragraphs (what the sentence chunker keeps apart).
        assert_eq!(text, "Tea\n\nSteep for 3 minutes.\n\nMilk — optional\n\n☺");
    }

    #[test]
    fn unknown_and_bare_ampersands_stay() {
        assert_eq!(decode_entities("a & b &zzz; &lt;"), "a & b &zzz; <");
    }
}

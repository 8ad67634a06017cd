//! Limits on XML read from outside (libvirt domain XML, libvirt host CPU XML), checked
//! before the text reaches the XML parser: roxmltree parses nested elements recursively,
//! so a document nesting thousands of elements (even inside an element rvmm ignores)
//! would overflow the stack, and nothing bounded a document's size.
//!
//! [`check`] is one linear, non-recursive scan: it counts open elements (skipping
//! comments, CDATA sections, processing instructions, declarations and quoted attribute
//! values) and refuses more than [`MAX_XML_DEPTH`] levels, and refuses documents larger
//! than [`MAX_XML_BYTES`]. It never under-counts what the parser would recurse into; it
//! does not check well-formedness (the parser does).

use thiserror::Error;

/// Largest XML document accepted: 1 MiB (a libvirt domain is a few KiB; `virsh
/// capabilities` of a large host some hundred KiB).
pub const MAX_XML_BYTES: usize = 1 << 20;

/// Deepest element nesting accepted: 256 levels (libvirt's own documents nest fewer than
/// ten; roxmltree needs a stack frame per level).
pub const MAX_XML_DEPTH: usize = 256;

/// Why a document is refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XmlLimitError {
    #[error("the document is {size} bytes, more than the limit of {MAX_XML_BYTES} bytes (1 MiB)")]
    TooLarge { size: usize },
    /// At `line` (the caller names the file and line).
    #[error("elements nest deeper than the limit of {MAX_XML_DEPTH} levels")]
    TooDeep { line: u32 },
}

impl XmlLimitError {
    /// The line the error is on (1 for a size error).
    pub fn line(&self) -> u32 {
        match self {
            XmlLimitError::TooLarge { .. } => 1,
            XmlLimitError::TooDeep { line } => *line,
        }
    }
}

/// Checks `text` against [`MAX_XML_BYTES`] and [`MAX_XML_DEPTH`].
pub fn check(text: &str) -> Result<(), XmlLimitError> {
    if text.len() > MAX_XML_BYTES {
        return Err(XmlLimitError::TooLarge { size: text.len() });
    }
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0usize;
    // Finds `pat` at or after `from`; the index just past it, or the end of the text.
    let skip_past = |from: usize, pat: &[u8]| -> usize {
        b.get(from..)
            .and_then(|rest| rest.windows(pat.len()).position(|w| w == pat))
            .map_or(b.len(), |p| from + p + pat.len())
    };
    while let Some(off) = b
        .get(i..)
        .and_then(|rest| rest.iter().position(|&c| c == b'<'))
    {
        let at = i + off;
        let rest = &b[at..];
        if rest.starts_with(b"<!--") {
            i = skip_past(at + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = skip_past(at + 9, b"]]>");
        } else if rest.starts_with(b"<?") {
            i = skip_past(at + 2, b"?>");
        } else if rest.starts_with(b"<!") {
            // A declaration (DOCTYPE, which the parser refuses anyway): to its end, over an
            // internal subset in brackets.
            i = declaration_end(b, at + 2);
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i = skip_past(at + 2, b">");
        } else {
            // A start tag: to its `>` outside quotes; `/>` closes it at once.
            let (end, empty) = tag_end(b, at + 1);
            if !empty {
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    let line = b[..at].iter().filter(|&&c| c == b'\n').count() + 1;
                    return Err(XmlLimitError::TooDeep {
                        line: u32::try_from(line).unwrap_or(u32::MAX),
                    });
                }
            }
            i = end;
        }
    }
    Ok(())
}

/// The bytes of `b` from `from` on that are outside quoted attribute values, with their
/// indexes (the quotes themselves are skipped too).
fn unquoted(b: &[u8], from: usize) -> impl Iterator<Item = (usize, u8)> + '_ {
    let mut quote: Option<u8> = None;
    b.iter()
        .enumerate()
        .skip(from)
        .filter_map(move |(i, &c)| match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                None
            }
            None if c == b'"' || c == b'\'' => {
                quote = Some(c);
                None
            }
            None => Some((i, c)),
        })
}

/// The index past the `>` ending the tag whose name starts at `from` (the end of the
/// text if none), and whether it is an empty-element tag (`/>`).
fn tag_end(b: &[u8], from: usize) -> (usize, bool) {
    unquoted(b, from)
        .find(|&(_, c)| c == b'>')
        .map_or((b.len(), false), |(i, _)| {
            (i + 1, i > from && b[i - 1] == b'/')
        })
}

/// The index past the `>` ending a `<!...` declaration, skipping a bracketed subset.
fn declaration_end(b: &[u8], from: usize) -> usize {
    let mut brackets = 0usize;
    unquoted(b, from)
        .find(|&(_, c)| {
            match c {
                b'[' => brackets += 1,
                b']' => brackets = brackets.saturating_sub(1),
                _ => {}
            }
            c == b'>' && brackets == 0
        })
        .map_or(b.len(), |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize, inner: &str) -> String {
        format!("{}{inner}{}", "<a>".repeat(depth), "</a>".repeat(depth))
    }

    #[test]
    fn depth_up_to_the_limit_is_accepted_and_parses() {
        let text = nested(MAX_XML_DEPTH, "x");
        assert_eq!(check(&text), Ok(()));
        assert!(roxmltree::Document::parse(&text).is_ok());
        // Siblings, empty elements and closed elements do not add up.
        let wide = format!("<r>{}</r>", "<a><b/></a><c/>".repeat(10_000));
        assert_eq!(check(&wide), Ok(()));
    }

    #[test]
    fn deeper_nesting_is_refused_with_its_line() {
        assert_eq!(
            check(&nested(MAX_XML_DEPTH + 1, "")),
            Err(XmlLimitError::TooDeep { line: 1 })
        );
        let text = format!("<domain>\n<metadata>\n{}", nested(100_000, ""));
        let e = check(&text).unwrap_err();
        assert_eq!(e, XmlLimitError::TooDeep { line: 3 });
        assert_eq!(
            e.to_string(),
            "elements nest deeper than the limit of 256 levels"
        );
        // Unclosed start tags count as nesting too (what the parser would recurse into).
        assert!(check(&"<a>".repeat(300)).is_err());
    }

    #[test]
    fn markup_that_is_not_an_element_is_skipped() {
        let inner = "<!-- <a><a><a> --><![CDATA[<a><a>]]><?pi <a> ?><e k='<a>' j=\"/>\"/>";
        let text = format!(
            "<?xml version='1.0'?><!DOCTYPE d [<!ENTITY x '<a>'>]>{}",
            nested(MAX_XML_DEPTH, &inner.repeat(50))
        );
        assert_eq!(check(&text), Ok(()));
    }

    #[test]
    fn size_limit() {
        let big = format!("<a>{}</a>", " ".repeat(MAX_XML_BYTES));
        assert_eq!(
            check(&big).unwrap_err().to_string(),
            format!(
                "the document is {} bytes, more than the limit of 1048576 bytes (1 MiB)",
                MAX_XML_BYTES + 7
            )
        );
        assert_eq!(check(&big[..MAX_XML_BYTES]), Ok(()));
    }

    #[test]
    fn non_ascii_and_truncated_text_is_scanned_safely() {
        for text in [
            "<é",
            "<a x='é",
            "<!--",
            "<![CDATA[",
            "<?",
            "<!DOCTYPE [",
            "</",
            "<",
            "é<",
        ] {
            let _ = check(text);
        }
        assert_eq!(check("<ü><ö/></ü>"), Ok(()));
    }
}

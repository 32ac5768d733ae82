//! SSML (a subset of SSML 1.1) -> a flat list of [`Run`]s in document order:
//! text for the frontend, words with a given spoken form (`say-as`, `sub`),
//! IPA words (`phoneme`), breaks, marks and sentence boundaries, each with
//! the [`Style`] (rate, voice) of its enclosing elements.
//!
//! The XML is read by `roxmltree` (DTDs refused, so no entity bombs; at most
//! [`MAX_NODES`] nodes); this module walks the tree without recursion and
//! refuses nesting deeper than [`MAX_DEPTH`] elements. Malformed documents
//! give an [`SsmlError`] with the line and column; what is accepted but not
//! supported gives a warning (at most [`MAX_WARNINGS`]) and is spoken as
//! text, or skipped where its content is not meant to be spoken.
//!
//! | element | what it does |
//! |---|---|
//! | `speak` | the root (required); `version`, namespaces accepted |
//! | `p`, `s` | [`Run::Boundary`] at the start and the end |
//! | `break` | [`Run::Break`]: `time` ("500ms", "1.5s"; clamped to 0..=10 s with a warning; a bad value is an error), else `strength` (see [`strength_ms`]), else medium (400 ms) |
//! | `prosody` | `rate` multiplies [`Style::rate`] (see [`parse_rate`]); `pitch`, `volume`, ... warn (ignored) |
//! | `emphasis` | emphasis slows the words down: `level` strong ×0.85, moderate (default) ×0.92, reduced ×1.1, none ×1.0 on the rate |
//! | `voice` | `name` sets [`Style::voice`] for its content; other attributes warn |
//! | `say-as` | [`Run::Say`] for `characters`/`spell-out`, `cardinal`/`number`, `ordinal`, `digits`, `date`, `time`, `telephone`; other types, or content the type cannot read, warn and are spoken as text |
//! | `sub` | [`Run::Say`] speaking `alias` (normalised like plain text) for its content |
//! | `phoneme` | [`Run::Ipa`] for `alphabet="ipa"` (or no alphabet); other alphabets warn and the content is spoken as text |
//! | `mark` | [`Run::Mark`] |
//! | `metadata`, `meta`, `desc`, `lexicon` | warn; content not spoken |
//! | any other (`audio`, `lookup`, `token`, `w`, foreign namespaces, ...) | warn; content spoken as text |
//!
//! Every run boundary is a word boundary (`a<break/>b` are two words);
//! comments and processing instructions are ignored, and text on both sides
//! of one is one run. Whitespace-only text gives no run.

use std::ops::Range;

use roxmltree::{Node, NodeType, ParsingOptions};
use unicode_normalization::UnicodeNormalization;

use super::normalize::{self, Piece};
use super::MAX_TEXT_BYTES;

/// Deepest element nesting accepted (`speak` is level 1).
pub const MAX_DEPTH: usize = 64;
/// Most XML nodes (elements, text, comments, processing instructions) accepted.
pub const MAX_NODES: u32 = 100_000;
/// Most warnings kept; any more are counted in one last warning.
pub const MAX_WARNINGS: usize = 100;
/// Longest break (ms); longer ones are clamped with a warning.
pub const MAX_BREAK_MS: u32 = 10_000;
/// Slowest [`Style::rate`]; slower rates are clamped with a warning.
pub const MIN_RATE: f32 = 0.25;
/// Fastest [`Style::rate`]; faster rates are clamped with a warning.
pub const MAX_RATE: f32 = 4.0;
/// The SSML namespace (elements in it or in no namespace are SSML).
pub const SSML_NS: &str = "http://www.w3.org/2001/10/synthesis";

/// A parsed SSML document: its runs in document order and the warnings
/// (each "line L, column C: message").
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The runs, in document order.
    pub runs: Vec<Run>,
    /// What was accepted but ignored or spoken differently.
    pub warnings: Vec<String>,
}

/// Style in force for a run (from enclosing elements).
#[derive(Clone, Debug, PartialEq)]
pub struct Style {
    /// Speaking-rate multiplier from `prosody rate` (and `emphasis`): 1.0
    /// normal, 2.0 twice as fast; nested elements multiply; clamped to
    /// [`MIN_RATE`]..=[`MAX_RATE`] with a warning.
    pub rate: f32,
    /// `voice name` in force (a loaded voice's name or a speaker name of the
    /// current voice; the engine resolves it).
    pub voice: Option<String>,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            rate: 1.0,
            voice: None,
        }
    }
}

/// One piece of a document, in document order.
#[derive(Clone, Debug, PartialEq)]
pub enum Run {
    /// Character data spoken through the text frontend. `text` is the
    /// decoded text (entities and CDATA resolved, line ends normalised as XML
    /// does); `src` has `text.len() + 1` entries: `src[k]` is the byte offset
    /// in the SSML source of byte k of `text` (every byte of a multi-byte
    /// char or of a decoded entity maps to the start of its source; the last
    /// entry is the end offset), so a word at `text[a..b]` came from
    /// `source[src[a]..src[b]]`. Never whitespace only.
    Text {
        /// The decoded text.
        text: String,
        /// Source offset of each byte of `text`, then the end offset.
        src: Vec<usize>,
        /// The style in force.
        style: Style,
    },
    /// One input word whose spoken form is given (`say-as`, `sub alias`):
    /// `pieces` are what the frontend speaks (may be empty: `sub alias=""`
    /// speaks nothing), `word` the element's text content as written
    /// (decoded, trimmed), `src` its byte range in the source (of the
    /// content; for an empty `sub` the element).
    Say {
        /// The spoken form.
        pieces: Vec<Piece>,
        /// The content as written.
        word: String,
        /// Where the content is in the source.
        src: Range<usize>,
        /// The style in force.
        style: Style,
    },
    /// A word given as IPA (`phoneme alphabet="ipa" ph="..."`): `ipa`
    /// NFD-normalised (whitespace runs made one space), `word` the content,
    /// `src` its range (for an empty element the element's).
    Ipa {
        /// The pronunciation.
        ipa: String,
        /// The content as written.
        word: String,
        /// Where the content is in the source.
        src: Range<usize>,
        /// The style in force.
        style: Style,
    },
    /// Silence of exactly `ms` milliseconds (`break`; 0 for `strength="none"`).
    Break {
        /// Milliseconds.
        ms: u32,
    },
    /// A `mark name="..."`.
    Mark {
        /// The mark's name.
        name: String,
    },
    /// A sentence/paragraph boundary (`s`/`p` start or end): the text before
    /// and after are never one sentence. Never first, never twice in a row.
    Boundary,
}

/// Malformed SSML: the line and column (1-based, columns in characters) and
/// the cause.
#[derive(Debug, thiserror::Error)]
#[error("SSML line {line}, column {column}: {message}")]
pub struct SsmlError {
    /// Line (1-based).
    pub line: u32,
    /// Column in characters (1-based).
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

/// Parse an SSML document. Never panics; time is linear in the input.
///
/// # Errors
/// Input over [`MAX_TEXT_BYTES`], malformed XML, a DTD, more than
/// [`MAX_NODES`] nodes, a root other than `speak`, nesting deeper than
/// [`MAX_DEPTH`], a bad `break` `time` or `strength`.
pub fn parse(source: &str) -> Result<Document, SsmlError> {
    parse_with_limit(source, MAX_NODES)
}

/// [`parse`] with another node limit (tests: deep trees past [`MAX_NODES`]).
pub(crate) fn parse_with_limit(source: &str, nodes_limit: u32) -> Result<Document, SsmlError> {
    if source.len() > MAX_TEXT_BYTES {
        return Err(SsmlError {
            line: 1,
            column: 1,
            message: format!(
                "SSML of {} bytes is longer than the {MAX_TEXT_BYTES}-byte limit; split it",
                source.len()
            ),
        });
    }
    let opt = ParsingOptions {
        allow_dtd: false,
        nodes_limit,
        ..ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(source, opt)
        .map_err(|e| xml_error(source, &e, nodes_limit))?;
    let mut w = Walker::new(source);
    let root = doc.root_element();
    if ssml_name(root) != Some("speak") {
        return Err(w.error(
            root.range().start,
            format!("the root element is <{}>, not <speak>", qname(source, root)),
        ));
    }
    w.walk(root)?;
    Ok(w.finish())
}

/// The position of byte `pos` as (line, column), counted like roxmltree
/// (columns in characters). A cursor: positions asked in document order
/// cost the distance from the previous one.
struct Lines<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
    col: u32,
}

impl<'a> Lines<'a> {
    fn new(src: &'a str) -> Self {
        Lines {
            src,
            pos: 0,
            line: 1,
            col: 1,
        }
    }

    fn at(&mut self, pos: usize) -> (u32, u32) {
        let mut pos = pos.min(self.src.len());
        while !self.src.is_char_boundary(pos) {
            pos -= 1;
        }
        if pos < self.pos {
            // Backwards (an element's start after its attributes): within
            // the line, step the column back; else count the lines back and
            // the column afresh.
            let back = &self.src[pos..self.pos];
            let lines = back.bytes().filter(|&b| b == b'\n').count() as u32;
            if lines == 0 {
                self.col = self.col.saturating_sub(back.chars().count() as u32).max(1);
            } else {
                let start = self.src[..pos].rfind('\n').map_or(0, |i| i + 1);
                self.line = self.line.saturating_sub(lines).max(1);
                self.col = 1 + self.src[start..pos].chars().count() as u32;
            }
        } else {
            for c in self.src[self.pos..pos].chars() {
                if c == '\n' {
                    self.line += 1;
                    self.col = 1;
                } else {
                    self.col = self.col.saturating_add(1);
                }
            }
        }
        self.pos = pos;
        (self.line, self.col)
    }
}

/// An `SsmlError` for a roxmltree error, placed where the parser stopped
/// (errors roxmltree gives no position for are placed here).
fn xml_error(src: &str, e: &roxmltree::Error, nodes_limit: u32) -> SsmlError {
    use roxmltree::Error as E;
    let at = |pos: usize, message: String| {
        let (line, column) = Lines::new(src).at(pos);
        SsmlError {
            line,
            column,
            message,
        }
    };
    match e {
        E::DtdDetected => at(
            src.find("<!DOCTYPE").unwrap_or(0),
            "a DTD (<!DOCTYPE ...>) is not allowed in SSML".into(),
        ),
        E::NodesLimitReached => at(
            nth_node_start(src, nodes_limit as usize),
            format!("more than {nodes_limit} XML nodes (elements, text, comments)"),
        ),
        E::UnclosedRootNode | E::UnexpectedEndOfStream => at(
            src.len(),
            "the document ends before its root element is closed".into(),
        ),
        E::NoRootNode => at(
            src.len(),
            "no root element: an SSML document is one <speak> element".into(),
        ),
        E::AttributesLimitReached | E::NamespacesLimitReached => at(0, e.to_string()),
        _ => {
            let p = e.pos();
            let msg = e.to_string();
            let suffix = format!(" at {}:{}", p.row, p.col);
            SsmlError {
                line: p.row,
                column: p.col,
                message: msg.strip_suffix(&suffix).unwrap_or(&msg).to_string(),
            }
        }
    }
}

/// About where the `n`-th XML node starts (for the node-limit error): each
/// tag, comment or instruction is a node, and so is the text between two.
fn nth_node_start(src: &str, n: usize) -> usize {
    let b = src.as_bytes();
    let mut count = 1; // the document node
    let mut text = false;
    for (i, &c) in b.iter().enumerate() {
        if c == b'<' {
            if text {
                count += 1;
                text = false;
            }
            if b.get(i + 1) != Some(&b'/') {
                count += 1;
            }
            if count > n {
                return i;
            }
        } else if c == b'>' {
            text = false;
        } else if !text && !c.is_ascii_whitespace() {
            text = true;
        }
    }
    src.len()
}

/// The element's SSML name: its local name when it is in no namespace or
/// the SSML one.
fn ssml_name<'a>(n: Node<'a, '_>) -> Option<&'a str> {
    let t = n.tag_name();
    match t.namespace() {
        None | Some(SSML_NS) => Some(t.name()),
        Some(_) => None,
    }
}

/// The element's name as written (with its prefix).
fn qname<'s>(src: &'s str, n: Node) -> &'s str {
    let start = n.range().start + 1;
    let rest = src.get(start..).unwrap_or("");
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The decoded text of a text node that starts at `start` in `src`, byte for
/// byte mapped to the source (see [`Run::Text`]): reads the character data
/// and CDATA sections roxmltree merged into the node, decoding references and
/// line ends as roxmltree does. Checked against `text` (roxmltree's): on a
/// mismatch (never seen) every byte maps to the node's start.
fn text_map(src: &str, start: usize, text: &str) -> Vec<usize> {
    let mut bytes: Vec<u8> = Vec::with_capacity(text.len());
    let mut map: Vec<usize> = Vec::with_capacity(text.len() + 1);
    let b = src.as_bytes();
    let mut pos = start;
    while pos < b.len() && bytes.len() < text.len() {
        if src[pos..].starts_with("<![CDATA[") {
            let body = pos + 9;
            let end = src[body..].find("]]>").map_or(b.len(), |i| body + i);
            let mut i = body;
            while i < end {
                if b[i] == b'\r' {
                    bytes.push(b'\n');
                    map.push(i);
                    i += if b.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                } else {
                    bytes.push(b[i]);
                    map.push(i);
                    i += 1;
                }
            }
            pos = (end + 3).min(b.len());
        } else if b[pos] == b'<' {
            break;
        } else {
            let end = src[pos..].find('<').map_or(b.len(), |i| pos + i);
            decode_chars(src, pos, end, &mut bytes, &mut map);
            pos = end;
        }
    }
    if bytes != text.as_bytes() {
        let mut v = vec![start; text.len()];
        v.push(pos);
        return v;
    }
    // Every byte of a multi-byte char maps to the char's start.
    for (i, c) in text.char_indices() {
        for k in 1..c.len_utf8() {
            map[i + k] = map[i];
        }
    }
    map.push(pos);
    map
}

/// One character-data token `src[pos..end]`, decoded as roxmltree's
/// `process_text` does: references resolved (their bytes kept raw), `\r\n`
/// and lone `\r` made `\n`.
fn decode_chars(src: &str, pos: usize, end: usize, bytes: &mut Vec<u8>, map: &mut Vec<usize>) {
    let b = src.as_bytes();
    let seg = &b[pos..end];
    if !seg.iter().any(|&c| c == b'&' || c == b'\r') {
        bytes.extend_from_slice(seg);
        map.extend(pos..end);
        return;
    }
    // Bytes of this token only: a trailing `\r` is rewritten within it.
    let first = bytes.len();
    let mut as_is = false;
    let mut i = pos;
    while i < end {
        if b[i] == b'&' {
            let Some((c, len)) = reference(&src[i..end]) else {
                // Unknown entity (roxmltree refuses it): keep the byte.
                bytes.push(b'&');
                map.push(i);
                i += 1;
                continue;
            };
            let mut buf = [0u8; 4];
            for &x in c.encode_utf8(&mut buf).as_bytes() {
                bytes.push(x);
                map.push(i);
            }
            as_is = true;
            i += len;
            continue;
        }
        let c = b[i];
        let at_end = i + 1 == end;
        if as_is {
            bytes.push(c);
            map.push(i);
            as_is = false;
        } else if bytes.len() > first && bytes.last() == Some(&b'\r') {
            let last = bytes.len() - 1;
            bytes[last] = b'\n';
            if at_end && c == b'\r' {
                bytes.push(b'\n');
                map.push(i);
            } else if c != b'\n' {
                bytes.push(c);
                map.push(i);
            }
        } else if at_end && c == b'\r' {
            bytes.push(b'\n');
            map.push(i);
        } else {
            bytes.push(c);
            map.push(i);
        }
        i += 1;
    }
}

/// A character or predefined entity reference at the start of `s`: the
/// character and the reference's length.
fn reference(s: &str) -> Option<(char, usize)> {
    let semi = s.find(';')?;
    let body = &s[1..semi];
    let c = if let Some(num) = body.strip_prefix('#') {
        let v = match num.strip_prefix('x') {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        // As roxmltree: a number that is no char reads U+FFFD.
        char::from_u32(v).unwrap_or('\u{FFFD}')
    } else {
        match body {
            "quot" => '"',
            "amp" => '&',
            "apos" => '\'',
            "lt" => '<',
            "gt" => '>',
            _ => return None,
        }
    };
    Some((c, semi + 1))
}

/// Text with its source map, gathered from one or more text nodes.
#[derive(Default)]
struct Mapped {
    text: String,
    src: Vec<usize>,
}

impl Mapped {
    fn push(&mut self, text: &str, src: Vec<usize>) {
        self.src.pop();
        self.text.push_str(text);
        self.src.extend(src);
    }

    /// The trimmed text and its source range (`None` when blank).
    fn trimmed(&self) -> Option<(&str, Range<usize>)> {
        let t = self.text.trim();
        if t.is_empty() {
            return None;
        }
        let a = self.text.len() - self.text.trim_start().len();
        let b = a + t.len();
        Some((t, self.src[a]..self.src[b]))
    }
}

/// What happens to an element's content.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Spoken (as the frontend's text).
    Speak,
    /// Not spoken (already spoken as a `Say`/`Ipa`, or metadata).
    Skip,
}

struct Frame {
    style: Style,
    mode: Mode,
    /// `p`/`s`: a boundary when it closes.
    boundary: bool,
}

struct Walker<'a> {
    src: &'a str,
    lines: Lines<'a>,
    runs: Vec<Run>,
    warnings: Vec<String>,
    dropped: usize,
    pending: Option<(Mapped, Style)>,
}

impl<'a> Walker<'a> {
    fn new(src: &'a str) -> Self {
        Walker {
            src,
            lines: Lines::new(src),
            runs: Vec::new(),
            warnings: Vec::new(),
            dropped: 0,
            pending: None,
        }
    }

    fn error(&mut self, pos: usize, message: String) -> SsmlError {
        let (line, column) = self.lines.at(pos);
        SsmlError {
            line,
            column,
            message,
        }
    }

    fn warn(&mut self, pos: usize, message: impl FnOnce() -> String) {
        if self.warnings.len() >= MAX_WARNINGS {
            self.dropped += 1;
            return;
        }
        let (line, column) = self.lines.at(pos);
        self.warnings
            .push(format!("line {line}, column {column}: {}", message()));
    }

    fn finish(mut self) -> Document {
        self.flush();
        if self.dropped > 0 {
            self.warnings
                .push(format!("{} more warnings not shown", self.dropped));
        }
        Document {
            runs: self.runs,
            warnings: self.warnings,
        }
    }

    fn push(&mut self, run: Run) {
        self.flush();
        if run == Run::Boundary && matches!(self.runs.last(), None | Some(Run::Boundary)) {
            return;
        }
        self.runs.push(run);
    }

    /// The text gathered so far becomes a run (unless it is blank).
    fn flush(&mut self) {
        if let Some((m, style)) = self.pending.take() {
            if !m.text.trim().is_empty() {
                self.runs.push(Run::Text {
                    text: m.text,
                    src: m.src,
                    style,
                });
            }
        }
    }

    fn text(&mut self, n: Node, style: &Style) {
        let t = n.text().unwrap_or("");
        let map = text_map(self.src, n.range().start, t);
        match &mut self.pending {
            Some((m, s)) if s == style => m.push(t, map),
            _ => {
                self.flush();
                let mut m = Mapped::default();
                m.push(t, map);
                self.pending = Some((m, style.clone()));
            }
        }
    }

    /// Walk the tree under `root` in document order without recursion
    /// (first child, next sibling, parent).
    fn walk(&mut self, root: Node) -> Result<(), SsmlError> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut node = root;
        self.enter(node, &mut stack)?;
        loop {
            if let Some(child) = node.first_child().filter(|_| node.is_element()) {
                node = child;
                self.enter(node, &mut stack)?;
                continue;
            }
            loop {
                self.leave(node, &mut stack);
                if node == root {
                    return Ok(());
                }
                if let Some(next) = node.next_sibling() {
                    node = next;
                    self.enter(node, &mut stack)?;
                    break;
                }
                match node.parent() {
                    Some(p) => node = p,
                    None => return Ok(()),
                }
            }
        }
    }

    fn enter(&mut self, n: Node, stack: &mut Vec<Frame>) -> Result<(), SsmlError> {
        if n.is_element() {
            self.flush();
            if stack.len() >= MAX_DEPTH {
                return Err(self.error(
                    n.range().start,
                    format!("elements nested deeper than {MAX_DEPTH} levels"),
                ));
            }
            let frame = match stack.last() {
                Some(f) if f.mode == Mode::Skip => Frame {
                    style: f.style.clone(),
                    mode: Mode::Skip,
                    boundary: false,
                },
                parent => {
                    let style = parent.map(|f| f.style.clone()).unwrap_or_default();
                    self.open(n, style, parent.is_none())?
                }
            };
            stack.push(frame);
        } else if n.node_type() == NodeType::Text {
            if let Some(f) = stack.last().filter(|f| f.mode == Mode::Speak) {
                let style = f.style.clone();
                self.text(n, &style);
            }
        }
        Ok(())
    }

    fn leave(&mut self, n: Node, stack: &mut Vec<Frame>) {
        if n.is_element() {
            self.flush();
            if stack.pop().is_some_and(|f| f.boundary) {
                self.push(Run::Boundary);
            }
        }
    }

    /// Warn about attributes of `n` (no namespace) not in `known`, and an
    /// `xml:lang` that is not English.
    /// (`known` `None`: an unsupported element, its attributes not checked.)
    fn check_attrs(&mut self, n: Node, el: &str, known: Option<&[&str]>) {
        for a in n.attributes() {
            match a.namespace() {
                None if known.is_some_and(|k| !k.contains(&a.name())) => {
                    let name = a.name().to_string();
                    self.warn(a.range().start, || {
                        format!("attribute {name} of <{el}> is not supported; ignored")
                    });
                }
                Some("http://www.w3.org/XML/1998/namespace") if a.name() == "lang" => {
                    let lang = a.value().trim().to_ascii_lowercase();
                    if !(lang.is_empty() || lang == "en" || lang.starts_with("en-") || lang.starts_with("en_")) {
                        let v = a.value().to_string();
                        self.warn(a.range().start, || {
                            format!("xml:lang=\"{v}\" is not English: spoken by the English frontend")
                        });
                    }
                }
                _ => {}
            }
        }
    }

    /// Open element `n` (its parent's content is spoken) with the parent's
    /// style: what it emits now, and its frame.
    fn open(&mut self, n: Node, mut style: Style, is_root: bool) -> Result<Frame, SsmlError> {
        let pos = n.range().start;
        let frame = |style: Style, mode: Mode| Frame {
            style,
            mode,
            boundary: false,
        };
        let name = ssml_name(n).unwrap_or("");
        match name {
            "speak" if is_root => {
                self.check_attrs(n, name, Some(&["version", "onlangfailure"]));
                Ok(frame(style, Mode::Speak))
            }
            "p" | "s" | "paragraph" | "sentence" => {
                self.check_attrs(n, name, Some(&[]));
                self.push(Run::Boundary);
                let mut f = frame(style, Mode::Speak);
                f.boundary = true;
                Ok(f)
            }
            "break" => {
                self.check_attrs(n, name, Some(&["time", "strength"]));
                let ms = self.break_ms(n)?;
                self.push(Run::Break { ms });
                Ok(frame(style, Mode::Speak))
            }
            "prosody" => {
                self.check_attrs(n, name, Some(&["rate"]));
                if let Some(a) = n.attribute_node("rate") {
                    match parse_rate(a.value()) {
                        Some(f) => style.rate = self.clamp_rate(a.range().start, style.rate * f),
                        None => {
                            let v = a.value().to_string();
                            self.warn(a.range().start, || {
                                format!("<prosody rate=\"{v}\"> is not a rate (x-slow .. x-fast, 150%, +20%, 1.5); ignored")
                            });
                        }
                    }
                }
                Ok(frame(style, Mode::Speak))
            }
            "emphasis" => {
                self.check_attrs(n, name, Some(&["level"]));
                let level = n.attribute("level").map(str::trim).unwrap_or("moderate");
                let f = match level {
                    "strong" => 0.85,
                    "moderate" => 0.92,
                    "reduced" => 1.1,
                    "none" => 1.0,
                    other => {
                        let v = other.to_string();
                        self.warn(pos, || {
                            format!("<emphasis level=\"{v}\"> is not strong, moderate, reduced or none; moderate used")
                        });
                        0.92
                    }
                };
                style.rate = self.clamp_rate(pos, style.rate * f);
                Ok(frame(style, Mode::Speak))
            }
            "voice" => {
                self.check_attrs(n, name, Some(&["name"]));
                match n.attribute("name").map(str::trim) {
                    Some(v) if !v.is_empty() => style.voice = Some(v.to_string()),
                    _ => self.warn(pos, || "<voice> without a name: the voice is unchanged".into()),
                }
                Ok(frame(style, Mode::Speak))
            }
            "mark" => {
                self.check_attrs(n, name, Some(&["name"]));
                match n.attribute("name") {
                    Some(v) if !v.trim().is_empty() => self.push(Run::Mark { name: v.to_string() }),
                    _ => self.warn(pos, || "<mark> without a name; ignored".into()),
                }
                Ok(frame(style, Mode::Speak))
            }
            "say-as" => {
                self.check_attrs(n, name, Some(&["interpret-as", "format", "detail"]));
                let mode = self.say_as(n, &style);
                Ok(frame(style, mode))
            }
            "sub" => {
                self.check_attrs(n, name, Some(&["alias"]));
                let mode = self.sub(n, &style);
                Ok(frame(style, mode))
            }
            "phoneme" => {
                self.check_attrs(n, name, Some(&["alphabet", "ph"]));
                let mode = self.phoneme(n, &style);
                Ok(frame(style, mode))
            }
            "metadata" | "meta" | "desc" | "lexicon" => {
                self.check_attrs(n, name, None);
                let el = name.to_string();
                self.warn(pos, || format!("<{el}> is not supported: its content is not spoken"));
                Ok(frame(style, Mode::Skip))
            }
            _ => {
                let el = qname(self.src, n).to_string();
                self.check_attrs(n, &el, None);
                self.warn(pos, || {
                    format!("unsupported element <{el}>: its content is spoken as text")
                });
                Ok(frame(style, Mode::Speak))
            }
        }
    }

    fn clamp_rate(&mut self, pos: usize, rate: f32) -> f32 {
        if (MIN_RATE..=MAX_RATE).contains(&rate) {
            return rate;
        }
        let r = rate.clamp(MIN_RATE, MAX_RATE);
        self.warn(pos, || {
            format!("speaking rate {rate} is outside {MIN_RATE}..={MAX_RATE}; {r} used")
        });
        r
    }

    fn break_ms(&mut self, n: Node) -> Result<u32, SsmlError> {
        if let Some(a) = n.attribute_node("time") {
            let v = a.value();
            let Some(ms) = parse_time(v) else {
                return Err(self.error(
                    a.range_value().start,
                    format!("bad <break time=\"{v}\">: expected a time such as 500ms or 1.5s"),
                ));
            };
            if !(0.0..=f64::from(MAX_BREAK_MS)).contains(&ms) {
                let c = ms.clamp(0.0, f64::from(MAX_BREAK_MS));
                self.warn(a.range_value().start, || {
                    format!("<break time=\"{v}\"> is outside 0..=10s; {c} ms used")
                });
                return Ok(c as u32);
            }
            return Ok(ms.round() as u32);
        }
        if let Some(a) = n.attribute_node("strength") {
            return strength_ms(a.value()).ok_or_else(|| {
                let v = a.value();
                self.error(
                    a.range_value().start,
                    format!("bad <break strength=\"{v}\">: expected none, x-weak, weak, medium, strong or x-strong"),
                )
            });
        }
        Ok(400)
    }

    /// The element's text content (text children; comments and instructions
    /// skipped) and whether it holds elements.
    fn content(&self, n: Node) -> (Mapped, bool) {
        let mut m = Mapped::default();
        let mut markup = false;
        for c in n.children() {
            if c.is_element() {
                markup = true;
            } else if c.is_text() {
                let t = c.text().unwrap_or("");
                m.push(t, text_map(self.src, c.range().start, t));
            }
        }
        (m, markup)
    }

    fn markup_inside(&mut self, n: Node, el: &str) {
        self.warn(n.range().start, || {
            format!("markup inside <{el}> is not supported: its content is spoken as text")
        });
    }

    fn say_as(&mut self, n: Node, style: &Style) -> Mode {
        let pos = n.range().start;
        let (m, markup) = self.content(n);
        if markup {
            self.markup_inside(n, "say-as");
            return Mode::Speak;
        }
        let Some((word, range)) = m.trimmed() else {
            self.warn(pos, || "empty <say-as>; nothing spoken".into());
            return Mode::Skip;
        };
        let kind = n.attribute("interpret-as").unwrap_or("").trim().to_ascii_lowercase();
        let format = n.attribute("format").map(|f| f.trim().to_ascii_lowercase());
        let pieces = match kind.as_str() {
            "characters" | "spell-out" => characters(word),
            "cardinal" | "number" => cardinal(word),
            "ordinal" => ordinal(word),
            "digits" => digits(word),
            "date" => date(word, format.as_deref()),
            "time" => time(word, format.as_deref()),
            "telephone" => telephone(word),
            _ => {
                self.warn(pos, || {
                    format!("<say-as interpret-as=\"{kind}\"> is not supported: spoken as text")
                });
                return Mode::Speak;
            }
        };
        if format.is_some() && !matches!(kind.as_str(), "date" | "time") {
            self.warn(pos, || format!("format of <say-as interpret-as=\"{kind}\"> ignored"));
        }
        match pieces {
            Some(pieces) => {
                let word = word.to_string();
                self.push(Run::Say {
                    pieces,
                    word,
                    src: range,
                    style: style.clone(),
                });
                Mode::Skip
            }
            None => {
                let w = word.to_string();
                self.warn(pos, || {
                    format!("\"{w}\" cannot be read as interpret-as=\"{kind}\": spoken as text")
                });
                Mode::Speak
            }
        }
    }

    fn sub(&mut self, n: Node, style: &Style) -> Mode {
        let pos = n.range().start;
        let Some(alias) = n.attribute("alias") else {
            self.warn(pos, || "<sub> without an alias: its content is spoken".into());
            return Mode::Speak;
        };
        let (m, markup) = self.content(n);
        if markup {
            self.markup_inside(n, "sub");
            return Mode::Speak;
        }
        let (word, src) = match m.trimmed() {
            Some((w, r)) => (w.to_string(), r),
            None => (String::new(), n.range()),
        };
        let mut pieces = Vec::new();
        for tok in alias.split_whitespace() {
            let prev = pieces.last().cloned();
            normalize::expand_token(tok, prev.as_ref(), &mut pieces);
        }
        self.push(Run::Say {
            pieces,
            word,
            src,
            style: style.clone(),
        });
        Mode::Skip
    }

    fn phoneme(&mut self, n: Node, style: &Style) -> Mode {
        let pos = n.range().start;
        let alphabet = n.attribute("alphabet").unwrap_or("ipa").trim();
        if !alphabet.eq_ignore_ascii_case("ipa") {
            let a = alphabet.to_string();
            self.warn(pos, || {
                format!("<phoneme alphabet=\"{a}\"> is not supported (only ipa): its content is spoken as text")
            });
            return Mode::Speak;
        }
        let ipa: String = n
            .attribute("ph")
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .nfd()
            .collect();
        if ipa.is_empty() {
            self.warn(pos, || "<phoneme> without ph: its content is spoken as text".into());
            return Mode::Speak;
        }
        let (m, markup) = self.content(n);
        if markup {
            self.markup_inside(n, "phoneme");
            return Mode::Speak;
        }
        let (word, src) = match m.trimmed() {
            Some((w, r)) => (w.to_string(), r),
            None => (String::new(), n.range()),
        };
        self.push(Run::Ipa {
            ipa,
            word,
            src,
            style: style.clone(),
        });
        Mode::Skip
    }
}

/// `break strength` in milliseconds: none 0, x-weak 100, weak 250, medium
/// 400, strong 750, x-strong 1250.
pub fn strength_ms(s: &str) -> Option<u32> {
    Some(match s.trim() {
        "none" => 0,
        "x-weak" => 100,
        "weak" => 250,
        "medium" => 400,
        "strong" => 750,
        "x-strong" => 1250,
        _ => return None,
    })
}

/// An unsigned decimal ("1", "1.5", ".5"), no exponent, no inf/NaN.
fn decimal(s: &str) -> Option<f64> {
    let ok = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_digit() || c == '.')
        && s.chars().any(|c| c.is_ascii_digit())
        && s.matches('.').count() <= 1;
    ok.then(|| s.parse().ok()).flatten()
}

/// A signed decimal: (sign present, value).
fn signed(s: &str) -> Option<(bool, f64)> {
    if let Some(r) = s.strip_prefix('+') {
        return Some((true, decimal(r)?));
    }
    if let Some(r) = s.strip_prefix('-') {
        return Some((true, -decimal(r)?));
    }
    Some((false, decimal(s)?))
}

/// A `break time` ("500ms", "1.5s", "2s"; case-insensitive) in ms; may be
/// out of range (the caller clamps).
fn parse_time(s: &str) -> Option<f64> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.strip_suffix("ms") {
        Some(n) => (n, 1.0),
        None => (t.strip_suffix('s')?, 1000.0),
    };
    let (_, v) = signed(num.trim_end())?;
    Some(v * mult)
}

/// A `prosody rate` as a multiplier: keywords (x-slow 0.5, slow 0.75,
/// medium/default 1.0, fast 1.25, x-fast 1.75), percentages ("150%" = 1.5;
/// signed ones are relative: "+20%" = 1.2, "-20%" = 0.8), numbers ("1.5" =
/// 1.5; signed ones are relative: "+0.5" = 1.5).
pub fn parse_rate(s: &str) -> Option<f32> {
    let t = s.trim().to_ascii_lowercase();
    let v = match t.as_str() {
        "x-slow" => 0.5,
        "slow" => 0.75,
        "medium" | "default" => 1.0,
        "fast" => 1.25,
        "x-fast" => 1.75,
        _ => {
            let (num, scale) = match t.strip_suffix('%') {
                Some(n) => (n.trim_end(), 0.01),
                None => (t.as_str(), 1.0),
            };
            let (relative, v) = signed(num)?;
            if relative {
                1.0 + v * scale
            } else {
                v * scale
            }
        }
    };
    let v = v as f32;
    v.is_finite().then_some(v)
}

const ONES: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Word pieces of space-separated words.
fn words(out: &mut Vec<Piece>, s: &str) {
    out.extend(s.split_whitespace().map(|w| Piece::Word(w.to_string())));
}

fn digit_word(c: char) -> Option<&'static str> {
    c.to_digit(10).map(|d| ONES[d as usize])
}

/// Letters to spell: lower-case ASCII letters of `c` (accents dropped).
fn push_letters(letters: &mut String, c: char) -> bool {
    let before = letters.len();
    for l in c.to_lowercase().flat_map(|l| l.nfd()) {
        if l.is_ascii_alphabetic() {
            letters.push(l);
        }
    }
    letters.len() > before
}

fn flush_letters(out: &mut Vec<Piece>, letters: &mut String) {
    if !letters.is_empty() {
        out.push(Piece::Spell(std::mem::take(letters)));
    }
}

/// `characters` / `spell-out`: letters spelled (a run of letters is one
/// `Spell`), digits as number words, a few symbols named.
fn characters(s: &str) -> Option<Vec<Piece>> {
    let mut out = Vec::new();
    let mut letters = String::new();
    for c in s.chars() {
        if c.is_alphabetic() && push_letters(&mut letters, c) {
            continue;
        }
        flush_letters(&mut out, &mut letters);
        if let Some(w) = digit_word(c) {
            words(&mut out, w);
            continue;
        }
        let name = match c {
            '-' => "dash",
            '_' => "underscore",
            '/' => "slash",
            '@' => "at",
            '&' => "and",
            '+' => "plus",
            '#' => "hash",
            '%' => "percent",
            '=' => "equals",
            '*' => "star",
            '$' => "dollar",
            _ => continue,
        };
        words(&mut out, name);
    }
    flush_letters(&mut out, &mut letters);
    (!out.is_empty()).then_some(out)
}

/// `cardinal` / `number`: an integer (optionally signed, with `,`
/// thousands separators) or a decimal ("3.14" -> three point one four);
/// more than 18 integer digits are read one by one.
fn cardinal(s: &str) -> Option<Vec<Piece>> {
    let (neg, t) = match s.strip_prefix(['-', '\u{2212}']) {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (t, None),
    };
    let grouped = int.split(',').all(|g| !g.is_empty() && g.chars().all(|c| c.is_ascii_digit()));
    let int_ok = (int.is_empty() && frac.is_some()) || grouped;
    let frac_ok = frac.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()));
    if !int_ok || !frac_ok {
        return None;
    }
    let digits_only: String = int.chars().filter(char::is_ascii_digit).collect();
    let mut out = Vec::new();
    if neg {
        words(&mut out, "minus");
    }
    if digits_only.is_empty() {
        words(&mut out, "zero");
    } else if digits_only.len() > 18 {
        words(&mut out, &normalize::digits(&digits_only));
    } else {
        words(&mut out, &normalize::cardinal(digits_only.parse().ok()?));
    }
    if let Some(f) = frac {
        words(&mut out, "point");
        words(&mut out, &normalize::digits(f));
    }
    Some(out)
}

/// `ordinal`: "3", "3rd", "21st", "1,000th" -> third, twenty first, ...
fn ordinal(s: &str) -> Option<Vec<Piece>> {
    let lower = s.to_ascii_lowercase();
    let num = ["st", "nd", "rd", "th"]
        .iter()
        .find_map(|suf| lower.strip_suffix(suf))
        .unwrap_or(&lower);
    if num.is_empty()
        || !num.split(',').all(|g| !g.is_empty() && g.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let d: String = num.chars().filter(char::is_ascii_digit).collect();
    if d.len() > 18 {
        return None;
    }
    let mut out = Vec::new();
    words(&mut out, &normalize::ordinal(d.parse().ok()?));
    Some(out)
}

/// `digits`: digit by digit (letters among them spelled); at least one digit.
fn digits(s: &str) -> Option<Vec<Piece>> {
    if !s.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut out = Vec::new();
    let mut letters = String::new();
    for c in s.chars() {
        if c.is_alphabetic() && push_letters(&mut letters, c) {
            continue;
        }
        flush_letters(&mut out, &mut letters);
        if let Some(w) = digit_word(c) {
            words(&mut out, w);
        }
    }
    flush_letters(&mut out, &mut letters);
    Some(out)
}

/// `telephone`: digit groups as written, each digit by digit, a comma
/// between groups ("555-1234" -> five five five, one two three four);
/// letters spelled, a leading "+" read "plus".
fn telephone(s: &str) -> Option<Vec<Piece>> {
    if !s.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut out = Vec::new();
    if s.starts_with('+') {
        words(&mut out, "plus");
    }
    let mut letters = String::new();
    let mut in_group = false;
    for c in s.chars() {
        let digit = digit_word(c);
        let letter = digit.is_none() && c.is_alphabetic() && push_letters(&mut letters, c);
        if digit.is_some() || letter {
            if !in_group && out.iter().any(|p| !matches!(p, Piece::Word(w) if w == "plus")) {
                out.push(Piece::Punct(','));
            }
            in_group = true;
            if let Some(w) = digit {
                flush_letters(&mut out, &mut letters);
                words(&mut out, w);
            }
        } else {
            flush_letters(&mut out, &mut letters);
            in_group = false;
        }
    }
    flush_letters(&mut out, &mut letters);
    Some(out)
}

/// A year read the way dates are said: 2024 twenty twenty four, 1905
/// nineteen oh five, 1900 nineteen hundred, 2005 two thousand five.
fn year_words(y: u64) -> String {
    if y < 1000 || (2000..=2009).contains(&y) || y.is_multiple_of(1000) {
        return normalize::cardinal(y);
    }
    let (hi, lo) = (y / 100, y % 100);
    match lo {
        0 => format!("{} hundred", normalize::cardinal(hi)),
        1..=9 => format!("{} oh {}", normalize::cardinal(hi), normalize::cardinal(lo)),
        _ => format!("{} {}", normalize::cardinal(hi), normalize::cardinal(lo)),
    }
}

/// `date`: numeric fields separated by `/`, `-`, `.` or spaces, in the
/// order `format` gives (letters y, m, d: ymd, mdy, dmy, md, dm, ym, my, y,
/// m, d); without a format: ymd when the first field has 4 digits, else mdy
/// (two fields: ym, my or md; one: y). mdy and ymd read "December twenty
/// fifth, twenty twenty four"; dmy "the twenty fifth of December, ...".
fn date(s: &str, format: Option<&str>) -> Option<Vec<Piece>> {
    let fields: Vec<&str> = s
        .split(|c: char| matches!(c, '/' | '-' | '.' | ',') || c.is_whitespace())
        .filter(|f| !f.is_empty())
        .collect();
    if fields.is_empty()
        || fields.len() > 3
        || !fields.iter().all(|f| f.len() <= 4 && f.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let four = |i: usize| fields.get(i).is_some_and(|f| f.len() == 4);
    let format = match format {
        Some(f) => f,
        None => match fields.len() {
            3 if four(0) => "ymd",
            3 => "mdy",
            2 if four(0) => "ym",
            2 if four(1) => "my",
            2 => "md",
            _ if four(0) => "y",
            _ => return None,
        },
    };
    if format.len() != fields.len()
        || !format.chars().all(|c| matches!(c, 'y' | 'm' | 'd'))
        || ['y', 'm', 'd'].iter().any(|&c| format.matches(c).count() > 1)
    {
        return None;
    }
    let (mut y, mut m, mut d) = (None, None, None);
    for (c, f) in format.chars().zip(&fields) {
        let v: u64 = f.parse().ok()?;
        match c {
            'y' => y = Some((v, f.len())),
            'm' => m = Some(v),
            _ => d = Some(v),
        }
    }
    if m.is_some_and(|m| !(1..=12).contains(&m)) {
        return None;
    }
    if let Some(d) = d {
        let max = match m {
            Some(2) => match y {
                Some((y, 4))
                    if !(y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))) =>
                {
                    28
                }
                _ => 29,
            },
            Some(4 | 6 | 9 | 11) => 30,
            _ => 31,
        };
        if !(1..=max).contains(&d) {
            return None;
        }
    }
    let mut out = Vec::new();
    let month = m.map(|m| MONTHS[m as usize - 1]);
    let day = d.map(normalize::ordinal);
    let day_first = format.find('d') < format.find('m');
    match (month, day) {
        (Some(mo), Some(da)) if day_first => {
            words(&mut out, &format!("the {da} of {mo}"));
        }
        (Some(mo), Some(da)) => words(&mut out, &format!("{mo} {da}")),
        (Some(mo), None) => words(&mut out, mo),
        (None, Some(da)) => words(&mut out, &format!("the {da}")),
        (None, None) => {}
    }
    if let Some((y, len)) = y {
        if d.is_some() {
            out.push(Piece::Punct(','));
        }
        let w = if len == 2 && y < 10 {
            format!("oh {}", normalize::cardinal(y))
        } else {
            year_words(y)
        };
        words(&mut out, &w);
    }
    Some(out)
}

/// `time`: "H:MM", "H:MM:SS", with an optional am/pm ("9:05am", "9 pm").
/// Read on a 12-hour clock: "14:30" -> two thirty p m, "9:05am" -> nine oh
/// five a m, "12:00" -> twelve noon, "0:00" -> twelve midnight; with
/// `format="hms24"` on a 24-hour clock: "14:00" -> fourteen hundred.
fn time(s: &str, format: Option<&str>) -> Option<Vec<Piece>> {
    let lower = s.to_ascii_lowercase();
    let split = lower.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(lower.len());
    let (clock, suffix) = lower.split_at(split);
    let suffix: String = suffix.chars().filter(|&c| c != '.' && !c.is_whitespace()).collect();
    let half = match suffix.as_str() {
        "" => None,
        "am" | "a" => Some("am"),
        "pm" | "p" => Some("pm"),
        _ => return None,
    };
    let parts: Vec<&str> = clock.trim().split(':').collect();
    if parts.len() > 3
        || (parts.len() == 1 && half.is_none())
        || parts.iter().any(|p| p.is_empty() || p.len() > 2 || !p.chars().all(|c| c.is_ascii_digit()))
        || parts.iter().skip(1).any(|p| p.len() != 2)
    {
        return None;
    }
    let num = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<u64>().ok());
    let (h, m, sec) = (num(0)?, num(1)?, num(2)?);
    if m > 59 || sec > 59 || h > 24 || (h == 24 && (m > 0 || sec > 0)) {
        return None;
    }
    let minutes = |m: u64| match m {
        0 => String::new(),
        1..=9 => format!(" oh {}", normalize::cardinal(m)),
        _ => format!(" {}", normalize::cardinal(m)),
    };
    let seconds = if sec > 0 {
        let unit = if sec == 1 { "second" } else { "seconds" };
        format!(" and {} {unit}", normalize::cardinal(sec))
    } else {
        String::new()
    };
    let mut out = Vec::new();
    if format == Some("hms24") && half.is_none() {
        let mm = if m == 0 { " hundred".into() } else { minutes(m) };
        words(&mut out, &format!("{}{mm}{seconds}", normalize::cardinal(h)));
        return Some(out);
    }
    let (h12, half) = match half {
        Some(x) => {
            if h > 12 {
                return None;
            }
            (if h % 12 == 0 { 12 } else { h }, x)
        }
        None if sec == 0 && m == 0 && h == 12 => {
            words(&mut out, "twelve noon");
            return Some(out);
        }
        None if sec == 0 && m == 0 && h % 24 == 0 => {
            words(&mut out, "twelve midnight");
            return Some(out);
        }
        None => match h % 24 {
            0 => (12, "am"),
            h @ 1..=11 => (h, "am"),
            12 => (12, "pm"),
            h => (h - 12, "pm"),
        },
    };
    words(&mut out, &format!("{}{}{seconds}", normalize::cardinal(h12), minutes(m)));
    out.push(Piece::Spell(half.into()));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> Document {
        parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn runs(s: &str) -> Vec<Run> {
        doc(s).runs
    }

    fn err(s: &str) -> SsmlError {
        match parse(s) {
            Ok(d) => panic!("{s:?} parsed: {d:?}"),
            Err(e) => e,
        }
    }

    fn w(words: &str) -> Vec<Piece> {
        words.split(' ').map(|x| Piece::Word(x.into())).collect()
    }

    fn text_of(r: &Run) -> &str {
        match r {
            Run::Text { text, .. } => text,
            other => panic!("not text: {other:?}"),
        }
    }

    fn say(s: &str) -> (Vec<Piece>, String, Range<usize>) {
        let d = doc(s);
        match d.runs.as_slice() {
            [Run::Say {
                pieces, word, src, ..
            }] => (pieces.clone(), word.clone(), src.clone()),
            other => panic!("{s:?}: {other:?} {:?}", d.warnings),
        }
    }

    fn say_as(kind: &str, content: &str) -> Vec<Piece> {
        let s = format!("<speak><say-as interpret-as=\"{kind}\">{content}</say-as></speak>");
        let (p, word, src) = say(&s);
        assert_eq!(&s[src], content.trim());
        assert_eq!(word, content.trim());
        p
    }

    fn say_as_fmt(kind: &str, format: &str, content: &str) -> Vec<Piece> {
        say(&format!(
            "<speak><say-as interpret-as=\"{kind}\" format=\"{format}\">{content}</say-as></speak>"
        ))
        .0
    }

    /// Every whitespace-separated word of every Text run, as its source slice.
    fn source_words<'a>(s: &'a str, d: &Document) -> Vec<&'a str> {
        let mut out = Vec::new();
        for r in &d.runs {
            if let Run::Text { text, src, .. } = r {
                assert_eq!(src.len(), text.len() + 1);
                let mut start = None;
                for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
                    match (c.is_whitespace(), start) {
                        (true, Some(a)) => {
                            out.push(&s[src[a]..src[i]]);
                            start = None;
                        }
                        (false, None) => start = Some(i),
                        _ => {}
                    }
                }
            }
        }
        out
    }

    #[test]
    fn plain_text_is_one_run_equal_to_the_input() {
        let body = "Hello world, Dr. Smith paid $3.50!\n  Second line é 日本 😀.";
        for head in [
            "<speak>",
            "<speak version=\"1.1\" xmlns=\"http://www.w3.org/2001/10/synthesis\" xml:lang=\"en-US\">",
        ] {
            let s = format!("<?xml version=\"1.0\"?>\n{head}{body}</speak>");
            let d = doc(&s);
            assert!(d.warnings.is_empty(), "{:?}", d.warnings);
            let start = s.find(body).unwrap();
            let want: Vec<usize> = body
                .char_indices()
                .flat_map(|(i, c)| std::iter::repeat_n(start + i, c.len_utf8()))
                .chain([start + body.len()])
                .collect();
            assert_eq!(
                d.runs,
                vec![Run::Text {
                    text: body.into(),
                    src: want,
                    style: Style::default()
                }]
            );
        }
        assert!(runs("<speak>  \n\t </speak>").is_empty());
        assert!(runs("<speak/>").is_empty());
    }

    #[test]
    fn entities_and_cdata_map_words_to_their_source() {
        let s = "<speak>caf&#233; &amp; <![CDATA[ x<y&z ]]> tea&lt;s &#x65E5;&#26412;\r\nend</speak>";
        let d = doc(s);
        assert_eq!(d.runs.len(), 1);
        assert_eq!(text_of(&d.runs[0]), "café &  x<y&z  tea<s 日本\nend");
        assert_eq!(
            source_words(s, &d),
            ["caf&#233;", "&amp;", "x<y&z", "tea&lt;s", "&#x65E5;&#26412;", "end"]
        );
        // Multi-byte chars: every byte maps to the char's start.
        let s = "<speak>naïve</speak>";
        let d = doc(s);
        let Run::Text { src, .. } = &d.runs[0] else {
            panic!()
        };
        assert_eq!(src[2], src[3]);
        assert_eq!(&s[src[2]..src[4]], "ï");
        // Line ends as XML normalises them, inside CDATA too.
        let s = "<speak>a\r\nb\rc<![CDATA[d\r\ne]]></speak>";
        let d = doc(s);
        assert_eq!(text_of(&d.runs[0]), "a\nb\ncd\ne");
        let Run::Text { src, .. } = &d.runs[0] else {
            panic!()
        };
        assert_eq!(&s[src[0]..src[1]], "a");
        assert_eq!(&s[src[0]..src[2]], "a\r\n");
        assert_eq!(*src.last().unwrap(), s.find("</speak>").unwrap());
        // References keep their bytes raw; line ends as roxmltree decodes
        // them: every char maps to its own source (no fallback).
        let s = "<speak>a&#13;\nb\r&#10;c\r\r\nd\r</speak>";
        let d = doc(s);
        let Run::Text { text, src, .. } = &d.runs[0] else {
            panic!()
        };
        assert_eq!(text, "a\r\nb\r\nc\n\nd\n");
        assert!(src.windows(2).all(|w| w[0] < w[1]), "{src:?}");
    }

    #[test]
    fn comments_and_instructions_are_ignored() {
        let s = "<speak>hel<!-- a comment -->lo <?pi x?>world</speak>";
        let d = doc(s);
        assert_eq!(d.runs.len(), 1);
        assert_eq!(text_of(&d.runs[0]), "hello world");
        assert_eq!(source_words(s, &d), ["hel<!-- a comment -->lo", "world"]);
    }

    #[test]
    fn breaks() {
        let ms = |attrs: &str| match runs(&format!("<speak>a<break {attrs}/>b</speak>")).as_slice() {
            [Run::Text { .. }, Run::Break { ms }, Run::Text { .. }] => *ms,
            other => panic!("{attrs}: {other:?}"),
        };
        assert_eq!(ms(""), 400);
        assert_eq!(ms("time=\"500ms\""), 500);
        assert_eq!(ms("time=\"1.5s\""), 1500);
        assert_eq!(ms("time=\" 2s \""), 2000);
        assert_eq!(ms("time=\"0ms\""), 0);
        assert_eq!(ms("time=\"250MS\""), 250);
        assert_eq!(ms("time=\"100ms\" strength=\"x-strong\""), 100);
        for (s, v) in [
            ("none", 0),
            ("x-weak", 100),
            ("weak", 250),
            ("medium", 400),
            ("strong", 750),
            ("x-strong", 1250),
        ] {
            assert_eq!(ms(&format!("strength=\"{s}\"")), v);
        }
        // Out of range: clamped with a warning.
        let d = doc("<speak>a<break time=\"20s\"/>b<break time=\"-1s\"/></speak>");
        assert_eq!(d.runs[1], Run::Break { ms: 10_000 });
        assert_eq!(d.runs[3], Run::Break { ms: 0 });
        assert_eq!(d.warnings.len(), 2, "{:?}", d.warnings);
        assert!(d.warnings[0].starts_with("line 1, column 22:"), "{:?}", d.warnings);
        // Bad values: errors naming the value and where it is.
        let e = err("<speak>\n  a <break time=\"fast\"/></speak>");
        assert_eq!((e.line, e.column), (2, 18), "{e}");
        assert!(e.message.contains("\"fast\""), "{e}");
        for bad in ["5", "ms", "1e3ms", "1..5s", "inf s", "NaNs", "s"] {
            let e = err(&format!("<speak><break time=\"{bad}\"/></speak>"));
            assert!(e.to_string().starts_with("SSML line 1, column 21: "), "{e}");
        }
        let e = err("<speak><break strength=\"loud\"/></speak>");
        assert!(e.message.contains("loud"), "{e}");
        // Element boundaries never glue words.
        let r = runs("<speak>a<break/>b</speak>");
        assert_eq!((text_of(&r[0]), text_of(&r[2])), ("a", "b"));
    }

    #[test]
    fn sentences_and_paragraphs_are_boundaries() {
        let r = runs("<speak><p><s>One.</s><s>Two.</s></p>Three<s>Four</s></speak>");
        let shape: Vec<String> = r
            .iter()
            .map(|r| match r {
                Run::Text { text, .. } => text.clone(),
                Run::Boundary => "|".into(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(shape, ["One.", "|", "Two.", "|", "Three", "|", "Four", "|"]);
    }

    fn rate(s: &str) -> (f32, Vec<String>) {
        let d = doc(s);
        match d.runs.as_slice() {
            [Run::Text { style, .. }] => (style.rate, d.warnings),
            other => panic!("{s}: {other:?}"),
        }
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn prosody_rate() {
        for (v, want) in [
            ("x-slow", 0.5),
            ("slow", 0.75),
            ("medium", 1.0),
            ("default", 1.0),
            ("fast", 1.25),
            ("x-fast", 1.75),
            ("150%", 1.5),
            ("+20%", 1.2),
            ("-20%", 0.8),
            ("1.5", 1.5),
            ("+0.5", 1.5),
            (" 80% ", 0.8),
        ] {
            let (r, warn) = rate(&format!("<speak><prosody rate=\"{v}\">hi</prosody></speak>"));
            assert!(close(r, want), "{v}: {r}");
            assert!(warn.is_empty(), "{v}: {warn:?}");
        }
        // Nested elements multiply.
        let (r, _) = rate("<speak><prosody rate=\"2\"><prosody rate=\"150%\">hi</prosody></prosody></speak>");
        assert!(close(r, 3.0), "{r}");
        // Clamped with a warning.
        let (r, warn) = rate("<speak><prosody rate=\"4\"><prosody rate=\"4\">hi</prosody></prosody></speak>");
        assert!(close(r, 4.0) && warn.len() == 1, "{r} {warn:?}");
        let (r, warn) = rate("<speak><prosody rate=\"0%\">hi</prosody></speak>");
        assert!(close(r, 0.25) && warn.len() == 1, "{r} {warn:?}");
        // Bad rate: ignored with a warning; pitch and volume: ignored with a warning.
        let (r, warn) = rate("<speak><prosody rate=\"quick\">hi</prosody></speak>");
        assert!(close(r, 1.0) && warn[0].contains("quick"), "{warn:?}");
        let (r, warn) =
            rate("<speak><prosody pitch=\"+10%\" volume=\"loud\" rate=\"slow\">hi</prosody></speak>");
        assert!(close(r, 0.75), "{r}");
        assert_eq!(warn.len(), 2, "{warn:?}");
        assert!(warn[0].contains("pitch") && warn[1].contains("volume"), "{warn:?}");
        // The style ends with the element.
        let r = runs("<speak><prosody rate=\"fast\">a</prosody> b</speak>");
        match r.as_slice() {
            [Run::Text { style: s1, .. }, Run::Text { style: s2, .. }] => {
                assert!(close(s1.rate, 1.25) && close(s2.rate, 1.0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn emphasis_slows_the_words_down() {
        for (level, want) in [
            ("level=\"strong\"", 0.85),
            ("level=\"moderate\"", 0.92),
            ("", 0.92),
            ("level=\"reduced\"", 1.1),
            ("level=\"none\"", 1.0),
        ] {
            let (r, warn) = rate(&format!("<speak><emphasis {level}>hi</emphasis></speak>"));
            assert!(close(r, want) && warn.is_empty(), "{level}: {r} {warn:?}");
        }
        let (r, _) = rate("<speak><prosody rate=\"2\"><emphasis level=\"strong\">hi</emphasis></prosody></speak>");
        assert!(close(r, 1.7), "{r}");
        let (r, warn) = rate("<speak><emphasis level=\"huge\">hi</emphasis></speak>");
        assert!(close(r, 0.92) && warn.len() == 1, "{warn:?}");
    }

    #[test]
    fn voice_name() {
        let d = doc("<speak>a <voice name=\"amy\" gender=\"female\">b <voice name=\"joe\">c</voice> d</voice> e</speak>");
        let voices: Vec<Option<&str>> = d
            .runs
            .iter()
            .map(|r| match r {
                Run::Text { style, .. } => style.voice.as_deref(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(voices, [None, Some("amy"), Some("joe"), Some("amy"), None]);
        assert_eq!(d.warnings.len(), 1);
        assert!(d.warnings[0].contains("gender"), "{:?}", d.warnings);
        let d = doc("<speak><voice>x</voice></speak>");
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn marks() {
        let r = runs("<speak>a<mark name=\"m1\"/>b <mark name=\"end\"></mark></speak>");
        assert_eq!(r[1], Run::Mark { name: "m1".into() });
        assert_eq!(r[3], Run::Mark { name: "end".into() });
        let d = doc("<speak><mark/>x</speak>");
        assert_eq!(d.runs.len(), 1);
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn say_as_characters_and_digits() {
        assert_eq!(
            say_as("characters", "ABC1"),
            [Piece::Spell("abc".into()), Piece::Word("one".into())]
        );
        assert_eq!(
            say_as("spell-out", " hé-2 "),
            [
                Piece::Spell("he".into()),
                Piece::Word("dash".into()),
                Piece::Word("two".into())
            ]
        );
        assert_eq!(say_as("digits", "2024"), w("two zero two four"));
        assert_eq!(say_as("digits", "1-2"), w("one two"));
    }

    #[test]
    fn say_as_numbers() {
        assert_eq!(say_as("cardinal", "42"), w("forty two"));
        assert_eq!(say_as("number", "2024"), w("two thousand twenty four"));
        assert_eq!(
            say_as("cardinal", "-1,234"),
            w("minus one thousand two-hundred thirty four")
        );
        assert_eq!(say_as("cardinal", "3.14"), w("three point one four"));
        assert_eq!(say_as("cardinal", ".5"), w("zero point five"));
        assert_eq!(say_as("cardinal", "1234567890123456789012").len(), 22);
        assert_eq!(say_as("ordinal", "3"), w("third"));
        assert_eq!(say_as("ordinal", "3rd"), w("third"));
        assert_eq!(say_as("ordinal", "21st"), w("twenty first"));
        assert_eq!(say_as("ordinal", "1,000th"), w("one thousandth"));
    }

    #[test]
    fn say_as_dates() {
        let dec = w("december twenty fifth , twenty twenty four");
        let dec: Vec<Piece> = dec
            .into_iter()
            .map(|p| if p == Piece::Word(",".into()) { Piece::Punct(',') } else { p })
            .collect();
        assert_eq!(say_as("date", "12/25/2024"), dec);
        assert_eq!(say_as("date", "2024-12-25"), dec);
        assert_eq!(say_as_fmt("date", "mdy", "12-25-2024"), dec);
        assert_eq!(say_as_fmt("date", "ymd", "2024/12/25"), dec);
        let mut dmy = w("the twenty fifth of december");
        dmy.push(Piece::Punct(','));
        dmy.extend(w("twenty twenty four"));
        assert_eq!(say_as_fmt("date", "dmy", "25.12.2024"), dmy);
        assert_eq!(say_as_fmt("date", "md", "7/4"), w("july fourth"));
        assert_eq!(say_as_fmt("date", "dm", "4/7"), w("the fourth of july"));
        assert_eq!(say_as_fmt("date", "my", "07/1999"), w("july nineteen ninety nine"));
        assert_eq!(say_as_fmt("date", "ym", "2005-03"), w("march two thousand five"));
        assert_eq!(say_as_fmt("date", "y", "1905"), w("nineteen oh five"));
        assert_eq!(say_as_fmt("date", "y", "1900"), w("nineteen hundred"));
        assert_eq!(say_as("date", "2000"), w("two thousand"));
        // Not a date: spoken as text with a warning.
        for bad in ["13/45/2024", "2/30/2024", "2023-02-29", "Dec 25", "1/2/3/4"] {
            let d = doc(&format!("<speak><say-as interpret-as=\"date\">{bad}</say-as></speak>"));
            assert_eq!(d.runs.len(), 1, "{bad}");
            assert_eq!(text_of(&d.runs[0]), bad);
            assert_eq!(d.warnings.len(), 1, "{bad}: {:?}", d.warnings);
        }
        assert_eq!(say_as("date", "2024-02-29")[1], Piece::Word("twenty".into()));
    }

    #[test]
    fn say_as_times_and_telephones() {
        let t = |s: &str, words: &str, half: &str| {
            let mut v = w(words);
            v.push(Piece::Spell(half.into()));
            assert_eq!(say_as("time", s), v, "{s}");
        };
        t("14:30", "two thirty", "pm");
        t("9:05am", "nine oh five", "am");
        t("9:05 P.M.", "nine oh five", "pm");
        t("9am", "nine", "am");
        t("00:15", "twelve fifteen", "am");
        t("12:30", "twelve thirty", "pm");
        t("1:02:03", "one oh two and three seconds", "am");
        assert_eq!(say_as("time", "12:00"), w("twelve noon"));
        assert_eq!(say_as("time", "0:00"), w("twelve midnight"));
        assert_eq!(say_as_fmt("time", "hms24", "14:00"), w("fourteen hundred"));
        assert_eq!(say_as_fmt("time", "hms24", "14:05"), w("fourteen oh five"));
        for bad in ["25:00", "9:5", "13:00pm", "noon", "9"] {
            let d = doc(&format!("<speak><say-as interpret-as=\"time\">{bad}</say-as></speak>"));
            assert_eq!(text_of(&d.runs[0]), bad);
            assert_eq!(d.warnings.len(), 1, "{bad}");
        }
        let mut v = w("five five five");
        v.push(Piece::Punct(','));
        v.extend(w("one two three four"));
        assert_eq!(say_as("telephone", "555-1234"), v);
        let p = say_as("telephone", "+1 (800) FLOWERS");
        assert_eq!(p[0], Piece::Word("plus".into()));
        assert_eq!(p[1], Piece::Word("one".into()));
        assert_eq!(p.last(), Some(&Piece::Spell("flowers".into())));
        assert_eq!(p.iter().filter(|x| **x == Piece::Punct(',')).count(), 2);
    }

    #[test]
    fn say_as_fallbacks() {
        // Unknown interpret-as: spoken as text, with a warning.
        let d = doc("<speak><say-as interpret-as=\"currency\">$5</say-as></speak>");
        assert_eq!(text_of(&d.runs[0]), "$5");
        assert!(d.warnings[0].contains("currency"), "{:?}", d.warnings);
        // Not a number.
        let d = doc("<speak><say-as interpret-as=\"cardinal\">12abc</say-as></speak>");
        assert_eq!(text_of(&d.runs[0]), "12abc");
        // Markup inside: spoken as text (the markup honoured), with a warning.
        let d = doc("<speak><say-as interpret-as=\"characters\">a<break/>b</say-as></speak>");
        assert_eq!(d.runs.len(), 3);
        assert_eq!(d.warnings.len(), 1);
        // Entities in the content: the word as decoded, its range in the source.
        let s = "<speak><say-as interpret-as=\"characters\">A&amp;B</say-as></speak>";
        let (p, word, src) = say(s);
        assert_eq!(word, "A&B");
        assert_eq!(&s[src], "A&amp;B");
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn sub_and_phoneme() {
        let s = "<speak>The <sub alias=\"World Wide Web Consortium\">W3C</sub> met.</speak>";
        let d = doc(s);
        match &d.runs[1] {
            Run::Say {
                pieces, word, src, ..
            } => {
                assert_eq!(*pieces, w("world wide web consortium"));
                assert_eq!(word, "W3C");
                assert_eq!(&s[src.clone()], "W3C");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(text_of(&d.runs[2]), " met.");
        // Aliases are normalised like text; an empty sub's range is the element.
        let s = "<speak>x<sub alias=\"2 cats\"/></speak>";
        let (p, word, src) = match &doc(s).runs[1] {
            Run::Say {
                pieces, word, src, ..
            } => (pieces.clone(), word.clone(), src.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(p, w("two cats"));
        assert_eq!(word, "");
        assert_eq!(&s[src], "<sub alias=\"2 cats\"/>");
        // No alias: content spoken, warning.
        let d = doc("<speak><sub>W3C</sub></speak>");
        assert_eq!(text_of(&d.runs[0]), "W3C");
        assert_eq!(d.warnings.len(), 1);

        let s = "<speak><phoneme alphabet=\"ipa\" ph=\"t\u{259}\u{2c8}me\u{26a}to\u{28a}\">tomato</phoneme></speak>";
        match &doc(s).runs[..] {
            [Run::Ipa { ipa, word, src, .. }] => {
                assert_eq!(*ipa, "t\u{259}\u{2c8}me\u{26a}to\u{28a}".nfd().collect::<String>());
                assert_eq!(word, "tomato");
                assert_eq!(&s[src.clone()], "tomato");
            }
            other => panic!("{other:?}"),
        }
        // NFD: a precomposed é is decomposed.
        match &doc("<speak><phoneme ph=\"caf\u{e9}\">café</phoneme></speak>").runs[..] {
            [Run::Ipa { ipa, .. }] => assert_eq!(ipa, "cafe\u{301}"),
            other => panic!("{other:?}"),
        }
        let d = doc("<speak><phoneme alphabet=\"x-sampa\" ph=\"t@\">tomato</phoneme></speak>");
        assert_eq!(text_of(&d.runs[0]), "tomato");
        assert!(d.warnings[0].contains("x-sampa"), "{:?}", d.warnings);
    }

    #[test]
    fn unsupported_elements_warn_and_speak_their_text() {
        let d = doc("<speak><audio src=\"a.wav\">fallback <desc>a bell</desc>text</audio> <w>word</w> <metadata>no</metadata><meta name=\"x\" content=\"y\"/><lexicon uri=\"x\"/></speak>");
        let texts: Vec<&str> = d.runs.iter().map(text_of).collect();
        assert_eq!(texts, ["fallback ", "text", "word"]);
        for el in ["audio", "desc", "w", "metadata", "meta", "lexicon"] {
            assert!(
                d.warnings.iter().any(|w| w.contains(&format!("<{el}>"))),
                "{el}: {:?}",
                d.warnings
            );
        }
        // Foreign namespaces: unsupported, named as written.
        let d = doc("<speak xmlns:x=\"urn:x\"><x:effect>hi</x:effect></speak>");
        assert_eq!(text_of(&d.runs[0]), "hi");
        assert!(d.warnings[0].contains("<x:effect>"), "{:?}", d.warnings);
        // A language other than English warns.
        let d = doc("<speak xml:lang=\"fr-FR\">bonjour</speak>");
        assert_eq!(d.warnings.len(), 1);
        assert!(d.warnings[0].contains("fr-FR"));
    }

    #[test]
    fn warning_positions_go_back_and_forth() {
        let mut l = Lines::new("ab\ncdé\nf");
        assert_eq!(l.at(7), (2, 4));
        assert_eq!(l.at(4), (2, 2));
        assert_eq!(l.at(1), (1, 2));
        assert_eq!(l.at(9), (3, 2));
        assert_eq!(l.at(3), (2, 1));
        assert_eq!(l.at(100), (3, 2));
        let d = doc("<speak>\n <say-as interpret-as=\"date\"\n  format=\"mdy\" x=\"1\">99</say-as></speak>");
        assert_eq!(
            d.warnings,
            [
                "line 3, column 16: attribute x of <say-as> is not supported; ignored",
                "line 2, column 2: \"99\" cannot be read as interpret-as=\"date\": spoken as text"
            ]
        );
    }

    #[test]
    fn warnings_are_bounded() {
        let s = format!("<speak>{}</speak>", "<foo>x</foo>".repeat(300));
        let d = doc(&s);
        assert_eq!(d.warnings.len(), MAX_WARNINGS + 1);
        assert_eq!(d.warnings[MAX_WARNINGS], "200 more warnings not shown");
        assert!(d.warnings[99].starts_with("line 1, column 1196:"), "{}", d.warnings[99]);
    }

    #[test]
    fn malformed_input_gives_line_and_column() {
        let e = err("<speak>\n<s>hello\n</speak>");
        assert_eq!((e.line, e.column), (3, 1), "{e}");
        let e = err("<speak>\n  fish &chips;</speak>");
        assert_eq!((e.line, e.column), (2, 8), "{e}");
        let e = err("<speak>a &amp b</speak>");
        assert_eq!(e.line, 1, "{e}");
        let e = err("<speak>hello");
        assert_eq!((e.line, e.column), (1, 13), "{e}");
        let e = err("\n<html><body>hi</body></html>");
        assert_eq!((e.line, e.column), (2, 1), "{e}");
        assert!(e.message.contains("<html>") && e.message.contains("speak"), "{e}");
        let e = err("<x:speak xmlns:x=\"urn:other\">hi</x:speak>");
        assert!(e.message.contains("x:speak"), "{e}");
        let e = err("<?xml version=\"1.0\"?>\n<!DOCTYPE speak [<!ENTITY a \"aaaa\">]><speak>&a;</speak>");
        assert_eq!((e.line, e.column), (2, 1), "{e}");
        assert!(e.message.contains("DTD"), "{e}");
        for bad in ["", "hello", "<speak>", "<speak></spek>", "<speak a=1/>", "<speak>]]></speak>"] {
            let e = err(bad);
            assert!(e.line >= 1 && e.column >= 1, "{bad:?}: {e}");
            assert!(e.to_string().starts_with("SSML line "), "{e}");
        }
    }

    #[test]
    fn size_depth_and_node_bounds() {
        // Depth: 64 levels are fine, 65 are not.
        let nest = |n: usize| {
            format!(
                "<speak>{}x{}</speak>",
                "<s>".repeat(n - 1),
                "</s>".repeat(n - 1)
            )
        };
        assert_eq!(text_of(&runs(&nest(MAX_DEPTH))[0]), "x");
        let e = err(&nest(MAX_DEPTH + 1));
        assert_eq!((e.line, e.column), (1, 8 + 3 * 63), "{e}");
        assert!(e.message.contains("64"), "{e}");
        // Nodes.
        let s = format!("<speak>{}</speak>", "<break/>".repeat(MAX_NODES as usize));
        let e = err(&s);
        assert!(e.message.contains("100000"), "{e}");
        assert_eq!(e.line, 1);
        // Size.
        let s = format!("<speak>{}</speak>", " ".repeat(MAX_TEXT_BYTES));
        let e = err(&s);
        assert!(e.message.contains("limit"), "{e}");
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        // 100 000 nested elements parsed (past the node limit) and dropped on
        // a small stack: no recursion anywhere.
        let t = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| {
                let n = 100_000;
                let s = format!("<speak>{}x{}</speak>", "<p>".repeat(n), "</p>".repeat(n));
                let e = parse(&s).err().map(|e| e.message);
                let deep = parse_with_limit(&s, u32::MAX).err().map(|e| e.message);
                let unclosed = parse(&format!("<speak>{}", "<p>".repeat(n))).err().is_some();
                (e, deep, unclosed)
            })
            .unwrap();
        let (e, deep, unclosed) = t.join().unwrap();
        assert!(e.unwrap().contains("nodes"));
        assert!(deep.unwrap().contains("deeper"));
        assert!(unclosed);
    }

    /// The checks the fuzz target makes, plus exact maps (char starts increase).
    fn check_runs(s: &str, d: &Document) {
        let mut prev = true;
        for r in &d.runs {
            match r {
                Run::Text { text, src, style } => {
                    assert_eq!(src.len(), text.len() + 1);
                    assert!(src.windows(2).all(|w| w[0] <= w[1]), "{s:?}: {src:?}");
                    assert!(src.iter().all(|&i| s.is_char_boundary(i)));
                    let starts: Vec<usize> = text.char_indices().map(|(i, _)| src[i]).collect();
                    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{s:?}: {src:?}");
                    assert!((MIN_RATE..=MAX_RATE).contains(&style.rate));
                }
                Run::Say { src, .. } | Run::Ipa { src, .. } => {
                    assert!(s.get(src.clone()).is_some(), "{s:?}: {src:?}");
                }
                Run::Break { ms } => assert!(*ms <= MAX_BREAK_MS),
                Run::Mark { .. } => {}
                Run::Boundary => assert!(!prev, "{s:?}: boundary first or twice"),
            }
            prev = *r == Run::Boundary;
        }
        assert!(d.warnings.len() <= MAX_WARNINGS + 1);
    }

    #[test]
    fn random_documents_keep_their_invariants() {
        const OPEN: &[&str] = &[
            "<s>",
            "<p>",
            "<prosody rate=\"x-fast\">",
            "<prosody rate=\"300%\" volume=\"loud\">",
            "<emphasis level=\"reduced\">",
            "<voice name=\"v\">",
            "<say-as interpret-as=\"cardinal\">",
            "<say-as interpret-as=\"characters\">",
            "<say-as interpret-as=\"date\">",
            "<sub alias=\"al &amp; ias\">",
            "<phoneme ph=\"a\">",
            "<audio>",
            "<desc>",
            "<x:w xmlns:x=\"urn:x\">",
        ];
        const LEAF: &[&str] = &[
            "word ",
            " 12/25/2024",
            "3.14",
            "&amp;",
            "&#233;",
            "&#x1F600;",
            "&#x1F6F600;",
            "&#13;",
            "\r\n",
            "\r",
            "<![CDATA[ c<d\r\n]]>",
            "<![CDATA[]]>",
            "<!-- c -->",
            "<?pi x?>",
            "<break/>",
            "<break time=\"30s\"/>",
            "<mark name=\"m\"/>",
            "日本",
            "e\u{301}",
            " ",
        ];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut parsed = 0;
        for _ in 0..3000 {
            let mut s = String::from("<speak>");
            let mut open: Vec<&str> = Vec::new();
            for _ in 0..next(40) {
                match next(4) {
                    0 if open.len() < 70 => {
                        let o = OPEN[next(OPEN.len())];
                        s.push_str(o);
                        open.push(o);
                    }
                    1 if !open.is_empty() => {
                        let o = open.pop().unwrap_or_default();
                        let name = &o[1..o.find([' ', '>']).unwrap_or(o.len() - 1)];
                        s.push_str(&format!("</{name}>"));
                    }
                    _ => s.push_str(LEAF[next(LEAF.len())]),
                }
            }
            while let Some(o) = open.pop() {
                let name = &o[1..o.find([' ', '>']).unwrap_or(o.len() - 1)];
                s.push_str(&format!("</{name}>"));
            }
            s.push_str("</speak>");
            match parse(&s) {
                Ok(d) => {
                    check_runs(&s, &d);
                    parsed += 1;
                }
                Err(e) => assert!(e.message.contains("deeper"), "{s:?}: {e}"),
            }
        }
        assert!(parsed > 2900, "{parsed} of 3000 parsed");
    }

    /// A way to damage a document at a byte.
    type Mangle = fn(&[u8], usize) -> Vec<u8>;

    #[test]
    fn never_panics_on_mangled_documents() {
        let base = "<speak xml:lang=\"en\"><p><s>Hi &amp; <say-as interpret-as=\"date\">1/2/2024</say-as><break time=\"1s\"/><![CDATA[x]]></s></p><prosody rate=\"+5%\">é</prosody><sub alias=\"a\">b</sub><phoneme ph=\"a\">b</phoneme></speak>";
        let b = base.as_bytes();
        for cut in 0..b.len() {
            let fs: [Mangle; 5] = [
                |b: &[u8], i: usize| b[..i].to_vec(),
                |b: &[u8], i: usize| [&b[..i], &b[i + 1..]].concat(),
                |b: &[u8], i: usize| [&b[..i], b"<", &b[i..]].concat(),
                |b: &[u8], i: usize| [&b[..i], b"&#", &b[i..]].concat(),
                |b: &[u8], i: usize| [&b[..i], b"\r", &b[i..]].concat(),
            ];
            for f in fs {
                let s = String::from_utf8_lossy(&f(b, cut)).into_owned();
                if let Ok(d) = parse(&s) {
                    check_runs(&s, &d);
                }
            }
        }
    }
}

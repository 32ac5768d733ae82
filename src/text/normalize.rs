//! Text normalisation: numbers, currency, times, symbols and abbreviations
//! become words the lexicon knows.

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// Cardinal number in words as espeak reads it, with no "and"
/// (`1234` -> "one thousand two-hundred thirty four").
pub fn cardinal(n: u64) -> String {
    fn below_1000(n: u64, out: &mut Vec<String>) {
        let (h, r) = (n / 100, n % 100);
        if h > 0 {
            out.push(format!("{}-hundred", ONES[h as usize]));
        }
        if r >= 20 {
            let t = TENS[(r / 10) as usize];
            if r % 10 == 0 {
                out.push(t.into());
            } else {
                out.push(t.into());
                out.push(ONES[(r % 10) as usize].into());
            }
        } else if r > 0 || h == 0 {
            out.push(ONES[r as usize].into());
        }
    }
    if n == 0 {
        return "zero".into();
    }
    let scales = [
        (1_000_000_000_000_000_000u64, "quintillion"),
        (1_000_000_000_000_000, "quadrillion"),
        (1_000_000_000_000, "trillion"),
        (1_000_000_000, "billion"),
        (1_000_000, "million"),
        (1_000, "thousand"),
    ];
    let mut out = Vec::new();
    let mut rest = n;
    for (v, name) in scales {
        if rest >= v {
            below_1000(rest / v, &mut out);
            out.push(name.into());
            rest %= v;
        }
    }
    if rest > 0 {
        below_1000(rest, &mut out);
    }
    out.join(" ")
}

/// Ordinal in words (`21` -> "twenty-first").
pub fn ordinal(n: u64) -> String {
    let c = cardinal(n);
    let (head, last) = match c.rfind([' ', '-']) {
        Some(i) => (&c[..=i], &c[i + 1..]),
        None => ("", c.as_str()),
    };
    let last = match last {
        "one" => "first".to_string(),
        "two" => "second".into(),
        "three" => "third".into(),
        "five" => "fifth".into(),
        "eight" => "eighth".into(),
        "nine" => "ninth".into(),
        "twelve" => "twelfth".into(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    };
    format!("{head}{last}")
}

/// A four-digit number as espeak reads it: 19xx as "nineteen-hundred xx"
/// (`1984` -> "nineteen-hundred eighty four"), others as cardinals
/// (`1815` -> "one thousand eight-hundred fifteen", `2005` -> "two thousand five").
pub fn year(n: u64) -> String {
    if !(1900..=1999).contains(&n) {
        return cardinal(n);
    }
    match n % 100 {
        0 => "nineteen-hundred".into(),
        lo => format!("nineteen-hundred {}", cardinal(lo)),
    }
}

/// Digits read one by one ("five five five").
pub fn digits(s: &str) -> String {
    s.chars()
        .filter_map(|c| c.to_digit(10))
        .map(|d| ONES[d as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

fn abbreviation(word: &str) -> Option<&'static str> {
    Some(match word {
        "Mr." => "mister",
        "Mrs." => "missus",
        "Ms." => "miz",
        "Dr." => "doctor",
        "St." => "saint",
        "Jr." => "junior",
        "Sr." => "senior",
        "Prof." => "professor",
        "Gen." => "general",
        "Capt." => "captain",
        "Lt." => "lieutenant",
        "Sgt." => "sergeant",
        "Mt." => "mount",
        "vs." | "vs" => "versus",
        "etc." => "et cetera",
        "e.g." => "for example",
        "i.e." => "that is",
        "approx." => "approximately",
        "No." => "number",
        "Jan." => "january",
        "Feb." => "february",
        "Mar." => "march",
        "Apr." => "april",
        "Aug." => "august",
        "Sep." | "Sept." => "september",
        "Oct." => "october",
        "Nov." => "november",
        "Dec." => "december",
        "Ave." => "avenue",
        "Inc." => "incorporated",
        "Ltd." => "limited",
        "Co." => "company",
        _ => return None,
    })
}

/// Whether a token ending in '.' is an abbreviation (or an initial) rather than a sentence end.
pub fn is_abbreviation(word: &str) -> bool {
    abbreviation(word).is_some()
        || (word.len() == 2
            && word.ends_with('.')
            && word.starts_with(|c: char| c.is_ascii_uppercase()))
        || (word.len() >= 4
            && word.ends_with('.')
            && word.matches('.').count() >= 2
            && word.chars().all(|c| c.is_ascii_alphabetic() || c == '.'))
}

fn unit(word: &str) -> Option<&'static str> {
    Some(match word {
        "lb" | "lbs" => "pounds",
        "km/h" => "kilometers per hour",
        "°C" | "ºC" => "degrees celsius",
        "°F" | "ºF" => "degrees fahrenheit",
        "°" => "degrees",
        "GB" => "gigabytes",
        "MB" => "megabytes",
        "KB" | "kB" => "kilobytes",
        "TB" => "terabytes",
        "GHz" => "gigahertz",
        "MHz" => "megahertz",
        "Hz" => "hertz",
        "ms" => "milliseconds",
        "s" | "sec" => "seconds",
        "min" => "minutes",
        "h" | "hr" | "hrs" => "hours",
        "%" => "percent",
        _ => return None,
    })
}

/// Read a number token (digits with optional `,` groups and decimals).
fn number_words(tok: &str) -> Option<String> {
    let (neg, t) = match tok.strip_prefix(['-', '−']) {
        Some(r) => (true, r),
        None => (false, tok),
    };
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (t, None),
    };
    let int_digits: String = int.chars().filter(|&c| c != ',').collect();
    if int_digits.is_empty() && frac.is_none() {
        return None;
    }
    if !int_digits.chars().all(|c| c.is_ascii_digit())
        || frac.is_some_and(|f| f.is_empty() || !f.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let mut out = String::new();
    if neg {
        out.push_str("minus ");
    }
    if int_digits.len() > 18 {
        out.push_str(&digits(&int_digits));
    } else if !int_digits.is_empty() {
        let v: u64 = int_digits.parse().ok()?;
        // Bare four-digit numbers without separators read as years.
        if frac.is_none() && !neg && !int.contains(',') && int_digits.len() == 4 {
            out.push_str(&year(v));
        } else {
            out.push_str(&cardinal(v));
        }
    } else {
        out.push_str("zero");
    }
    if let Some(f) = frac {
        out.push_str(" point ");
        out.push_str(&digits(f));
    }
    Some(out)
}

/// An amount of money as espeak reads it: the currency word first, then
/// the number ("$12.50" -> "dollar twelve point five zero", "€30" -> "euros thirty").
fn currency_words(sym: char, amount: &str) -> Option<String> {
    let name = match sym {
        '$' => "dollar",
        '€' => "euros",
        '£' => "pound",
        _ => return None,
    };
    // Amounts are plain numbers, never years.
    let digits_only = amount.chars().all(|c| c.is_ascii_digit());
    let words = if digits_only && amount.len() == 4 {
        cardinal(amount.parse().ok()?)
    } else {
        number_words(amount)?
    };
    Some(format!("{name} {words}"))
}

/// Unit abbreviations espeak spells letter by letter after a number.
fn spelled_unit(word: &str) -> Option<&'static str> {
    Some(match word {
        "km" => "km",
        "kg" => "kg",
        "cm" => "cm",
        "mm" => "mm",
        "mg" => "mg",
        "ml" => "ml",
        "m" => "m",
        "g" => "g",
        "l" => "l",
        "mph" => "mph",
        "kph" => "kph",
        "am" | "a.m" | "a.m." => "am",
        "pm" | "p.m" | "p.m." => "pm",
        _ => return None,
    })
}

fn time_words(tok: &str) -> Option<String> {
    let (h, m) = tok.split_once(':')?;
    if h.is_empty()
        || h.len() > 2
        || m.len() != 2
        || !h.chars().chain(m.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 24 || m > 59 {
        return None;
    }
    Some(match m {
        0 => format!("{} o'clock", cardinal(h)),
        1..=9 => format!("{} zero {}", cardinal(h), cardinal(m)),
        _ => format!("{} {}", cardinal(h), cardinal(m)),
    })
}

fn ordinal_words(tok: &str) -> Option<String> {
    let lower = tok.to_ascii_lowercase();
    for suf in ["st", "nd", "rd", "th"] {
        if let Some(num) = lower.strip_suffix(suf) {
            if !num.is_empty() && num.len() <= 18 && num.chars().all(|c| c.is_ascii_digit()) {
                return Some(ordinal(num.parse().ok()?));
            }
        }
    }
    None
}

fn roman(tok: &str) -> Option<u64> {
    if tok.is_empty() || tok.len() > 6 || !tok.chars().all(|c| "IVXLC".contains(c)) {
        return None;
    }
    let val = |c| match c {
        'I' => 1,
        'V' => 5,
        'X' => 10,
        'L' => 50,
        _ => 100,
    };
    let cs: Vec<i64> = tok.chars().map(val).collect();
    let mut total = 0i64;
    for (i, &v) in cs.iter().enumerate() {
        if cs.get(i + 1).is_some_and(|&next| v < next) {
            total -= v;
        } else {
            total += v;
        }
    }
    let total = u64::try_from(total).ok()?;
    // Reject non-canonical forms by re-encoding.
    let canonical = to_roman(total);
    (canonical == tok && total > 0).then_some(total)
}

fn to_roman(mut n: u64) -> String {
    let table = [
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ];
    let mut s = String::new();
    for (v, r) in table {
        while n >= v {
            s.push_str(r);
            n -= v;
        }
    }
    s
}

/// One spoken-form piece: words, or punctuation kept for prosody.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// A word to look up (lower case, may contain apostrophes or hyphens).
    Word(String),
    /// Letters to spell out (acronyms).
    Spell(String),
    /// Punctuation Piper keeps: , . ! ? ; : and the like.
    Punct(char),
}

/// Words separated by spaces; a hyphenated word stays one piece (espeak
/// writes its parts with no space between).
fn push_words(out: &mut Vec<Piece>, text: &str) {
    for w in text.split(' ').filter(|w| !w.is_empty()) {
        out.push(Piece::Word(w.to_string()));
    }
}

/// Expand one whitespace-separated token into pieces.
pub fn expand_token(tok: &str, prev: Option<&Piece>, out: &mut Vec<Piece>) {
    if let Some(a) = abbreviation(tok) {
        push_words(out, a);
        return;
    }
    let symbol = match tok.trim_end_matches([',', '.', '!', '?', ';', ':']) {
        "&" => Some("and"),
        "+" => Some("plus"),
        "@" => Some("at"),
        "=" => Some("equals"),
        "%" => Some("percent"),
        _ => None,
    };
    if let Some(w) = symbol {
        push_words(out, w);
        return;
    }
    // Leading punctuation (quotes, brackets) is dropped; trailing kept.
    let trimmed = tok.trim_start_matches(|c: char| !c.is_alphanumeric() && !"$€£-−.".contains(c));
    let end = trimmed
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_alphanumeric() || c == '%' || c == '°')
        .map_or(0, |(i, c)| i + c.len_utf8());
    let (core, tail) = trimmed.split_at(end);
    let core_owned;
    let core = if let Some(a) = abbreviation(&format!("{core}.")).filter(|_| tail.starts_with('.'))
    {
        push_words(out, a);
        core_owned = String::new();
        &core_owned
    } else {
        core
    };
    if !core.is_empty() {
        expand_core(core, prev, out);
    }
    for c in tail.chars() {
        match c {
            ',' | '.' | '!' | '?' | ';' | ':' => out.push(Piece::Punct(c)),
            '…' => out.push(Piece::Punct('.')),
            '%' => push_words(out, "percent"),
            _ => {}
        }
    }
}

fn expand_core(core: &str, prev: Option<&Piece>, out: &mut Vec<Piece>) {
    // Currency.
    if let Some(first) = core.chars().next() {
        if "$€£".contains(first) {
            let rest = &core[first.len_utf8()..];
            let (amt, mult) = match rest.find(|c: char| c.is_ascii_alphabetic()) {
                Some(i) => (&rest[..i], Some(&rest[i..])),
                None => (rest, None),
            };
            if let Some(w) = currency_words(first, amt) {
                push_words(out, &w);
                // "$3M" -> dollar three million
                if let Some(m) = mult.and_then(|m| match m.to_ascii_lowercase().as_str() {
                    "k" => Some("thousand"),
                    "m" | "mn" => Some("million"),
                    "b" | "bn" => Some("billion"),
                    _ => None,
                }) {
                    push_words(out, m);
                }
                return;
            }
        }
    }
    if let Some(w) = time_words(core) {
        push_words(out, &w);
        return;
    }
    if let Some(w) = ordinal_words(core) {
        push_words(out, &w);
        return;
    }
    if let Some(w) = number_words(core) {
        push_words(out, &w);
        return;
    }
    // Percent / units glued to numbers: 50%, 10km, 5°C.
    if let Some(i) = core.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ',' || c == '-'))
    {
        if i > 0 {
            let (num, rest) = core.split_at(i);
            if let Some(nw) = number_words(num) {
                if let Some(u) = unit(rest) {
                    push_words(out, &nw);
                    push_words(out, u);
                    return;
                }
                if let Some(u) = spelled_unit(&rest.to_ascii_lowercase()) {
                    push_words(out, &nw);
                    out.push(Piece::Spell(u.replace('.', "")));
                    return;
                }
            }
        }
    }
    // Units after a number token: "5 km".
    if matches!(prev, Some(Piece::Word(w)) if is_number_word(w)) {
        if let Some(u) = unit(core) {
            push_words(out, u);
            return;
        }
        if let Some(u) = spelled_unit(&core.to_ascii_lowercase()) {
            out.push(Piece::Spell(u.to_string()));
            return;
        }
    }
    // Phone-number-like and other digit runs with separators: read digits.
    if core.chars().any(|c| c.is_ascii_digit())
        && core
            .chars()
            .all(|c| c.is_ascii_digit() || "-().+/".contains(c))
    {
        // espeak: groups read as numbers ("five-hundred fifty five"), a group
        // with a leading zero digit by digit run together, "-" read "dash".
        let mut first = true;
        for (i, c) in core.char_indices() {
            if !c.is_ascii_digit() {
                if !first {
                    match c {
                        '-' => push_words(out, "dash"),
                        '/' => push_words(out, "slash"),
                        '.' => push_words(out, "dot"),
                        '+' => push_words(out, "plus"),
                        _ => {}
                    }
                }
                continue;
            }
            if i > 0 && core[..i].ends_with(|p: char| p.is_ascii_digit()) {
                continue;
            }
            first = false;
            let group: String = core[i..].chars().take_while(char::is_ascii_digit).collect();
            if group.starts_with('0') || group.len() > 15 {
                push_words(out, &digits(&group).replace(' ', "-"));
            } else if let Ok(v) = group.parse::<u64>() {
                push_words(out, &cardinal(v));
            }
        }
        return;
    }
    // Roman numerals after a name: espeak reads "Henry VIII" as "roman eight".
    if let (Some(n), Some(Piece::Word(_))) = (roman(core), prev) {
        if core.len() > 1 || core == "V" || core == "X" {
            push_words(out, &format!("roman {}", cardinal(n)));
            return;
        }
    }
    // E-mail and URLs.
    if core.contains('@') || core.contains("://") || core.starts_with("www.") {
        let s = core
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .replace("://", "/");
        for part in s.split_inclusive(['@', '.', '/', '_']) {
            let (w, sep) = match part.char_indices().last() {
                Some((i, c)) if "@./_".contains(c) => (&part[..i], Some(c)),
                _ => (part, None),
            };
            if w.eq_ignore_ascii_case("www") {
                out.push(Piece::Spell("www".into()));
            } else {
                words_or_letters(w, out);
            }
            match sep {
                Some('@') => push_words(out, "at"),
                Some('.') => push_words(out, "dot"),
                Some('/') => push_words(out, "slash"),
                Some('_') => push_words(out, "underscore"),
                _ => {}
            }
        }
        return;
    }
    // Symbols inside tokens.
    for (i, part) in core.split(['&', '+', '/', '=']).enumerate() {
        if i > 0 {
            let sym = core[..core.len()]
                .match_indices(['&', '+', '/', '='])
                .nth(i - 1)
                .map(|(_, s)| s)
                .unwrap_or("&");
            push_words(
                out,
                match sym {
                    "&" => "and",
                    "+" => "plus",
                    "=" => "equals",
                    _ => "slash",
                },
            );
        }
        words_or_letters(part, out);
    }
}

fn is_number_word(w: &str) -> bool {
    ONES.contains(&w)
        || TENS.contains(&w)
        || w.ends_with("-hundred")
        || w.split('-').all(|p| ONES.contains(&p))
        || ["hundred", "thousand", "million", "billion", "point"].contains(&w)
}

/// Words (hyphens split), with all-caps tokens that are not words spelled out.
fn words_or_letters(w: &str, out: &mut Vec<Piece>) {
    // A hyphenated compound of plain words stays one word ("full-time").
    let parts: Vec<&str> = w.split('-').filter(|p| !p.is_empty()).collect();
    if parts.len() > 1
        && parts.iter().all(|p| {
            p.chars().all(|c| c.is_alphabetic() || c == '\'')
                && !(p.chars().count() >= 2 && p.chars().all(char::is_uppercase))
        })
    {
        out.push(Piece::Word(parts.join("-").to_lowercase()));
        return;
    }
    for part in w.split(['-', '_']).filter(|p| !p.is_empty()) {
        let letters: String = part
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '\'')
            .collect();
        if letters.is_empty() {
            continue;
        }
        if letters.chars().any(|c| c.is_ascii_digit()) {
            // Mixed letters and digits: read each run.
            let mut run = String::new();
            let mut digit = None;
            for c in letters.chars().chain(std::iter::once(' ')) {
                let d = c.is_ascii_digit();
                if c == ' ' || digit.is_some_and(|x| x != d) {
                    if digit == Some(true) {
                        push_words(out, &number_words(&run).unwrap_or_else(|| digits(&run)));
                    } else if !run.is_empty() {
                        words_or_letters(&run, out);
                    }
                    run.clear();
                }
                run.push(c);
                digit = Some(d);
            }
            continue;
        }
        let is_caps = letters.len() >= 2 && letters.chars().all(|c| c.is_uppercase() || c == '\'');
        if is_caps && !super::g2p::is_pronounceable_acronym(&letters) {
            out.push(Piece::Spell(letters.to_lowercase()));
        } else {
            out.push(Piece::Word(letters.to_lowercase()));
        }
    }
}

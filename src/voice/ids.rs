//! Phonemes -> ids, exactly as Piper does it: `^`, `_`, then each phoneme
//! followed by `_`, then `$`.

use super::config::VoiceConfig;
use crate::error::{Error, Result};
use std::collections::HashMap;
use unicode_normalization::UnicodeNormalization;

/// Maps phoneme strings to model ids using a voice's `phoneme_id_map`.
#[derive(Clone, Debug)]
pub struct PhonemeIdMap {
    map: HashMap<char, Vec<i64>>,
    bos: Vec<i64>,
    eos: Vec<i64>,
    pad: Vec<i64>,
    num_symbols: usize,
}

/// The ids of one sentence and the phonemes that were dropped because the voice lacks them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedIds {
    /// Ids with BOS/PAD/EOS.
    pub ids: Vec<i64>,
    /// Code points not in the map (skipped, as Piper does).
    pub dropped: Vec<char>,
}

impl PhonemeIdMap {
    /// Build from a voice config. Multi-code-point keys (clusters) are ignored.
    pub fn new(cfg: &VoiceConfig) -> Self {
        let get = |k: &str| cfg.phoneme_id_map.get(k).cloned().unwrap_or_default();
        let map = cfg
            .phoneme_id_map
            .iter()
            .filter_map(|(k, v)| {
                let mut it = k.chars();
                match (it.next(), it.next()) {
                    (Some(c), None) => Some((c, v.clone())),
                    _ => None,
                }
            })
            .collect();
        PhonemeIdMap {
            map,
            bos: get("^"),
            eos: get("$"),
            pad: get("_"),
            num_symbols: cfg.num_symbols,
        }
    }

    /// Whether the voice has an id for this phoneme.
    pub fn contains(&self, c: char) -> bool {
        self.map.contains_key(&c)
    }

    /// Ids of one sentence of IPA (NFD-normalised first; one code point per phoneme).
    ///
    /// ```
    /// # let cfg = voxide::voice::VoiceConfig::parse(br#"{"audio":{"sample_rate":22050},
    /// #   "phoneme_id_map":{"^":[1],"_":[0],"$":[2],"a":[5]},"num_symbols":10}"#,
    /// #   std::path::Path::new("x.json")).unwrap();
    /// let map = voxide::voice::PhonemeIdMap::new(&cfg);
    /// let m = map.sentence_ids("aXa");
    /// assert_eq!(m.ids, vec![1, 0, 5, 0, 5, 0, 2]);
    /// assert_eq!(m.dropped, vec!['X']);
    /// ```
    pub fn sentence_ids(&self, phonemes: &str) -> MappedIds {
        let mut ids = Vec::with_capacity(phonemes.len() * 2 + 3);
        ids.extend_from_slice(&self.bos);
        ids.extend_from_slice(&self.pad);
        let mut dropped = Vec::new();
        for c in phonemes.nfd() {
            match self.map.get(&c) {
                Some(v) => {
                    ids.extend_from_slice(v);
                    ids.extend_from_slice(&self.pad);
                }
                None => dropped.push(c),
            }
        }
        ids.extend_from_slice(&self.eos);
        MappedIds { ids, dropped }
    }

    /// [`PhonemeIdMap::sentence_ids`] of IPA that is already NFD, and where
    /// each char's ids begin: `at[k]` is the index of char `k`'s first id
    /// (a dropped char: where the next one's begin), `at[len]` where the
    /// end-of-sentence ids begin. Each phoneme's ids include the pad after it.
    pub fn sentence_ids_at(&self, nfd: &str) -> (Vec<i64>, Vec<usize>) {
        let mut ids = Vec::with_capacity(nfd.len() * 2 + 3);
        let mut at = Vec::with_capacity(nfd.len() + 1);
        ids.extend_from_slice(&self.bos);
        ids.extend_from_slice(&self.pad);
        for c in nfd.chars() {
            at.push(ids.len());
            if let Some(v) = self.map.get(&c) {
                ids.extend_from_slice(v);
                ids.extend_from_slice(&self.pad);
            }
        }
        at.push(ids.len());
        ids.extend_from_slice(&self.eos);
        (ids, at)
    }

    /// Parse `--ids` text (`1,0,20,...`) and check every id against the voice.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the bad item and its position.
    pub fn parse_ids(&self, text: &str) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        for (i, item) in text.split(',').map(str::trim).enumerate() {
            if item.is_empty() {
                continue;
            }
            let id: i64 = item.parse().map_err(|_| {
                Error::InvalidArgument(format!("id #{} {item:?} is not an integer", i + 1))
            })?;
            self.check_id(id, i)?;
            out.push(id);
        }
        if out.is_empty() {
            return Err(Error::InvalidArgument("no ids given".into()));
        }
        Ok(out)
    }

    /// Check that an id is inside the voice's symbol table.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when it is not.
    pub fn check_id(&self, id: i64, position: usize) -> Result<()> {
        if id < 0 || usize::try_from(id).map_or(true, |v| v >= self.num_symbols) {
            return Err(Error::InvalidArgument(format!(
                "id #{} = {id} is outside the voice's symbols 0..{}",
                position + 1,
                self.num_symbols
            )));
        }
        Ok(())
    }
}

/// Split `--phonemes` input into sentences: one per line, trimmed, empty lines skipped.
pub fn phoneme_sentences(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

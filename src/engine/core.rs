//! [`Core`]: what every request on one backend shares (the device, the
//! voices loaded on it, the stage clock), and [`LoadedVoice`].

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::{StageTimes, Vits};
use crate::voice::{PhonemeIdMap, VoiceConfig};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A voice on the device. Host copies of the weights are dropped after upload.
pub(crate) struct LoadedVoice<B: Backend> {
    pub(crate) config: VoiceConfig,
    pub(crate) ids: PhonemeIdMap,
    pub(crate) model: Vits<B>,
}

/// What every request on the backend shares: the device, the voices on it,
/// the stage clock.
pub(crate) struct Core<B: Backend> {
    pub(crate) be: B,
    pub(crate) voices: RwLock<BTreeMap<String, Arc<LoadedVoice<B>>>>,
    pub(crate) stage_times: Mutex<StageTimes>,
}

impl<B: Backend> Core<B> {
    /// Count a finished sentence's stage times.
    pub(crate) fn add_times(&self, t: StageTimes) {
        *self.stage_times.lock() += t;
    }

    pub(crate) fn voice(&self, name: &str) -> Result<Arc<LoadedVoice<B>>> {
        self.voices
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownVoice(name.to_string()))
    }
}

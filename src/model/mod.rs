//! The VITS model as a sequence of backend ops: encoder, duration predictor,
//! flow, decoder. It says *what* runs; the backend says *how*.

mod arena;
mod decoder;
mod duration;
mod encoder;
mod flow;
mod noise;
mod pool;
mod span;
mod vits;

pub use noise::{normal_at, Noise, STREAM_DP, STREAM_Z};
pub use vits::{
    BatchItem, StageTimes, SynthOptions, Utterance, Vits, BATCH_DECODER_FRAMES, BATCH_FLOW_FRAMES,
    DEFAULT_MAX_FRAMES,
};

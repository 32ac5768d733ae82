//! [`SpeakJob`]: a request as the scheduler's actor advances it, one chunk
//! per step; the flow + decoder chunks of all requests in a batch on the
//! same voice run as one [`crate::model::Vits::render_batch`].

use super::core::Core;
use super::speech::{Next, Speech, Step};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::BatchItem;
use crate::scheduler::Job;
use std::sync::Arc;

/// What a scheduled request streams back.
pub(crate) enum Out {
    Samples(Vec<f32>),
    SentenceEnd,
}

impl Step {
    fn into_out(self, buf: Vec<f32>) -> Option<Out> {
        match self {
            Step::Samples => Some(Out::Samples(buf)),
            Step::SentenceEnd => Some(Out::SentenceEnd),
            Step::Done => None,
        }
    }
}

/// A speak request on backend `B` in the scheduler.
pub(crate) struct SpeakJob<B: Backend> {
    pub(crate) core: Arc<Core<B>>,
    pub(crate) speech: Speech<B>,
}

impl<B: Backend> Job for SpeakJob<B> {
    type Item = Out;

    fn step(&mut self) -> Result<Option<Out>> {
        let mut buf = Vec::new();
        let step = self.speech.step(&self.core, &mut buf)?;
        Ok(step.into_out(buf))
    }

    /// Encoder + duration of new sentences run per request; the flow +
    /// decoder chunks of all requests on the same voice run as one
    /// [`crate::model::Vits::render_batch`] (the CPU needs no padding to the bucket).
    fn step_batch(jobs: &mut [&mut Self], _bucket: usize) -> Vec<Result<Option<Out>>> {
        // One scheduler per engine: every job runs on the same core.
        let Some(core) = jobs.first().map(|j| Arc::clone(&j.core)) else {
            return Vec::new();
        };
        let be = &core.be;
        let n = jobs.len();
        let mut res: Vec<Option<Result<Option<Out>>>> = (0..n).map(|_| None).collect();
        let mut want: Vec<Option<(usize, usize)>> = vec![None; n];
        for (i, j) in jobs.iter_mut().enumerate() {
            match j.speech.next(&core) {
                Ok(Next::Render(a, b)) => want[i] = Some((a, b)),
                Ok(Next::Ready(step)) => res[i] = Some(Ok(step.into_out(Vec::new()))),
                Err(e) => res[i] = Some(Err(e)),
            }
        }
        let mut bufs: Vec<Vec<f32>> = vec![Vec::new(); n];
        // One batched render per voice among the requests with a chunk to render.
        while let Some(head) = (0..n).find(|&i| want[i].is_some() && res[i].is_none()) {
            let voice = Arc::clone(&jobs[head].speech.plan.voice);
            let members: Vec<usize> = (0..n)
                .filter(|&i| {
                    want[i].is_some()
                        && res[i].is_none()
                        && Arc::ptr_eq(&jobs[i].speech.plan.voice, &voice)
                })
                .collect();
            let mut items: Vec<BatchItem<'_, B>> = Vec::with_capacity(members.len());
            let mut rendered = Vec::with_capacity(members.len());
            for (i, (j, buf)) in jobs.iter_mut().zip(bufs.iter_mut()).enumerate() {
                let (Some((a, b)), true) = (want[i], members.contains(&i)) else {
                    continue;
                };
                if let Some(u) = j.speech.cur.utt.as_mut() {
                    items.push(BatchItem {
                        utt: u,
                        a,
                        b,
                        out: buf,
                    });
                    rendered.push((i, b));
                }
            }
            let r = be.install(|| voice.model.render_batch(be, &mut items));
            drop(items);
            for &i in &members {
                res[i] = Some(match &r {
                    Err(e) => Err(e.replicate()),
                    Ok(()) => match rendered.iter().find(|x| x.0 == i) {
                        Some(&(_, b)) => {
                            jobs[i].speech.rendered(b);
                            Ok(Some(Out::Samples(std::mem::take(&mut bufs[i]))))
                        }
                        None => Err(Error::Device(
                            "a request in a batch had no sentence to render".into(),
                        )),
                    },
                });
            }
        }
        res.into_iter().map(|r| r.unwrap_or(Ok(None))).collect()
    }
}

//! Typed weights of a Piper VITS voice, read from the ONNX initializers.
//!
//! Every tensor is located by name (or through its consuming node when the
//! exporter gave it a generic `onnx::Conv_*` name), and checked for shape.
//! A missing, ill-shaped or unexpected tensor is an error naming it.

use super::onnx::{GraphProto, ModelProto, TensorProto, DATA_TYPE_FLOAT};
use crate::error::VoiceError;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A host tensor: row-major data and its shape.
#[derive(Clone, Debug)]
pub struct Tensor {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Elements.
    pub data: Vec<f32>,
}

pub use crate::backend::{Conv, ConvTranspose};

/// LayerNorm over channels.
#[derive(Clone, Debug)]
pub struct Norm {
    /// Scale.
    pub gamma: Vec<f32>,
    /// Shift.
    pub beta: Vec<f32>,
}

/// One post-norm transformer layer of the text encoder.
#[derive(Clone, Debug)]
pub struct EncoderLayer {
    /// 1×1 query/key/value/output projections.
    pub q: Conv,
    /// Key projection.
    pub k: Conv,
    /// Value projection.
    pub v: Conv,
    /// Output projection.
    pub o: Conv,
    /// Relative key table `[2w+1, head_dim]`.
    pub rel_k: Vec<f32>,
    /// Relative value table `[2w+1, head_dim]`.
    pub rel_v: Vec<f32>,
    /// Norm after attention.
    pub norm1: Norm,
    /// FFN first conv.
    pub ffn1: Conv,
    /// FFN second conv.
    pub ffn2: Conv,
    /// Norm after FFN.
    pub norm2: Norm,
}

/// Text encoder weights.
#[derive(Clone, Debug)]
pub struct Encoder {
    /// Embedding `[symbols, hidden]`.
    pub emb: Vec<f32>,
    /// Rows of the embedding.
    pub symbols: usize,
    /// Hidden channels.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// Relative window (table has 2·window+1 rows).
    pub window: usize,
    /// Layers.
    pub layers: Vec<EncoderLayer>,
    /// Projection to `m_p`, `logs_p`.
    pub proj: Conv,
}

/// A dilated depth-separable conv stack (DDSConv).
#[derive(Clone, Debug)]
pub struct DdsConv {
    /// Per layer: depthwise conv, norm1, 1×1 conv, norm2.
    pub layers: Vec<(Conv, Norm, Conv, Norm)>,
}

/// One ConvFlow step of the duration predictor.
#[derive(Clone, Debug)]
pub struct ConvFlow {
    /// 1×1, 1 → channels.
    pub pre: Conv,
    /// Conditioning stack.
    pub convs: DdsConv,
    /// 1×1, channels → 3·bins − 1.
    pub proj: Conv,
}

/// Stochastic duration predictor (reverse direction only).
#[derive(Clone, Debug)]
pub struct DurationPredictor {
    /// 1×1 on the encoder output.
    pub pre: Conv,
    /// Main DDSConv.
    pub convs: DdsConv,
    /// 1×1 to the conditioning.
    pub proj: Conv,
    /// ConvFlows in the order they run in reverse (flows.7, .5, .3).
    pub flows: Vec<ConvFlow>,
    /// Spline bins.
    pub bins: usize,
    /// ElementwiseAffine mean `m` (2 values).
    pub affine_m: [f32; 2],
    /// ElementwiseAffine `exp(−logs)` (2 values).
    pub affine_e: [f32; 2],
}

/// One mean-only residual coupling of the main flow.
#[derive(Clone, Debug)]
pub struct Coupling {
    /// 1×1, half → hidden.
    pub pre: Conv,
    /// WaveNet input convs (hidden → 2·hidden).
    pub in_layers: Vec<Conv>,
    /// WaveNet res/skip 1×1 convs (last one hidden → hidden).
    pub res_skip: Vec<Conv>,
    /// 1×1, hidden → half.
    pub post: Conv,
}

/// A HiFi-GAN residual block.
#[derive(Clone, Debug)]
pub enum ResBlock {
    /// Type 1: pairs (dilated conv, dilation-1 conv).
    One(Vec<(Conv, Conv)>),
    /// Type 2: single dilated convs.
    Two(Vec<Conv>),
}

/// HiFi-GAN generator.
#[derive(Clone, Debug)]
pub struct Decoder {
    /// Input conv.
    pub conv_pre: Conv,
    /// Upsampling stages.
    pub ups: Vec<ConvTranspose>,
    /// Residual blocks per stage.
    pub resblocks: Vec<Vec<ResBlock>>,
    /// Output conv (no bias).
    pub conv_post: Conv,
}

/// Speaker conditioning of a multi-speaker voice: the speaker table and the
/// 1×1 convs that map a speaker's embedding `g` into each stage. `g` is
/// constant over time, so each conv gives one vector per speaker, added to
/// the output of the conv it follows (duration predictor `pre`, every
/// WaveNet in-layer of the flow, decoder `conv_pre`).
#[derive(Clone, Debug)]
pub struct Speakers {
    /// `emb_g.weight` `[count, gin]`.
    pub emb: Vec<f32>,
    /// Speakers (rows of `emb`).
    pub count: usize,
    /// Embedding channels.
    pub gin: usize,
    /// `dp.cond`: gin → duration-predictor channels.
    pub dp: Conv,
    /// Per coupling, in the order of [`Weights::flow`]: `enc.cond_layer`,
    /// gin → 2·hidden·layers (layer `l` takes rows `2·hidden·l ..`).
    pub flow: Vec<Conv>,
    /// `dec.cond`: gin → `conv_pre` outputs.
    pub dec: Conv,
}

impl Speakers {
    /// `c(g)` for every speaker: `[count, c.cout]` (bias included), summed
    /// in f64 (speakers in parallel: a voice may have hundreds).
    pub fn table(&self, c: &Conv) -> Vec<f32> {
        use rayon::prelude::*;
        let mut out = vec![0.0f32; self.count * c.cout];
        if c.cout == 0 {
            return out;
        }
        out.par_chunks_mut(c.cout)
            .zip(self.emb.par_chunks(self.gin))
            .for_each(|(row, g)| {
                for (o, v) in row.iter_mut().enumerate() {
                    let w = &c.w[o * c.cin..(o + 1) * c.cin];
                    let b = c.b.as_ref().map_or(0.0, |b| f64::from(b[o]));
                    *v = (b + dot(w, g)) as f32;
                }
            });
        out
    }
}

/// `Σ a·b` in f64, four independent sums (so it vectorises).
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            acc[i] += f64::from(x[i]) * f64::from(y[i]);
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// All weights of a voice.
#[derive(Clone, Debug)]
pub struct Weights {
    /// Text encoder.
    pub enc: Encoder,
    /// Duration predictor.
    pub dp: DurationPredictor,
    /// Main flow couplings in the order they run in reverse (flows.6, .4, .2, .0).
    pub flow: Vec<Coupling>,
    /// Decoder.
    pub dec: Decoder,
    /// Speaker conditioning; `None` for a single-speaker voice.
    pub speakers: Option<Speakers>,
}

impl Weights {
    /// Hop size (samples per frame): product of the upsampling factors.
    pub fn hop(&self) -> usize {
        self.dec.ups.iter().map(|u| u.stride).product()
    }

    /// Channels of the latent `z`.
    pub fn latent_channels(&self) -> usize {
        self.dec.conv_pre.cin
    }

    /// Read and validate an `.onnx` file.
    ///
    /// # Errors
    /// [`VoiceError::Io`], [`VoiceError::Onnx`] (truncated/corrupt protobuf) or
    /// [`VoiceError::Tensor`] naming the tensor at fault.
    pub fn load(path: &Path) -> Result<Self, VoiceError> {
        let bytes = read_file(path).map_err(|source| VoiceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_bytes(bytes::Bytes::from(bytes), path)
    }

    /// Parse model bytes; `path` is used in messages only.
    ///
    /// # Errors
    /// As [`Weights::load`].
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, VoiceError> {
        Self::parse_bytes(bytes::Bytes::copy_from_slice(bytes), path)
    }

    /// Parse an owned buffer without copying tensor payloads.
    ///
    /// # Errors
    /// As [`Weights::load`].
    pub fn parse_bytes(bytes: bytes::Bytes, path: &Path) -> Result<Self, VoiceError> {
        let onnx_err = |msg: String| VoiceError::Onnx {
            path: path.to_path_buf(),
            msg,
        };
        let model = ModelProto::decode(bytes).map_err(|e| {
            onnx_err(format!(
                "protobuf decode failed ({e}); truncated or corrupt?"
            ))
        })?;
        let graph = model
            .graph
            .ok_or_else(|| onnx_err("the model has no graph".into()))?;
        if graph.initializer.is_empty() || graph.node.is_empty() {
            return Err(onnx_err("the graph has no initializers or no nodes".into()));
        }
        let mut r = Reader::new(graph, path)?;
        let w = read_weights(&mut r)?;
        r.check_all_used()?;
        Ok(w)
    }
}

struct Reader {
    path: PathBuf,
    graph: GraphProto,
    by_name: HashMap<String, usize>,
    nodes: HashMap<String, usize>,
    used: HashSet<usize>,
    /// Float payloads converted up front (in parallel inside a thread pool),
    /// by initializer index; `tensor` takes them after its checks.
    floats: Vec<Option<Vec<f32>>>,
}

impl Reader {
    fn new(graph: GraphProto, path: &Path) -> Result<Self, VoiceError> {
        let by_name = graph
            .initializer
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let nodes = graph
            .node
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let floats = convert_all(&graph.initializer);
        Ok(Reader {
            path: path.to_path_buf(),
            graph,
            by_name,
            nodes,
            used: HashSet::new(),
            floats,
        })
    }

    fn err(&self, msg: String) -> VoiceError {
        VoiceError::Tensor {
            path: self.path.clone(),
            msg,
        }
    }

    fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    fn node(&self, name: &str) -> Result<&super::onnx::NodeProto, VoiceError> {
        self.nodes
            .get(name)
            .map(|&i| &self.graph.node[i])
            .ok_or_else(|| self.err(format!("graph node {name} is missing")))
    }

    /// Name of input `idx` of node `node`.
    fn node_input(&self, node: &str, idx: usize) -> Result<String, VoiceError> {
        let n = self.node(node)?;
        n.input
            .get(idx)
            .cloned()
            .ok_or_else(|| self.err(format!("graph node {node} has no input {idx}")))
    }

    fn tensor(&mut self, name: &str, shape: &[Option<usize>]) -> Result<Tensor, VoiceError> {
        let &i = self
            .by_name
            .get(name)
            .ok_or_else(|| self.err(format!("missing tensor {name}")))?;
        let t: &TensorProto = &self.graph.initializer[i];
        if t.data_type != DATA_TYPE_FLOAT {
            return Err(self.err(format!(
                "tensor {name} has element type {}, expected float32",
                t.data_type
            )));
        }
        if t.data_location == 1 || !t.external_data.is_empty() {
            return Err(self.err(format!(
                "tensor {name} uses external data, which is not supported"
            )));
        }
        let dims: Vec<usize> = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect();
        let ok = dims.len() == shape.len()
            && dims
                .iter()
                .zip(shape)
                .all(|(&d, want)| want.is_none_or(|w| w == d));
        if !ok {
            let want: Vec<String> = shape
                .iter()
                .map(|s| s.map_or("?".into(), |v| v.to_string()))
                .collect();
            return Err(self.err(format!(
                "tensor {name} has shape {dims:?}, expected [{}]",
                want.join(", ")
            )));
        }
        let n = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| self.err(format!("tensor {name} shape {dims:?} overflows")))?;
        let data: Vec<f32> = if !t.raw_data.is_empty() {
            if t.raw_data.len() != n.saturating_mul(4) {
                return Err(self.err(format!(
                    "tensor {name} holds {} bytes, its shape {dims:?} needs {}",
                    t.raw_data.len(),
                    n * 4
                )));
            }
            match self.floats.get_mut(i).and_then(Option::take) {
                Some(v) if v.len() == n => v,
                _ => le_floats(&t.raw_data),
            }
        } else {
            if t.float_data.len() != n {
                return Err(self.err(format!(
                    "tensor {name} holds {} floats, its shape {dims:?} needs {n}",
                    t.float_data.len()
                )));
            }
            t.float_data.clone()
        };
        if let Some(p) = first_non_finite(&data) {
            return Err(self.err(format!("tensor {name} has a non-finite value at {p}")));
        }
        self.used.insert(i);
        Ok(Tensor { shape: dims, data })
    }

    fn vec(&mut self, name: &str, len: usize) -> Result<Vec<f32>, VoiceError> {
        Ok(self.tensor(name, &[Some(len)])?.data)
    }

    fn norm(&mut self, prefix: &str, ch: usize) -> Result<Norm, VoiceError> {
        Ok(Norm {
            gamma: self.vec(&format!("{prefix}.gamma"), ch)?,
            beta: self.vec(&format!("{prefix}.beta"), ch)?,
        })
    }

    /// A conv with weight/bias by name. `cout`/`cin`/`k` of `None` are read from the file.
    fn conv(
        &mut self,
        weight: &str,
        bias: Option<&str>,
        cout: Option<usize>,
        cin: Option<usize>,
        k: Option<usize>,
        dilation: usize,
    ) -> Result<Conv, VoiceError> {
        let t = self.tensor(weight, &[cout, cin, k])?;
        let (co, ci, kk) = (t.shape[0], t.shape[1], t.shape[2]);
        if co == 0 || ci == 0 || kk == 0 {
            return Err(self.err(format!("tensor {weight} has an empty dimension")));
        }
        let b = match bias {
            Some(b) => Some(self.vec(b, co)?),
            None => None,
        };
        Ok(Conv {
            w: t.data,
            b,
            cout: co,
            cin: ci,
            k: kk,
            dilation,
        })
    }

    /// A conv `{prefix}.weight` / `{prefix}.bias`.
    fn named_conv(
        &mut self,
        prefix: &str,
        cout: Option<usize>,
        cin: Option<usize>,
        k: Option<usize>,
    ) -> Result<Conv, VoiceError> {
        self.conv(
            &format!("{prefix}.weight"),
            Some(&format!("{prefix}.bias")),
            cout,
            cin,
            k,
            1,
        )
    }

    /// A 1×1 conditioning conv: weight `{prefix}.weight`, or (weight-normed
    /// in training, folded by the exporter under a generic name) input 1 of
    /// `node`; bias `{prefix}.bias`.
    fn cond_conv(
        &mut self,
        prefix: &str,
        node: &str,
        cout: Option<usize>,
        cin: Option<usize>,
    ) -> Result<Conv, VoiceError> {
        let named = format!("{prefix}.weight");
        let weight = if self.has(&named) {
            named
        } else {
            self.node_input(node, 1)?
        };
        self.conv(
            &weight,
            Some(&format!("{prefix}.bias")),
            cout,
            cin,
            Some(1),
            1,
        )
    }

    fn dilation_of(&self, node: &str) -> Result<usize, VoiceError> {
        let n = self.node(node)?;
        Ok(n.ints("dilations")
            .and_then(|d| d.first().copied())
            .and_then(|d| usize::try_from(d).ok())
            .unwrap_or(1)
            .max(1))
    }

    fn count(&self, fmt: impl Fn(usize) -> String) -> usize {
        (0..).take_while(|&i| self.has(&fmt(i))).count()
    }

    fn check_all_used(&self) -> Result<(), VoiceError> {
        for (i, t) in self.graph.initializer.iter().enumerate() {
            // Scalars (rank 0) are graph constants documented in the spec; int64
            // tensors are shape constants. Every float weight must be consumed.
            if t.data_type == DATA_TYPE_FLOAT && !t.dims.is_empty() && !self.used.contains(&i) {
                return Err(self.err(format!(
                    "unexpected tensor {} {:?}: not part of a supported Piper VITS voice",
                    t.name, t.dims
                )));
            }
        }
        Ok(())
    }
}

fn read_weights(r: &mut Reader) -> Result<Weights, VoiceError> {
    let enc = read_encoder(r)?;
    let dp = read_dp(r, enc.hidden)?;
    let flow = read_flow(r, enc.hidden)?;
    let dec = read_decoder(r, enc.hidden)?;
    let speakers = if r.has("emb_g.weight") {
        Some(read_speakers(r, &dp, &flow, &dec)?)
    } else {
        None
    };
    Ok(Weights {
        enc,
        dp,
        flow,
        dec,
        speakers,
    })
}

/// The speaker table and the conditioning convs, shapes checked against the
/// stages they condition.
fn read_speakers(
    r: &mut Reader,
    dp: &DurationPredictor,
    flow: &[Coupling],
    dec: &Decoder,
) -> Result<Speakers, VoiceError> {
    let emb = r.tensor("emb_g.weight", &[None, None])?;
    let (count, gin) = (emb.shape[0], emb.shape[1]);
    if count == 0 || gin == 0 {
        return Err(r.err(format!(
            "tensor emb_g.weight has shape {:?}: needs speakers and channels",
            emb.shape
        )));
    }
    let g = Some(gin);
    let dp_cond = r.cond_conv("dp.cond", "/dp/cond/Conv", Some(dp.pre.cout), g)?;
    // Couplings run as flows.6, .4, .2, .0 (see `read_flow`).
    let n = flow.len();
    let mut flow_cond = Vec::with_capacity(n);
    for (i, cp) in flow.iter().enumerate() {
        let f = 2 * (n - 1 - i);
        let rows = 2 * cp.pre.cout * cp.in_layers.len();
        flow_cond.push(r.cond_conv(
            &format!("flow.flows.{f}.enc.cond_layer"),
            &format!("/flow/flows.{f}/enc/cond_layer/Conv"),
            Some(rows),
            g,
        )?);
    }
    let dec_cond = r.cond_conv("dec.cond", "/dec/cond/Conv", Some(dec.conv_pre.cout), g)?;
    Ok(Speakers {
        emb: emb.data,
        count,
        gin,
        dp: dp_cond,
        flow: flow_cond,
        dec: dec_cond,
    })
}

fn read_encoder(r: &mut Reader) -> Result<Encoder, VoiceError> {
    let emb_name = r.node_input("/enc_p/emb/Gather", 0)?;
    let emb = r.tensor(&emb_name, &[None, None])?;
    let (symbols, hidden) = (emb.shape[0], emb.shape[1]);
    let n_layers = r.count(|l| format!("enc_p.encoder.attn_layers.{l}.conv_q.weight"));
    if n_layers == 0 {
        return Err(r.err("missing tensor enc_p.encoder.attn_layers.0.conv_q.weight".into()));
    }
    let h = Some(hidden);
    let mut layers = Vec::with_capacity(n_layers);
    let mut heads = 0;
    let mut window = 0;
    for l in 0..n_layers {
        let p = format!("enc_p.encoder.attn_layers.{l}");
        let rel_k = r.tensor(&format!("{p}.emb_rel_k"), &[Some(1), None, None])?;
        let (rows, head_dim) = (rel_k.shape[1], rel_k.shape[2]);
        if rows % 2 == 0 || head_dim == 0 || hidden % head_dim != 0 {
            return Err(r.err(format!(
                "tensor {p}.emb_rel_k has shape {:?}: needs an odd row count and a head size dividing {hidden}",
                rel_k.shape
            )));
        }
        heads = hidden / head_dim;
        window = rows / 2;
        let rel_v = r.tensor(
            &format!("{p}.emb_rel_v"),
            &[Some(1), Some(rows), Some(head_dim)],
        )?;
        let q = r.named_conv(&format!("{p}.conv_q"), h, h, Some(1))?;
        let k = r.named_conv(&format!("{p}.conv_k"), h, h, Some(1))?;
        let v = r.named_conv(&format!("{p}.conv_v"), h, h, Some(1))?;
        let o = r.named_conv(&format!("{p}.conv_o"), h, h, Some(1))?;
        let norm1 = r.norm(&format!("enc_p.encoder.norm_layers_1.{l}"), hidden)?;
        let f = format!("enc_p.encoder.ffn_layers.{l}");
        let ffn1 = r.named_conv(&format!("{f}.conv_1"), None, h, None)?;
        if ffn1.k % 2 == 0 {
            return Err(r.err(format!("{f}.conv_1 has an even kernel {}", ffn1.k)));
        }
        let ffn2 = r.named_conv(&format!("{f}.conv_2"), h, Some(ffn1.cout), Some(ffn1.k))?;
        let norm2 = r.norm(&format!("enc_p.encoder.norm_layers_2.{l}"), hidden)?;
        layers.push(EncoderLayer {
            q,
            k,
            v,
            o,
            rel_k: rel_k.data,
            rel_v: rel_v.data,
            norm1,
            ffn1,
            ffn2,
            norm2,
        });
    }
    let proj = r.named_conv("enc_p.proj", Some(2 * hidden), h, Some(1))?;
    Ok(Encoder {
        emb: emb.data,
        symbols,
        hidden,
        heads,
        window,
        layers,
        proj,
    })
}

fn read_dds(r: &mut Reader, prefix: &str, ch: usize) -> Result<DdsConv, VoiceError> {
    let n = r.count(|i| format!("{prefix}.convs_sep.{i}.weight"));
    if n == 0 {
        return Err(r.err(format!("missing tensor {prefix}.convs_sep.0.weight")));
    }
    let mut layers = Vec::with_capacity(n);
    let mut dil = 1;
    for i in 0..n {
        let mut sep = r.named_conv(&format!("{prefix}.convs_sep.{i}"), Some(ch), Some(1), None)?;
        sep.dilation = dil;
        if sep.k % 2 == 0 {
            return Err(r.err(format!("{prefix}.convs_sep.{i} has an even kernel")));
        }
        let n1 = r.norm(&format!("{prefix}.norms_1.{i}"), ch)?;
        let c1 = r.named_conv(
            &format!("{prefix}.convs_1x1.{i}"),
            Some(ch),
            Some(ch),
            Some(1),
        )?;
        let n2 = r.norm(&format!("{prefix}.norms_2.{i}"), ch)?;
        layers.push((sep, n1, c1, n2));
        // DDSConv dilations grow as kernel^i (1, 3, 9 for kernel 3).
        dil *= layers[i].0.k;
    }
    Ok(DdsConv { layers })
}

fn read_dp(r: &mut Reader, hidden: usize) -> Result<DurationPredictor, VoiceError> {
    if !r.has("dp.flows.3.pre.weight") {
        return Err(r.err(
            "missing tensor dp.flows.3.pre.weight: only voices with the stochastic duration predictor are supported".into(),
        ));
    }
    let pre = r.named_conv("dp.pre", None, Some(hidden), Some(1))?;
    let ch = pre.cout;
    let convs = read_dds(r, "dp.convs", ch)?;
    let proj = r.named_conv("dp.proj", Some(ch), Some(ch), Some(1))?;
    let mut flows = Vec::new();
    let mut bins = 0;
    for f in [7, 5, 3] {
        let p = format!("dp.flows.{f}");
        let fpre = r.named_conv(&format!("{p}.pre"), Some(ch), Some(1), Some(1))?;
        let fconvs = read_dds(r, &format!("{p}.convs"), ch)?;
        let fproj = r.named_conv(&format!("{p}.proj"), None, Some(ch), Some(1))?;
        if fproj.cout % 3 != 2 || fproj.cout < 5 {
            return Err(r.err(format!(
                "{p}.proj has {} outputs, expected 3·bins − 1",
                fproj.cout
            )));
        }
        bins = (fproj.cout + 1) / 3;
        flows.push(ConvFlow {
            pre: fpre,
            convs: fconvs,
            proj: fproj,
        });
    }
    let m = r.tensor("dp.flows.0.m", &[Some(2), Some(1)])?.data;
    // `exp(−logs)`: folded by the exporter into one initializer, or (other
    // torch versions) an `Exp` node of the initializer `−logs`.
    let e_name = r.node_input("/dp/flows.0/Mul", 1)?;
    let e = if r.has(&e_name) || e_name != "/dp/flows.0/Exp_output_0" {
        r.tensor(&e_name, &[Some(2), Some(1)])?.data
    } else {
        let x = r.node_input("/dp/flows.0/Exp", 0)?;
        let x = r.tensor(&x, &[Some(2), Some(1)])?.data;
        x.iter().map(|v| v.exp()).collect()
    };
    Ok(DurationPredictor {
        pre,
        convs,
        proj,
        flows,
        bins,
        affine_m: [m[0], m[1]],
        affine_e: [e[0], e[1]],
    })
}

fn read_flow(r: &mut Reader, hidden: usize) -> Result<Vec<Coupling>, VoiceError> {
    let n = r.count(|i| format!("flow.flows.{}.pre.weight", 2 * i));
    if n == 0 {
        return Err(r.err("missing tensor flow.flows.0.pre.weight".into()));
    }
    let mut out = Vec::with_capacity(n);
    for i in (0..n).rev() {
        let f = 2 * i;
        let p = format!("flow.flows.{f}");
        let pre = r.named_conv(&format!("{p}.pre"), None, None, Some(1))?;
        let half = pre.cin;
        let wn_ch = pre.cout;
        let n_layers = r.count(|l| format!("{p}.enc.in_layers.{l}.bias"));
        if n_layers == 0 {
            return Err(r.err(format!("missing tensor {p}.enc.in_layers.0.bias")));
        }
        let mut in_layers = Vec::with_capacity(n_layers);
        let mut res_skip = Vec::with_capacity(n_layers);
        for l in 0..n_layers {
            let node = format!("/flow/flows.{f}/enc/in_layers.{l}/Conv");
            let wname = r.node_input(&node, 1)?;
            let dil = r.dilation_of(&node)?;
            let c = r.conv(
                &wname,
                Some(&format!("{p}.enc.in_layers.{l}.bias")),
                Some(2 * wn_ch),
                Some(wn_ch),
                None,
                dil,
            )?;
            if c.k % 2 == 0 {
                return Err(r.err(format!("{node}: even kernel {}", c.k)));
            }
            in_layers.push(c);
            let node = format!("/flow/flows.{f}/enc/res_skip_layers.{l}/Conv");
            let wname = r.node_input(&node, 1)?;
            let out_ch = if l + 1 < n_layers { 2 * wn_ch } else { wn_ch };
            res_skip.push(r.conv(
                &wname,
                Some(&format!("{p}.enc.res_skip_layers.{l}.bias")),
                Some(out_ch),
                Some(wn_ch),
                Some(1),
                1,
            )?);
        }
        let post = r.named_conv(&format!("{p}.post"), Some(half), Some(wn_ch), Some(1))?;
        if 2 * half != hidden {
            return Err(r.err(format!(
                "{p}.pre takes {half} channels, expected half of {hidden}"
            )));
        }
        out.push(Coupling {
            pre,
            in_layers,
            res_skip,
            post,
        });
    }
    Ok(out)
}

fn read_decoder(r: &mut Reader, hidden: usize) -> Result<Decoder, VoiceError> {
    let conv_pre = r.named_conv("dec.conv_pre", None, Some(hidden), None)?;
    let n_ups = r.count(|i| format!("dec.ups.{i}.weight"));
    if n_ups == 0 {
        return Err(r.err("missing tensor dec.ups.0.weight".into()));
    }
    let mut ups = Vec::with_capacity(n_ups);
    let mut resblocks = Vec::with_capacity(n_ups);
    let mut ch = conv_pre.cout;
    let n_rb = r
        .count(|i| format!("dec.resblocks.{i}.convs.0.weight"))
        .max(r.count(|i| format!("dec.resblocks.{i}.convs1.0.weight")));
    if n_rb == 0 || !n_rb.is_multiple_of(n_ups) {
        return Err(r.err(format!(
            "found {n_rb} decoder resblocks for {n_ups} upsampling stages"
        )));
    }
    let per_stage = n_rb / n_ups;
    for i in 0..n_ups {
        let t = r.tensor(&format!("dec.ups.{i}.weight"), &[Some(ch), None, None])?;
        let (cout, k) = (t.shape[1], t.shape[2]);
        let node = r.node(&format!("/dec/ups.{i}/ConvTranspose"))?;
        let stride = node
            .ints("strides")
            .and_then(|s| s.first().copied())
            .and_then(|s| usize::try_from(s).ok())
            .unwrap_or(0);
        let pads = node.ints("pads").map(|p| p.to_vec()).unwrap_or_default();
        if stride == 0 || k != 2 * stride || pads.first().copied() != i64::try_from(stride / 2).ok()
        {
            return Err(r.err(format!(
                "dec.ups.{i}: kernel {k}, stride {stride}, pads {pads:?}: only kernel = 2·stride with padding stride/2 is supported"
            )));
        }
        let b = r.vec(&format!("dec.ups.{i}.bias"), cout)?;
        ups.push(ConvTranspose {
            w: t.data,
            b,
            cin: ch,
            cout,
            k,
            stride,
        });
        ch = cout;
        let mut blocks = Vec::with_capacity(per_stage);
        for j in 0..per_stage {
            let n = i * per_stage + j;
            let p = format!("dec.resblocks.{n}");
            if r.has(&format!("{p}.convs1.0.weight")) {
                let steps = r.count(|s| format!("{p}.convs1.{s}.weight"));
                let mut v = Vec::with_capacity(steps);
                for s in 0..steps {
                    let mut c1 =
                        r.named_conv(&format!("{p}.convs1.{s}"), Some(ch), Some(ch), None)?;
                    c1.dilation = r.dilation_of(&format!("/dec/resblocks.{n}/convs1.{s}/Conv"))?;
                    let c2 =
                        r.named_conv(&format!("{p}.convs2.{s}"), Some(ch), Some(ch), Some(c1.k))?;
                    v.push((c1, c2));
                }
                blocks.push(ResBlock::One(v));
            } else {
                let steps = r.count(|s| format!("{p}.convs.{s}.weight"));
                if steps == 0 {
                    return Err(r.err(format!("missing tensor {p}.convs.0.weight")));
                }
                let mut v = Vec::with_capacity(steps);
                for s in 0..steps {
                    let mut c =
                        r.named_conv(&format!("{p}.convs.{s}"), Some(ch), Some(ch), None)?;
                    c.dilation = r.dilation_of(&format!("/dec/resblocks.{n}/convs.{s}/Conv"))?;
                    v.push(c);
                }
                blocks.push(ResBlock::Two(v));
            }
        }
        for b in &blocks {
            let convs: Vec<&Conv> = match b {
                ResBlock::One(v) => v.iter().flat_map(|(a, b)| [a, b]).collect(),
                ResBlock::Two(v) => v.iter().collect(),
            };
            if convs.iter().any(|c| c.k % 2 == 0) {
                return Err(r.err(format!("dec stage {i}: a resblock conv has an even kernel")));
            }
        }
        resblocks.push(blocks);
    }
    let conv_post = r.conv("dec.conv_post.weight", None, Some(1), Some(ch), None, 1)?;
    if conv_pre.k % 2 == 0 || conv_post.k % 2 == 0 {
        return Err(r.err("dec.conv_pre/conv_post: even kernels are not supported".into()));
    }
    Ok(Decoder {
        conv_pre,
        ups,
        resblocks,
        conv_post,
    })
}

/// Read a whole file into memory (no mapping is kept: a voice file replaced
/// or truncated later cannot hurt the engine). Plain pages: advising
/// transparent huge pages made loads stall for tens of milliseconds at
/// random (the kernel compacting memory to find them).
fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let len = usize::try_from(len).unwrap_or(0);
    let mut buf: Vec<u8> = Vec::new();
    buf.try_reserve_exact(len.saturating_add(1)).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::OutOfMemory, "voice file too large")
    })?;
    if len >= 1 << 23 && rayon::current_thread_index().is_some() && read_halves(&f, &mut buf, len) {
        // The file may have grown since its size was taken: read the rest.
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(len as u64))?;
    }
    // (After a failed parallel read `buf` is empty and the cursor at 0.)
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Read the first `len` bytes of `f` into `buf`'s spare capacity as two
/// halves on two threads of the current pool (copying tens of megabytes out
/// of the page cache is most of a load). `false`, with `buf` empty, on any
/// error or short read (the caller then reads it plainly).
fn read_halves(f: &std::fs::File, buf: &mut Vec<u8>, len: usize) -> bool {
    let spare = &mut buf.spare_capacity_mut()[..len];
    let (a, b) = spare.split_at_mut(len / 2);
    // Read straight into the uninitialised memory (the kernel writes it; no
    // zero-fill pass first), looping over short reads.
    let read = |part: &mut [std::mem::MaybeUninit<u8>], at: usize| -> bool {
        let mut done = 0;
        while done < part.len() {
            match read_at(f, &mut part[done..], (at + done) as u64) {
                Ok(n) if n > 0 => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                _ => return false,
            }
        }
        true
    };
    let half = a.len();
    let (ok_a, ok_b) = rayon::join(|| read(a, 0), || read(b, half));
    if ok_a && ok_b {
        // SAFETY: all `len` bytes were written above.
        unsafe { buf.set_len(len) };
        true
    } else {
        false
    }
}

/// Read up to `dst.len()` bytes of `f` at byte `offset` into `dst`, without
/// moving a shared cursor (so two threads may read one file at once): unix
/// `pread` straight into the uninitialised memory.
#[cfg(unix)]
fn read_at(
    f: &std::fs::File,
    dst: &mut [std::mem::MaybeUninit<u8>],
    offset: u64,
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "offset too large"))?;
    // SAFETY: the destination is `dst.len()` writable bytes of memory we
    // own; pread writes at most that many.
    let r = unsafe {
        libc::pread(
            f.as_raw_fd(),
            dst.as_mut_ptr().cast::<libc::c_void>(),
            dst.len(),
            offset,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Windows: `seek_read` (`ReadFile` with the offset in its OVERLAPPED, so
/// concurrent reads do not race on the file position), into memory zeroed
/// first (std's API takes initialised bytes).
#[cfg(windows)]
fn read_at(
    f: &std::fs::File,
    dst: &mut [std::mem::MaybeUninit<u8>],
    offset: u64,
) -> std::io::Result<usize> {
    use std::os::windows::fs::FileExt;
    for b in dst.iter_mut() {
        b.write(0);
    }
    // SAFETY: every byte of `dst` was initialised just above.
    let dst = unsafe { &mut *(std::ptr::from_mut(dst) as *mut [u8]) };
    f.seek_read(dst, offset)
}

/// Elsewhere no positioned read: the caller reads the file in one pass.
#[cfg(not(any(unix, windows)))]
fn read_at(
    _f: &std::fs::File,
    _dst: &mut [std::mem::MaybeUninit<u8>],
    _offset: u64,
) -> std::io::Result<usize> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// The raw float payloads of `inits` as `f32`s, converted in parallel when
/// called inside a thread pool (the engine loads voices in its CPU pool);
/// `None` for the others.
fn convert_all(inits: &[TensorProto]) -> Vec<Option<Vec<f32>>> {
    let one = |t: &TensorProto| {
        (t.data_type == DATA_TYPE_FLOAT
            && !t.raw_data.is_empty()
            && t.raw_data.len().is_multiple_of(4))
        .then(|| le_floats(&t.raw_data))
    };
    if rayon::current_thread_index().is_some() {
        use rayon::prelude::*;
        inits.par_iter().map(one).collect()
    } else {
        inits.iter().map(one).collect()
    }
}

/// Index of the first NaN or infinity: blocks are tested without an early
/// exit per element (so the test vectorizes), then searched if one fails.
fn first_non_finite(v: &[f32]) -> Option<usize> {
    const BLOCK: usize = 256;
    v.chunks(BLOCK).enumerate().find_map(|(b, c)| {
        // Exponent bits all ones: infinity or NaN.
        let bad = c.iter().fold(false, |acc, x| {
            acc | (x.to_bits() & 0x7f80_0000 == 0x7f80_0000)
        });
        if bad {
            c.iter().position(|x| !x.is_finite()).map(|i| b * BLOCK + i)
        } else {
            None
        }
    })
}

/// Little-endian `f32`s from bytes (`bytes.len()` a multiple of 4): a plain
/// copy on little-endian machines.
fn le_floats(bytes: &[u8]) -> Vec<f32> {
    let n = bytes.len() / 4;
    if cfg!(target_endian = "little") {
        let mut v: Vec<f32> = Vec::with_capacity(n);
        // SAFETY: v has room for n floats; every bit pattern is a valid f32;
        // the bytes are little-endian like the machine.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), n * 4);
            v.set_len(n);
        }
        v
    } else {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::first_non_finite;

    #[test]
    fn first_non_finite_finds_the_first_bad_value() {
        let mut v = vec![1.5f32; 1000];
        assert_eq!(first_non_finite(&v), None);
        assert_eq!(first_non_finite(&[]), None);
        v[999] = f32::NEG_INFINITY;
        assert_eq!(first_non_finite(&v), Some(999));
        v[300] = f32::NAN;
        assert_eq!(first_non_finite(&v), Some(300));
        v[256] = f32::INFINITY;
        assert_eq!(first_non_finite(&v), Some(256));
        // Largest finite values and subnormals are fine.
        let w = [f32::MAX, f32::MIN, f32::MIN_POSITIVE / 2.0, -0.0];
        assert_eq!(first_non_finite(&w), None);
    }
}

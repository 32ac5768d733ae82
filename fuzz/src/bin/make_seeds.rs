//! Writes the synthetic part of the seed corpus for `voice_onnx`: small ONNX
//! models built with the same protobuf messages the loader reads, and the
//! real voice's graph with its tensor payloads cut to a few bytes (structure
//! intact, so mutations reach the tensor checks). Run once; the output is
//! committed under fuzz/corpus/voice_onnx.
use prost::Message;
use voxide::voice::onnx::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, DATA_TYPE_FLOAT,
};

fn tensor(name: &str, dims: &[i64], n: usize) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: DATA_TYPE_FLOAT,
        name: name.into(),
        raw_data: bytes::Bytes::from(vec![0u8; n * 4]),
        ..Default::default()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = voxide_fuzz::repo_root().join("fuzz/corpus/voice_onnx");
    std::fs::create_dir_all(&out)?;
    let write = |name: &str, m: &ModelProto| std::fs::write(out.join(name), m.encode_to_vec());
    write(
        "empty-graph.onnx",
        &ModelProto {
            ir_version: 8,
            graph: Some(GraphProto::default()),
        },
    )?;
    let node = NodeProto {
        input: vec!["enc_p.emb.weight".into()],
        output: vec!["y".into()],
        name: "/dec/ups.0/ConvTranspose".into(),
        op_type: "ConvTranspose".into(),
        attribute: vec![AttributeProto {
            name: "strides".into(),
            i: 0,
            ints: vec![8],
        }],
    };
    let g = GraphProto {
        node: vec![node],
        name: "tiny".into(),
        initializer: vec![tensor("enc_p.emb.weight", &[4, 2], 8), tensor("x", &[3], 3)],
        ..Default::default()
    };
    write(
        "tiny-graph.onnx",
        &ModelProto {
            ir_version: 8,
            graph: Some(g),
        },
    )?;
    // The real voice with every payload cut to at most 8 floats.
    let voice = voxide_fuzz::voice_path();
    let bytes = std::fs::read(&voice)?;
    let mut m = ModelProto::decode(bytes.as_slice())?;
    if let Some(g) = m.graph.as_mut() {
        for t in &mut g.initializer {
            t.raw_data = t.raw_data.slice(..t.raw_data.len().min(32));
            t.float_data.truncate(8);
        }
    }
    write("joe-structure.onnx", &m)?;
    std::fs::write(
        out.join("joe-prefix-4k.onnx"),
        &bytes[..4096.min(bytes.len())],
    )?;
    Ok(())
}

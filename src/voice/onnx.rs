//! A hand-declared subset of the ONNX protobuf messages (`onnx.proto3`), with
//! `prost` derives: just what is needed to read initializers and node wiring.
//! Field numbers follow the official schema; unknown fields are skipped.

/// `ModelProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// Serialisation format version.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// The computation graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

/// `GraphProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// Nodes in topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// Graph name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Constant tensors (weights).
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Graph inputs.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// Graph outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// `NodeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// Input value names.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Output value names.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Node name (e.g. `/dec/ups.0/ConvTranspose`).
    #[prost(string, tag = "3")]
    pub name: String,
    /// Operator (e.g. `Conv`).
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// Attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `AttributeProto` (only the integer forms are declared).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// Attribute name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Integer value.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// Integer list value.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
}

/// `ValueInfoProto` (name only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// Value name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `TensorProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// Shape.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// Element type (1 = float32, 7 = int64, ...).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// Float payload when not stored raw.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// Tensor name.
    #[prost(string, tag = "8")]
    pub name: String,
    /// Little-endian raw payload (a zero-copy slice of the file when decoded from `Bytes`).
    #[prost(bytes = "bytes", tag = "9")]
    pub raw_data: bytes::Bytes,
    /// External storage descriptors (not supported, detected to give a clear error).
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    /// 0 = default (inline), 1 = external.
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// `StringStringEntryProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// ONNX element type code for float32.
pub const DATA_TYPE_FLOAT: i32 = 1;

impl NodeProto {
    /// Integer-list attribute by name.
    pub fn ints(&self, name: &str) -> Option<&[i64]> {
        self.attribute
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.ints.as_slice())
    }
}

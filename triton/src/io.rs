//! Reading request inputs (across all their buffers) and building
//! responses.

use std::ffi::{c_void, CStr};

use crate::error::{c_string, check, Error, Result};
use crate::sys;

/// A request input, its buffers gathered into one host copy.
pub struct Input {
    pub datatype: sys::DataType,
    pub shape: Vec<i64>,
    pub data: Vec<u8>,
}

/// Triton's name of a data type, for messages.
pub fn type_name(t: sys::DataType) -> &'static str {
    const NAMES: [&str; 15] = [
        "INVALID", "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
        "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16",
    ];
    NAMES.get(t as usize).copied().unwrap_or("UNKNOWN")
}

/// The input `name` of `request`, or `None` when the request lacks it.
pub fn read_input(request: *mut sys::TRITONBACKEND_Request, name: &str) -> Result<Option<Input>> {
    let cname = c_string(name);
    let mut input = std::ptr::null_mut();
    // SAFETY: `request` is live until we release it; `input` is owned by the
    // request.
    let err = unsafe { sys::TRITONBACKEND_RequestInput(request, cname.as_ptr(), &mut input) };
    if check(err, name).is_err() || input.is_null() {
        return Ok(None);
    }
    let mut datatype = 0;
    let mut shape_ptr = std::ptr::null();
    let mut dims = 0u32;
    let mut byte_size = 0u64;
    let mut buffers = 0u32;
    // SAFETY: `input` is live; the out-pointers are valid locals. The name
    // out-pointer may be null (not wanted).
    check(
        unsafe {
            sys::TRITONBACKEND_InputProperties(
                input,
                std::ptr::null_mut(),
                &mut datatype,
                &mut shape_ptr,
                &mut dims,
                &mut byte_size,
                &mut buffers,
            )
        },
        &format!("input {name}: properties"),
    )?;
    let shape = if shape_ptr.is_null() || dims == 0 {
        Vec::new()
    } else {
        // SAFETY: Triton gives `dims` dimensions at `shape_ptr`, owned by the
        // input.
        unsafe { std::slice::from_raw_parts(shape_ptr, dims as usize) }.to_vec()
    };
    let total = usize::try_from(byte_size)
        .map_err(|_| Error::invalid(format!("input {name}: {byte_size} bytes is too large")))?;
    let mut data = Vec::with_capacity(total);
    for index in 0..buffers {
        let mut base: *const c_void = std::ptr::null();
        let mut size = 0u64;
        let mut memory = sys::MEMORY_CPU;
        let mut memory_id = 0i64;
        // SAFETY: `index` < the buffer count; the buffer is owned by the input
        // and read before the request is released.
        check(
            unsafe {
                sys::TRITONBACKEND_InputBuffer(
                    input,
                    index,
                    &mut base,
                    &mut size,
                    &mut memory,
                    &mut memory_id,
                )
            },
            &format!("input {name}: buffer {index}"),
        )?;
        if memory != sys::MEMORY_CPU && memory != sys::MEMORY_CPU_PINNED {
            return Err(Error::invalid(format!(
                "input {name}: buffer {index} is in device memory; send inputs in host memory"
            )));
        }
        if size == 0 {
            continue;
        }
        if base.is_null() {
            return Err(Error::internal(format!(
                "input {name}: buffer {index} has no data"
            )));
        }
        let size = usize::try_from(size)
            .map_err(|_| Error::invalid(format!("input {name}: buffer {index} is too large")))?;
        // SAFETY: host memory of `size` bytes at `base`, per Triton.
        data.extend_from_slice(unsafe { std::slice::from_raw_parts(base.cast::<u8>(), size) });
    }
    Ok(Some(Input {
        datatype,
        shape,
        data,
    }))
}

impl Input {
    /// Check the type and that it holds one element.
    fn expect_one(&self, name: &str, datatype: sys::DataType) -> Result<()> {
        if self.datatype != datatype {
            return Err(Error::invalid(format!(
                "input {name} must be {}, got {}",
                type_name(datatype),
                type_name(self.datatype)
            )));
        }
        let elements: i64 = self.shape.iter().product();
        if elements != 1 {
            return Err(Error::invalid(format!(
                "input {name} must hold one element (shape [1]), got shape {:?}",
                self.shape
            )));
        }
        Ok(())
    }

    /// The one string of a BYTES input (4-byte little-endian length, then
    /// the bytes), as UTF-8.
    pub fn string(&self, name: &str) -> Result<String> {
        self.expect_one(name, sys::TYPE_BYTES)?;
        let d = &self.data;
        let len = d
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| {
                Error::invalid(format!("input {name}: {} bytes, no length prefix", d.len()))
            })?;
        let body = &d[4..];
        if body.len() != len {
            return Err(Error::invalid(format!(
                "input {name}: the length prefix says {len} bytes, {} follow",
                body.len()
            )));
        }
        String::from_utf8(body.to_vec()).map_err(|e| {
            Error::invalid(format!(
                "input {name} is not valid UTF-8 (at byte {})",
                e.utf8_error().valid_up_to()
            ))
        })
    }

    fn scalar<const N: usize>(&self, name: &str, datatype: sys::DataType) -> Result<[u8; N]> {
        self.expect_one(name, datatype)?;
        self.data.as_slice().try_into().map_err(|_| {
            Error::invalid(format!(
                "input {name}: {} bytes for one {}",
                self.data.len(),
                type_name(datatype)
            ))
        })
    }

    pub fn i32(&self, name: &str) -> Result<i32> {
        self.scalar(name, sys::TYPE_INT32).map(i32::from_le_bytes)
    }

    pub fn i64(&self, name: &str) -> Result<i64> {
        self.scalar(name, sys::TYPE_INT64).map(i64::from_le_bytes)
    }

    pub fn f32(&self, name: &str) -> Result<f32> {
        self.scalar(name, sys::TYPE_FP32).map(f32::from_le_bytes)
    }
}

/// The request's id, for messages ("" when it has none).
pub fn request_id(request: *mut sys::TRITONBACKEND_Request) -> String {
    let mut id = std::ptr::null();
    // SAFETY: `request` is live; the id string is owned by it and copied.
    let err = unsafe { sys::TRITONBACKEND_RequestId(request, &mut id) };
    if check(err, "request id").is_err() || id.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated per the API.
    unsafe { CStr::from_ptr(id) }.to_string_lossy().into_owned()
}

/// A response being built; deleted unless sent.
pub struct Response(*mut sys::TRITONBACKEND_Response);

impl Response {
    /// Take ownership of a response Triton created.
    pub fn from_raw(r: *mut sys::TRITONBACKEND_Response) -> Response {
        Response(r)
    }

    pub fn new(factory: *mut sys::TRITONBACKEND_ResponseFactory) -> Result<Response> {
        let mut r = std::ptr::null_mut();
        // SAFETY: `factory` is live until deleted after the final response.
        check(
            unsafe { sys::TRITONBACKEND_ResponseNewFromFactory(&mut r, factory) },
            "new response",
        )?;
        if r.is_null() {
            return Err(Error::internal("Triton gave no response object"));
        }
        Ok(Response(r))
    }

    /// Add an output tensor of `bytes` with this type and shape.
    pub fn output(
        &mut self,
        name: &str,
        datatype: sys::DataType,
        shape: &[i64],
        bytes: &[u8],
    ) -> Result<()> {
        let cname = c_string(name);
        let mut output = std::ptr::null_mut();
        // SAFETY: the response is live and unsent; name and shape are valid
        // for the call (Triton copies them).
        check(
            unsafe {
                sys::TRITONBACKEND_ResponseOutput(
                    self.0,
                    &mut output,
                    cname.as_ptr(),
                    datatype,
                    shape.as_ptr(),
                    shape.len() as u32,
                )
            },
            &format!("output {name}"),
        )?;
        let mut buffer: *mut c_void = std::ptr::null_mut();
        let mut memory = sys::MEMORY_CPU;
        let mut memory_id = 0i64;
        // SAFETY: `output` belongs to the live response; we ask for host
        // memory of exactly `bytes.len()` bytes.
        check(
            unsafe {
                sys::TRITONBACKEND_OutputBuffer(
                    output,
                    &mut buffer,
                    bytes.len() as u64,
                    &mut memory,
                    &mut memory_id,
                )
            },
            &format!("output {name}: buffer"),
        )?;
        if bytes.is_empty() {
            return Ok(());
        }
        if buffer.is_null() || (memory != sys::MEMORY_CPU && memory != sys::MEMORY_CPU_PINNED) {
            return Err(Error::internal(format!(
                "output {name}: Triton gave no host buffer"
            )));
        }
        // SAFETY: `buffer` is host memory of `bytes.len()` bytes owned by the
        // output; the regions cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer.cast::<u8>(), bytes.len()) };
        Ok(())
    }

    /// Send it (ownership passes to Triton), with `error` when it reports one.
    pub fn send(self, flags: u32, error: Option<&Error>) -> Result<()> {
        let ptr = self.0;
        std::mem::forget(self);
        let err = error.map_or(std::ptr::null_mut(), Error::to_triton);
        // SAFETY: `ptr` is a live unsent response, given to Triton here and
        // never touched again; we keep ownership of `err` and delete it.
        let r = unsafe { sys::TRITONBACKEND_ResponseSend(ptr, flags, err) };
        if !err.is_null() {
            // SAFETY: created above, ours to delete once.
            unsafe { sys::TRITONSERVER_ErrorDelete(err) };
        }
        check(r, "sending a response")
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        // SAFETY: an unsent response is still ours to delete.
        let _ = check(
            unsafe { sys::TRITONBACKEND_ResponseDelete(self.0) },
            "deleting a response",
        );
    }
}

/// The audio outputs: `AUDIO` (FP32 [n]) and `SAMPLE_RATE` (INT32 [1]).
pub fn audio_response(
    factory: *mut sys::TRITONBACKEND_ResponseFactory,
    samples: &[f32],
    rate: u32,
) -> Result<Response> {
    let mut r = Response::new(factory)?;
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    r.output("AUDIO", sys::TYPE_FP32, &[samples.len() as i64], &bytes)?;
    r.output(
        "SAMPLE_RATE",
        sys::TYPE_INT32,
        &[1],
        &(rate as i32).to_le_bytes(),
    )?;
    Ok(r)
}

/// Whether the client cancelled the request.
pub fn cancelled(factory: *mut sys::TRITONBACKEND_ResponseFactory) -> bool {
    let mut yes = false;
    // SAFETY: `factory` is live; `yes` is a valid local.
    let err = unsafe { sys::TRITONBACKEND_ResponseFactoryIsCancelled(factory, &mut yes) };
    check(err, "cancellation").is_ok() && yes
}

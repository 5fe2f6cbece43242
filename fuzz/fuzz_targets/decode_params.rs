//! Fuzz the params decoders: arbitrary bytes that parse as JSON go through
//! `execd_server::rpc::parse_params` as every method's params (as the frame
//! text a server decodes them from), and through `base64_bytes::decode`.
//! Nothing may panic; whatever `parse_params` accepts, serde accepts too.

#![no_main]

use execd_protocol::envelope::InitializeParams;
use execd_protocol::{base64_bytes, fs, policy, process, sandbox};
use execd_server::rpc::parse_params;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

fn decode<T: serde::de::DeserializeOwned>(method: &str, value: &RawValue) {
    if parse_params::<T>(method, value).is_ok() {
        assert!(serde_json::from_str::<T>(value.get()).is_ok());
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = base64_bytes::decode(data);
    let _ = base64_bytes::check(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = serde_json::from_str::<&RawValue>(text) else {
        return;
    };
    decode::<InitializeParams>("initialize", value);
    decode::<process::StartParams>(process::START, value);
    decode::<process::ReadParams>(process::READ, value);
    decode::<process::WriteParams>(process::WRITE, value);
    decode::<process::TerminateParams>(process::TERMINATE, value);
    decode::<process::ResizeParams>(process::RESIZE, value);
    decode::<process::SignalParams>(process::SIGNAL, value);
    decode::<fs::ReadFileParams>(fs::READ_FILE, value);
    decode::<fs::WriteFileParams>(fs::WRITE_FILE, value);
    decode::<fs::CreateDirectoryParams>(fs::CREATE_DIRECTORY, value);
    decode::<fs::PathParams>(fs::GET_METADATA, value);
    decode::<fs::RemoveParams>(fs::REMOVE, value);
    decode::<fs::CopyParams>(fs::COPY, value);
    decode::<policy::ApproveResult>("exec/approve result", value);
    decode::<policy::DecisionParams>(policy::DECISION, value);
    decode::<sandbox::SandboxSpec>("sandbox", value);
});

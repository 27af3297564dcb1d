//! Any bytes as a capture file: reading and decoding must never panic or
//! loop forever, whatever the container or packet damage.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((mut reader, _)) = iotscope_capture::from_reader(Box::new(std::io::Cursor::new(data.to_vec())), false) {
        while let Ok(Some(frame)) = reader.next_frame() {
            let _ = iotscope_wire::decode(frame.link, frame.data);
        }
    }
});

//! HTTP/1.x framing over reassembled streams. (Stub: filled in by the HTTP work.)

//! Percent-encoding (RFC 3986 §2.1), the one copy the providers and the simulators share:
//! [`percent_encode`] for URL path segments and form values the clients send,
//! [`percent_decode`] for what the simulators receive and for the policy documents IAM
//! returns URL-encoded (RFC 3986; IAM's `GetUserPolicy` documents `PolicyDocument` as
//! "URL-encoded compliant with RFC 3986").

/// Percent-encodes everything but RFC 3986's unreserved characters (a URL path segment, a
/// form value).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` escapes decoded.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

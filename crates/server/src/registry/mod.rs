//! The served kinds' shared request handling (`shared/design/api-registry.md`): what is read
//! the same way for every kind lives here, so that a kind is a file.

pub mod request;

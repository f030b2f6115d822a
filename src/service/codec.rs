//! The protobuf codec of consentry's own services: prost's encoding, and prost's decoding except
//! that a request that does not decode (random bytes, a string field that is not UTF-8, a field
//! of the wrong wire type) is the caller's fault, `INVALID_ARGUMENT`, where tonic-prost answers
//! `INTERNAL`. `build.rs` names [`Codec`] as the codec of the generated servers and clients.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

use super::status::ServiceError;

/// A [`tonic::codec::Codec`] for prost messages whose decode errors are `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = MessageDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageDecoder(PhantomData)
    }
}

/// Decodes one `U`; a message that does not decode is [`ServiceError::Undecodable`].
#[derive(Debug)]
pub struct MessageDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for MessageDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|e| Status::from(ServiceError::Undecodable(e.to_string())))
    }
}

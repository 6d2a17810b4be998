//! The one table of frame kinds: the [`frames!`] macro that turns, for one direction, the
//! list of its kinds — code, name, fields and how each field is laid out — into the
//! direction's types, their encoder, their decoder, their codes and their names; and the
//! [`Codec`] trait saying how one field is written and read. Adding a frame kind is adding
//! one line to a direction's table (`to_server`, `to_client`, `peer`). This module owns the
//! mechanism only; which kinds exist, and what they mean, belong to the direction modules,
//! and the header, the limits and the error type to the parent module.

use super::{DecodeError, MAX_NAME_BYTES, MAX_TEXT_BYTES, Reader, Writer};

/// How one field is laid out: written after the fields before it, read back strictly.
/// Implemented by the field's type itself when it has one layout (integers, the envelope,
/// reason codes), and by a marker type when a type has several (a [`String`] is a
/// [`Name`] or a [`Text`]).
pub trait Codec<T> {
    /// Appends `value`.
    fn put(value: &T, w: &mut Writer<'_>);
    /// Reads one value, checking its limits.
    fn get(r: &mut Reader<'_>) -> Result<T, DecodeError>;
}

macro_rules! big_endian {
    ($($t:ty),*) => {$(
        impl Codec<$t> for $t {
            #[inline]
            fn put(value: &$t, w: &mut Writer<'_>) {
                w.bytes(&value.to_be_bytes());
            }
            #[inline]
            fn get(r: &mut Reader<'_>) -> Result<$t, DecodeError> {
                Ok(<$t>::from_be_bytes(r.array()?))
            }
        }
    )*};
}

big_endian!(u16, u32, u64, i64);

/// A name: UTF-8 behind a one-byte length, at most [`MAX_NAME_BYTES`]. Encoding cuts a
/// longer one at a character boundary rather than produce a frame the receiver rejects.
pub struct Name;

impl Codec<String> for Name {
    fn put(value: &String, w: &mut Writer<'_>) {
        let name = super::truncate_to_char_boundary(value, MAX_NAME_BYTES);
        // MAX_NAME_BYTES < 256, so the length fits the one-byte prefix.
        w.bytes(&[name.len() as u8]);
        w.bytes(name.as_bytes());
    }

    fn get(r: &mut Reader<'_>) -> Result<String, DecodeError> {
        let len = usize::from(r.array::<1>()?[0]);
        r.string(len, "name", MAX_NAME_BYTES)
    }
}

/// A text: UTF-8 behind a two-byte length, at most [`MAX_TEXT_BYTES`], cut like a [`Name`].
pub struct Text;

impl Codec<String> for Text {
    fn put(value: &String, w: &mut Writer<'_>) {
        let text = super::truncate_to_char_boundary(value, MAX_TEXT_BYTES);
        w.bytes(&(text.len() as u16).to_be_bytes());
        w.bytes(text.as_bytes());
    }

    fn get(r: &mut Reader<'_>) -> Result<String, DecodeError> {
        let len = usize::from(u16::get(r)?);
        r.string(len, "text", MAX_TEXT_BYTES)
    }
}

/// The last field of a join: a [`Name`], then zeros up to [`super::JOIN_MIN_LEN`] (see
/// there why). Reading it takes the padding too, and rejects a join that is short or
/// padded with anything but zeros.
pub struct PaddedName;

impl Codec<String> for PaddedName {
    fn put(value: &String, w: &mut Writer<'_>) {
        Name::put(value, w);
        w.pad_to(super::JOIN_MIN_LEN);
    }

    fn get(r: &mut Reader<'_>) -> Result<String, DecodeError> {
        let name = Name::get(r)?;
        r.zero_padding(super::JOIN_MIN_LEN)?;
        Ok(name)
    }
}

/// A list that runs to the end of the frame (roster entries, member records): no count,
/// so a frame cut between two items is still a valid, shorter list.
impl<T: Codec<T>> Codec<Vec<T>> for Vec<T> {
    fn put(value: &Vec<T>, w: &mut Writer<'_>) {
        for item in value {
            T::put(item, w);
        }
    }

    fn get(r: &mut Reader<'_>) -> Result<Vec<T>, DecodeError> {
        let mut items = Vec::new();
        while !r.is_empty() {
            items.push(T::get(r)?);
        }
        Ok(items)
    }
}

/// A list behind a two-byte count of its items (a presence batch's changes): at least one
/// item, and exactly as many as counted, so a frame cut anywhere, even between two items, is
/// rejected whole ([`DecodeError::Truncated`]) and never read as a shorter list; a count of 0
/// is [`DecodeError::BadValue`]. The encoder writes at most `u16::MAX` items (the sender keeps
/// a frame within [`super::MAX_DATAGRAM`], far fewer).
pub struct Counted;

impl<T: Codec<T>> Codec<Vec<T>> for Counted {
    fn put(value: &Vec<T>, w: &mut Writer<'_>) {
        let count = u16::try_from(value.len()).unwrap_or(u16::MAX);
        u16::put(&count, w);
        for item in &value[..usize::from(count)] {
            T::put(item, w);
        }
    }

    fn get(r: &mut Reader<'_>) -> Result<Vec<T>, DecodeError> {
        let count = u16::get(r)?;
        if count == 0 {
            return Err(DecodeError::BadValue {
                field: "item count",
                value: 0,
            });
        }
        // Each item takes at least a byte: a count beyond what is left cannot be honest, and
        // no room is reserved for it.
        let mut items = Vec::with_capacity(usize::from(count).min(r.remaining()));
        for _ in 0..count {
            items.push(T::get(r)?);
        }
        Ok(items)
    }
}

/// The codec of a field: its own type unless the table names another.
macro_rules! codec {
    ($t:ty) => {
        $t
    };
    ($t:ty, $codec:ty) => {
        $codec
    };
}

pub(crate) use codec;

/// The [`Codec`] of a record laid out as its fields, in the order listed, each by its own
/// type's codec or the one named after `as`. Writing and reading come from the one list, so
/// they cannot disagree on a field's place or layout.
macro_rules! record_codec {
    ($T:ident { $( $field:ident: $t:ty $(as $codec:ty)? ),* $(,)? }) => {
        impl $crate::wire::table::Codec<$T> for $T {
            #[inline]
            fn put(value: &$T, w: &mut $crate::wire::Writer<'_>) {
                $(
                    <$crate::wire::table::codec!($t $(, $codec)?) as $crate::wire::table::Codec<$t>>
                        ::put(&value.$field, w);
                )*
            }

            #[inline]
            fn get(r: &mut $crate::wire::Reader<'_>) -> Result<$T, $crate::wire::DecodeError> {
                // A struct expression evaluates its fields in the order written: the wire's.
                Ok($T {
                    $(
                        $field: <$crate::wire::table::codec!($t $(, $codec)?)
                            as $crate::wire::table::Codec<$t>>::get(r)?,
                    )*
                })
            }
        }
    };
}

pub(crate) use record_codec;

/// Enumerations carried as a one-byte code: for each, the enum, its codes both ways, and
/// its [`Codec`], which rejects a code outside the list as [`DecodeError::BadValue`] naming
/// `field`.
macro_rules! codes {
    (
        $(
            $(#[$meta:meta])*
            pub enum $E:ident ($field:literal) {
                $( $(#[$vmeta:meta])* $V:ident = $code:literal ),* $(,)?
            }
        )+
    ) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $E {
            $( $(#[$vmeta])* $V ),*
        }

        impl $E {
            /// Every value, in code order: for tests and tools that pick or go through them
            /// all without a list of their own to keep up to date.
            pub const ALL: &'static [$E] = &[$( $E::$V ),*];

            /// The code on the wire.
            pub(crate) fn code(self) -> u8 {
                match self {
                    $( $E::$V => $code ),*
                }
            }

            /// The value of a code, if the list has it.
            pub(crate) fn from_code(code: u8) -> Option<$E> {
                match code {
                    $( $code => Some($E::$V), )*
                    _ => None,
                }
            }
        }

        impl $crate::wire::table::Codec<$E> for $E {
            fn put(value: &$E, w: &mut $crate::wire::Writer<'_>) {
                w.bytes(&[value.code()]);
            }

            fn get(r: &mut $crate::wire::Reader<'_>) -> Result<$E, $crate::wire::DecodeError> {
                let value = r.array::<1>()?[0];
                $E::from_code(value).ok_or($crate::wire::DecodeError::BadValue {
                    field: $field,
                    value,
                })
            }
        }
    )+};
}

pub(crate) use codes;

/// The frames of one direction. For each kind: its code, its name (for logs and tests),
/// its fields in wire order, each with its codec when the type alone does not say
/// (`name: String as Name`). Kinds in `standalone` stand alone (joining, heartbeats, bare
/// acknowledgements); kinds in `sequenced` travel in a reliable stream, so on the wire an
/// [`super::Envelope`] comes right after the header, and in the types the body is a
/// variant of the second enum, carried as `Sequenced(envelope, body)`.
///
/// Generates both enums and, for the direction, `kind`, `name`, `encode`, `to_bytes`,
/// `envelope`, `envelope_mut` and the decoder of its kinds that [`super::Frame::decode`] dispatches to; for the body, `kind`,
/// `name`, `encode` and `to_bytes`, which take the envelope to put in front.
macro_rules! frames {
    (
        $(#[$meta:meta])*
        pub enum $Dir:ident;
        $(#[$body_meta:meta])*
        pub enum $Body:ident;
        standalone {
            $(
                $(#[$vmeta:meta])*
                $V:ident = $code:tt, $name:literal
                $({ $($f:ident: $t:ty $(as $c:ty)?),* $(,)? })?
            ),* $(,)?
        }
        sequenced {
            $(
                $(#[$smeta:meta])*
                $S:ident = $scode:tt, $sname:literal
                $({ $($sf:ident: $st:ty $(as $sc:ty)?),* $(,)? })?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $Dir {
            $( $(#[$vmeta])* $V $({ $($f: $t),* })?, )*
            /// A frame of the direction's reliable stream: its envelope, and what it says.
            Sequenced($crate::wire::Envelope, $Body),
        }

        $(#[$body_meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $Body {
            $( $(#[$smeta])* $S $({ $($sf: $st),* })?, )*
        }

        impl $Dir {
            /// The kind code on the wire (the header's fourth byte).
            pub fn kind(&self) -> u8 {
                match self {
                    $( $Dir::$V { .. } => $code, )*
                    $Dir::Sequenced(_, body) => body.kind(),
                }
            }

            /// The kind's name, for logs.
            pub fn name(&self) -> &'static str {
                match self {
                    $( $Dir::$V { .. } => $name, )*
                    $Dir::Sequenced(_, body) => body.name(),
                }
            }

            /// Appends the encoded frame to `out`. The caller keeps names and texts within
            /// their limits; a longer one is cut at a character boundary.
            pub fn encode(&self, out: &mut Vec<u8>) {
                match self {
                    $(
                        $Dir::$V $({ $($f),* })? => {
                            #[allow(unused_mut, unused_variables)]
                            let mut w = $crate::wire::Writer::frame(out, $code);
                            $($(
                                <$crate::wire::table::codec!($t $(, $c)?)
                                    as $crate::wire::table::Codec<$t>>::put($f, &mut w);
                            )*)?
                        }
                    )*
                    $Dir::Sequenced(envelope, body) => body.encode(envelope, out),
                }
            }

            /// The encoded frame as a new buffer.
            pub fn to_bytes(&self) -> Vec<u8> {
                let mut out = Vec::with_capacity(64);
                self.encode(&mut out);
                out
            }

            /// The envelope of a sequenced frame; `None` for frames that stand alone.
            pub fn envelope(&self) -> Option<&$crate::wire::Envelope> {
                match self {
                    $Dir::Sequenced(envelope, _) => Some(envelope),
                    _ => None,
                }
            }

            /// The envelope of a sequenced frame, to change it.
            pub fn envelope_mut(&mut self) -> Option<&mut $crate::wire::Envelope> {
                match self {
                    $Dir::Sequenced(envelope, _) => Some(envelope),
                    _ => None,
                }
            }

            /// Whether `kind` is one of this direction's sequenced kinds: a frame of it has
            /// an envelope right after the header.
            pub(crate) fn is_sequenced_kind(kind: u8) -> bool {
                [$($scode),*].contains(&kind)
            }

            /// Reads the fields of a frame of kind `kind`, one of this direction's: any other
            /// kind is unknown.
            pub(crate) fn decode_kind(
                kind: u8,
                r: &mut $crate::wire::Reader<'_>,
            ) -> Result<$crate::wire::Frame, $crate::wire::DecodeError> {
                use $crate::wire::table::Codec;
                let frame = match kind {
                    $(
                        $code => $Dir::$V $({ $(
                            $f: <$crate::wire::table::codec!($t $(, $c)?)
                                as Codec<$t>>::get(r)?
                        ),* })?,
                    )*
                    $(
                        $scode => {
                            let envelope = $crate::wire::Envelope::get(r)?;
                            $Dir::Sequenced(envelope, $Body::$S $({ $(
                                $sf: <$crate::wire::table::codec!($st $(, $sc)?)
                                    as Codec<$st>>::get(r)?
                            ),* })?)
                        }
                    )*
                    _ => return Err($crate::wire::DecodeError::UnknownKind { kind }),
                };
                Ok(frame.into())
            }
        }

        impl $Body {
            /// The kind code on the wire.
            pub fn kind(&self) -> u8 {
                match self {
                    $( $Body::$S { .. } => $scode, )*
                }
            }

            /// The kind's name, for logs.
            pub fn name(&self) -> &'static str {
                match self {
                    $( $Body::$S { .. } => $sname, )*
                }
            }

            /// Appends the frame, with `envelope` in front, to `out`.
            pub fn encode(&self, envelope: &$crate::wire::Envelope, out: &mut Vec<u8>) {
                use $crate::wire::table::Codec;
                match self {
                    $(
                        $Body::$S $({ $($sf),* })? => {
                            let mut w = $crate::wire::Writer::frame(out, $scode);
                            $crate::wire::Envelope::put(envelope, &mut w);
                            $($(
                                <$crate::wire::table::codec!($st $(, $sc)?)
                                    as Codec<$st>>::put($sf, &mut w);
                            )*)?
                        }
                    )*
                }
            }

            /// The frame with `envelope` in front, as a new buffer.
            pub fn to_bytes(&self, envelope: &$crate::wire::Envelope) -> Vec<u8> {
                let mut out = Vec::with_capacity(64);
                self.encode(envelope, &mut out);
                out
            }
        }
    };
}

pub(crate) use frames;

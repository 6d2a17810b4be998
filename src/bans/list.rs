//! The ban list: which client addresses the server refuses to serve. This module owns the
//! IP network type ([`IpNet`], a single address or a CIDR range), the text format of the ban
//! file (`banned_ips.txt` by default: one entry per line, `#` comments, blank lines) and
//! matching an address against the list. It does not own reading or rewriting the file while
//! an operator may be editing it by hand ([`super::file`]), deciding which bans are in force
//! and when the file is read again ([`super::keeper`]), nor what happens to a client once its
//! address is banned (that is the server and peer cores' business).
//!
//! Every address is compared in one 128-bit space: an IPv4 address `a.b.c.d` is treated as the
//! IPv4-mapped IPv6 address `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2). That is how a server bound
//! to `[::]` sees IPv4 peers, so an entry written in either notation bans the peer however
//! the socket reports it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The 96 leading bits shared by every IPv4-mapped IPv6 address, `::ffff:0:0/96`.
const IPV4_MAPPED_NETWORK: u128 = 0xffff << 32;

/// How many leading bits of a 128-bit address the IPv4-mapped network fixes.
const IPV4_MAPPED_PREFIX_LEN: u8 = 96;

/// An IP address or CIDR range. Equality is on the normalized range (host bits cleared).
///
/// A range that lies wholly inside `::ffff:0:0/96` is stored as the IPv4 range it maps, so
/// `::ffff:1.2.3.4` and `1.2.3.4` are the same `IpNet` and both display as `1.2.3.4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    /// The first address of the range; every bit after `prefix_len` is zero.
    network: IpAddr,
    /// How many leading bits of `network` every member shares (0..=32 or 0..=128).
    prefix_len: u8,
}

impl IpNet {
    /// The range holding exactly one address.
    pub fn host(addr: IpAddr) -> IpNet {
        IpNet::normalized(addr, max_prefix_len(addr))
    }

    /// Whether `addr` lies in this range. An IPv4-mapped IPv6 address (::ffff:1.2.3.4) is
    /// treated as the IPv4 address it maps (servers bound to [::] see IPv4 peers that way),
    /// in both directions (an entry written as ::ffff:1.2.3.4 bans 1.2.3.4 too).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let (network, prefix_len) = self.in_ipv6_space();
        to_ipv6_space(addr) & mask(prefix_len) == network
    }

    /// Whether every address of `other` lies in this range, e.g. `10.0.0.0/8` covers
    /// `10.0.1.0/24` and `10.0.1.5`, but `10.0.1.5` does not cover `10.0.1.0/24`.
    pub(crate) fn covers(&self, other: &IpNet) -> bool {
        let (network, prefix_len) = self.in_ipv6_space();
        let (other_network, other_prefix_len) = other.in_ipv6_space();
        other_prefix_len >= prefix_len && other_network & mask(prefix_len) == network
    }

    /// Builds the canonical form of `addr/prefix_len`: host bits cleared, and IPv4-mapped
    /// ranges turned into IPv4, so that derived equality and hashing compare ranges.
    fn normalized(addr: IpAddr, prefix_len: u8) -> IpNet {
        let prefix_len_in_ipv6_space = match addr {
            IpAddr::V4(_) => prefix_len.saturating_add(IPV4_MAPPED_PREFIX_LEN),
            IpAddr::V6(_) => prefix_len,
        }
        .min(128);
        let network = to_ipv6_space(addr) & mask(prefix_len_in_ipv6_space);
        let is_ipv4_mapped = prefix_len_in_ipv6_space >= IPV4_MAPPED_PREFIX_LEN
            && network & mask(IPV4_MAPPED_PREFIX_LEN) == IPV4_MAPPED_NETWORK;
        if is_ipv4_mapped {
            // The low 32 bits of a mapped address are the IPv4 address itself.
            let ipv4_bits = (network & u128::from(u32::MAX)) as u32;
            IpNet {
                network: IpAddr::V4(Ipv4Addr::from(ipv4_bits)),
                prefix_len: prefix_len_in_ipv6_space - IPV4_MAPPED_PREFIX_LEN,
            }
        } else {
            IpNet {
                network: IpAddr::V6(Ipv6Addr::from(network)),
                prefix_len: prefix_len_in_ipv6_space,
            }
        }
    }

    /// This range as a 128-bit network and prefix length, IPv4 ranges moved into
    /// `::ffff:0:0/96`, so that ranges of either family can be compared bit by bit.
    fn in_ipv6_space(&self) -> (u128, u8) {
        match self.network {
            IpAddr::V4(_) => (
                to_ipv6_space(self.network),
                self.prefix_len + IPV4_MAPPED_PREFIX_LEN,
            ),
            IpAddr::V6(_) => (to_ipv6_space(self.network), self.prefix_len),
        }
    }
}

/// The number of bits in an address of `addr`'s family: the prefix length of a single host.
fn max_prefix_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `addr` as 128 bits, an IPv4 address becoming its IPv4-mapped IPv6 form.
fn to_ipv6_space(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(ipv4) => IPV4_MAPPED_NETWORK | u128::from(u32::from(ipv4)),
        IpAddr::V6(ipv6) => u128::from(ipv6),
    }
}

/// A 128-bit mask with the leading `prefix_len` bits set (`prefix_len` at most 128).
fn mask(prefix_len: u8) -> u128 {
    // Shifting a u128 by 128 is an overflow, so the empty mask is a special case.
    match prefix_len {
        0 => 0,
        len => u128::MAX << (128 - u32::from(len.min(128))),
    }
}

impl FromStr for IpNet {
    type Err = IpNetParseError;

    /// Parses `1.2.3.4`, `1.2.3.0/24`, `::1` or `2001:db8::/32`. Surrounding whitespace is
    /// not accepted, as with [`IpAddr`]'s own parser; host bits after the prefix are cleared.
    fn from_str(text: &str) -> Result<IpNet, IpNetParseError> {
        let fail = |reason| IpNetParseError {
            input: text.to_string(),
            reason,
        };
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr_text, prefix_text)) => (addr_text, Some(prefix_text)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| fail(ParseFailure::NotAnAddress))?;
        let longest = max_prefix_len(addr);
        let prefix_len = match prefix_text {
            None => longest,
            Some(prefix_text) => parse_prefix_len(prefix_text, longest).map_err(fail)?,
        };
        Ok(IpNet::normalized(addr, prefix_len))
    }
}

/// Reads the decimal prefix length after the `/`, which may be at most `longest`.
fn parse_prefix_len(prefix_text: &str, longest: u8) -> Result<u8, ParseFailure> {
    if prefix_text.is_empty() {
        return Err(ParseFailure::PrefixMissing);
    }
    // Checked by hand because `u8::from_str` also accepts a leading `+`.
    if !prefix_text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ParseFailure::PrefixNotANumber {
            prefix: prefix_text.to_string(),
        });
    }
    match prefix_text.parse::<u8>() {
        Ok(prefix_len) if prefix_len <= longest => Ok(prefix_len),
        // All digits, so a failed parse can only mean a number too big for a u8.
        _ => Err(ParseFailure::PrefixTooLong {
            prefix: prefix_text.to_string(),
            longest,
        }),
    }
}

impl fmt::Display for IpNet {
    /// `1.2.3.4` for a single host, `1.2.3.0/24` for a range, so a host entry written back
    /// to the file looks the way an operator would type it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = if self.prefix_len == max_prefix_len(self.network) {
            self.network.to_string()
        } else {
            format!("{}/{}", self.network, self.prefix_len)
        };
        // `pad` honours width and alignment, so entries line up in console tables.
        f.pad(&text)
    }
}

/// Why a string is not an address or range; Display e.g. "'10.0.0.300' is not an IP address"
/// or "'10.0.0.0/40': prefix length 40 is longer than 32".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpNetParseError {
    /// The text as given, quoted in the message so the user can find it.
    input: String,
    /// What is wrong with it.
    reason: ParseFailure,
}

/// The ways an address or range can be malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ParseFailure {
    /// The part before any `/` is neither an IPv4 nor an IPv6 address.
    NotAnAddress,
    /// Nothing follows the `/`.
    PrefixMissing,
    /// The text after the `/` is not a plain decimal number.
    PrefixNotANumber { prefix: String },
    /// The prefix length exceeds the number of bits in the address family.
    PrefixTooLong { prefix: String, longest: u8 },
}

impl fmt::Display for IpNetParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = &self.input;
        match &self.reason {
            ParseFailure::NotAnAddress => write!(f, "'{input}' is not an IP address"),
            ParseFailure::PrefixMissing => {
                write!(f, "'{input}': prefix length is missing after '/'")
            }
            ParseFailure::PrefixNotANumber { prefix } => {
                write!(f, "'{input}': prefix length '{prefix}' is not a number")
            }
            ParseFailure::PrefixTooLong { prefix, longest } => {
                write!(
                    f,
                    "'{input}': prefix length {prefix} is longer than {longest}"
                )
            }
        }
    }
}

impl std::error::Error for IpNetParseError {}

/// A parsed ban list: the entries in file order, each with its line number, and an index
/// that answers "is this address banned, and by which entry?" in O(log n) whatever the
/// list's size (every datagram asks, so a scan of a 100 000-line list would cost more than
/// the rest of the server's work on it; `cargo bench --bench banmatch` measures it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BanList {
    /// In file order, as written, so messages can point at lines.
    entries: Vec<BanEntry>,
    /// The outermost ranges, sorted and disjoint: see [`RangeIndex`].
    index: RangeIndex,
}

/// The outermost entries of a list as sorted, disjoint intervals of the 128-bit address
/// space. Two CIDR ranges are either disjoint or one contains the other, so the ranges no
/// other entry contains never overlap, and every banned address lies in exactly one of
/// them: a search over their first addresses finds it. IPv4 and IPv6 keep separate arrays
/// so the common IPv4 case searches 4-byte keys, and a big IPv4 list is also bucketed by the
/// address's first 16 bits, so a lookup reads one bucket and searches only the few ranges
/// starting in it: its cost hardly depends on the list's size (a plain binary search over
/// 100 000 ranges took about 20 unpredictable, cache-missing steps, `cargo bench --bench
/// banmatch`).
///
/// A hand-written sorted interval set rather than a crate: `ip_network_table` (a tree
/// bitmap) answers the longest prefix match, the narrowest entry, while the server wants
/// the widest one (the range a flood summary names, the entry that keeps an address banned
/// after `/unban`), and this is 40 lines over types we already have.
/// Past this many IPv4 ranges, [`RangeIndex`] buckets them (256 KB of counts).
const BUCKETS_FROM: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RangeIndex {
    /// First and last IPv4 address of each outermost IPv4 range, sorted by first.
    v4_starts: Vec<u32>,
    v4_ends: Vec<u32>,
    /// Which entry each IPv4 interval comes from.
    v4_entries: Vec<u32>,
    /// For each value of an address's first 16 bits, and one past the last, how many IPv4
    /// ranges start below it (65 537 counts); empty for a list of [`BUCKETS_FROM`] ranges
    /// or fewer, which a binary search handles as fast.
    v4_buckets: Vec<u32>,
    /// The IPv6 range that contains the whole IPv4-mapped block (`::/0`, say), if any: it
    /// bans every IPv4 address no IPv4 range bans. (No IPv6-only range lies inside the
    /// block: such a range is an IPv4 one.)
    v4_cover: Option<u32>,
    /// The same for ranges outside the IPv4-mapped block, in the 128-bit space.
    v6_starts: Vec<u128>,
    v6_ends: Vec<u128>,
    v6_entries: Vec<u32>,
}

impl RangeIndex {
    fn build(entries: &[BanEntry]) -> RangeIndex {
        // Widest first among ranges that start at the same address, then file order, so
        // the interval kept for a range is its first listing.
        let mut order: Vec<(u128, u8, usize)> = entries
            .iter()
            .enumerate()
            .map(|(position, entry)| {
                let (network, prefix_len) = entry.net.in_ipv6_space();
                (network, prefix_len, position)
            })
            .collect();
        order.sort_unstable();
        let mut index = RangeIndex::default();
        let mut covered_to: Option<u128> = None;
        for (start, prefix_len, position) in order {
            if covered_to.is_some_and(|end| start <= end) {
                continue; // inside the outermost range just kept
            }
            let end = start | !mask(prefix_len);
            covered_to = Some(end);
            let position = u32::try_from(position).unwrap_or(u32::MAX);
            let is_v4 = prefix_len >= IPV4_MAPPED_PREFIX_LEN
                && start & mask(IPV4_MAPPED_PREFIX_LEN) == IPV4_MAPPED_NETWORK;
            if is_v4 {
                index.v4_starts.push(start as u32);
                index.v4_ends.push(end as u32);
                index.v4_entries.push(position);
            } else {
                if start <= IPV4_MAPPED_NETWORK && IPV4_MAPPED_NETWORK <= end {
                    index.v4_cover = Some(position);
                }
                index.v6_starts.push(start);
                index.v6_ends.push(end);
                index.v6_entries.push(position);
            }
        }
        if index.v4_starts.len() > BUCKETS_FROM {
            let mut buckets = Vec::with_capacity((1 << 16) + 1);
            let mut below = 0;
            for bucket in 0..=(1u64 << 16) {
                let bucket_start = bucket << 16;
                while below < index.v4_starts.len()
                    && u64::from(index.v4_starts[below]) < bucket_start
                {
                    below += 1;
                }
                buckets.push(below as u32);
            }
            index.v4_buckets = buckets;
        }
        index
    }

    /// The position in the entry list of the outermost entry containing `addr`.
    fn find(&self, addr: IpAddr) -> Option<usize> {
        let bits = to_ipv6_space(addr);
        let found = if bits & mask(IPV4_MAPPED_PREFIX_LEN) == IPV4_MAPPED_NETWORK {
            let key = bits as u32;
            // The last range starting at or before `key`: among those starting in its
            // bucket, or else the last one before the bucket.
            let after = match self.v4_buckets.as_slice() {
                [] => self.v4_starts.partition_point(|&start| start <= key),
                buckets => {
                    let bucket = (key >> 16) as usize;
                    let (first, end) = (buckets[bucket] as usize, buckets[bucket + 1] as usize);
                    first + self.v4_starts[first..end].partition_point(|&start| start <= key)
                }
            };
            after
                .checked_sub(1)
                .filter(|&slot| key <= self.v4_ends[slot])
                .map(|slot| self.v4_entries[slot])
                // A wide IPv6 range such as ::/0 bans IPv4 peers too.
                .or(self.v4_cover)
        } else {
            let after = self.v6_starts.partition_point(|&start| start <= bits);
            after
                .checked_sub(1)
                .filter(|&slot| bits <= self.v6_ends[slot])
                .map(|slot| self.v6_entries[slot])
        };
        found.map(|position| position as usize)
    }
}

/// One entry: the range and the 1-based line it came from (0 if not from a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BanEntry {
    /// The banned address or range.
    pub net: IpNet,
    /// The 1-based line number in the file, so messages can point the operator at it.
    pub line: usize,
}

impl BanList {
    /// Parse the file's text. Never fails: bad lines become warnings.
    pub fn parse(text: &str) -> (BanList, Vec<BanWarning>) {
        let mut entries = Vec::new();
        let mut warnings = Vec::new();
        // Splitting on '\n' alone numbers lines the way editors do; a '\r' left by CRLF line
        // endings is whitespace and disappears when the line is trimmed.
        for (index, line_text) in text.split('\n').enumerate() {
            let line = index + 1;
            match parse_line(line_text) {
                None => {}
                Some(Ok(net)) => entries.push(BanEntry { net, line }),
                Some(Err(error)) => warnings.push(BanWarning { line, error }),
            }
        }
        (BanList::from_entries(entries), warnings)
    }

    /// A list of these entries (in this order), indexed for matching.
    pub fn from_entries(entries: Vec<BanEntry>) -> BanList {
        let index = RangeIndex::build(&entries);
        BanList { entries, index }
    }

    /// The widest entry that bans `addr`, if any (the first listed of equal ones), so a
    /// message can say which line bans it and a flood summary can name the range.
    pub fn matching(&self, addr: IpAddr) -> Option<&BanEntry> {
        self.index
            .find(addr)
            .map(|position| &self.entries[position])
    }

    /// Whether any entry bans `addr`.
    pub fn is_banned(&self, addr: IpAddr) -> bool {
        self.index.find(addr).is_some()
    }

    /// Whether `net` itself is listed (the same normalized range, not merely covered).
    pub fn lists(&self, net: IpNet) -> bool {
        self.entries.iter().any(|entry| entry.net == net)
    }

    /// The entries whose range includes all of `net`, in file order (after `/unban
    /// 10.0.0.5`, the `10.0.0.0/24` that still bans it).
    pub fn covering(&self, net: IpNet) -> Vec<BanEntry> {
        self.entries
            .iter()
            .filter(|entry| entry.net.covers(&net))
            .copied()
            .collect()
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[BanEntry] {
        &self.entries
    }

    /// How many entries the list holds (comments, blank and invalid lines not counted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list bans nobody.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What one line of the file says: `None` for a blank or comment-only line, otherwise the
/// entry or why it is not one. A `#` anywhere starts a comment.
pub(crate) fn parse_line(line_text: &str) -> Option<Result<IpNet, IpNetParseError>> {
    let before_comment = match line_text.split_once('#') {
        Some((before_comment, _comment)) => before_comment,
        None => line_text,
    };
    let entry_text = before_comment.trim();
    if entry_text.is_empty() {
        None
    } else {
        Some(entry_text.parse())
    }
}

/// Parses raw file bytes. Invalid UTF-8 (say, a Latin-1 comment) is replaced rather than
/// refused, so one odd byte cannot switch off the whole ban list; an entry containing such a
/// byte becomes a warning like any other bad line.
pub(crate) fn parse_bytes(contents: &[u8]) -> (BanList, Vec<BanWarning>) {
    BanList::parse(&String::from_utf8_lossy(contents))
}

/// A line that could not be used. Display: "line 7: '10.0.0.300' is not an IP address"
/// (the caller prefixes the file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanWarning {
    /// The 1-based line number of the unusable line.
    pub line: usize,
    /// Why the line is not an address or range.
    pub error: IpNetParseError,
}

impl fmt::Display for BanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse()
            .unwrap_or_else(|error| panic!("{text} should parse: {error}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|error| panic!("{text} should be an address: {error}"))
    }

    fn parse_error(text: &str) -> String {
        match text.parse::<IpNet>() {
            Ok(parsed) => panic!("{text} should not parse, got {parsed}"),
            Err(error) => error.to_string(),
        }
    }

    // ---- parsing one address or range ----

    #[test]
    fn parses_ipv4_host() {
        let parsed = net("10.0.0.5");
        assert_eq!(parsed, IpNet::host(ip("10.0.0.5")));
        assert_eq!(parsed.to_string(), "10.0.0.5");
    }

    #[test]
    fn parses_ipv6_host() {
        let parsed = net("2001:db8::1");
        assert_eq!(parsed, IpNet::host(ip("2001:db8::1")));
        assert_eq!(parsed.to_string(), "2001:db8::1");
    }

    #[test]
    fn parses_cidr_ranges_of_both_families() {
        assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(net("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(net("::/0").to_string(), "::/0");
    }

    #[test]
    fn full_length_prefix_is_a_single_host() {
        assert_eq!(net("10.0.0.5/32"), net("10.0.0.5"));
        assert_eq!(net("10.0.0.5/32").to_string(), "10.0.0.5");
        assert_eq!(net("::1/128").to_string(), "::1");
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(net("10.0.0.5/24"), net("10.0.0.0/24"));
        assert_eq!(net("10.0.0.5/24").to_string(), "10.0.0.0/24");
        assert_eq!(net("2001:db8::1/32").to_string(), "2001:db8::/32");
        assert_ne!(net("10.0.0.0/24"), net("10.0.0.0/25"));
    }

    #[test]
    fn ipv4_mapped_entries_are_the_ipv4_range_they_map() {
        assert_eq!(net("::ffff:1.2.3.4"), net("1.2.3.4"));
        assert_eq!(net("::ffff:1.2.3.4").to_string(), "1.2.3.4");
        assert_eq!(net("::ffff:1.2.3.0/120").to_string(), "1.2.3.0/24");
        assert_eq!(net("::ffff:0:0/96").to_string(), "0.0.0.0/0");
        assert_eq!(IpNet::host(ip("::ffff:10.0.0.5")).to_string(), "10.0.0.5");
        // Wider than the mapped block, so it stays IPv6.
        assert_eq!(net("::ffff:0:0/95").to_string(), "::fffe:0:0/95");
    }

    #[test]
    fn display_honours_width() {
        assert_eq!(format!("[{:<12}]", net("10.0.0.0/8")), "[10.0.0.0/8  ]");
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        assert_eq!(
            parse_error("10.0.0.300"),
            "'10.0.0.300' is not an IP address"
        );
        assert_eq!(parse_error("spammer"), "'spammer' is not an IP address");
        assert_eq!(parse_error(""), "'' is not an IP address");
        assert_eq!(
            parse_error("10.0.0.300/8"),
            "'10.0.0.300/8' is not an IP address"
        );
        assert_eq!(parse_error(" 10.0.0.1"), "' 10.0.0.1' is not an IP address");
    }

    #[test]
    fn rejects_prefix_longer_than_the_address() {
        assert_eq!(
            parse_error("10.0.0.0/40"),
            "'10.0.0.0/40': prefix length 40 is longer than 32"
        );
        assert_eq!(
            parse_error("2001:db8::/129"),
            "'2001:db8::/129': prefix length 129 is longer than 128"
        );
        assert_eq!(
            parse_error("10.0.0.0/99999999999"),
            "'10.0.0.0/99999999999': prefix length 99999999999 is longer than 32"
        );
        assert_eq!(net("10.0.0.0/32"), net("10.0.0.0"));
        assert_eq!(net("::/128"), net("::"));
    }

    #[test]
    fn rejects_malformed_prefix() {
        assert_eq!(
            parse_error("10.0.0.0/"),
            "'10.0.0.0/': prefix length is missing after '/'"
        );
        assert_eq!(
            parse_error("10.0.0.0/abc"),
            "'10.0.0.0/abc': prefix length 'abc' is not a number"
        );
        assert_eq!(
            parse_error("10.0.0.0/+8"),
            "'10.0.0.0/+8': prefix length '+8' is not a number"
        );
        assert_eq!(
            parse_error("10.0.0.0/8/9"),
            "'10.0.0.0/8/9': prefix length '8/9' is not a number"
        );
    }

    // ---- parsing the file format ----

    #[test]
    fn parses_file_with_comments_blank_lines_and_bad_lines() {
        let text = "# banned hosts\n\
                    10.0.0.5  # spammer\n\
                    \n\
                    \t2001:db8::/32\t\n\
                    10.0.0.300\n\
                    192.168.0.7/24#no space before comment\r\n\
                    # 10.9.9.9 is commented out\n\
                    10.0.0.0/40  # too wide\n\
                    ::ffff:1.2.3.4";
        let (list, warnings) = BanList::parse(text);
        assert_eq!(
            list.entries(),
            &[
                BanEntry {
                    net: net("10.0.0.5"),
                    line: 2
                },
                BanEntry {
                    net: net("2001:db8::/32"),
                    line: 4
                },
                BanEntry {
                    net: net("192.168.0.0/24"),
                    line: 6
                },
                BanEntry {
                    net: net("1.2.3.4"),
                    line: 9
                },
            ]
        );
        let messages: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "line 5: '10.0.0.300' is not an IP address",
                "line 8: '10.0.0.0/40': prefix length 40 is longer than 32",
            ]
        );
        assert_eq!(warnings[0].line, 5);
        assert_eq!(list.len(), 4);
        assert!(!list.is_empty());
    }

    #[test]
    fn line_with_two_addresses_is_one_bad_line() {
        let (list, warnings) = BanList::parse("10.0.0.1 10.0.0.2\n");
        assert!(list.is_empty());
        assert_eq!(
            warnings[0].to_string(),
            "line 1: '10.0.0.1 10.0.0.2' is not an IP address"
        );
    }

    #[test]
    fn empty_text_is_an_empty_list() {
        let (list, warnings) = BanList::parse("");
        assert_eq!(list, BanList::default());
        assert_eq!(list.len(), 0);
        assert!(list.is_empty());
        assert!(warnings.is_empty());
    }

    #[test]
    fn matching_returns_the_widest_entry() {
        let (list, _) = BanList::parse("10.0.0.0/8\n10.0.0.5\n");
        assert_eq!(
            list.matching(ip("10.0.0.5")),
            Some(&BanEntry {
                net: net("10.0.0.0/8"),
                line: 1
            })
        );
        assert!(list.is_banned(ip("10.200.0.1")));
        assert_eq!(list.matching(ip("11.0.0.1")), None);
        assert!(!list.is_banned(ip("11.0.0.1")));
    }

    // ---- matching addresses ----

    #[test]
    fn contains_respects_the_boundaries_of_a_slash_24() {
        let range = net("10.0.0.0/24");
        assert!(range.contains(ip("10.0.0.0")));
        assert!(range.contains(ip("10.0.0.255")));
        assert!(!range.contains(ip("9.255.255.255")));
        assert!(!range.contains(ip("10.0.1.0")));
    }

    #[test]
    fn slash_0_contains_its_whole_family() {
        let all_ipv4 = net("0.0.0.0/0");
        assert!(all_ipv4.contains(ip("0.0.0.0")));
        assert!(all_ipv4.contains(ip("255.255.255.255")));
        assert!(all_ipv4.contains(ip("::ffff:8.8.8.8")));
        assert!(!all_ipv4.contains(ip("2001:db8::1")));
        assert!(!all_ipv4.contains(ip("::")));

        let all_ipv6 = net("::/0");
        assert!(all_ipv6.contains(ip("2001:db8::1")));
        assert!(all_ipv6.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        // IPv4 peers reach an IPv6 socket as mapped addresses, which lie in ::/0.
        assert!(all_ipv6.contains(ip("1.2.3.4")));
    }

    #[test]
    fn contains_respects_the_boundaries_of_an_ipv6_slash_64() {
        let range = net("2001:db8:0:1::/64");
        assert!(range.contains(ip("2001:db8:0:1::")));
        assert!(range.contains(ip("2001:db8:0:1:ffff:ffff:ffff:ffff")));
        assert!(!range.contains(ip("2001:db8:0:0:ffff:ffff:ffff:ffff")));
        assert!(!range.contains(ip("2001:db8:0:2::")));
    }

    #[test]
    fn ipv4_entry_matches_ipv4_mapped_peer() {
        assert!(net("1.2.3.4").contains(ip("::ffff:1.2.3.4")));
        assert!(net("1.2.3.0/24").contains(ip("::ffff:1.2.3.200")));
        assert!(!net("1.2.3.0/24").contains(ip("::ffff:1.2.4.1")));
    }

    #[test]
    fn ipv4_mapped_entry_matches_ipv4_peer() {
        assert!(net("::ffff:1.2.3.4").contains(ip("1.2.3.4")));
        assert!(net("::ffff:1.2.3.0/120").contains(ip("1.2.3.99")));
        assert!(!net("::ffff:1.2.3.4").contains(ip("1.2.3.5")));
    }

    #[test]
    fn ipv4_entry_does_not_match_unrelated_ipv6() {
        let entry = net("1.2.3.4");
        assert!(!entry.contains(ip("::1.2.3.4"))); // deprecated IPv4-compatible form
        assert!(!entry.contains(ip("64:ff9b::1.2.3.4"))); // NAT64
        assert!(!entry.contains(ip("2001:db8::102:304")));
        assert!(!net("127.0.0.1").contains(ip("::1")));
        assert!(!net("2001:db8::/32").contains(ip("32.1.13.184")));
    }

    // ---- the index ----

    #[test]
    fn matching_prefers_the_widest_entry_then_the_first_listed() {
        let (list, _) = BanList::parse("10.0.0.5\n10.0.0.0/8\n10.0.0.0/8\n10.1.0.0/16\n");
        assert_eq!(list.matching(ip("10.0.0.5")).map(|e| e.line), Some(2));
        assert_eq!(list.matching(ip("10.1.2.3")).map(|e| e.line), Some(2));
        let (list, _) = BanList::parse("2001:db8::1\n::/0\n1.2.3.4\n");
        // ::/0 holds the IPv4-mapped block, so it is the widest entry for an IPv4 peer too.
        assert_eq!(list.matching(ip("1.2.3.4")).map(|e| e.line), Some(2));
        assert_eq!(list.matching(ip("2001:db8::1")).map(|e| e.line), Some(2));
    }

    /// What [`BanList::matching`] must answer, the slow way.
    fn widest_by_scan(list: &BanList, addr: IpAddr) -> Option<&BanEntry> {
        list.entries()
            .iter()
            .filter(|e| e.net.contains(addr))
            .min_by_key(|e| (e.net.in_ipv6_space().1, e.line))
    }

    #[test]
    fn the_index_agrees_with_a_scan_of_every_entry() {
        // A small deterministic generator: many nested and overlapping-looking ranges in a
        // narrow space, so hits, misses and edges are all common.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..200 {
            // Every tenth list is long enough to be bucketed, over several buckets.
            let (count, spread, widest) = match round % 10 {
                0 => (2000, 0x0007_ffff, 22),
                _ => (next() % 40, 0x0000_ffff, 14),
            };
            let mut text = String::new();
            for _ in 0..count {
                let addr = Ipv4Addr::from(0x0a00_0000 | (next() as u32 & spread));
                let prefix = widest + next() % (33 - widest);
                text.push_str(&format!("{addr}/{prefix}\n"));
                if next() % 5 == 0 {
                    text.push_str(&format!("::ffff:{addr}/{}\n", 96 + prefix));
                }
                if next() % 9 == 0 && count < 100 {
                    text.push_str("::/1\n");
                }
            }
            let (list, warnings) = BanList::parse(&text);
            assert!(warnings.is_empty(), "{warnings:?}");
            if count == 2000 {
                assert!(
                    !list.index.v4_buckets.is_empty(),
                    "the buckets are tested too"
                );
            }
            for _probe in 0..200 {
                let addr = IpAddr::V4(Ipv4Addr::from(
                    0x0a00_0000 | (next() as u32 & (spread << 1 | 1)),
                ));
                let scanned = widest_by_scan(&list, addr);
                assert_eq!(list.matching(addr), scanned, "{addr} in\n{text}");
                let mapped = IpAddr::V6(match addr {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                    IpAddr::V6(v6) => v6,
                });
                assert_eq!(list.matching(mapped), scanned);
            }
            // The edges of every range, where an off-by-one would show.
            for entry in list.entries().iter().take(300) {
                let (network, prefix_len) = entry.net.in_ipv6_space();
                for bits in [network, network | !mask(prefix_len)] {
                    for addr in [bits.wrapping_sub(1), bits, bits.wrapping_add(1)] {
                        let addr = IpAddr::V6(Ipv6Addr::from(addr)).to_canonical();
                        let scanned = widest_by_scan(&list, addr);
                        assert_eq!(list.matching(addr), scanned, "{addr} in\n{text}");
                    }
                }
            }
        }
    }
}
